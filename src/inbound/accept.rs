//! The end of a transaction: refuse bad content, add the trace header, run
//! the pipeline, store durably, and only then answer 250 with the queue id.

use super::received::Trace;
use super::session::{Envelope, Session};
use crate::config::Smtp;
use crate::pipeline::{Action, Decision, Facts};
use crate::quarantine::record::Arrival;
use crate::queue::new_id;
use crate::smtp::Reply;
use crate::smtp::data::DataError;
use crate::smtp::reply::replies;
use crate::store::{AfterScan, EntryState, QRecord, QueueEntry, RcptStatus, Recipient};
use tokio::io::{AsyncRead, AsyncWrite};

/// The reply for content that broke a rule.
pub fn refusal(e: DataError, cfg: &Smtp) -> Reply {
    match e {
        DataError::TooBig => replies::too_big(),
        DataError::HeaderTooBig => Reply::new(552, "3.4", "Message header size exceeds limit"),
        DataError::LineTooLong => {
            Reply::new(550, "6.0", format!("Message contains a line longer than {} octets", cfg.max_line_length))
        }
        DataError::BareNewline => replies::bare_newline(),
    }
}

/// 452 4.3.1 when taking `size` more octets would leave less free space
/// than `storage.min_free` (RFC 1870 §6.3, RFC 3463 X.3.1).
pub fn storage_check(shared: &super::Shared, size: u64) -> Option<Reply> {
    let free = shared.queue.ctx().store.free_space()?;
    if free >= shared.cfg.storage.min_free.saturating_add(size) {
        return None;
    }
    tracing::warn!(free, min_free = shared.cfg.storage.min_free, "storage nearly full; refusing new mail");
    Some(Reply::new(452, "3.1", "Insufficient system storage, try again later"))
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub async fn accept(&mut self, env: Envelope, content: Vec<u8>, error: Option<DataError>) -> Reply {
        let cfg = self.shared.cfg.clone();
        if let Some(e) = error {
            self.stats.rejected += 1;
            tracing::info!(client = %self.peer.ip(), error = ?e, "message refused");
            return refusal(e, &cfg.smtp);
        }
        let id = new_id();
        let helo = self.conn.helo.clone().unwrap_or_default();
        let trace = Trace {
            helo: &helo,
            ip: self.peer.ip(),
            hostname: &cfg.smtp.hostname,
            esmtp: self.conn.esmtp,
            tls: self.conn.tls,
            smtputf8: env.params.smtputf8,
            id: &id,
            single_rcpt: (env.rcpts.len() == 1).then(|| env.rcpts[0].to_string()),
        };
        let mut body = trace.header().into_bytes();
        body.extend_from_slice(&content);
        drop(content);
        let facts = Facts {
            queue_id: id.clone(),
            client_ip: self.peer.ip().to_string(),
            helo: helo.clone(),
            tls: self.conn.tls,
            sender: env.from.as_ref().map(|f| f.to_string()),
            recipients: env.rcpts.iter().map(|r| r.to_string()).collect(),
        };
        let decision = self.shared.pipeline.run(&facts, &body).await;
        if matches!(decision.action, Action::Reject | Action::Tempfail) {
            self.stats.rejected += 1;
            return verdict_reply(&decision);
        }
        let policy = self.shared.pipeline.policy();
        let body = crate::pipeline::headers::rewrite(&body, &cfg.smtp.hostname, &decision, &policy.subject_prefix);
        let now = crate::time::now();
        if let Some(r) = storage_check(&self.shared, body.len() as u64) {
            return r;
        }
        if decision.action == Action::Quarantine {
            let arrival = Arrival {
                received_at: now,
                smtputf8: env.params.smtputf8,
                eight_bit: env.params.eight_bit,
                retention: cfg.quarantine.retention.as_secs(),
            };
            let rec = crate::quarantine::record::build(&facts, &decision, &body, &arrival);
            return self.hold(rec, body).await;
        }
        let entry = QueueEntry {
            id: id.clone(),
            received_at: now,
            client_ip: facts.client_ip,
            helo,
            tls: self.conn.tls,
            sender: facts.sender,
            recipients: facts
                .recipients
                .into_iter()
                .map(|address| Recipient { address, status: RcptStatus::Pending, last_reply: None })
                .collect(),
            size: body.len() as u64,
            smtputf8: env.params.smtputf8,
            eight_bit: env.params.eight_bit,
            is_bounce: false,
            state: EntryState::Queued,
            attempts: 0,
            next_attempt: now,
            last_error: None,
            verdict: Some(decision),
            after_scan: match self.shared.pipeline.has_after_queue() {
                true => AfterScan::Pending,
                false => AfterScan::None,
            },
        };
        let message_id = message_id(&body);
        log_queued(&entry, message_id.as_deref());
        // The 250 is given only after the store says the message is durable.
        if let Err(e) = self.shared.queue.ctx().store.enqueue(entry, body).await {
            tracing::error!(queue_id = %id, error = %e, "could not store message; answering 451");
            return replies::storage_failure();
        }
        self.shared.queue.submit(id.clone());
        self.stats.accepted += 1;
        Reply::new(250, "0.0", format!("Ok: queued as {id}"))
    }

    /// A quarantine verdict: the message and its record are durable in the
    /// quarantine before the 250; it is not queued until released.
    async fn hold(&mut self, rec: QRecord, body: Vec<u8>) -> Reply {
        let id = rec.id.clone();
        tracing::info!(queue_id = %id, client = %rec.client_ip, from = rec.sender.as_deref().unwrap_or("<>"),
            rcpts = rec.recipients.len(), size = rec.size, message_id = %rec.message_id, reason = %rec.reason,
            "message accepted into the quarantine");
        if let Err(e) = self.shared.quarantine.hold(rec, body).await {
            tracing::error!(queue_id = %id, error = %e, "could not store message; answering 451");
            return replies::storage_failure();
        }
        self.stats.accepted += 1;
        Reply::new(250, "0.0", format!("Ok: queued as {id}"))
    }
}

/// 550 5.7.1 or 451 4.7.1 with the policy's reason (RFC 3463 X.7.1:
/// delivery not authorized, message refused).
fn verdict_reply(d: &Decision) -> Reply {
    // Reasons are already free of control characters; replies stay ASCII.
    let ascii: String = d.reason.chars().map(|c| if c.is_ascii() { c } else { '?' }).collect();
    let why = match ascii.len() > 300 {
        true => format!("{}...", &ascii[..300]),
        false => ascii,
    };
    match d.action {
        Action::Tempfail => Reply::new(451, "7.1", format!("Message not scanned, try again later: {why}")),
        _ => Reply::new(550, "7.1", format!("Message rejected: {why}")),
    }
}

fn message_id(body: &[u8]) -> Option<String> {
    let parsed = mail_parser::MessageParser::new().parse_headers(body)?;
    parsed.message_id().map(str::to_string)
}

fn log_queued(e: &QueueEntry, message_id: Option<&str>) {
    tracing::info!(
        queue_id = %e.id,
        client = %e.client_ip,
        from = e.sender.as_deref().unwrap_or("<>"),
        rcpts = e.recipients.len(),
        size = e.size,
        tls = e.tls,
        message_id = message_id.unwrap_or(""),
        "message accepted"
    );
}
