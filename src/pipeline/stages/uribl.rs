//! The `uribl` stage: the domains of links in the message text against URI
//! block lists (RFC 5782 §2.3: `<domain>.<zone>` as an A record). Links are
//! found in the text parts (`http://`, `https://`, `www.`) and in HTML
//! (`href`/`src` attributes and the text between tags). Each host is cut to
//! its registrable-looking domain, as URI lists list them, and at most
//! `max_domains` distinct domains are looked up, so a message full of links
//! cannot make us send unbounded queries. A listing scores (URIBL_<LABEL>,
//! naming the domains); it carries no hard action unless configured.

use super::dnsbl::{Answer, List, Zone, join, lookup, unavailable};
use crate::pipeline::html::{Token, Tokenizer, decode_entities};
use crate::pipeline::message::{MAX_TEXT_SCAN, head, texts};
use crate::pipeline::{Findings, Input, Stage, StageError, Symbol};
use crate::store::BoxFut;
use hickory_resolver::TokioResolver;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UriblConfig {
    /// Lists to query, `[[scan.uribl.zones]]` (same keys as the DNSBL
    /// zones; `allow` is not supported); none by default, e.g.
    /// `zone = "multi.surbl.org"` or `zone = "dbl.spamhaus.org"`.
    pub zones: Vec<Zone>,
    /// Most distinct link domains looked up per message, in order of
    /// appearance; later ones are not checked.
    pub max_domains: usize,
    /// Time one lookup may take before the list counts as unavailable.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for UriblConfig {
    fn default() -> Self {
        UriblConfig { zones: Vec::new(), max_domains: 50, timeout: Duration::from_secs(2) }
    }
}

pub struct Uribl {
    lists: Vec<List>,
    max_domains: usize,
    timeout: Duration,
    resolver: TokioResolver,
}

impl Uribl {
    pub fn new(cfg: &UriblConfig, resolver: TokioResolver) -> Result<Uribl, String> {
        let mut lists = Vec::with_capacity(cfg.zones.len());
        for (i, z) in cfg.zones.iter().enumerate() {
            let key = format!("scan.uribl.zones[{i}]");
            if z.allow {
                return Err(format!("{key}: allow lists are not supported for link domains"));
            }
            lists.push(List::new(z, &key, None)?);
        }
        if cfg.timeout.is_zero() {
            return Err("scan.uribl.timeout: must be longer than 0s".into());
        }
        Ok(Uribl { lists, max_domains: cfg.max_domains, timeout: cfg.timeout, resolver })
    }

    async fn run(&self, msg: Option<&mail_parser::Message<'_>>) -> Findings {
        let mut out = Findings::default();
        let Some(msg) = msg else { return out };
        if self.lists.is_empty() {
            return out;
        }
        let mut domains = Domains { list: Vec::new(), max: self.max_domains };
        for (html, text) in texts(msg) {
            let text = head(text, MAX_TEXT_SCAN);
            if html { scan_html(text, &mut domains) } else { scan_text(text, &mut domains) }
        }
        let queries: Vec<(&List, &String)> =
            domains.list.iter().flat_map(|d| self.lists.iter().map(move |l| (l, d))).collect();
        // All at once (max_domains x zones bounds them), so the whole stage
        // takes one lookup `timeout`, not one per batch: a dead list must
        // not push the stage past its own limit.
        let lookups: Vec<_> =
            queries.iter().map(|(l, d)| lookup(&self.resolver, format!("{d}.{}.", l.zone), self.timeout)).collect();
        let answers: Vec<Answer> = futures_util::future::join_all(lookups).await;
        let mut failures = Vec::new();
        for ((list, domain), answer) in queries.iter().zip(answers) {
            match answer {
                Answer::NotListed => {}
                Answer::Failed(e) => failures.push(format!("{} for {domain}: {e}", list.zone)),
                Answer::Listed(a) => {
                    let refused = List::refusals(&a);
                    if !refused.is_empty() {
                        failures.push(format!(
                            "{} answered {} for {domain}, which is no listing",
                            list.zone,
                            join(&refused)
                        ));
                    }
                    for s in list.hits("URIBL", &a, &format!("link domain {domain}")) {
                        merge(&mut out.symbols, s);
                    }
                }
            }
        }
        failures.dedup();
        out.symbols.extend(unavailable("URIBL_UNAVAILABLE", &failures));
        out
    }
}

impl Stage for Uribl {
    fn name(&self) -> &'static str {
        "uribl"
    }

    fn check<'a>(&'a self, input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        Box::pin(async move { Ok(self.run(input.message).await) })
    }
}

/// Several listed domains under one symbol: scored once, all named.
fn merge(symbols: &mut Vec<Symbol>, s: Symbol) {
    match symbols.iter_mut().find(|o| o.name == s.name) {
        Some(o) => o.reason = format!("{}; {}", o.reason, s.reason),
        None => symbols.push(s),
    }
}

