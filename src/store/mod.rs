//! Queue storage behind a trait. The embedded backend (sled index + fsynced
//! spool segments) is the default; a replicated cluster implements the same
//! trait later. `conformance` holds the suite every backend must pass.

pub mod conformance;
pub(crate) mod embedded;
pub mod quarantine;
pub(crate) mod segment;

pub use embedded::EmbeddedStore;
pub use quarantine::{Actor, AllowEntry, AuditEntry, Changed, QFilter, QPage, QRecord, QResults, QStatus};

use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

/// Free octets on the filesystem holding `dir`, for unprivileged users.
pub fn disk_free(dir: &std::path::Path) -> Option<u64> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage index: {0}")]
    Index(String),
    #[error("message {0} not found")]
    NotFound(String),
    #[error("message {0} is corrupt: {1}")]
    Corrupt(String, String),
    #[error("store is closed")]
    Closed,
}

/// Builds the queue entry and the header block to put in front of the
/// stored bytes when a quarantined message is released.
pub type ReleaseFn = Box<dyn FnOnce(&QRecord) -> (QueueEntry, Vec<u8>) + Send>;

/// Where a recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RcptStatus {
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    pub status: RcptStatus,
    /// The last reply or error for this recipient, for `queue show`.
    pub last_reply: Option<String>,
}

/// Why a message is in the queue and what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryState {
    /// Waiting for its next delivery attempt. (Quarantined messages are not
    /// in the queue: they live in the quarantine until released.)
    Queued,
}

/// A queued message's record: envelope, session facts and delivery state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub id: String,
    /// Unix seconds when the 250 was given.
    pub received_at: u64,
    pub client_ip: String,
    pub helo: String,
    pub tls: bool,
    /// Envelope sender; `None` is the null sender `<>`.
    pub sender: Option<String>,
    pub recipients: Vec<Recipient>,
    pub size: u64,
    pub smtputf8: bool,
    /// Declared BODY=8BITMIME (RFC 6152).
    #[serde(default)]
    pub eight_bit: bool,
    /// True for DSNs this gateway generated: they are never bounced.
    pub is_bounce: bool,
    pub state: EntryState,
    pub attempts: u32,
    /// Unix seconds of the next attempt.
    pub next_attempt: u64,
    pub last_error: Option<String>,
    /// What the scanning pipeline decided, with its symbols.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::pipeline::Decision>,
    /// Where the message is with the after-queue stages.
    #[serde(default, skip_serializing_if = "AfterScan::is_none")]
    pub after_scan: AfterScan,
}

/// The after-queue stages (`mode = "after_queue"`) of one message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterScan {
    /// None configured when it arrived, or released from the quarantine.
    #[default]
    None,
    /// Still to run before the first delivery attempt.
    Pending,
    /// Passed: deliveries carry the verdict headers of the final decision.
    Done,
}

impl AfterScan {
    pub fn is_none(&self) -> bool {
        *self == AfterScan::None
    }
}

impl QueueEntry {
    pub fn pending(&self) -> impl Iterator<Item = &Recipient> {
        self.recipients.iter().filter(|r| r.status == RcptStatus::Pending)
    }
}

