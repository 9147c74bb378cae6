//! The quarantine's stored types: a held message's record, its status
//! lattice, the search filter and the audit trail. Backends keep these
//! behind the `Store` trait next to the queue.

use crate::pipeline::{Action, Symbol};
use serde::{Deserialize, Serialize};

/// Where a quarantined message stands. Transitions only go up the lattice
/// `held -> released | expired | deleted`, and `released -> deleted` (the
/// body of a released message dropped): nothing ever returns to `held`, and
/// a delete is final. The rank orders conflicting changes deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QStatus {
    Held,
    Released,
    Expired,
    Deleted,
}

impl QStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QStatus::Held => "held",
            QStatus::Released => "released",
            QStatus::Expired => "expired",
            QStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<QStatus> {
        [QStatus::Held, QStatus::Released, QStatus::Expired, QStatus::Deleted].into_iter().find(|q| q.as_str() == s)
    }

    /// True when `self -> to` is allowed.
    pub fn can_become(self, to: QStatus) -> bool {
        matches!(
            (self, to),
            (QStatus::Held, QStatus::Released | QStatus::Expired | QStatus::Deleted)
                | (QStatus::Released, QStatus::Deleted)
        )
    }
}

/// Who did something and when (unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    pub by: String,
    pub at: u64,
}

/// A quarantined message's record. The raw message is stored beside it
/// until it is deleted or expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QRecord {
    /// The id given in the 250 reply; a release queues it under this id.
    pub id: String,
    /// Unix seconds when the message was accepted.
    pub received_at: u64,
    pub client_ip: String,
    pub helo: String,
    pub tls: bool,
    /// Envelope sender; `None` is `<>`.
    pub sender: Option<String>,
    pub recipients: Vec<String>,
    pub smtputf8: bool,
    pub eight_bit: bool,
    /// Header fields, decoded for display (empty when absent).
    pub from: String,
    pub to: String,
    pub subject: String,
    pub date: String,
    pub message_id: String,
    /// Octets of the stored message.
    pub size: u64,
    pub action: Action,
    pub score: f64,
    pub symbols: Vec<Symbol>,
    /// The policy's one-line reason.
    pub reason: String,
    pub status: QStatus,
    /// Unix seconds after which the expiry sweep drops the message.
    pub expires_at: u64,
    /// The last status change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Actor>,
    /// False once the body is gone (deleted or expired).
    pub has_body: bool,
}

impl QRecord {
    /// The record after a change to `to` by `actor`, or `None` when the
    /// lattice forbids it. Every backend applies this one rule:
    /// `released` is reached only through a release (which also queues);
    /// `deleted` and `expired` drop the body; expiry of a released message
    /// drops its body but keeps `released` and who released it.
    pub fn changed_to(&self, to: QStatus, actor: Actor) -> Option<QRecord> {
        let drops_body = matches!(to, QStatus::Deleted | QStatus::Expired);
        let to = if to == QStatus::Expired && self.status == QStatus::Released { QStatus::Released } else { to };
        let same = self.status == to;
        let allowed = (self.status.can_become(to) && to != QStatus::Released) || (drops_body && same && self.has_body);
        if !allowed {
            return None;
        }
        let mut new = self.clone();
        new.status = to;
        if !same {
            new.changed = Some(actor);
        }
        new.has_body &= !drops_body;
        Some(new)
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Unix seconds.
    pub at: u64,
    /// Who: `api` or `api:<name>` (X-Mxgate-Actor), `console:<login>`,
    /// `digest:<recipient>`, `system`.
    pub by: String,
    /// What: `release`, `delete`, `allow`, `expire`, `digest`, `login`...
    pub action: String,
    /// The message id, or empty.
    pub id: String,
    /// Free text: the result or the sender allowed.
    pub detail: String,
}

/// An allow-list entry added from the quarantine: `sender` (address or
/// domain, lowercase) is allowed for `scope` (`*` for every recipient, or
/// one recipient address).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AllowEntry {
    pub sender: String,
    pub scope: String,
}

/// A search. Every set field must match; text matches are case-insensitive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QFilter {
    /// An envelope recipient, exactly.
    pub recipient: Option<String>,
    /// The envelope sender, exactly (`<>` for the null sender).
    pub sender: Option<String>,
    /// A domain of the sender or of any recipient.
    pub domain: Option<String>,
    /// A symbol name; a trailing `*` matches a prefix (`ATTACHMENT_*`).
    pub symbol: Option<String>,
    /// Text in the policy's reason.
    pub reason: Option<String>,
    /// Text in the Subject.
    pub subject: Option<String>,
    pub status: Option<QStatus>,
    /// Unix seconds, inclusive.
    pub since: Option<u64>,
    /// Unix seconds, exclusive.
    pub until: Option<u64>,
}

/// Newest first unless `oldest_first`; `after` is the cursor: the last id
/// of the previous page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QPage {
    pub limit: usize,
    pub after: Option<String>,
    pub oldest_first: bool,
}

impl Default for QPage {
    fn default() -> Self {
        QPage { limit: 50, after: None, oldest_first: false }
    }
}

/// One page of results and the cursor for the next, if there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QResults {
    pub items: Vec<QRecord>,
    pub next: Option<String>,
}

/// What a status change found.
#[derive(Debug, Clone, PartialEq)]
pub enum Changed {
    /// Done; the record as it is now.
    Done(QRecord),
    /// Not allowed from the current status (already released, deleted...).
    Refused(QRecord),
}