/// Distinct domains in order of appearance, up to `max`.
struct Domains {
    list: Vec<String>,
    max: usize,
}

impl Domains {
    fn full(&self) -> bool {
        self.list.len() >= self.max
    }

    fn add_host(&mut self, host: &str) {
        if let Some(d) = normalize(host).map(|h| registrable(&h))
            && !self.full()
            && !self.list.contains(&d)
        {
            self.list.push(d);
        }
    }
}

/// `http://`, `https://` and bare `www.` links in plain text.
fn scan_text(text: &str, out: &mut Domains) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() && !out.full() {
        let rest = &b[i..];
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.' || b[i - 1] == b'-');
        // Browsers read `https:\\host`, `https:/\host` and `https:host` as
        // `https://host` (WHATWG URL, special schemes): any run of slashes
        // and backslashes after the scheme leads to the host.
        let scheme = [&b"http:"[..], b"https:"].into_iter().find(|p| starts_ci(rest, p)).map(<[u8]>::len);
        let skip = if let Some(n) = scheme {
            n + rest[n..].iter().take_while(|&&c| c == b'/' || c == b'\\').count()
        } else if boundary && starts_ci(rest, b"www.") {
            0
        } else {
            i += 1;
            continue;
        };
        // The match is ASCII, so `i + skip` is a character boundary.
        let (host, used) = authority(&text[i + skip..]);
        out.add_host(host);
        i += skip + used.max(1);
    }
}

/// Links in `href`/`src` attributes and in the text between tags.
fn scan_html(html: &str, out: &mut Domains) {
    for token in Tokenizer::new(html) {
        if out.full() {
            return;
        }
        match &token {
            Token::Start { .. } => {
                for key in ["href", "src"] {
                    if let Some(v) = token.attr(key) {
                        let v = v.trim();
                        match v.strip_prefix("//") {
                            Some(rest) => out.add_host(authority(rest).0),
                            None => scan_text(v, out),
                        }
                    }
                }
            }
            Token::Text(t) => scan_text(&decode_entities(t), out),
            _ => {}
        }
    }
}

fn starts_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay[..needle.len()].eq_ignore_ascii_case(needle)
}

/// The host of `user@host:port/path...` and how many bytes the authority took.
fn authority(s: &str) -> (&str, usize) {
    let end = s.find(|c: char| c.is_whitespace() || "/?#\\\"'<>()[]{}|^`,;".contains(c)).unwrap_or(s.len());
    let auth = &s[..end];
    let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    let host = host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h);
    (host, end)
}

/// A lowercase ASCII host name with a letter TLD, or `None` (IP literals,
/// junk). International names are converted to their A-labels.
fn normalize(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.');
    let host = if host.is_ascii() { host.to_ascii_lowercase() } else { idna::domain_to_ascii(host).ok()? };
    let labels: Vec<&str> = host.split('.').collect();
    let ok = |l: &&str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let tld = labels.last()?;
    (labels.len() >= 2
        && host.len() <= 253
        && labels.iter().all(ok)
        && tld.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'))
    .then_some(host)
}

/// The registrable-looking part of a host: the last two labels, or three
/// under a country code's common second level (`example.co.uk`). A guess
/// without the public suffix list, which is what URI lists key on.
fn registrable(host: &str) -> String {
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    let second =
        ["co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go", "gob", "mil", "nic", "ltd", "plc", "sch"];
    let keep = if n >= 3 && labels[n - 1].len() == 2 && second.contains(&labels[n - 2]) { 3 } else { 2 };
    labels[n.saturating_sub(keep)..].join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str, html: bool) -> Vec<String> {
        let mut d = Domains { list: Vec::new(), max: 3 };
        if html {
            scan_html(text, &mut d)
        } else {
            scan_text(text, &mut d)
        }
        d.list
    }

    #[test]
    fn links_are_found_in_text_and_html() {
        assert_eq!(
            found("see HTTPS://user:pw@Mail.Evil.Test:8080/x and www.shop.co.uk, http://1.2.3.4/ nowww.x.test", false),
            ["evil.test", "shop.co.uk"]
        );
        assert_eq!(
            found(r#"<a href="//cdn.a.test/x">x</a><img src="http://b.test/i.png"> visit h&#116;tp://c.test/"#, true),
            ["a.test", "b.test", "c.test"]
        );
        assert_eq!(found("http://a.test http://b.test http://c.test http://d.test http://a.test", false).len(), 3);
        assert_eq!(found("http://bücher.test/", false), ["xn--bcher-kva.test"]);
        assert!(found("http:// https://x http://-", false).is_empty());
        assert_eq!(found(r"https:\\a.test/x https:/\b.test https:c.test/", false), ["a.test", "b.test", "c.test"]);
        assert_eq!(found(r#"<a href="https:\\evil.test/login">x</a>"#, true), ["evil.test"]);
    }
}
