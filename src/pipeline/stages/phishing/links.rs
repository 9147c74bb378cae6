//! Links in the message text: the anchors of HTML parts (target and
//! visible text) and the hosts of URLs written in plain text. A link whose
//! text shows one site while its target is another is the classic
//! credential-phishing lure.

use super::domain::{org, shown_host, url_host};
use crate::pipeline::html::{Token, Tokenizer, decode_entities};

/// Most links read from one message; past this, mail is not link-checked
/// further (the count alone is unusual enough to leave to other stages).
pub const MAX_LINKS: usize = 1000;
/// Most characters of an anchor's text kept.
const MAX_TEXT: usize = 1000;

/// One HTML anchor: its `href` and the text a reader sees.
#[derive(Debug, Clone, PartialEq)]
pub struct Anchor {
    pub href: String,
    pub text: String,
}

/// The anchors of an HTML document, in order, at most `MAX_LINKS`.
pub fn anchors(html: &str) -> Vec<Anchor> {
    let mut out: Vec<Anchor> = Vec::new();
    let mut open = false;
    for tok in Tokenizer::new(html) {
        match &tok {
            Token::Start { name, .. } if name == "a" => {
                if out.len() >= MAX_LINKS {
                    break;
                }
                let href = tok.attr("href");
                open = href.is_some();
                if let Some(href) = href {
                    out.push(Anchor { href: href.trim().to_string(), text: String::new() });
                }
            }
            Token::End(name) if name == "a" => open = false,
            Token::Text(t) if open => {
                if let Some(a) = out.last_mut()
                    && a.text.len() < MAX_TEXT
                {
                    a.text.push_str(&decode_entities(t));
                }
            }
            _ => {}
        }
    }
    out
}

/// Hosts of `http(s)://` and `www.` URLs written in plain text, at most
/// `MAX_LINKS`.
pub fn text_hosts(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut words =
        text.split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '(' | ')' | '"' | '\'' | '[' | ']'));
    while out.len() < MAX_LINKS {
        let Some(w) = words.next() else { break };
        if let Some(h) = shown_host(w) {
            out.push(h);
        }
    }
    out
}

/// The host a reader would take an anchor's text for, if it shows one:
/// the first word that is written as a URL or a `www.` name.
fn shown(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == '\u{200b}' || c == '<' || c == '>').find_map(shown_host)
}

/// A deceptive anchor: `(shown host, real host)` when the text shows a
/// site of another organisation than the target. Targets within
/// `trusted` (redirectors the operator vouches for) are never deceptive.
pub fn mismatch(a: &Anchor, trusted: &[String]) -> Option<(String, String)> {
    let real = canonical(&url_host(&a.href)?);
    let shown = canonical(&shown(&a.text)?);
    if org(&shown) == org(&real) || super::domain::within_any(&real, trusted) {
        return None;
    }
    Some((shown, real))
}

/// Lowercase Unicode form, so `xn--` and written IDNs compare equal.
pub fn canonical(host: &str) -> String {
    let (uni, _) = idna::domain_to_unicode(host);
    if uni.is_empty() { host.to_string() } else { uni }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(html: &str) -> Anchor {
        anchors(html).into_iter().next().expect("an anchor")
    }

    #[test]
    fn finds_anchors() {
        let a = anchors("<p>Hi <A class=x HREF=\"https://evil.test/x\">https://www.example.test/login</a> <a>none</a>");
        assert_eq!(a, [Anchor { href: "https://evil.test/x".into(), text: "https://www.example.test/login".into() }]);
        assert_eq!(one("<a href='h'>a &amp; <b>b</b></a>").text, "a & b");
    }

    #[test]
    fn mismatches() {
        let t: Vec<String> = vec!["click.tracker.test".into()];
        let m = |html: &str| mismatch(&one(html), &t);
        assert_eq!(
            m("<a href=\"https://evil.test/x\">https://www.example.test/login</a>"),
            Some(("www.example.test".into(), "evil.test".into()))
        );
        assert_eq!(
            m("<a href=\"http://1.2.3.4/\">Log in at www.bank.test now</a>"),
            Some(("www.bank.test".into(), "1.2.3.4".into()))
        );
        assert_eq!(
            m("<a href=\"https://www.bank.test@evil.test/\">www.bank.test</a>").map(|x| x.1),
            Some("evil.test".into())
        );
        assert_eq!(m("<a href=\"https://login.bank.test/\">https://www.bank.test</a>"), None);
        assert_eq!(m("<a href=\"https://xn--bnk-qla.test/\">www.bänk.test</a>"), None);
        assert_eq!(m("<a href=\"https://evil.test/\">Click here</a>"), None);
        assert_eq!(m("<a href=\"mailto:a@evil.test\">www.bank.test</a>"), None);
        assert_eq!(m("<a href=\"https://a.click.tracker.test/r\">www.bank.test</a>"), None);
    }

    #[test]
    fn hosts_in_text() {
        assert_eq!(
            text_hosts("see https://Examp1e.test/x, (www.a.test) and http:/bad or ftp://f.test"),
            ["examp1e.test", "www.a.test"]
        );
    }
}
