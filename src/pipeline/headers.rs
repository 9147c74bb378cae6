//! Header surgery on the message that goes downstream: the verdict headers
//! and Authentication-Results are added on top, forged copies of ours are
//! removed, and tagged mail gets its Subject prefixed. Works on raw bytes
//! so nothing else in the message changes.

use super::finding::{Action, Decision, fmt_score};

/// The header fields of `raw`, each with its folded lines and line end, and
/// the offset where the body (after the blank line) starts.
pub fn split_fields(raw: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut fields: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    while pos < raw.len() {
        let end = raw[pos..].iter().position(|&b| b == b'\n').map_or(raw.len(), |i| pos + i + 1);
        let line = &raw[pos..end];
        if line == b"\r\n" || line == b"\n" {
            if start < pos {
                fields.push(&raw[start..pos]);
            }
            return (fields, end);
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation && start < pos {
            fields.push(&raw[start..pos]);
            start = pos;
        }
        pos = end;
    }
    if start < pos {
        fields.push(&raw[start..pos]);
    }
    (fields, raw.len())
}

fn name_of(field: &[u8]) -> &[u8] {
    let colon = field.iter().position(|&b| b == b':').unwrap_or(field.len());
    field[..colon].trim_ascii()
}

/// The authserv-id of an Authentication-Results value (RFC 8601 §2.2): a
/// value (token or quoted-string) after optional CFWS, comments nested as
/// RFC 5322 §3.2.2 allows. `None` when it cannot be read cleanly.
pub fn authserv_id(value: &str) -> Option<String> {
    let rest = skip_cfws(value)?;
    if let Some(q) = rest.strip_prefix('"') {
        let mut id = String::new();
        let mut chars = q.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return (!id.is_empty()).then_some(id),
                '\\' => id.push(chars.next()?),
                c => id.push(c),
            }
        }
        return None;
    }
    let id: String = rest.chars().take_while(|&c| !(c == ';' || c == '(' || c == '"' || c.is_whitespace())).collect();
    (!id.is_empty()).then_some(id)
}

/// What follows leading whitespace and (nested) comments.
fn skip_cfws(v: &str) -> Option<&str> {
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, c) in v.char_indices() {
        match (depth, c) {
            _ if escaped => escaped = false,
            (1.., '\\') => escaped = true,
            (_, '(') => depth += 1,
            (1.., ')') => depth -= 1,
            (0, c) if c.is_whitespace() => {}
            (0, _) => return Some(&v[i..]),
            _ => {}
        }
    }
    None
}

/// A field we must not pass on: Authentication-Results claiming our
/// authserv-id (RFC 8601 §5: an MTA removes such headers it did not add),
/// and any X-Mxgate-* header that did not come from us.
fn forged(field: &[u8], hostname: &str) -> bool {
    let name = name_of(field);
    if name.len() >= 9 && name[..9].eq_ignore_ascii_case(b"x-mxgate-") {
        return true;
    }
    if !name.eq_ignore_ascii_case(b"authentication-results") {
        return false;
    }
    let value = String::from_utf8_lossy(&field[name.len()..]);
    let value = value.trim_start().trim_start_matches(':');
    // One we cannot read cleanly is dropped too: a downstream parser might
    // read it as ours.
    authserv_id(value).is_none_or(|id| id.trim_end_matches('.').eq_ignore_ascii_case(hostname.trim_end_matches('.')))
}

