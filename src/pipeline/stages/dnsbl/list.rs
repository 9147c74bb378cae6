//! One DNS list as configured (`[[scan.dnsbl.zones]]`, `[[scan.uribl.zones]]`)
//! and what its answers mean (RFC 5782 §2.1): which codes count, the symbol
//! each becomes, and which answers are refusals rather than listings. Also
//! the bounded A lookup both list stages use.

use crate::pipeline::{Action, Symbol};
use hickory_resolver::TokioResolver;
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::time::Duration;

/// One DNS list, `[[scan.dnsbl.zones]]` or `[[scan.uribl.zones]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// The list's DNS zone, such as `zen.spamhaus.org`.
    pub zone: String,
    /// Names the symbol (`DNSBL_<LABEL>`); the zone in capitals by default.
    #[serde(default)]
    pub label: Option<String>,
    /// Score of a listing; 5.0 by default, -1.0 for allow lists.
    #[serde(default)]
    pub score: Option<f64>,
    /// Hard action of a listing: `reject` by default for client block
    /// lists, none for URI lists and allow lists; `deliver` means none.
    #[serde(default)]
    pub action: Option<Action>,
    /// An allow list (DNSWL): a listing lowers the score, with no action.
    #[serde(default)]
    pub allow: bool,
    /// Answers that count, each with its own name, meaning and score; when
    /// empty any answer in 127.0.0.0/8 counts except 127.255.255.0/24,
    /// which lists use to refuse a query.
    #[serde(default)]
    pub codes: Vec<Code>,
}

/// One return code of a list, `{ code = "127.0.0.2", name = "SBL" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// The A record the list answers with.
    pub code: Ipv4Addr,
    /// Appended to the symbol: `DNSBL_<LABEL>_<NAME>`; the last octet by default.
    #[serde(default)]
    pub name: Option<String>,
    /// What the code means, for the reason.
    #[serde(default)]
    pub meaning: String,
    /// Score for this code instead of the zone's.
    #[serde(default)]
    pub score: Option<f64>,
    /// Action for this code instead of the zone's.
    #[serde(default)]
    pub action: Option<Action>,
}

/// A zone ready to query: validated, with its defaults applied.
#[derive(Debug, Clone)]
pub struct List {
    pub zone: String,
    label: String,
    score: f64,
    action: Option<Action>,
    codes: Vec<Code>,
}

impl List {
    /// `key` names the setting in errors; `default_action` applies to block
    /// lists that set none.
    pub fn new(z: &Zone, key: &str, default_action: Option<Action>) -> Result<List, String> {
        let zone = z.zone.trim().trim_matches('.').to_ascii_lowercase();
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if zone.is_empty() || zone.split('.').any(|l| l.is_empty() || l.len() > 63 || !l.chars().all(valid)) {
            return Err(format!("{key}: `{}` is not a DNS zone", z.zone));
        }
        if let Some(c) = z.codes.iter().find(|c| c.code.octets()[0] != 127) {
            return Err(format!("{key}: code {} is outside 127.0.0.0/8", c.code));
        }
        let label = symbol_part(z.label.as_deref().unwrap_or(&zone));
        let (score, action) = if z.allow {
            (z.score.unwrap_or(-1.0), None)
        } else {
            (z.score.unwrap_or(5.0), z.action.or(default_action))
        };
        Ok(List { zone, label, score, action: action.filter(|&a| a != Action::Deliver), codes: z.codes.clone() })
    }

    /// The symbols for the answers to a listed name: one per matching code,
    /// or one for any listing when no codes are configured. `what` says
    /// what was listed, for the reason.
    pub fn hits(&self, prefix: &str, answers: &[Ipv4Addr], what: &str) -> Vec<Symbol> {
        let listed: Vec<Ipv4Addr> = answers.iter().copied().filter(|a| is_listing(*a)).collect();
        if self.codes.is_empty() {
            if listed.is_empty() {
                return Vec::new();
            }
            let codes: Vec<String> = listed.iter().map(|a| a.to_string()).collect();
            let reason = format!("{what} is listed in {} ({})", self.zone, codes.join(", "));
            return vec![self.symbol(format!("{prefix}_{}", self.label), self.score, self.action, reason)];
        }
        let matched = self.codes.iter().filter(|c| listed.contains(&c.code));
        matched
            .map(|c| {
                let name = c.name.as_deref().map_or_else(|| c.code.octets()[3].to_string(), symbol_part);
                let meaning = if c.meaning.is_empty() { String::new() } else { format!(": {}", c.meaning) };
                let reason = format!("{what} is listed in {} ({}{meaning})", self.zone, c.code);
                let action = c.action.or(self.action).filter(|&a| a != Action::Deliver);
                self.symbol(format!("{prefix}_{}_{name}", self.label), c.score.unwrap_or(self.score), action, reason)
            })
            .collect()
    }

