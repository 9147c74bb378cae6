//! The after-queue stages (`mode = "after_queue"`): run once, after the
//! 250 and before the first delivery attempt, for scanners too slow for
//! the SMTP session. A message they condemn is quarantined, never bounced
//! or rejected: the sender already has its 250 (no backscatter).

use super::Ctx;
use crate::pipeline::{Action, Facts, Pipeline, headers};
use crate::quarantine::record::{self, Arrival};
use crate::store::{AfterScan, QueueEntry, StoreError};

pub enum Next {
    /// Deliver now (the message, as just read); `entry.verdict` is the
    /// final decision.
    Deliver(Vec<u8>),
    /// Moved to the quarantine.
    Held,
    /// A stage could not finish (`on_error = "tempfail"`): try again later.
    Later(String),
}

pub async fn scan(ctx: &Ctx, pipeline: &Pipeline, entry: &mut QueueEntry) -> Next {
    let body = match ctx.store.body(&entry.id).await {
        Ok(b) => b,
        Err(e) => return Next::Later(format!("reading the message: {e}")),
    };
    let facts = Facts {
        queue_id: entry.id.clone(),
        client_ip: entry.client_ip.clone(),
        helo: entry.helo.clone(),
        tls: entry.tls,
        sender: entry.sender.clone(),
        recipients: entry.pending().map(|r| r.address.clone()).collect(),
    };
    let mut d = pipeline.run_after(&facts, &body, entry.verdict.as_ref()).await;
    match d.action {
        Action::Tempfail => Next::Later(d.reason),
        Action::Deliver | Action::Tag => {
            entry.verdict = Some(d);
            entry.after_scan = AfterScan::Done;
            Next::Deliver(body)
        }
        Action::Quarantine | Action::Reject => {
            if d.action == Action::Reject {
                d.action = Action::Quarantine;
                d.reason = format!("{} (found after the 250, so held rather than rejected)", d.reason);
            }
            match hold(ctx, entry, &facts, &d, &body).await {
                Ok(()) => Next::Held,
                Err(e) => Next::Later(format!("moving the message to the quarantine: {e}")),
            }
        }
    }
}

/// Quarantine first, then drop the queue entry: a crash in between leaves
/// the entry, which is scanned and held again.
async fn hold(
    ctx: &Ctx,
    e: &QueueEntry,
    facts: &Facts,
    d: &crate::pipeline::Decision,
    body: &[u8],
) -> Result<(), StoreError> {
    let cfg = &ctx.cfg;
    let body = headers::rewrite(body, &cfg.smtp.hostname, d, &cfg.policy.subject_prefix);
    let arrival = Arrival {
        received_at: e.received_at,
        smtputf8: e.smtputf8,
        eight_bit: e.eight_bit,
        retention: cfg.quarantine.retention.as_secs(),
    };
    let rec = record::build(facts, d, &body, &arrival);
    ctx.store.quarantine(rec, body).await?;
    tracing::info!(queue_id = %e.id, reason = %d.reason, "message moved to the quarantine by an after-queue stage");
    match ctx.store.remove(&e.id).await {
        Err(StoreError::NotFound(_)) => Ok(()),
        r => r,
    }
}