/// The message as delivered: our headers on top, forged ones removed,
/// the Subject prefixed when tagged.
pub fn rewrite(raw: &[u8], hostname: &str, d: &Decision, subject_prefix: &str) -> Vec<u8> {
    let (fields, body_at) = split_fields(raw);
    let mut out = Vec::with_capacity(raw.len() + 512);
    // Our own Received trace field stays on top (RFC 5321 §4.4); the
    // results go right under it, as RFC 8601 §5 asks.
    let ours = fields.first().is_some_and(|f| name_of(f).eq_ignore_ascii_case(b"received"));
    let (trace, fields) = fields.split_at(usize::from(ours));
    trace.iter().for_each(|f| out.extend_from_slice(f));
    out.extend_from_slice(verdict_headers(hostname, d).as_bytes());
    let tag = d.action == Action::Tag && !subject_prefix.is_empty();
    let mut subject_seen = false;
    for &f in fields {
        if forged(f, hostname) {
            continue;
        }
        if tag && !subject_seen && name_of(f).eq_ignore_ascii_case(b"subject") {
            subject_seen = true;
            out.extend_from_slice(&prefixed_subject(f, subject_prefix));
            continue;
        }
        out.extend_from_slice(f);
    }
    if tag && !subject_seen {
        out.extend_from_slice(format!("Subject: {subject_prefix}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&raw[body_at.min(raw.len())..]);
    out
}

fn prefixed_subject(field: &[u8], prefix: &str) -> Vec<u8> {
    let colon = field.iter().position(|&b| b == b':').unwrap_or(0);
    let value = &field[colon + 1..];
    if value.trim_ascii_start().starts_with(prefix.as_bytes()) {
        return field.to_vec();
    }
    let mut f = field[..=colon].to_vec();
    f.extend_from_slice(format!(" {prefix}").as_bytes());
    if !value.starts_with(b" ") {
        f.push(b' ');
    }
    f.extend_from_slice(value);
    f
}

fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Authentication-Results (RFC 8601) and the X-Mxgate-* verdict headers.
pub fn verdict_headers(hostname: &str, d: &Decision) -> String {
    let mut ar = format!("Authentication-Results: {hostname}");
    if d.auth_results.is_empty() {
        ar.push_str("; none");
    }
    for r in &d.auth_results {
        ar.push_str(";\r\n\t");
        ar.push_str(&clean(r));
    }
    let list = d.symbol_list();
    let symbols = fold("X-Mxgate-Symbols:", if list.is_empty() { "none" } else { &list });
    format!("{ar}\r\nX-Mxgate-Verdict: {}\r\nX-Mxgate-Score: {}\r\n{symbols}", d.action.as_str(), fmt_score(d.score))
}

/// `name value`, folded after commas so no line passes 78 characters.
fn fold(name: &str, list: &str) -> String {
    let mut out = name.to_string();
    let mut line_len = out.len();
    for (i, item) in list.split(", ").enumerate() {
        let item = clean(item);
        let sep = if i == 0 { "" } else { "," };
        if i > 0 && line_len + item.len() + 2 > 78 {
            out.push_str(sep);
            out.push_str("\r\n\t");
            line_len = 1;
        } else {
            out.push_str(sep);
            out.push(' ');
            line_len += sep.len() + 1;
        }
        out.push_str(&item);
        line_len += item.len();
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::finding::Symbol;

    fn decision(action: Action) -> Decision {
        Decision {
            action,
            score: 6.5,
            symbols: vec![Symbol::new("A", 6.0, "a"), Symbol::new("B", 0.5, "b")],
            reason: String::new(),
            auth_results: vec!["spf=pass smtp.mailfrom=x@s.test".into()],
        }
    }

    #[test]
    fn authserv_ids() {
        let id = |v: &str| authserv_id(v);
        assert_eq!(id(" mx.gw.test; spf=pass").as_deref(), Some("mx.gw.test"));
        assert_eq!(id("(comment) mx.gw.test 1; none").as_deref(), Some("mx.gw.test"));
        assert_eq!(id("mx.gw.test;none").as_deref(), Some("mx.gw.test"));
        assert_eq!(id("mx.gw.test(x); dkim=pass").as_deref(), Some("mx.gw.test"));
        assert_eq!(id("\"mx.gw.test\"; dmarc=pass").as_deref(), Some("mx.gw.test"));
        assert_eq!(id("((a) \\) b) mx.gw.test; spf=pass").as_deref(), Some("mx.gw.test"));
        assert_eq!(id("(unclosed mx.gw.test; spf=pass"), None);
        assert_eq!(id("\"unterminated; spf=pass"), None);
        assert_eq!(id("   "), None);
    }

    #[test]
    fn forged_results_and_verdicts_are_removed_and_subject_tagged() {
        let raw = b"Received: from x\r\n\tby y\r\nAuthentication-Results: MX.GW.TEST;\r\n dkim=pass\r\n\
Authentication-Results: other.test; spf=fail\r\nX-Mxgate-Verdict: deliver\r\nSubject: hello\r\n\r\nbody\r\n";
        let out = String::from_utf8(rewrite(raw, "mx.gw.test", &decision(Action::Tag), "[SPAM]")).unwrap();
        let ar = "Authentication-Results: mx.gw.test;\r\n\tspf=pass smtp.mailfrom=x@s.test\r\n";
        assert!(out.starts_with(&format!("Received: from x\r\n\tby y\r\n{ar}")), "{out}");
        assert!(out.contains("X-Mxgate-Verdict: tag\r\nX-Mxgate-Score: 6.5\r\nX-Mxgate-Symbols: A(6.0), B(0.5)\r\n"));
        assert!(!out.contains("dkim=pass"));
        assert!(out.contains("Authentication-Results: other.test; spf=fail\r\n"));
        for forged in ["mx.gw.test(x); dkim=pass", "\"mx.gw.test\"; dkim=pass", "((a)) mx.gw.test.; dkim=pass", "(x"] {
            let raw = format!("Authentication-Results: {forged}\r\nSubject: s\r\n\r\nb");
            let out = String::from_utf8(rewrite(raw.as_bytes(), "mx.gw.test", &decision(Action::Deliver), "")).unwrap();
            assert!(!out.contains(forged), "{forged} kept: {out}");
        }
        assert_eq!(out.matches("X-Mxgate-Verdict").count(), 1);
        assert!(out.ends_with("Subject: [SPAM] hello\r\n\r\nbody\r\n"), "{out}");
    }

    #[test]
    fn delivered_mail_keeps_subject_and_long_symbol_lists_fold() {
        let mut d = decision(Action::Deliver);
        d.symbols = (0..12).map(|i| Symbol::new(format!("SYMBOL_NUMBER_{i}"), 0.1, "")).collect();
        let out = String::from_utf8(rewrite(b"Subject: hi\r\n\r\nx", "h", &d, "[SPAM]")).unwrap();
        assert!(out.contains("Subject: hi\r\n\r\nx"));
        assert!(out.lines().all(|l| l.len() <= 78), "{out}");
        assert!(out.contains(",\r\n\tSYMBOL_NUMBER_"));
    }

    #[test]
    fn fields_split_with_folding() {
        let (f, body) = split_fields(b"A: 1\r\n 2\r\nB: 3\r\n\r\nbody");
        assert_eq!(f, [&b"A: 1\r\n 2\r\n"[..], b"B: 3\r\n"]);
        assert_eq!(body, 18);
    }
}
