//! The `phishing` stage: impersonation of the protected organisation.
//!
//! - `PHISH_DISPLAY_NAME_SPOOF`: the From display name is one of the
//!   configured people, or shows a protected address, but the mail comes
//!   from outside the protected domains (`names`).
//! - `PHISH_LOOKALIKE_DOMAIN`: From, Reply-To, envelope sender or a link
//!   host imitates a protected domain (`lookalike`).
//! - `PHISH_LINK_MISMATCH`: a link's text shows one site, its target is
//!   another (`links`).
//! - `PHISH_REPLYTO_MISMATCH`: replies would go to another domain than the
//!   From domain.
//!
//! All are scores only; the protected domains are `[relay] domains` plus
//! `protected_domains`.

pub mod domain;
pub mod links;
pub mod lookalike;
pub mod names;

use crate::pipeline::{Findings, Input, Stage, StageError, Symbol, message};
use crate::store::BoxFut;
use domain::{of_address, within_any};
use mail_parser::{Address, Message};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhishingConfig {
    /// Names of the organisation's people whose display name outsiders
    /// must not use ("Jane Doe"); compared ignoring case, diacritics, word
    /// order and one typing error.
    pub executives: Vec<String>,
    /// Domains protected in addition to `[relay] domains`.
    pub protected_domains: Vec<String>,
    /// Link targets never reported as mismatched, with their subdomains:
    /// click-tracking redirectors the operator trusts.
    pub trusted_link_hosts: Vec<String>,
}

const SPOOF_SCORE: f64 = 6.0;
const LOOKALIKE_SCORE: f64 = 5.0;
/// Link text showing a protected domain while pointing elsewhere...
const LINK_PROTECTED_SCORE: f64 = 5.0;
/// ...and showing any other site: newsletters behind click trackers do
/// this innocently, so alone it does not reach the tag threshold.
const LINK_SCORE: f64 = 3.0;
/// Mailing lists and ticket systems set Reply-To innocently...
const REPLYTO_SCORE: f64 = 1.0;
/// ...but mail from a protected domain asking for replies elsewhere is
/// the business-email-compromise pattern.
const REPLYTO_PROTECTED_SCORE: f64 = 3.0;
/// Most items named in one symbol's reason.
const MAX_REASONS: usize = 3;

pub struct Phishing {
    protected: Vec<String>,
    people: Vec<String>,
    trusted: Vec<String>,
}

impl Phishing {
    pub fn new(cfg: &PhishingConfig, protected: &[String]) -> Result<Phishing, String> {
        let mut domains: Vec<String> =
            protected.iter().chain(&cfg.protected_domains).map(|d| domain::normalize(d)).collect();
        domains.retain(|d| !d.is_empty());
        domains.sort();
        domains.dedup();
        let people = cfg.executives.iter().map(|n| names::normalize(n)).filter(|n| !n.is_empty()).collect();
        let trusted = cfg.trusted_link_hosts.iter().map(|d| domain::normalize(d)).collect();
        Ok(Phishing { protected: domains, people, trusted })
    }

    fn scan(&self, input: &Input<'_>) -> Findings {
        let mut out = Findings::default();
        let Some(msg) = input.message.filter(|m| !m.parts.is_empty()) else {
            return out;
        };
        let from = addrs(msg.from());
        self.display_names(&from, &mut out);
        let hosts = link_hosts(msg);
        self.lookalikes(input, msg, &from, &hosts.hosts, &mut out);
        self.link_mismatches(&hosts.anchors, &mut out);
        self.reply_to(msg, &from, &mut out);
        for s in &mut out.symbols {
            s.reason = printable(&s.reason);
        }
        out
    }

    fn display_names(&self, from: &[(String, String)], out: &mut Findings) {
        for (name, addr) in from {
            let outside = of_address(addr).is_none_or(|d| !within_any(&d, &self.protected));
            if !outside || name.is_empty() {
                continue;
            }
            let why = if let Some(person) = names::impersonated(name, &self.people) {
                format!("display name \"{name}\" matches protected person \"{person}\" but the address is {addr}")
            } else if let Some(shown) = names::shown_address(name, addr, &self.protected) {
                format!("display name shows {shown} but the address is {addr}")
            } else {
                continue;
            };
            out.push(Symbol::new("PHISH_DISPLAY_NAME_SPOOF", SPOOF_SCORE, why));
            return;
        }
    }

