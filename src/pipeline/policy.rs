//! Policy: turns the stages' symbols into one action. Hard actions carried
//! by symbols (overridable per symbol) and score thresholds both apply; the
//! more severe wins.

use super::Facts;
use super::finding::{Action, Decision, Symbol, fmt_score};
use super::lists::{Cidr, sender_matches};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Total score at which mail is tagged (subject prefix); none disables.
    pub tag_score: Option<f64>,
    /// Total score at which mail is quarantined; none disables.
    pub quarantine_score: Option<f64>,
    /// Total score at which mail is rejected with 550 5.7.1; none disables.
    pub reject_score: Option<f64>,
    /// Put in front of the Subject of tagged mail.
    pub subject_prefix: String,
    /// Per-symbol overrides: `SYMBOL = { score = 3.0, action = "quarantine" }`.
    pub symbols: BTreeMap<String, SymbolRule>,
    /// Senders (`user@domain`, `domain`, `@domain`) whose mail skips scoring
    /// when SPF passes for them (the `spf` stage must run); attachment,
    /// MIME-limit and DMARC verdicts still apply.
    pub allow_senders: Vec<String>,
    /// Client networks (`ip` or CIDR) whose mail skips scoring, likewise.
    pub allow_ips: Vec<String>,
    /// Senders whose mail is rejected before any stage runs.
    pub block_senders: Vec<String>,
    /// Client networks whose mail is rejected before any stage runs.
    pub block_ips: Vec<String>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            tag_score: Some(5.0),
            quarantine_score: None,
            reject_score: None,
            subject_prefix: "[SPAM]".into(),
            symbols: BTreeMap::new(),
            allow_senders: Vec::new(),
            allow_ips: Vec::new(),
            block_senders: Vec::new(),
            block_ips: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolRule {
    pub score: Option<f64>,
    /// `deliver` removes the symbol's own hard action.
    pub action: Option<Action>,
}

impl PolicyConfig {
    /// Checks the lists parse; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, list) in [("policy.allow_ips", &self.allow_ips), ("policy.block_ips", &self.block_ips)] {
            for s in list {
                Cidr::parse(s).map_err(|e| (key, e))?;
            }
        }
        Ok(())
    }

    /// `BLOCKLIST_*` or `ALLOWLIST_*` symbols for this envelope.
    pub fn list_symbols(&self, facts: &Facts) -> Vec<Symbol> {
        let mut out = Vec::new();
        let ip = facts.client_ip.parse().ok();
        let sender = facts.sender.as_deref().unwrap_or("");
        let on_ips =
            |list: &[String]| ip.is_some_and(|ip| list.iter().any(|c| Cidr::parse(c).is_ok_and(|c| c.contains(ip))));
        let on_senders = |list: &[String]| !sender.is_empty() && list.iter().any(|p| sender_matches(p, sender));
        if on_ips(&self.block_ips) {
            out.push(
                Symbol::new("BLOCKLIST_IP", 0.0, format!("client {} is on the block list", facts.client_ip))
                    .with_action(Action::Reject),
            );
        }
        if on_senders(&self.block_senders) {
            out.push(
                Symbol::new("BLOCKLIST_SENDER", 0.0, format!("sender {sender} is on the block list"))
                    .with_action(Action::Reject),
            );
        }
        if on_ips(&self.allow_ips) {
            out.push(Symbol::new("ALLOWLIST_IP", 0.0, format!("client {} is on the allow list", facts.client_ip)));
        }
        if on_senders(&self.allow_senders) {
            out.push(Symbol::new("ALLOWLIST_SENDER", 0.0, format!("sender {sender} is on the allow list")));
        }
        out
    }

    /// A symbol's hard action after the per-symbol override.
    pub fn action_of(&self, s: &Symbol) -> Option<Action> {
        self.symbols.get(&s.name).and_then(|r| r.action).or(s.action)
    }

    /// Applies the per-symbol overrides, then the thresholds.
    pub fn decide(&self, mut symbols: Vec<Symbol>, auth_results: Vec<String>) -> Decision {
        for s in &mut symbols {
            s.sanitize();
            if let Some(rule) = self.symbols.get(&s.name) {
                s.score = rule.score.unwrap_or(s.score);
                s.action = rule.action.or(s.action);
            }
        }
        let has = |n: &str| symbols.iter().any(|s| s.name == n);
        // The envelope sender is whatever the client typed: an allow-listed
        // sender counts only when SPF vouches for it (RFC 7208 §2.4).
        let allowed = has("ALLOWLIST_IP") || (has("ALLOWLIST_SENDER") && has("SPF_PASS"));
        // `+ 0.0` turns the empty sum (-0.0) into 0.0.
        let score: f64 = symbols.iter().map(|s| s.score).sum::<f64>() + 0.0;
        let forced: Vec<&Symbol> = symbols.iter().filter(|s| !allowed || survives_allowlist(&s.name)).collect();
        let hard = forced.iter().filter_map(|s| s.action).max().unwrap_or(Action::Deliver);
        let by_score = if allowed { Action::Deliver } else { self.threshold_action(score) };
        let action = hard.max(by_score);
        let reason = if action == Action::Deliver {
            String::new()
        } else if hard >= by_score {
            let why: Vec<String> =
                forced.iter().filter(|s| s.action == Some(hard)).map(|s| format!("{}: {}", s.name, s.reason)).collect();
            why.join("; ")
        } else {
            format!(
                "spam score {} reached the {} threshold {}",
                fmt_score(score),
                action.as_str(),
                fmt_score(self.threshold(action))
            )
        };
        Decision { action, score, symbols, reason, auth_results }
    }

    fn threshold_action(&self, score: f64) -> Action {
        [Action::Reject, Action::Quarantine, Action::Tag]
            .into_iter()
            .find(|&a| self.threshold_of(a).is_some_and(|t| score >= t))
            .unwrap_or(Action::Deliver)
    }

    fn threshold_of(&self, a: Action) -> Option<f64> {
        match a {
            Action::Reject => self.reject_score,
            Action::Quarantine => self.quarantine_score,
            Action::Tag => self.tag_score,
            _ => None,
        }
    }

    fn threshold(&self, a: Action) -> f64 {
        self.threshold_of(a).unwrap_or(0.0)
    }
}

