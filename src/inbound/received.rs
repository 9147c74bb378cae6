//! The Received trace header (RFC 5321 §4.4) added to every accepted message.

use crate::time;

pub struct Trace<'a> {
    pub helo: &'a str,
    pub ip: std::net::IpAddr,
    pub hostname: &'a str,
    pub esmtp: bool,
    pub tls: bool,
    pub smtputf8: bool,
    pub id: &'a str,
    /// Named only when there is exactly one recipient, so a message to many
    /// does not disclose the others.
    pub single_rcpt: Option<String>,
}

impl Trace<'_> {
    pub fn header(&self) -> String {
        // RFC 3848 and RFC 6531 §3.7.3 protocol names.
        let proto = match (self.smtputf8, self.esmtp, self.tls) {
            (true, _, true) => "UTF8SMTPS",
            (true, _, false) => "UTF8SMTP",
            (false, true, true) => "ESMTPS",
            (false, true, false) => "ESMTP",
            (false, false, true) => "SMTPS",
            (false, false, false) => "SMTP",
        };
        let helo: String = self.helo.chars().filter(|c| !c.is_control() && *c != '(' && *c != ')').collect();
        let mut h = format!(
            "Received: from {helo} ([{}])\r\n\tby {} (mxgate) with {proto} id {}",
            self.ip, self.hostname, self.id
        );
        if let Some(r) = &self.single_rcpt {
            h.push_str(&format!("\r\n\tfor <{r}>"));
        }
        h.push_str(&format!(";\r\n\t{}\r\n", time::rfc5322(time::now())));
        h
    }
}
