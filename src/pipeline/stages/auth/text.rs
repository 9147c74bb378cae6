//! Writing RFC 8601 method results safely. Property values come from the
//! envelope and from signatures the sender wrote, so they are quoted when
//! they are not plain tokens: a `;` or `(` in a sender address must not be
//! able to add a result of its own to our Authentication-Results.

/// A property value (RFC 8601 §2.2 `pvalue`): as written when it is a
/// plain dot-atom, `local@domain` or token, otherwise a quoted-string.
pub fn pvalue(v: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.@".contains(c) || !c.is_ascii();
    if !v.is_empty() && v.chars().all(|c| plain(c) && !c.is_control()) {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// ` (text)`: a comment with the characters that could end or nest it
/// removed, so it stays one comment.
pub fn comment(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !matches!(c, '(' | ')' | '\\') && !c.is_control()).take(120).collect();
    if clean.trim().is_empty() { String::new() } else { format!(" ({})", clean.trim()) }
}

/// `method=result (comment) prop=value ...`.
pub fn method_result(method: &str, result: &str, note: &str, props: &[(&str, &str)]) -> String {
    let mut out = format!("{method}={result}{}", comment(note));
    for (k, v) in props {
        out.push(' ');
        out.push_str(k);
        out.push('=');
        out.push_str(&pvalue(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_could_inject_are_quoted() {
        assert_eq!(pvalue("a@s.test"), "a@s.test");
        assert_eq!(pvalue("a;dkim=pass@s.test"), "\"a;dkim=pass@s.test\"");
        assert_eq!(pvalue("x\"y\\"), "\"x\\\"y\\\\\"");
        assert_eq!(pvalue(""), "\"\"");
        assert_eq!(comment("a (b) c"), " (a b c)");
        assert_eq!(
            method_result("spf", "pass", "", &[("smtp.mailfrom", "a b@s.test")]),
            "spf=pass smtp.mailfrom=\"a b@s.test\""
        );
    }
}