/// Allow-listing trusts the sender, not what they send nor whom they claim
/// to write for: attachment, antivirus (ClamAV's viruses and limits) and
/// MIME-limit verdicts, DMARC policies of the From domain, block lists and
/// failed stages still apply. Spam verdicts (rspamd, SpamAssassin) do not.
fn survives_allowlist(name: &str) -> bool {
    ["ATTACHMENT_", "MIME_", "VIRUS_", "CLAMAV_", "BLOCKLIST_", "DMARC_"].iter().any(|p| name.starts_with(p))
        || name.ends_with("_ERROR")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(name: &str, score: f64, action: Option<Action>) -> Symbol {
        Symbol { name: name.into(), score, reason: format!("{name} seen"), action }
    }

    #[test]
    fn thresholds_and_hard_actions() {
        let p = PolicyConfig { quarantine_score: Some(10.0), reject_score: Some(15.0), ..Default::default() };
        assert_eq!(p.decide(vec![sym("A", 1.0, None)], vec![]).action, Action::Deliver);
        assert_eq!(p.decide(vec![sym("A", 6.0, None)], vec![]).action, Action::Tag);
        let d = p.decide(vec![sym("A", 9.0, None), sym("B", 2.0, None)], vec![]);
        assert_eq!(
            (d.action, d.reason.as_str()),
            (Action::Quarantine, "spam score 11.0 reached the quarantine threshold 10.0")
        );
        let d = p.decide(vec![sym("A", 0.0, Some(Action::Reject)), sym("B", 11.0, None)], vec![]);
        assert_eq!((d.action, d.reason.as_str()), (Action::Reject, "A: A seen"));
    }

    #[test]
    fn overrides_change_score_and_action() {
        let mut p = PolicyConfig::default();
        p.symbols
            .insert("DMARC_POLICY_REJECT".into(), SymbolRule { score: Some(2.0), action: Some(Action::Quarantine) });
        p.symbols.insert("NOISY".into(), SymbolRule { score: Some(0.0), action: None });
        let d = p.decide(vec![sym("DMARC_POLICY_REJECT", 0.0, Some(Action::Reject)), sym("NOISY", 9.0, None)], vec![]);
        assert_eq!((d.action, d.score), (Action::Quarantine, 2.0));
    }

    #[test]
    fn allowlist_skips_scoring_but_not_attachments() {
        let p = PolicyConfig::default();
        let allow = sym("ALLOWLIST_SENDER", 0.0, None);
        let spf = sym("SPF_PASS", 0.0, None);
        let d = p.decide(vec![allow.clone(), sym("DNSBL_X", 0.0, Some(Action::Reject)), sym("S", 50.0, None)], vec![]);
        assert_eq!(d.action, Action::Reject, "a sender SPF does not vouch for is not trusted");
        let d = p.decide(
            vec![allow.clone(), spf.clone(), sym("DNSBL_X", 0.0, Some(Action::Reject)), sym("S", 50.0, None)],
            vec![],
        );
        assert_eq!(d.action, Action::Deliver);
        let d = p.decide(vec![allow.clone(), spf, sym("DMARC_POLICY_REJECT", 0.0, Some(Action::Reject))], vec![]);
        assert_eq!(d.action, Action::Reject);
        let d = p.decide(
            vec![sym("ALLOWLIST_IP", 0.0, None), sym("ATTACHMENT_EXECUTABLE", 0.0, Some(Action::Quarantine))],
            vec![],
        );
        assert_eq!(d.action, Action::Quarantine);
        let allowed_ip = || sym("ALLOWLIST_IP", 0.0, None);
        let d = p.decide(vec![allowed_ip(), sym("CLAMAV_VIRUS", 0.0, Some(Action::Quarantine))], vec![]);
        assert_eq!(d.action, Action::Quarantine, "a virus from a trusted sender is still a virus");
        let d = p.decide(vec![allowed_ip(), sym("SA_SPAM", 0.0, Some(Action::Quarantine))], vec![]);
        assert_eq!(d.action, Action::Deliver, "allow-listing overrides spam verdicts");
    }

    #[test]
    fn lists_match_envelope() {
        let p = PolicyConfig {
            block_ips: vec!["192.0.2.0/24".into()],
            allow_senders: vec!["partner.test".into()],
            ..Default::default()
        };
        let facts = |ip: &str, from: &str| Facts { client_ip: ip.into(), ..Facts::test(from) };
        let names = |f| p.list_symbols(&f).into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(names(facts("192.0.2.9", "a@x.test")), ["BLOCKLIST_IP"]);
        assert_eq!(names(facts("198.51.100.1", "a@partner.test")), ["ALLOWLIST_SENDER"]);
        assert!(names(facts("198.51.100.1", "a@x.test")).is_empty());
    }
}
