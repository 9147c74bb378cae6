//! Building a quarantine record from what the session knew and the
//! message's own header fields.

use crate::pipeline::{Decision, Facts};
use crate::store::{QRecord, QStatus};

/// What the session adds to the facts.
pub struct Arrival {
    pub received_at: u64,
    pub smtputf8: bool,
    pub eight_bit: bool,
    pub retention: u64,
}

pub fn build(facts: &Facts, decision: &Decision, body: &[u8], a: &Arrival) -> QRecord {
    let h = Headers::read(body);
    QRecord {
        id: facts.queue_id.clone(),
        received_at: a.received_at,
        client_ip: facts.client_ip.clone(),
        helo: facts.helo.clone(),
        tls: facts.tls,
        sender: facts.sender.clone(),
        recipients: facts.recipients.clone(),
        smtputf8: a.smtputf8,
        eight_bit: a.eight_bit,
        from: h.from,
        to: h.to,
        subject: h.subject,
        date: h.date,
        message_id: h.message_id,
        size: body.len() as u64,
        action: decision.action,
        score: decision.score,
        symbols: decision.symbols.clone(),
        reason: decision.reason.clone(),
        status: QStatus::Held,
        expires_at: a.received_at.saturating_add(a.retention),
        changed: None,
        has_body: true,
    }
}

/// Display forms of the header fields a record keeps.
#[derive(Default)]
struct Headers {
    from: String,
    to: String,
    subject: String,
    date: String,
    message_id: String,
}

impl Headers {
    fn read(body: &[u8]) -> Headers {
        let Some(m) = mail_parser::MessageParser::new().parse_headers(body) else { return Headers::default() };
        Headers {
            from: m.from().map(addresses).unwrap_or_default(),
            to: m.to().map(addresses).unwrap_or_default(),
            subject: clean(m.subject().unwrap_or("")),
            date: m.date().map(|d| d.to_rfc822()).unwrap_or_default(),
            message_id: clean(m.message_id().unwrap_or("")),
        }
    }
}

fn addresses(a: &mail_parser::Address<'_>) -> String {
    let all: Vec<String> = a
        .iter()
        .map(|x| match (x.name(), x.address()) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (None, Some(e)) => e.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    clean(&all.join(", "))
}

/// One line, no control characters, at most 998 octets: these values go to
/// terminals, JSON and HTML.
fn clean(s: &str) -> String {
    let one: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    crate::pipeline::message::head(one.trim(), 998).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_are_decoded_and_cleaned() {
        let body = b"From: =?utf-8?q?J=C3=B6rg?= <j@x.test>\r\nTo: a@b.test, c@d.test\r\nSubject: hi\x07 there\r\nMessage-ID: <m1@x>\r\n\r\nbody";
        let h = Headers::read(body);
        assert_eq!(h.from, "J\u{f6}rg <j@x.test>");
        assert_eq!(h.to, "a@b.test, c@d.test");
        assert_eq!(h.subject, "hi  there");
        assert_eq!(h.message_id, "m1@x");
    }
}