    fn lookalikes(
        &self,
        input: &Input<'_>,
        msg: &Message<'_>,
        from: &[(String, String)],
        links: &[String],
        out: &mut Findings,
    ) {
        // Keyed by domain so each is checked and named once.
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        let envelope = input.facts.sender.as_deref().and_then(of_address);
        let reply = addrs(msg.reply_to());
        let origins = from
            .iter()
            .map(|(_, a)| (of_address(a), "From"))
            .chain(reply.iter().map(|(_, a)| (of_address(a), "Reply-To")))
            .chain(std::iter::once((envelope, "envelope sender")))
            .chain(links.iter().map(|h| (Some(h.clone()), "link")));
        for (d, origin) in origins {
            if let Some(d) = d {
                seen.entry(d).or_insert(origin);
            }
        }
        let found: Vec<String> = seen
            .iter()
            .filter_map(|(d, origin)| {
                let l = lookalike::find(d, &self.protected)?;
                Some(format!("{origin} domain {d} looks like {} ({})", l.protected, l.how))
            })
            .collect();
        if !found.is_empty() {
            out.push(Symbol::new("PHISH_LOOKALIKE_DOMAIN", LOOKALIKE_SCORE, summary(&found)));
        }
    }

    fn link_mismatches(&self, anchors: &[links::Anchor], out: &mut Findings) {
        let found: Vec<(String, String)> = anchors.iter().filter_map(|a| links::mismatch(a, &self.trusted)).collect();
        if found.is_empty() {
            return;
        }
        let protected = found.iter().any(|(shown, _)| within_any(shown, &self.protected));
        let score = if protected { LINK_PROTECTED_SCORE } else { LINK_SCORE };
        let why: Vec<String> = found.iter().map(|(s, r)| format!("link text shows {s} but leads to {r}")).collect();
        out.push(Symbol::new("PHISH_LINK_MISMATCH", score, summary(&why)));
    }

    /// RFC 5322 3.6.2: Reply-To names where replies go; another domain
    /// than the author's is worth a little suspicion.
    fn reply_to(&self, msg: &Message<'_>, from: &[(String, String)], out: &mut Findings) {
        let Some(from_domain) = from.first().and_then(|(_, a)| of_address(a)) else { return };
        let reply = addrs(msg.reply_to());
        let Some(other) =
            reply.iter().filter_map(|(_, a)| of_address(a)).find(|d| domain::org(d) != domain::org(&from_domain))
        else {
            return;
        };
        let protected = within_any(&from_domain, &self.protected);
        let score = if protected { REPLYTO_PROTECTED_SCORE } else { REPLYTO_SCORE };
        out.push(Symbol::new(
            "PHISH_REPLYTO_MISMATCH",
            score,
            format!("Reply-To domain {other} differs from From domain {from_domain}"),
        ));
    }
}

/// `(display name, address)` of every mailbox in an address header.
fn addrs(a: Option<&Address<'_>>) -> Vec<(String, String)> {
    a.map(|a| {
        a.iter().map(|m| (m.name().unwrap_or("").trim().to_string(), m.address().unwrap_or("").to_string())).collect()
    })
    .unwrap_or_default()
}

/// Link hosts of all text parts, and the HTML anchors.
struct Links {
    hosts: Vec<String>,
    anchors: Vec<links::Anchor>,
}

fn link_hosts(msg: &Message<'_>) -> Links {
    let mut l = Links { hosts: Vec::new(), anchors: Vec::new() };
    for (html, text) in message::texts(msg) {
        if l.hosts.len() >= links::MAX_LINKS {
            break;
        }
        let text = message::head(text, message::MAX_TEXT_SCAN);
        if html {
            let found = links::anchors(text);
            l.hosts.extend(found.iter().filter_map(|a| domain::url_host(&a.href)));
            l.anchors.extend(found);
        } else {
            l.hosts.extend(links::text_hosts(text));
        }
    }
    l.hosts.truncate(links::MAX_LINKS);
    l.anchors.truncate(links::MAX_LINKS);
    l
}

/// The first few reasons, and how many more there were.
fn summary(items: &[String]) -> String {
    let mut s = items.iter().take(MAX_REASONS).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > MAX_REASONS {
        s.push_str(&format!("; and {} more", items.len() - MAX_REASONS));
    }
    s
}

/// Longest reason kept, in characters.
const MAX_REASON: usize = 400;

/// A reason safe for logs and SMTP replies: names and hosts come from the
/// message, so control characters (CR, LF) become spaces and length is
/// capped.
pub fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_REASON).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if s.chars().nth(MAX_REASON).is_some() {
        out.push_str("...");
    }
    out
}

impl Stage for Phishing {
    fn name(&self) -> &'static str {
        "phishing"
    }

    fn check<'a>(&'a self, input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        Box::pin(async move { Ok(self.scan(input)) })
    }
}

#[cfg(test)]
mod tests;
