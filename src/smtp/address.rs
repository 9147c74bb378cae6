//! Mailbox paths as they appear in MAIL FROM and RCPT TO (RFC 5321 §4.1.2).

use std::fmt;

/// A mailbox `local@domain`. The domain is kept lower-case; the local part
/// is kept as sent (RFC 5321 §2.4: local parts may be case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Mailbox {
    pub local: String,
    pub domain: String,
}

impl Mailbox {
    pub fn parse(s: &str) -> Option<Mailbox> {
        let at = s.rfind('@')?;
        let (local, domain) = (&s[..at], &s[at + 1..]);
        if local.is_empty() || local.len() > 64 || !valid_local(local) {
            return None;
        }
        let domain = parse_domain(domain)?;
        Some(Mailbox { local: local.to_string(), domain })
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// A domain or an address literal (RFC 5321 §4.1.3), lower-cased.
pub fn parse_domain(d: &str) -> Option<String> {
    if d.is_empty() || d.len() > 255 {
        return None;
    }
    if d.starts_with('[') && d.ends_with(']') {
        let inner = &d[1..d.len() - 1];
        let ip = inner.strip_prefix("IPv6:").unwrap_or(inner);
        return ip.parse::<std::net::IpAddr>().ok().map(|_| d.to_ascii_lowercase());
    }
    let ok = d.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-' || !c.is_ascii())
    });
    ok.then(|| d.to_lowercase())
}

fn valid_local(local: &str) -> bool {
    if local.starts_with('"') {
        // Quoted-string (RFC 5321 §4.1.2): printable characters, backslash pairs.
        return local.len() >= 2 && local.ends_with('"') && !local.contains(['\r', '\n']);
    }
    // Dot-string: atoms separated by single dots. Non-ASCII is allowed here and
    // checked against SMTPUTF8 by the caller (RFC 6531 §3.3).
    !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
}

/// The path in angle brackets: `<>`, `<user@domain>` or with an obsolete
/// source route `<@a,@b:user@domain>` whose route is ignored (RFC 5321 §4.1.2).
/// Returns `Some(None)` for the null path.
pub fn parse_path(s: &str) -> Option<Option<Mailbox>> {
    let inner = s.strip_prefix('<')?.strip_suffix('>')?;
    if inner.is_empty() {
        return Some(None);
    }
    let inner = match inner.starts_with('@') {
        true => &inner[inner.find(':')? + 1..],
        false => inner,
    };
    Mailbox::parse(inner).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let cases: &[(&str, Option<&str>)] = &[
            ("<a@Example.TEST>", Some("a@example.test")),
            ("<@relay.test:a@b.test>", Some("a@b.test")),
            ("<\"john doe\"@b.test>", Some("\"john doe\"@b.test")),
            ("<a@[127.0.0.1]>", Some("a@[127.0.0.1]")),
            ("<jöran@bü.test>", Some("jöran@bü.test")),
            ("<a..b@b.test>", None),
            ("<a@b..test>", None),
            ("<a@-b.test>", None),
            ("a@b.test", None),
            ("<a@[300.1.1.1]>", None),
            ("<a b@c.test>", None),
        ];
        for (input, want) in cases {
            let got = parse_path(input).and_then(|m| m).map(|m| m.to_string());
            assert_eq!(got.as_deref(), *want, "{input}");
        }
        assert_eq!(parse_path("<>"), Some(None));
    }
}