    fn symbol(&self, name: String, score: f64, action: Option<Action>, reason: String) -> Symbol {
        let s = Symbol::new(name, score, reason);
        match action {
            Some(a) => s.with_action(a),
            None => s,
        }
    }

    /// Answers that are not listings but a list's refusal or a resolver's
    /// rewrite: 127.255.255.0/24, or anything outside 127.0.0.0/8.
    pub fn refusals(answers: &[Ipv4Addr]) -> Vec<Ipv4Addr> {
        answers.iter().copied().filter(|a| !is_listing(*a)).collect()
    }
}

/// RFC 5782 §2.1: listings are in 127.0.0.0/8; 127.255.255.x is used by
/// lists to say the query was refused (e.g. through a public resolver).
fn is_listing(a: Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 127 && !(o[1] == 255 && o[2] == 255)
}

/// `zen.spamhaus.org` -> `ZEN_SPAMHAUS_ORG`.
pub fn symbol_part(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

/// What one lookup found.
pub enum Answer {
    NotListed,
    Listed(Vec<Ipv4Addr>),
    Failed(String),
}

/// An A lookup of `name` (an absolute name), bounded by `limit`.
pub async fn lookup(resolver: &TokioResolver, name: String, limit: Duration) -> Answer {
    match tokio::time::timeout(limit, resolver.ipv4_lookup(name)).await {
        Err(_) => Answer::Failed("timed out".into()),
        Ok(Ok(found)) => Answer::Listed(found.iter().map(|a| a.0).collect()),
        Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => Answer::NotListed,
        Ok(Err(e)) => Answer::Failed(e.to_string()),
    }
}

/// One `DNSBL_UNAVAILABLE` naming every list that could not be asked.
pub fn unavailable(name: &str, failures: &[String]) -> Option<Symbol> {
    (!failures.is_empty()).then(|| Symbol::new(name, 0.0, failures.join("; ")))
}

pub fn join(a: &[Ipv4Addr]) -> String {
    a.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(codes: Vec<Code>) -> Zone {
        Zone { zone: "Bl.Test.".into(), label: None, score: None, action: None, allow: false, codes }
    }

    #[test]
    fn answers_become_symbols_by_code() {
        let list = List::new(&zone(Vec::new()), "k", Some(Action::Reject)).unwrap();
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let hits = list.hits("DNSBL", &[a("127.0.0.2"), a("127.0.0.4")], "client 192.0.2.1");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].name, "DNSBL_BL_TEST");
        assert_eq!(hits[0].action, Some(Action::Reject));
        assert_eq!(hits[0].reason, "client 192.0.2.1 is listed in bl.test (127.0.0.2, 127.0.0.4)");
        assert!(list.hits("DNSBL", &[a("127.255.255.254")], "x").is_empty());
        assert_eq!(List::refusals(&[a("127.255.255.254"), a("127.0.0.2"), a("10.0.0.1")]).len(), 2);
        let code = Code {
            code: a("127.0.0.4"),
            name: Some("xbl".into()),
            meaning: "exploits".into(),
            score: Some(3.0),
            action: Some(Action::Deliver),
        };
        let list = List::new(&zone(vec![code]), "k", Some(Action::Reject)).unwrap();
        assert!(list.hits("DNSBL", &[a("127.0.0.2")], "x").is_empty());
        let hits = list.hits("DNSBL", &[a("127.0.0.4")], "x");
        assert_eq!((hits[0].name.as_str(), hits[0].score, hits[0].action), ("DNSBL_BL_TEST_XBL", 3.0, None));
        assert!(List::new(&Zone { zone: "a..b".into(), ..zone(Vec::new()) }, "k", None).is_err());
    }
}
