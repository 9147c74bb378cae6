//! Delivery status notifications (RFC 3464, RFC 6522) for recipients that
//! failed permanently or expired. A DSN goes to the envelope sender with the
//! null sender itself, so it can never cause another DSN (RFC 5321 §6.1).

use crate::store::{EntryState, QueueEntry, RcptStatus, Recipient};
use crate::time;

/// The DSN record and body for `entry`'s failed recipients, or None when no
/// DSN may be sent: null sender, our own DSN, or nothing failed.
pub fn build(entry: &QueueEntry, original: &[u8], hostname: &str, id: String) -> Option<(QueueEntry, Vec<u8>)> {
    let sender = entry.sender.as_ref()?;
    if entry.is_bounce {
        return None;
    }
    let failed: Vec<&Recipient> = entry.recipients.iter().filter(|r| r.status == RcptStatus::Failed).collect();
    if failed.is_empty() {
        return None;
    }
    let now = time::now();
    let boundary = format!("{id}/{hostname}");
    let mut m = String::new();
    m += &format!("From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n");
    m += &format!("To: <{sender}>\r\n");
    m += "Subject: Undelivered Mail Returned to Sender\r\n";
    m += &format!("Date: {}\r\n", time::rfc5322(now));
    m += &format!("Message-ID: <{id}@{hostname}>\r\n");
    // RFC 3834 §5: auto-generated, so responders do not answer it.
    m += "Auto-Submitted: auto-replied\r\n";
    m += "MIME-Version: 1.0\r\n";
    m += &format!("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n");
    m += &format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    m += &format!("This is the mail system at {hostname}.\r\n\r\n");
    m += "Your message could not be delivered to one or more recipients.\r\n\r\n";
    for r in &failed {
        m += &format!("<{}>: {}\r\n", r.address, one_line(r.last_reply.as_deref().unwrap_or("delivery failed")));
    }
    m += &format!("\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n");
    m += &format!("Reporting-MTA: dns; {hostname}\r\nX-Mxgate-Queue-ID: {}\r\n", entry.id);
    m += &format!("Arrival-Date: {}\r\n", time::rfc5322(entry.received_at));
    for r in &failed {
        let reply = r.last_reply.as_deref().unwrap_or("");
        m += &format!("\r\nFinal-Recipient: rfc822; {}\r\nAction: failed\r\n", r.address);
        m += &format!("Status: {}\r\n", status_code(reply));
        if let Some(i) = reply.find(|c: char| c.is_ascii_digit()).filter(|_| !reply.starts_with(EXPIRED)) {
            m += &format!("Diagnostic-Code: smtp; {}\r\n", one_line(&reply[i..]));
        }
    }
    m += &format!("\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n");
    m += &String::from_utf8_lossy(headers(original));
    m += &format!("\r\n--{boundary}--\r\n");
    let body = m.into_bytes();
    let dsn = QueueEntry {
        id,
        received_at: now,
        client_ip: "127.0.0.1".into(),
        helo: hostname.into(),
        tls: false,
        sender: None,
        recipients: vec![Recipient { address: sender.clone(), status: RcptStatus::Pending, last_reply: None }],
        size: body.len() as u64,
        smtputf8: entry.smtputf8,
        eight_bit: entry.eight_bit,
        is_bounce: true,
        state: EntryState::Queued,
        attempts: 0,
        next_attempt: now,
        last_error: None,
        verdict: None,
        after_scan: crate::store::AfterScan::None,
    };
    Some((dsn, body))
}

/// The enhanced status in a reply such as "550 5.1.1 ..." or "MAIL FROM:
/// 550 5.1.8 ..."; 4.4.7 for an expired message (RFC 3463); else 5.0.0.
fn status_code(reply: &str) -> String {
    if reply.starts_with(EXPIRED) {
        return "4.4.7".into();
    }
    let enhanced = |s: &&str| {
        let parts: Vec<&str> = s.split('.').collect();
        parts.len() == 3
            && parts[0] == "5"
            && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    };
    reply.split_ascii_whitespace().find(enhanced).unwrap_or("5.0.0").to_string()
}

/// How the queue words the reply of a recipient whose message expired.
pub const EXPIRED: &str = "message expired in the queue";

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// The header section of a message, through its blank line.
fn headers(msg: &[u8]) -> &[u8] {
    match msg.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => &msg[..p + 2],
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::sample_entry;

    #[test]
    fn dsn_for_failed_recipients_only() {
        let mut e = sample_entry("q1");
        e.recipients[0].status = RcptStatus::Failed;
        e.recipients[0].last_reply = Some("550 5.1.1 no such user".into());
        let (dsn, body) = build(&e, b"Subject: hi\r\n\r\nbody\r\n", "mx.test", "d1".into()).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert_eq!(dsn.sender, None);
        assert!(dsn.is_bounce);
        assert_eq!(dsn.recipients[0].address, "a@sender.test");
        assert!(text.contains("Status: 5.1.1\r\n"));
        assert!(text.contains("Final-Recipient: rfc822; b@example.test"));
        assert!(text.contains("Subject: hi\r\n"));
        assert!(!text.contains("body\r\n"));
    }

    #[test]
    fn never_to_null_sender_or_for_a_dsn() {
        let mut e = sample_entry("q1");
        e.recipients[0].status = RcptStatus::Failed;
        let mut null = e.clone();
        null.sender = None;
        assert!(build(&null, b"", "mx.test", "d".into()).is_none());
        let mut bounce = e.clone();
        bounce.is_bounce = true;
        assert!(build(&bounce, b"", "mx.test", "d".into()).is_none());
    }

    #[test]
    fn status_codes() {
        assert_eq!(status_code("550 5.1.1 no such user"), "5.1.1");
        assert_eq!(status_code("MAIL FROM: 553 5.1.8 bad sender"), "5.1.8");
        assert_eq!(status_code("message expired in the queue; last error: 451 4.3.0"), "4.4.7");
        assert_eq!(status_code("connect: refused"), "5.0.0");
    }

    #[test]
    fn multi_line_replies_stay_crlf() {
        let mut e = sample_entry("q1");
        e.recipients[0].status = RcptStatus::Failed;
        e.recipients[0].last_reply = Some("550 5.7.1 line one\nline two".into());
        let (_, body) = build(&e, b"Subject: hi\r\n\r\n", "mx.test", "d1".into()).unwrap();
        let bare_lf =
            body.windows(2).enumerate().any(|(i, w)| w[1] == b'\n' && (w[0] != b'\r' || i == 0 && body[0] == b'\n'));
        assert!(!bare_lf, "{}", String::from_utf8_lossy(&body));
    }
}
