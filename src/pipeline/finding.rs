//! What stages report and what the policy decides: plain serialisable data,
//! so a stage can run in another process and send its findings back.

use serde::{Deserialize, Serialize};

/// What happens to a message. Ordered by severity: when several hard
/// actions apply, the greatest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Deliver,
    /// Deliver with the subject prefixed and the verdict headers set.
    Tag,
    /// Keep the message but do not deliver it.
    Quarantine,
    /// 4xx at the end of DATA: the sender retries later.
    Tempfail,
    /// 5xx at the end of DATA, with the reason.
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deliver => "deliver",
            Action::Tag => "tag",
            Action::Quarantine => "quarantine",
            Action::Tempfail => "tempfail",
            Action::Reject => "reject",
        }
    }
}

/// One named observation: a score, a reason a person can read, and
/// optionally a hard action that applies whatever the total score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Symbol {
    pub name: String,
    pub score: f64,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

impl Symbol {
    pub fn new(name: impl Into<String>, score: f64, reason: impl Into<String>) -> Symbol {
        Symbol { name: name.into(), score, reason: reason.into(), action: None }
    }

    pub fn with_action(mut self, action: Action) -> Symbol {
        self.action = Some(action);
        self
    }

    /// Reasons quote the sender's own text (file names, domains) and end
    /// up in logs, replies and terminals: control characters become `?`
    /// and length is capped. Names keep to `A-Z0-9_`.
    pub fn sanitize(&mut self) {
        const MAX: usize = 500;
        if self.reason.chars().any(char::is_control) || self.reason.len() > MAX {
            let r: String = self.reason.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
            let cut = super::message::head(&r, MAX);
            self.reason = if cut.len() < r.len() { format!("{cut}...") } else { r };
        }
        if !self.name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
            self.name = self
                .name
                .to_ascii_uppercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
        }
    }
}

/// A stage's answer: symbols, plus the RFC 8601 method results it checked
/// (such as `spf=pass smtp.mailfrom=example.org`) for Authentication-Results.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    pub symbols: Vec<Symbol>,
    #[serde(default)]
    pub auth_results: Vec<String>,
}

impl Findings {
    pub fn push(&mut self, s: Symbol) {
        self.symbols.push(s);
    }
}

impl From<Vec<Symbol>> for Findings {
    fn from(symbols: Vec<Symbol>) -> Findings {
        Findings { symbols, auth_results: Vec::new() }
    }
}

/// A stage that could not finish; the per-stage `on_error` policy decides
/// what happens to the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{0}")]
pub struct StageError(pub String);

/// The policy's conclusion for one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub action: Action,
    pub score: f64,
    pub symbols: Vec<Symbol>,
    /// Why, in a line: the symbols that forced the action, or the threshold.
    pub reason: String,
    #[serde(default)]
    pub auth_results: Vec<String>,
}

impl Decision {
    /// `NAME(score)` for each symbol, as in X-Mxgate-Symbols.
    pub fn symbol_list(&self) -> String {
        let names: Vec<String> = self.symbols.iter().map(|s| format!("{}({})", s.name, fmt_score(s.score))).collect();
        names.join(", ")
    }
}

pub fn fmt_score(s: f64) -> String {
    format!("{s:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stage input and output cross process boundaries as plain data.
    #[test]
    fn findings_and_decisions_round_trip_as_json() {
        let f = Findings {
            symbols: vec![Symbol::new("A", 1.5, "why").with_action(Action::Quarantine), Symbol::new("B", -0.5, "")],
            auth_results: vec!["spf=pass smtp.mailfrom=a@b.test".into()],
        };
        let back: Findings = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        let json = serde_json::to_value(&f.symbols[0]).unwrap();
        assert_eq!(json["action"], "quarantine");
        let mut s = Symbol::new("dnsbl_zen.x", 1.0, "a\x1b]52;c;x\x07.exe\r\nX: y");
        s.sanitize();
        assert_eq!((s.name.as_str(), s.reason.as_str()), ("DNSBL_ZEN_X", "a?]52;c;x?.exe??X: y"));
        let e: StageError = serde_json::from_str("\"dns down\"").unwrap();
        assert_eq!(e.to_string(), "dns down");
    }
}
