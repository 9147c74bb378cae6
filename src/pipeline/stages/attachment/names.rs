//! What a file's name and declared type claim: its extension as Windows
//! would see it, double extensions (`invoice.pdf.exe`, `report.doc   .scr`),
//! right-to-left overrides that make `cod.exe` read as `exe.doc`, and the
//! macro-enabled Office formats.

/// The last path component of a name (archive members carry paths).
pub fn base(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// Windows drops trailing dots and spaces, so `evil.exe. ` runs as `evil.exe`.
fn trimmed(name: &str) -> &str {
    base(name).trim_end_matches(|c: char| c == '.' || c.is_whitespace() || c == '\0')
}

/// The lowercase extension, without the dot; `None` without one.
pub fn extension(name: &str) -> Option<String> {
    let t = trimmed(name);
    let (stem, ext) = t.rsplit_once('.')?;
    let ext = ext.trim();
    (!stem.is_empty() && !ext.is_empty() && ext.len() <= 16).then(|| ext.to_ascii_lowercase())
}

/// Extensions of files people expect to open safely; one of them in front
/// of a dangerous extension is a decoy.
const DECOYS: &[&str] = &[
    "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "rtf", "txt", "csv", "odt", "ods", "jpg", "jpeg", "png", "gif",
    "bmp", "tif", "tiff", "htm", "html", "zip", "rar", "mp3", "mp4", "avi", "wav", "eml", "msg", "xml",
];

/// The decoy extension when `name` ends in a dangerous extension that
/// follows a harmless-looking one, or in one pushed out of view by a run of
/// padding before it.
pub fn double_extension(name: &str, dangerous: impl Fn(&str) -> bool) -> Option<String> {
    let t = trimmed(name);
    let (rest, ext) = t.rsplit_once('.')?;
    if !dangerous(&ext.trim().to_ascii_lowercase()) {
        return None;
    }
    let padded = rest.chars().rev().take_while(|c| c.is_whitespace() || *c == '_').count() >= 3;
    let prev = rest.rsplit_once('.').map(|(_, p)| p).unwrap_or("");
    let prev = prev.trim_end_matches(|c: char| c.is_whitespace() || c == '_').to_ascii_lowercase();
    (DECOYS.contains(&prev.as_str()) || padded).then_some(prev)
}

/// Unicode bidirectional controls (U+202A..U+202E, U+2066..U+2069), which
/// reorder how a name is displayed: `invoice\u{202E}fdp.exe` shows as
/// `invoiceexe.pdf`.
pub fn has_bidi_control(name: &str) -> bool {
    name.chars().any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
}

/// Office Open XML formats that may carry VBA.
const MACRO_ENABLED: &[&str] =
    &["docm", "dotm", "xlsm", "xltm", "xlam", "xlsb", "pptm", "potm", "ppam", "ppsm", "sldm"];

pub fn macro_enabled_extension(ext: &str) -> bool {
    MACRO_ENABLED.contains(&ext)
}

/// `application/vnd.ms-word.document.macroEnabled.12` and its siblings.
pub fn macro_enabled_type(mime: &str) -> bool {
    let m = mime.to_ascii_lowercase();
    m.contains("macroenabled") || m.contains("vbaproject")
}

/// Whether the name or declared type says "zip", so that bytes which are
/// no zip at all are reported rather than passed over.
pub fn claims_zip(ext: Option<&str>, declared: Option<&str>) -> bool {
    let zip_type = declared.is_some_and(|d| {
        let d = d.to_ascii_lowercase();
        d == "application/zip" || d == "application/x-zip-compressed" || d == "application/x-zip"
    });
    ext == Some("zip") || zip_type
}

/// Declared types that honestly say "program" (or say nothing).
pub fn executable_type(declared: &str) -> bool {
    let d = declared.to_ascii_lowercase();
    d == "application/octet-stream"
        || ["executable", "msdownload", "dosexec", "msdos-program", "x-sh", "shellscript", "x-mach", "java"]
            .iter()
            .any(|k| d.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe(e: &str) -> bool {
        ["exe", "scr", "js"].contains(&e)
    }

    #[test]
    fn extensions_as_windows_sees_them() {
        assert_eq!(extension("Invoice.PDF").as_deref(), Some("pdf"));
        assert_eq!(extension("dir/sub\\setup.exe. . ").as_deref(), Some("exe"));
        assert_eq!(extension(".profile"), None);
        assert_eq!(extension("README"), None);
        assert_eq!(base("a/b/c.txt"), "c.txt");
    }

    #[test]
    fn double_extensions() {
        assert_eq!(double_extension("invoice.pdf.exe", exe).as_deref(), Some("pdf"));
        assert_eq!(double_extension("report.doc   .scr", exe).as_deref(), Some("doc"));
        assert_eq!(double_extension("photo.JPG.js", exe).as_deref(), Some("jpg"));
        assert!(double_extension("setup.exe", exe).is_none());
        assert!(double_extension("my.tool.exe", exe).is_none());
        assert!(double_extension("archive.tar.gz", exe).is_none());
        assert!(double_extension("invoice.exe.pdf", exe).is_none());
    }

    #[test]
    fn padding_hides_the_real_extension() {
        assert!(double_extension("statement.xyz________________.exe", exe).is_some());
        assert!(double_extension("invoice                 .exe", exe).is_some());
    }

    #[test]
    fn bidi_overrides() {
        assert!(has_bidi_control("invoice\u{202E}fdp.exe"));
        assert!(!has_bidi_control("Rechnung März.pdf"));
    }

    #[test]
    fn macro_enabled_formats() {
        assert!(macro_enabled_extension("docm"));
        assert!(!macro_enabled_extension("docx"));
        assert!(macro_enabled_type("application/vnd.ms-word.document.macroEnabled.12"));
        assert!(!macro_enabled_type("application/vnd.openxmlformats-officedocument.wordprocessingml.document"));
    }

    #[test]
    fn claimed_types() {
        assert!(claims_zip(Some("zip"), None));
        assert!(claims_zip(None, Some("Application/X-Zip-Compressed")));
        assert!(!claims_zip(Some("docx"), Some("application/pdf")));
        assert!(executable_type("application/x-msdownload"));
        assert!(!executable_type("application/pdf"));
    }
}
