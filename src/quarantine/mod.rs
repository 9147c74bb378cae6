//! The quarantine: messages the policy held, kept whole with their record
//! until someone releases or deletes them or their retention ends.
//!
//! - `record`: the record built at the end of DATA from facts and headers.
//! - `preview`: a safe text and HTML view of a held message.
//! - `filter`: search filters from query strings, with clear errors.
//! - `digest`: per-recipient digest mails with signed, expiring links.
//!
//! Every operation goes through [`Quarantine`], which writes the audit log
//! in the same durable commit as the change itself.

pub mod digest;
pub mod filter;
pub mod preview;
pub mod record;

use crate::pipeline::Decision;
use crate::pipeline::allow::AllowSet;
use crate::queue::Queue;
use crate::store::{
    Actor, AllowEntry, AuditEntry, Changed, EntryState, QFilter, QPage, QRecord, QResults, QStatus, QueueEntry,
    RcptStatus, Recipient, Store, StoreError,
};
use serde::Serialize;
use std::sync::Arc;

/// What an operation found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", content = "record", rename_all = "lowercase")]
pub enum Outcome {
    /// Done; the record as it is now.
    Done(QRecord),
    /// Not allowed from the record's status (already released, deleted...).
    Refused(QRecord),
    NotFound,
}

/// A bulk operation's tally.
#[derive(Debug, Default, Serialize)]
pub struct Bulk {
    pub done: Vec<String>,
    pub refused: Vec<String>,
    pub not_found: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    Release,
    Delete,
    Allow,
}

#[derive(Clone)]
pub struct Quarantine {
    store: Arc<dyn Store>,
    queue: Queue,
    allowed: Arc<AllowSet>,
}

fn audit(by: &str, action: &str, id: &str, detail: String) -> AuditEntry {
    AuditEntry { at: crate::time::now(), by: by.into(), action: action.into(), id: id.into(), detail }
}

fn outcome(r: Option<Changed>) -> Outcome {
    match r {
        Some(Changed::Done(rec)) => Outcome::Done(rec),
        Some(Changed::Refused(rec)) => Outcome::Refused(rec),
        None => Outcome::NotFound,
    }
}

