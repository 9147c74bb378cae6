//! Office documents: VBA macros in OLE compound files (`.doc`, `.xls`, and
//! the `vbaProject.bin` part inside OOXML), Windows Installer packages
//! (OLE with the MSI class id), and the OOXML content-type list that names
//! a VBA part however it is called.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Directory entries read before giving up: a real document has dozens,
/// and the walk must stay bounded on a hostile one.
const MAX_ENTRIES: usize = 10_000;

/// What an OLE file holds that matters here.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ole {
    /// The entry that betrays a VBA project.
    pub vba: Option<String>,
    /// A Windows Installer package (or patch or transform).
    pub msi: bool,
}

/// Opens an OLE compound file; `Err` says why it could not be read. The
/// parser runs under `catch_unwind` so a hostile file cannot take the scan
/// down with it.
pub fn ole(bytes: &[u8]) -> Result<Ole, String> {
    match catch_unwind(AssertUnwindSafe(|| read_ole(bytes))) {
        Ok(r) => r,
        Err(_) => Err("the OLE parser failed".into()),
    }
}

fn read_ole(bytes: &[u8]) -> Result<Ole, String> {
    let cf = cfb::CompoundFile::open(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let mut out = Ole { msi: is_msi_clsid(&cf.root_entry().clsid().to_string()), vba: None };
    for entry in cf.walk().take(MAX_ENTRIES) {
        if vba_entry(entry.name(), entry.is_storage()) {
            out.vba = Some(entry.path().to_string_lossy().into_owned());
            break;
        }
    }
    Ok(out)
}

/// `_VBA_PROJECT` (the project stream), `_VBA_PROJECT_CUR` (Excel's
/// storage) and the `VBA` / `Macros` storages ([MS-OVBA] 2.2, [MS-DOC]
/// 2.1.9) all mean the document carries VBA.
fn vba_entry(name: &str, storage: bool) -> bool {
    let n = name.to_ascii_lowercase();
    n == "_vba_project" || n == "_vba_project_cur" || (storage && (n == "vba" || n == "macros"))
}

/// MSI {000C1084-...}, MSP {000C1086-...} and MST {000C1082-...}.
fn is_msi_clsid(clsid: &str) -> bool {
    let c = clsid.to_ascii_lowercase();
    ["000c1084", "000c1086", "000c1082"].iter().any(|p| c.starts_with(p)) && c.ends_with("-0000-0000-c000-000000000046")
}

/// An OOXML `[Content_Types].xml` that declares a VBA project part
/// (`application/vnd.ms-office.vbaProject`), whatever the part is named.
pub fn content_types_name_vba(xml: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"vnd.ms-office.vbaproject";
    xml.windows(NEEDLE.len()).any(|w| w.eq_ignore_ascii_case(NEEDLE))
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::io::Write;

    /// An OLE file with the given storages and streams.
    pub fn build(storages: &[&str], streams: &[&str]) -> Vec<u8> {
        let mut cf = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
        for s in storages {
            cf.create_storage(s).unwrap();
        }
        for s in streams {
            cf.create_stream(s).unwrap().write_all(b"data").unwrap();
        }
        cf.flush().unwrap();
        cf.into_inner().into_inner()
    }

    #[test]
    fn word_macros() {
        let doc = build(&["/Macros", "/Macros/VBA"], &["/WordDocument", "/Macros/VBA/dir"]);
        let r = ole(&doc).unwrap();
        assert!(r.vba.as_deref().is_some_and(|p| p.contains("Macros")), "{r:?}");
        assert!(!r.msi);
    }

    #[test]
    fn vba_project_stream() {
        let bin = build(&["/VBA"], &["/_VBA_PROJECT", "/VBA/dir"]);
        assert!(ole(&bin).unwrap().vba.is_some());
    }

    #[test]
    fn plain_documents_have_no_vba() {
        let doc = build(&["/ObjectPool"], &["/WordDocument", "/1Table"]);
        assert_eq!(ole(&doc).unwrap(), Ole::default());
    }

    #[test]
    fn truncated_files_are_errors() {
        let doc = build(&[], &["/WordDocument"]);
        assert!(ole(&doc[..600]).is_err());
        assert!(ole(&doc[..8]).is_err());
    }

    #[test]
    fn installer_class_ids() {
        assert!(is_msi_clsid("000C1084-0000-0000-C000-000000000046"));
        assert!(!is_msi_clsid("00020906-0000-0000-C000-000000000046"));
    }

    #[test]
    fn content_types() {
        assert!(content_types_name_vba(
            br#"<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>"#
        ));
        assert!(!content_types_name_vba(b"<Types/>"));
    }
}
