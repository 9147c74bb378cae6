//! The `heuristics` stage: structural signals that well-behaved mail
//! software rarely produces, each a modest score (`HEUR_*`). None is proof
//! of anything alone; together they push bulk-sent junk over the tag
//! threshold while ordinary mail scores 0.
//!
//! Header checks live here; HTML checks (hidden text, executable content)
//! in `content`.

mod content;

use super::phishing::domain::{of_address, org};
use super::phishing::printable;
use crate::pipeline::{Findings, Input, Stage, StageError, Symbol};
use crate::store::BoxFut;
use mail_parser::{HeaderName, Message};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeuristicsConfig {
    /// `HEUR_MANY_RECIPIENTS` when the To header lists more addresses
    /// than this.
    pub max_to_recipients: usize,
    /// `HEUR_INVISIBLE_TEXT` when HTML parts hide at least this many
    /// characters (spaces not counted). Newsletters hide a short preview
    /// line ("preheader"), so the default leaves room for one.
    pub invisible_text_min: usize,
    /// Bytes of each HTML part examined; the rest is not looked at.
    pub max_html_bytes: usize,
}

impl Default for HeuristicsConfig {
    fn default() -> Self {
        HeuristicsConfig { max_to_recipients: 20, invisible_text_min: 150, max_html_bytes: 4 << 20 }
    }
}

pub struct Heuristics {
    cfg: HeuristicsConfig,
}

impl Heuristics {
    pub fn new(cfg: &HeuristicsConfig) -> Result<Heuristics, String> {
        if cfg.max_html_bytes == 0 {
            return Err("scan.heuristics.max_html_bytes must be above 0".into());
        }
        Ok(Heuristics { cfg: cfg.clone() })
    }

    fn scan(&self, input: &Input<'_>) -> Findings {
        let mut out = Findings::default();
        let Some(msg) = input.message.filter(|m| !m.parts.is_empty()) else {
            return out;
        };
        from(msg, input.facts.sender.as_deref(), &mut out);
        date(msg, &mut out);
        message_id(msg, &mut out);
        let to = msg.to().map_or(0, |a| a.iter().count());
        if to > self.cfg.max_to_recipients {
            let why = format!("To lists {to} addresses (more than {})", self.cfg.max_to_recipients);
            out.push(Symbol::new("HEUR_MANY_RECIPIENTS", 1.0, why));
        }
        content::check(msg, &self.cfg, &mut out);
        for s in &mut out.symbols {
            s.reason = printable(&s.reason);
        }
        out
    }
}

/// RFC 5322 3.6: From is required. A From domain unrelated to the
/// envelope sender is common (lists, forwarding, ESPs), hence the low
/// score; the null sender (bounces, RFC 5321 4.5.5) is not compared.
fn from(msg: &Message<'_>, sender: Option<&str>, out: &mut Findings) {
    if msg.header_raw(HeaderName::From).is_none() {
        out.push(Symbol::new("HEUR_MISSING_FROM", 2.0, "no From header"));
        return;
    }
    let Some(from) = msg.from().and_then(|a| a.first()).and_then(|a| a.address()).and_then(of_address) else {
        out.push(Symbol::new("HEUR_MISSING_FROM", 2.0, "the From header holds no address"));
        return;
    };
    let Some(env) = sender.and_then(of_address) else { return };
    if org(&env) != org(&from) {
        let why = format!("From domain {from} differs from envelope sender domain {env}");
        out.push(Symbol::new("HEUR_FROM_SENDER_MISMATCH", 0.5, why));
    }
}

/// RFC 5322 3.6.1: the origination date is required, in the 3.3 syntax.
fn date(msg: &Message<'_>, out: &mut Findings) {
    let Some(raw) = msg.header_raw(HeaderName::Date) else {
        out.push(Symbol::new("HEUR_MISSING_DATE", 1.0, "no Date header"));
        return;
    };
    if !msg.date().is_some_and(|d| d.is_valid()) {
        let why = format!("Date header \"{}\" is not a valid date", shorten(raw.trim()));
        out.push(Symbol::new("HEUR_BAD_DATE", 1.0, why));
    }
}

/// RFC 5322 3.6.4: every message SHOULD have a Message-ID of the form
/// `<id-left@id-right>`.
fn message_id(msg: &Message<'_>, out: &mut Findings) {
    let Some(raw) = msg.header_raw(HeaderName::MessageId) else {
        out.push(Symbol::new("HEUR_MISSING_MESSAGE_ID", 0.5, "no Message-ID header"));
        return;
    };
    if !valid_msg_id(raw) {
        let why = format!("Message-ID \"{}\" is not <left@right>", shorten(raw.trim()));
        out.push(Symbol::new("HEUR_BAD_MESSAGE_ID", 1.0, why));
    }
}

/// `<left@right>`, both sides non-empty, nothing but printable ASCII
/// without spaces inside (folding whitespace around it is allowed).
fn valid_msg_id(raw: &str) -> bool {
    let Some(inner) = raw.trim().strip_prefix('<').and_then(|s| s.strip_suffix('>')) else { return false };
    let Some((left, right)) = inner.split_once('@') else { return false };
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && !b"<>@\\\"".contains(&b));
    ok(left) && ok(right)
}

/// At most 60 characters of header text for a reason.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(60).collect();
    if s.chars().count() > 60 {
        out.push_str("...");
    }
    out
}

impl Stage for Heuristics {
    fn name(&self) -> &'static str {
        "heuristics"
    }

    fn check<'a>(&'a self, input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        Box::pin(async move { Ok(self.scan(input)) })
    }
}

#[cfg(test)]
mod tests;
