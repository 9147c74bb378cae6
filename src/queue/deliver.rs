//! One delivery attempt of one message: its pending recipients grouped by
//! next hop, one SMTP transaction per group.

use super::Ctx;
use super::client::{BodyKind, Failure, RcptResults};
use super::route::{self, NextHop};
use crate::store::{AfterScan, QueueEntry, RcptStatus, StoreError};
use std::collections::HashMap;

/// Runs the attempt and records each recipient's outcome in `entry`.
/// `body` is the message when the caller has just read it.
pub async fn attempt(ctx: &Ctx, entry: &mut QueueEntry, body: Option<Vec<u8>>) {
    let read = match body {
        Some(b) => Ok(b),
        None => ctx.store.body(&entry.id).await,
    };
    let body = match read {
        Ok(b) => b,
        Err(e) => {
            // A body that fails its checksum will not heal: fail it now
            // (the sender gets a DSN) instead of retrying until expiry.
            if matches!(e, StoreError::Corrupt(..)) {
                tracing::error!(queue_id = %entry.id, error = %e, "message body is corrupt");
                for r in entry.recipients.iter_mut().filter(|r| r.status == RcptStatus::Pending) {
                    r.status = RcptStatus::Failed;
                    r.last_reply = Some("554 5.3.0 message damaged in the queue".into());
                }
            }
            entry.last_error = Some(format!("reading the message: {e}"));
            return;
        }
    };
    // The after-queue stages' verdict replaces the in-session one in the
    // headers (forged or earlier copies of ours are removed).
    let body = match (&entry.verdict, entry.after_scan) {
        (Some(d), AfterScan::Done) => {
            crate::pipeline::headers::rewrite(&body, &ctx.cfg.smtp.hostname, d, &ctx.cfg.policy.subject_prefix)
        }
        _ => body,
    };
    for ((hop, domain), idx) in groups(ctx, entry) {
        let rcpts: Vec<String> = idx.iter().map(|&i| entry.recipients[i].address.clone()).collect();
        let outcome =
            tokio::time::timeout(ctx.cfg.queue.delivery_timeout, to_hop(ctx, &hop, &domain, entry, &rcpts, &body))
                .await;
        let outcome =
            outcome.unwrap_or_else(|_| Err(Failure { permanent: false, message: "delivery timed out".into() }));
        record(entry, &idx, outcome);
    }
}

/// Pending recipients by (next hop, domain); the domain only matters for MX.
fn groups(ctx: &Ctx, entry: &QueueEntry) -> HashMap<(NextHop, String), Vec<usize>> {
    let mut out: HashMap<(NextHop, String), Vec<usize>> = HashMap::new();
    for (i, r) in entry.recipients.iter().enumerate() {
        if r.status != RcptStatus::Pending {
            continue;
        }
        let domain = r.address.rsplit_once('@').map_or("", |(_, d)| d).to_ascii_lowercase();
        let hop = NextHop::for_domain(&ctx.cfg.relay, &domain);
        let domain = if hop == NextHop::Mx { domain } else { String::new() };
        out.entry((hop, domain)).or_default().push(i);
    }
    out
}

async fn to_hop(
    ctx: &Ctx,
    hop: &NextHop,
    domain: &str,
    entry: &QueueEntry,
    rcpts: &[String],
    body: &[u8],
) -> Result<RcptResults, Failure> {
    let targets = route::resolve(hop, domain, &ctx.dns)
        .await
        .map_err(|e| Failure { permanent: e.permanent, message: e.message })?;
    let from = entry.sender.as_deref().unwrap_or("");
    let kind = BodyKind { smtputf8: entry.smtputf8, eight_bit: entry.eight_bit };
    let mut last = Failure { permanent: false, message: "no next hop".into() };
    // RFC 5321 §5.1: try each address in order until one takes the message.
    for t in &targets {
        let mut lease = match ctx.pool.get(t).await {
            Ok(l) => l,
            Err(f) => {
                last = f;
                continue;
            }
        };
        let mut result = lease.client.send(from, rcpts, body, kind).await;
        if let Err(f) = &result
            && lease.reused
            && !f.permanent
        {
            // An idle connection may have been closed by the server meanwhile.
            lease = match ctx.pool.reconnect(lease).await {
                Ok(l) => l,
                Err(f) => {
                    last = f;
                    continue;
                }
            };
            result = lease.client.send(from, rcpts, body, kind).await;
        }
        match result {
            Ok(r) => {
                entry_log(entry, t, &r);
                ctx.pool.put(lease);
                return Ok(r);
            }
            Err(f) if f.permanent => return Err(f),
            Err(f) => last = f,
        }
    }
    Err(last)
}

fn entry_log(entry: &QueueEntry, t: &route::Target, r: &RcptResults) {
    let ok = r.iter().filter(|r| r.is_ok()).count();
    tracing::debug!(queue_id = %entry.id, relay = %t.addr, accepted = ok, refused = r.len() - ok, "transaction done");
}

fn record(entry: &mut QueueEntry, idx: &[usize], outcome: Result<RcptResults, Failure>) {
    match outcome {
        Ok(results) => {
            for (&i, r) in idx.iter().zip(results) {
                let rcpt = &mut entry.recipients[i];
                match r {
                    Ok(resp) => {
                        rcpt.status = RcptStatus::Delivered;
                        rcpt.last_reply = Some(resp.to_string());
                    }
                    Err(resp) => {
                        if resp.permanent() {
                            rcpt.status = RcptStatus::Failed;
                        }
                        rcpt.last_reply = Some(resp.to_string());
                        entry.last_error = Some(format!("{}: {resp}", rcpt.address));
                    }
                }
            }
        }
        Err(f) => {
            for &i in idx {
                let rcpt = &mut entry.recipients[i];
                if f.permanent {
                    rcpt.status = RcptStatus::Failed;
                }
                rcpt.last_reply = Some(f.message.clone());
            }
            entry.last_error = Some(f.message);
        }
    }
}