impl Quarantine {
    /// Loads the allow list into the pipeline's copy.
    pub async fn start(store: Arc<dyn Store>, queue: Queue, allowed: Arc<AllowSet>) -> Result<Quarantine, StoreError> {
        allowed.replace(store.allow_list().await?);
        Ok(Quarantine { store, queue, allowed })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Keeps a held message; durable when this returns.
    pub async fn hold(&self, rec: QRecord, body: Vec<u8>) -> Result<(), StoreError> {
        self.store.quarantine(rec, body).await
    }

    pub async fn search(&self, filter: QFilter, page: QPage) -> Result<QResults, StoreError> {
        self.store.q_search(filter, page).await
    }

    pub async fn get(&self, id: &str) -> Result<Option<QRecord>, StoreError> {
        self.store.q_get(id).await
    }

    /// The message as it was held; `NotFound` once its body is gone.
    pub async fn raw(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        self.store.q_body(id).await
    }

    /// Re-injects a held message into the delivery queue, exactly once.
    /// It keeps its envelope and id, skips scanning (the verdict was made),
    /// and carries `X-Mxgate-Released` naming who released it and when.
    pub async fn release(&self, id: &str, by: &str) -> Result<Outcome, StoreError> {
        let at = crate::time::now();
        let header = format!("X-Mxgate-Released: by {} at {}\r\n", one_line(by), crate::time::rfc5322(at));
        let make = Box::new(move |rec: &QRecord| (queue_entry(rec, at), header.into_bytes()));
        let detail = "re-queued for delivery".to_string();
        let r = self.store.q_release(id, Actor { by: by.into(), at }, audit(by, "release", id, detail), make).await?;
        let out = outcome(r);
        match &out {
            Outcome::Done(_) => {
                tracing::info!(queue_id = %id, by, "released from the quarantine");
                self.queue.submit(id.to_string());
            }
            Outcome::Refused(rec) => {
                tracing::info!(queue_id = %id, by, status = rec.status.as_str(), "release refused")
            }
            Outcome::NotFound => {}
        }
        Ok(out)
    }

    /// Deletes a held (or released) message's body; the record stays, marked.
    pub async fn delete(&self, id: &str, by: &str) -> Result<Outcome, StoreError> {
        let actor = Actor { by: by.into(), at: crate::time::now() };
        let r =
            self.store.q_change(id, QStatus::Deleted, actor, audit(by, "delete", id, "body deleted".into())).await?;
        if let Some(Changed::Done(_)) = &r {
            tracing::info!(queue_id = %id, by, "deleted from the quarantine");
        }
        Ok(outcome(r))
    }

    /// Allows the message's sender (for every recipient, or for `scope`
    /// only) and releases the message.
    pub async fn allow(&self, id: &str, by: &str, scope: Option<&str>) -> Result<Outcome, StoreError> {
        let Some(rec) = self.store.q_get(id).await? else { return Ok(Outcome::NotFound) };
        if let Some(sender) = rec.sender.as_deref().filter(|_| rec.status == QStatus::Held) {
            let entry = AllowEntry { sender: sender.to_lowercase(), scope: scope.unwrap_or("*").to_lowercase() };
            let detail = format!("allowed sender {} for {}", entry.sender, entry.scope);
            self.store.allow_set(entry.clone(), false, audit(by, "allow", id, detail)).await?;
            self.allowed.set(entry, false);
        }
        self.release(id, by).await
    }

    /// Removes an allow-list entry.
    pub async fn disallow(&self, entry: AllowEntry, by: &str) -> Result<(), StoreError> {
        let detail = format!("removed sender {} for {}", entry.sender, entry.scope);
        self.store.allow_set(entry.clone(), true, audit(by, "disallow", "", detail)).await?;
        self.allowed.set(entry, true);
        Ok(())
    }

    pub async fn allow_list(&self) -> Result<Vec<AllowEntry>, StoreError> {
        self.store.allow_list().await
    }

    /// One action on many messages; each is done, refused or not found.
    pub async fn bulk(&self, action: BulkAction, ids: &[String], by: &str) -> Result<Bulk, StoreError> {
        let mut tally = Bulk::default();
        for id in ids {
            // Unknown ids are answered from the index, without a write.
            if self.store.q_get(id).await?.is_none() {
                tally.not_found.push(id.clone());
                continue;
            }
            let out = match action {
                BulkAction::Release => self.release(id, by).await?,
                BulkAction::Delete => self.delete(id, by).await?,
                BulkAction::Allow => self.allow(id, by, None).await?,
            };
            match out {
                Outcome::Done(_) => tally.done.push(id.clone()),
                Outcome::Refused(_) => tally.refused.push(id.clone()),
                Outcome::NotFound => tally.not_found.push(id.clone()),
            }
        }
        Ok(tally)
    }

    /// Every id matching a filter (for bulk actions on a search), at most `max`.
    pub async fn ids(&self, filter: QFilter, max: usize) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut page = QPage { limit: 500, ..QPage::default() };
        while out.len() < max {
            let r = self.store.q_search(filter.clone(), page.clone()).await?;
            out.extend(r.items.into_iter().map(|x| x.id));
            match r.next {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
        out.truncate(max);
        Ok(out)
    }

    /// Records an action that changes no record (a login, a digest run).
    pub async fn note(&self, by: &str, action: &str, id: &str, detail: String) -> Result<(), StoreError> {
        self.store.audit(audit(by, action, id, detail)).await
    }

    pub async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.store.audit_list(limit).await
    }

    /// One expiry run: at most `budget` records whose retention ended.
    pub async fn expire(&self, now: u64, budget: usize) -> Result<usize, StoreError> {
        let n = self.store.q_expire(now, budget).await?;
        if n > 0 {
            tracing::info!(count = n, "quarantine retention ended; bodies dropped");
        }
        Ok(n)
    }

    /// Runs the expiry sweep every `every`, each run bounded by `budget`.
    pub fn spawn_sweep(&self, every: std::time::Duration, budget: usize, stop: tokio::sync::watch::Receiver<bool>) {
        let q = self.clone();
        repeat(every, stop, move || {
            let q = q.clone();
            async move {
                if let Err(e) = q.expire(crate::time::now(), budget).await {
                    tracing::warn!(error = %e, "quarantine expiry sweep failed; it runs again later");
                }
            }
        });
    }

    /// Re-reads the allow list every `every`: other gateways of a cluster
    /// change it too.
    pub fn spawn_allow_refresh(&self, every: std::time::Duration, stop: tokio::sync::watch::Receiver<bool>) {
        let q = self.clone();
        repeat(every, stop, move || {
            let q = q.clone();
            async move {
                match q.store.allow_list().await {
                    Ok(list) => q.allowed.replace(list),
                    Err(e) => tracing::debug!(error = %e, "cannot re-read the allow list; keeping the current one"),
                }
            }
        });
    }
}

/// Runs `job` every `every` until `stop` turns true.
fn repeat<F, Fut>(every: std::time::Duration, mut stop: tokio::sync::watch::Receiver<bool>, job: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            job().await;
        }
    });
}

/// The queue entry a release creates: the original envelope and id.
fn queue_entry(rec: &QRecord, now: u64) -> QueueEntry {
    QueueEntry {
        id: rec.id.clone(),
        // The queue's lifetime (queue.max_lifetime) starts at the release:
        // a message held for a week must not bounce at its first deferral.
        received_at: now,
        client_ip: rec.client_ip.clone(),
        helo: rec.helo.clone(),
        tls: rec.tls,
        sender: rec.sender.clone(),
        recipients: rec
            .recipients
            .iter()
            .map(|a| Recipient { address: a.clone(), status: RcptStatus::Pending, last_reply: None })
            .collect(),
        size: rec.size,
        smtputf8: rec.smtputf8,
        eight_bit: rec.eight_bit,
        is_bounce: false,
        state: EntryState::Queued,
        attempts: 0,
        next_attempt: now,
        last_error: None,
        verdict: Some(Decision {
            action: rec.action,
            score: rec.score,
            symbols: rec.symbols.clone(),
            reason: rec.reason.clone(),
            auth_results: Vec::new(),
        }),
        // Released by a person: the after-queue stages do not run again.
        after_scan: crate::store::AfterScan::None,
    }
}

/// Header-safe: one line, printable.
fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}
