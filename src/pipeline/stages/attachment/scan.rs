//! The scan of one message's files: names and declared types against the
//! rules, then the bytes themselves (programs, archives, Office files),
//! descending into archives within the per-message budget.

use super::names;
use super::sniff::{Sniffed, sniff};
use super::verdict::{Hit, Kind};
use super::{archive, office};

/// The configuration, normalised: lowercase extensions without dots.
#[derive(Debug, Clone)]
pub struct Rules {
    pub blocked_extensions: Vec<String>,
    pub allowed_extensions: Vec<String>,
    pub blocked_types: Vec<String>,
    pub max_depth: usize,
    pub max_members: usize,
    pub max_bytes: u64,
    pub max_ratio: f64,
}

impl Rules {
    fn blocked(&self, ext: &str) -> bool {
        self.blocked_extensions.iter().any(|b| b == ext)
    }

    /// Names that say "program" honestly: blocked ones, and the usual
    /// program extensions even when an operator allowed them.
    fn announces_program(&self, ext: &str) -> bool {
        const PROGRAMS: &[&str] = &[
            "exe", "dll", "scr", "com", "pif", "cpl", "ocx", "sys", "drv", "efi", "msi", "msp", "mst", "bin", "elf",
            "so", "o", "out", "run", "app", "dylib", "class", "jar", "sh", "bash", "ksh", "zsh", "csh", "command",
            "py", "pl", "rb", "php", "lnk",
        ];
        self.blocked(ext) || PROGRAMS.contains(&ext)
    }
}

/// One file: a top-level attachment or an archive member.
pub struct File<'a> {
    /// How reasons name it: `outer.zip > inner.zip > setup.exe`.
    pub path: String,
    /// Every name it is given (Content-Disposition filename, Content-Type
    /// name); a sender can give different ones to fool a single check.
    pub names: Vec<String>,
    /// The declared MIME type, lowercase, without parameters.
    pub declared: Option<String>,
    pub bytes: &'a [u8],
}

/// The findings so far and what is left of the archive budget, which is
/// per message so that many small bombs cost no more than one big one.
pub struct Scanner<'r> {
    pub rules: &'r Rules,
    pub members: usize,
    pub bytes: u64,
    /// Set once a budget ran out: no further archive is opened.
    pub stopped: bool,
    pub hits: Vec<Hit>,
}

impl<'r> Scanner<'r> {
    pub fn new(rules: &'r Rules) -> Scanner<'r> {
        Scanner { rules, members: 0, bytes: 0, stopped: false, hits: Vec::new() }
    }

    pub fn hit(&mut self, kind: Kind, reason: String) {
        self.hits.push(Hit { kind, reason });
    }

    /// Scans a file at archive depth `depth` (0: an attachment).
    pub fn file(&mut self, f: &File<'_>, depth: usize) {
        for n in &f.names {
            self.name(&f.path, n, depth == 0);
        }
        if let Some(d) = &f.declared {
            self.declared(&f.path, d);
        }
        let ext = f.names.iter().find_map(|n| names::extension(n));
        match sniff(f.bytes) {
            Sniffed::Executable(what) => self.executable(f, ext.as_deref(), what),
            Sniffed::Zip => archive::walk(self, f, depth),
            Sniffed::Ole => self.ole(f, ext.as_deref()),
            Sniffed::OtherArchive(a) => {
                self.hit(Kind::UnscannedArchive, format!("{}: {a} archive not inspected", f.path))
            }
            _ if names::claims_zip(ext.as_deref(), f.declared.as_deref()) => {
                self.hit(Kind::UnreadableArchive, format!("{}: called a zip but is not one", f.path))
            }
            _ => {}
        }
    }

    /// Checks one name; `top` when it names an attachment, not a member.
    pub fn name(&mut self, path: &str, name: &str, top: bool) {
        if names::has_bidi_control(name) {
            self.hit(Kind::BidiName, format!("{path}: the name holds bidirectional control characters"));
        }
        let ext = names::extension(name);
        if let Some(e) = &ext {
            if self.rules.blocked(e) {
                self.hit(Kind::BlockedExtension, format!("{path}: .{e} files are blocked"));
            }
            if let Some(decoy) = names::double_extension(name, |x| self.rules.blocked(x)) {
                self.hit(Kind::DoubleExtension, format!("{path}: .{e} hidden behind .{decoy}"));
            }
            if names::macro_enabled_extension(e) {
                self.hit(Kind::MacroEnabled, format!("{path}: .{e} is a macro-enabled format"));
            }
        }
        let allowed = &self.rules.allowed_extensions;
        if top && !allowed.is_empty() && !ext.as_ref().is_some_and(|e| allowed.contains(e)) {
            let what = ext.map_or("a name without extension".to_string(), |e| format!(".{e}"));
            self.hit(Kind::NotAllowed, format!("{path}: {what} is not an allowed extension"));
        }
    }

    fn declared(&mut self, path: &str, d: &str) {
        if self.rules.blocked_types.iter().any(|b| b == d) {
            self.hit(Kind::BlockedType, format!("{path}: declared type {d} is blocked"));
        }
        if names::macro_enabled_type(d) {
            self.hit(Kind::MacroEnabled, format!("{path}: declared type {d} is macro-enabled"));
        }
    }

    /// A program; disguised when its name or declared type claims some
    /// other kind of file.
    fn executable(&mut self, f: &File<'_>, ext: Option<&str>, what: &str) {
        let ext_lies = ext.is_some_and(|e| !self.rules.announces_program(e));
        let type_lies = f.declared.as_deref().is_some_and(|d| !names::executable_type(d));
        if !(ext_lies || type_lies) {
            return self.hit(Kind::Executable, format!("{}: {what}", f.path));
        }
        let claim = match (ext, f.declared.as_deref()) {
            (Some(e), Some(d)) => format!(".{e} file ({d})"),
            (Some(e), None) => format!(".{e} file"),
            (None, Some(d)) => d.to_string(),
            (None, None) => "something else".to_string(),
        };
        self.hit(Kind::DisguisedExecutable, format!("{}: claims to be a {claim} but is a {what}", f.path));
    }

    fn ole(&mut self, f: &File<'_>, ext: Option<&str>) {
        match office::ole(f.bytes) {
            Ok(o) => {
                if let Some(entry) = o.vba {
                    self.hit(Kind::Macro, format!("{}: VBA macros ({entry})", f.path));
                }
                if o.msi {
                    self.executable(f, ext, "Windows Installer package");
                }
            }
            Err(e) => self.hit(Kind::UnreadableDocument, format!("{}: OLE document cannot be read ({e})", f.path)),
        }
    }
}
