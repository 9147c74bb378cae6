//! What the attachment scan can find, each kind with its symbol name,
//! default score and default action, and how the findings of one message
//! become symbols: one symbol per kind, the files it concerns in the reason.
//!
//! Every name starts with `ATTACHMENT_`: the policy keeps these verdicts
//! even for allow-listed senders, because a trusted sender can still be
//! sending something harmful (a compromised mailbox, a forwarded file).

use crate::pipeline::{Action, Symbol};

/// One kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BlockedExtension,
    BlockedType,
    NotAllowed,
    DoubleExtension,
    BidiName,
    Executable,
    DisguisedExecutable,
    Macro,
    MacroEnabled,
    EncryptedArchive,
    ArchiveBomb,
    ArchiveTooDeep,
    ArchiveTooManyMembers,
    UnreadableArchive,
    UnreadableDocument,
    UnscannedArchive,
}

const Q: Option<Action> = Some(Action::Quarantine);

impl Kind {
    /// Symbol name, default score and default hard action.
    pub fn meta(self) -> (&'static str, f64, Option<Action>) {
        match self {
            Kind::BlockedExtension => ("ATTACHMENT_BLOCKED_EXTENSION", 5.0, Q),
            Kind::BlockedType => ("ATTACHMENT_BLOCKED_TYPE", 5.0, Q),
            Kind::NotAllowed => ("ATTACHMENT_EXTENSION_NOT_ALLOWED", 5.0, Q),
            Kind::DoubleExtension => ("ATTACHMENT_DOUBLE_EXTENSION", 5.0, Q),
            Kind::BidiName => ("ATTACHMENT_BIDI_NAME", 5.0, Q),
            Kind::Executable => ("ATTACHMENT_EXECUTABLE", 5.0, Q),
            Kind::DisguisedExecutable => ("ATTACHMENT_DISGUISED_EXECUTABLE", 8.0, Q),
            Kind::Macro => ("ATTACHMENT_MACRO", 5.0, Q),
            Kind::MacroEnabled => ("ATTACHMENT_MACRO_ENABLED", 5.0, Q),
            Kind::EncryptedArchive => ("ATTACHMENT_ENCRYPTED_ARCHIVE", 3.0, Q),
            Kind::ArchiveBomb => ("ATTACHMENT_ARCHIVE_BOMB", 5.0, Q),
            Kind::ArchiveTooDeep => ("ATTACHMENT_ARCHIVE_TOO_DEEP", 3.0, Q),
            Kind::ArchiveTooManyMembers => ("ATTACHMENT_ARCHIVE_TOO_MANY_MEMBERS", 3.0, Q),
            // Unreadable content is not clean, but a damaged file is more
            // often an accident than an attack: the score alone reaches the
            // default tag threshold, and operators who want these held set
            // `action = "quarantine"` in `[policy.symbols]`.
            // What cannot be opened cannot be called clean.
            Kind::UnreadableArchive => ("ATTACHMENT_UNREADABLE_ARCHIVE", 5.0, Some(Action::Quarantine)),
            Kind::UnreadableDocument => ("ATTACHMENT_UNREADABLE_DOCUMENT", 3.0, None),
            Kind::UnscannedArchive => ("ATTACHMENT_UNSCANNED_ARCHIVE", 1.0, None),
        }
    }
}

/// One finding about one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub kind: Kind,
    pub reason: String,
}

/// Reasons listed per symbol before the rest is only counted, so that a
/// zip of a thousand executables still makes a header line of sane length.
const MAX_REASONS: usize = 3;

/// One symbol per kind, in the order the kinds were first found.
pub fn to_symbols(hits: &[Hit]) -> Vec<Symbol> {
    let mut kinds: Vec<Kind> = Vec::new();
    for h in hits {
        if !kinds.contains(&h.kind) {
            kinds.push(h.kind);
        }
    }
    kinds.into_iter().map(|k| symbol(k, hits)).collect()
}

fn symbol(kind: Kind, hits: &[Hit]) -> Symbol {
    let (name, score, action) = kind.meta();
    let mut seen = std::collections::HashSet::new();
    let reasons: Vec<&str> =
        hits.iter().filter(|h| h.kind == kind && seen.insert(h.reason.as_str())).map(|h| h.reason.as_str()).collect();
    let mut reason = reasons.iter().take(MAX_REASONS).copied().collect::<Vec<_>>().join("; ");
    if reasons.len() > MAX_REASONS {
        reason.push_str(&format!("; and {} more", reasons.len() - MAX_REASONS));
    }
    let s = Symbol::new(name, score, reason);
    match action {
        Some(a) => s.with_action(a),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(kind: Kind, reason: &str) -> Hit {
        Hit { kind, reason: reason.into() }
    }

    #[test]
    fn one_symbol_per_kind_with_the_reasons_joined() {
        let hits = [
            hit(Kind::Executable, "a.exe: PE executable"),
            hit(Kind::EncryptedArchive, "x.zip: encrypted member"),
            hit(Kind::Executable, "b.exe: PE executable"),
            hit(Kind::Executable, "b.exe: PE executable"),
        ];
        let s = to_symbols(&hits);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "ATTACHMENT_EXECUTABLE");
        assert_eq!(s[0].reason, "a.exe: PE executable; b.exe: PE executable");
        assert_eq!(s[0].action, Some(Action::Quarantine));
        assert_eq!(s[1].name, "ATTACHMENT_ENCRYPTED_ARCHIVE");
    }

    #[test]
    fn long_lists_are_counted() {
        let hits: Vec<Hit> = (0..10).map(|i| hit(Kind::BlockedExtension, &format!("f{i}.exe"))).collect();
        let s = to_symbols(&hits);
        assert_eq!(s[0].reason, "f0.exe; f1.exe; f2.exe; and 7 more");
    }

    #[test]
    fn unreadable_archives_are_quarantined() {
        let s = to_symbols(&[hit(Kind::UnreadableArchive, "x.zip: not a zip")]);
        assert_eq!((s[0].score, s[0].action), (5.0, Some(Action::Quarantine)));
    }
}