/// A store for queued messages. Every method that changes state returns only
/// once the change is durable, except where noted.
pub trait Store: Send + Sync + 'static {
    /// Stores a new message; durable (fsynced) when this returns Ok.
    fn enqueue(&self, entry: QueueEntry, body: Vec<u8>) -> BoxFut<'_, Result<(), StoreError>>;
    fn body(&self, id: &str) -> BoxFut<'_, Result<Vec<u8>, StoreError>>;
    fn get(&self, id: &str) -> BoxFut<'_, Result<Option<QueueEntry>, StoreError>>;
    fn list(&self) -> BoxFut<'_, Result<Vec<QueueEntry>, StoreError>>;
    /// Replaces a message's record (delivery progress, retries).
    fn update(&self, entry: QueueEntry) -> BoxFut<'_, Result<(), StoreError>>;
    /// Removes a message whose delivery is finished or which was deleted.
    fn remove(&self, id: &str) -> BoxFut<'_, Result<(), StoreError>>;
    /// Stores a quarantined message and its record (status `held`); durable
    /// when this returns Ok, so the 250 that follows is safe.
    fn quarantine(&self, rec: QRecord, body: Vec<u8>) -> BoxFut<'_, Result<(), StoreError>>;
    fn q_get(&self, id: &str) -> BoxFut<'_, Result<Option<QRecord>, StoreError>>;
    /// The quarantined bytes; `NotFound` once deleted or expired.
    fn q_body(&self, id: &str) -> BoxFut<'_, Result<Vec<u8>, StoreError>>;
    /// One page of records matching `filter`, newest first unless asked.
    fn q_search(&self, filter: QFilter, page: QPage) -> BoxFut<'_, Result<QResults, StoreError>>;
    /// Moves a record to `to` when the status lattice allows it, in one
    /// durable commit with `audit`; `deleted` and `expired` drop the body.
    /// `Ok(None)` when there is no such record.
    fn q_change(
        &self,
        id: &str,
        to: QStatus,
        actor: Actor,
        audit: AuditEntry,
    ) -> BoxFut<'_, Result<Option<Changed>, StoreError>>;
    /// Exactly-once release: when the record is `held`, marks it
    /// `released` and queues the message (under the same id, `make`'s
    /// header block in front) in one atomic, durable commit. A second
    /// release, concurrent or later, gets `Changed::Refused`.
    fn q_release(
        &self,
        id: &str,
        actor: Actor,
        audit: AuditEntry,
        make: ReleaseFn,
    ) -> BoxFut<'_, Result<Option<Changed>, StoreError>>;
    /// Records whose retention ended by `now`, oldest first, at most `budget`:
    /// `held` ones become `expired`; every one loses its body. Returns how
    /// many it did; run again to continue (the work is bounded per call).
    fn q_expire(&self, now: u64, budget: usize) -> BoxFut<'_, Result<usize, StoreError>>;
    /// Appends to the audit log (durable).
    fn audit(&self, entry: AuditEntry) -> BoxFut<'_, Result<(), StoreError>>;
    /// The newest `limit` audit entries, newest first.
    fn audit_list(&self, limit: usize) -> BoxFut<'_, Result<Vec<AuditEntry>, StoreError>>;
    /// Adds (or with `remove`, deletes) a quarantine allow-list entry.
    fn allow_set(&self, entry: AllowEntry, remove: bool, audit: AuditEntry) -> BoxFut<'_, Result<(), StoreError>>;
    fn allow_list(&self) -> BoxFut<'_, Result<Vec<AllowEntry>, StoreError>>;
    /// Small named values that must survive restarts (digest state, keys).
    fn meta_get(&self, key: &str) -> BoxFut<'_, Result<Option<Vec<u8>>, StoreError>>;
    fn meta_put(&self, key: &str, value: Vec<u8>) -> BoxFut<'_, Result<(), StoreError>>;
    /// Whether this gateway should deliver queued message `id` now. Always
    /// with one gateway; in a cluster, only the gateway that holds its
    /// claim (see `cluster::lease`).
    fn claim(&self, _id: &str) -> BoxFut<'_, Result<bool, StoreError>> {
        Box::pin(async { Ok(true) })
    }
    /// Queued messages this gateway has just taken over from a gateway
    /// that went silent: the queue schedules them. Nothing with one gateway.
    fn takeover(&self) -> BoxFut<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    /// Free octets where this store writes, when it can tell.
    fn free_space(&self) -> Option<u64> {
        None
    }
    /// Flushes everything and stops accepting writes.
    fn close(&self) -> BoxFut<'_, Result<(), StoreError>>;
}
