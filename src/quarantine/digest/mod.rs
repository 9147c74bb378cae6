//! Per-recipient digests: every `interval`, each recipient with newly held
//! messages gets one mail listing them, with signed, expiring links to
//! release a message or release it and allow its sender.
//!
//! A run at time T lists held records received since the previous run up
//! to T. Records become searchable a moment after their received time (the
//! store commits after the verdict), so a run looks back `SETTLE` seconds
//! before the previous one and skips the ids that run already listed: each
//! message is listed once, none falls between two runs. The previous run's
//! time and those ids are kept in the store (`digest-last-run`).
//!
//! - `links`: signing and checking the links.
//! - `compose`: the digest mail itself.

pub mod compose;
pub mod links;

use crate::config::Config;
use crate::quarantine::Quarantine;
use crate::queue::{Queue, new_id};
use crate::store::{QFilter, QPage, QRecord, QStatus, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub use links::{Action, Invalid, Link, Signer};

const STATE_KEY: &str = "digest-last-run";
/// How far a run looks back before the previous one (see the module doc).
const SETTLE: u64 = 120;
/// Messages listed in one digest; the rest are counted ("and N more").
pub const MAX_LISTED: usize = 200;
/// Records one run reads; the next run continues where it stopped.
const MAX_SCAN: usize = 50_000;
const PAGE: usize = 500;

/// What a run sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Digests sent, one per recipient.
    pub recipients: usize,
    /// Distinct messages listed or counted in them.
    pub messages: usize,
}

/// Kept between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Unix seconds the previous run covered up to (inclusive).
    at: u64,
    /// Ids it handled that were received in its last `SETTLE` seconds.
    seen: Vec<String>,
}

/// One recipient's share of a run.
#[derive(Default)]
struct Group {
    items: Vec<QRecord>,
    more: usize,
}

/// Where links point: `link_base`, else the admin listener itself.
pub fn link_base(cfg: &Config) -> String {
    let base = cfg.quarantine.digest.link_base.clone();
    base.unwrap_or_else(|| format!("http://{}", cfg.admin.listen)).trim_end_matches('/').to_string()
}

fn from(cfg: &Config) -> String {
    match cfg.quarantine.digest.from.as_deref() {
        Some(f) if f.contains('<') => f.to_string(),
        Some(f) => format!("Quarantine <{f}>"),
        None => format!("Quarantine <quarantine@{}>", cfg.smtp.hostname),
    }
}

/// Sends the digests due now. Runs one at a time (the scheduler and the
/// API could otherwise list the same messages twice).
pub async fn run_now(q: &Quarantine, queue: &Queue, cfg: &Config, by: &str) -> Result<Summary, StoreError> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ONE.lock().await;
    let store = q.store();
    let now = crate::time::now();
    let prev = match store.meta_get(STATE_KEY).await? {
        Some(v) => serde_json::from_slice::<State>(&v).ok(),
        None => None,
    };
    let since = prev
        .as_ref()
        .map_or(now.saturating_sub(cfg.quarantine.digest.interval.as_secs()), |p| p.at.saturating_sub(SETTLE));
    let seen: HashSet<String> = prev.map(|p| p.seen).unwrap_or_default().into_iter().collect();
    let (groups, messages, state) = gather(q, cfg, since, now, &seen).await?;
    let signer = Signer::load(store.as_ref(), &cfg.quarantine.digest).await?;
    let (base, from) = (link_base(cfg), from(cfg));
    let exp = now.saturating_add(cfg.quarantine.digest.link_ttl.as_secs());
    let run = compose::Run { signer: &signer, link_base: &base, from: &from, hostname: &cfg.smtp.hostname, now, exp };
    for (rcpt, g) in &groups {
        let listing = compose::Listing { rcpt, items: &g.items, more: g.more };
        let (entry, body) = compose::build(&run, &listing, new_id());
        let id = entry.id.clone();
        store.enqueue(entry, body).await?;
        tracing::info!(queue_id = %id, rcpt = %rcpt, messages = g.items.len() + g.more, "quarantine digest queued");
        queue.submit(id);
    }
    store.meta_put(STATE_KEY, serde_json::to_vec(&state).unwrap_or_default()).await?;
    let summary = Summary { recipients: groups.len(), messages };
    if summary.recipients > 0 {
        let detail = format!("sent {} digests listing {} messages", summary.recipients, summary.messages);
        q.note(by, "digest", "", detail).await?;
    }
    Ok(summary)
}

/// Held records received in `[since, now]` and not in `seen`, grouped by
/// local recipient (lowercase); the count of messages; the state to keep.
async fn gather(
    q: &Quarantine,
    cfg: &Config,
    since: u64,
    now: u64,
    seen: &HashSet<String>,
) -> Result<(BTreeMap<String, Group>, usize, State), StoreError> {
    let filter =
        QFilter { status: Some(QStatus::Held), since: Some(since), until: Some(now + 1), ..QFilter::default() };
    let mut page = QPage { limit: PAGE, after: None, oldest_first: true };
    let (mut groups, mut messages, mut handled) = (BTreeMap::<String, Group>::new(), 0, Vec::new());
    let mut upto = now;
    loop {
        let r = q.search(filter.clone(), page.clone()).await?;
        for rec in r.items {
            handled.push((rec.received_at, rec.id.clone()));
            if !seen.contains(&rec.id) && add(&mut groups, &cfg.relay.domains, rec) {
                messages += 1;
            }
        }
        match r.next {
            Some(_) if handled.len() >= MAX_SCAN => {
                // Resume from here next time rather than skip the rest.
                upto = handled.last().map_or(now, |(at, _)| *at);
                tracing::warn!(
                    read = handled.len(),
                    "quarantine digest run stopped at its limit; the next run continues"
                );
                break;
            }
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    let seen = handled.into_iter().filter(|(at, _)| *at >= upto.saturating_sub(SETTLE)).map(|(_, id)| id).collect();
    Ok((groups, messages, State { at: upto, seen }))
}

/// Adds a record to each of its recipients' groups; false when none of
/// them is in a relayed domain (no digest goes elsewhere).
fn add(groups: &mut BTreeMap<String, Group>, domains: &[String], rec: QRecord) -> bool {
    let local = |a: &str| {
        let domain = a.rsplit_once('@').map_or("", |(_, d)| d);
        domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    };
    let mut rcpts: Vec<String> = rec.recipients.iter().filter(|a| local(a)).map(|a| a.to_lowercase()).collect();
    rcpts.sort_unstable();
    rcpts.dedup();
    for r in &rcpts {
        let g = groups.entry(r.clone()).or_default();
        match g.items.len() < MAX_LISTED {
            true => g.items.push(rec.clone()),
            false => g.more += 1,
        }
    }
    !rcpts.is_empty()
}

/// Runs digests every `interval` while `enabled`, the first one an interval
/// after the previous run (kept in the store) or after start.
pub fn spawn(q: Quarantine, queue: Queue, cfg: Arc<Config>, mut stop: watch::Receiver<bool>) {
    let d = &cfg.quarantine.digest;
    if !d.enabled {
        return;
    }
    if d.link_base.is_none() {
        let base = link_base(&cfg);
        tracing::info!(link_base = %base, "digest links point at the admin listener (no quarantine.digest.link_base)");
    }
    let every = d.interval.as_secs().max(1);
    tokio::spawn(async move {
        let last = q.store().meta_get(STATE_KEY).await.ok().flatten();
        let last = last.and_then(|v| serde_json::from_slice::<State>(&v).ok()).map(|s| s.at);
        let mut due = last.unwrap_or_else(crate::time::now).saturating_add(every);
        loop {
            // Short sleeps: the wall clock decides, not a timer set hours ago.
            while crate::time::now() < due {
                let wait = Duration::from_secs((due - crate::time::now()).clamp(1, 60));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            due = match run_now(&q, &queue, &cfg, "system").await {
                Ok(s) => {
                    tracing::info!(recipients = s.recipients, messages = s.messages, "quarantine digest run");
                    crate::time::now().saturating_add(every)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "quarantine digest run failed; trying again in 5 minutes");
                    crate::time::now().saturating_add(every.min(300))
                }
            };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::sample_record;

    #[test]
    fn grouped_by_local_recipient_and_capped() {
        let domains = vec!["Example.test".to_string()];
        let mut groups = BTreeMap::new();
        let mut rec = sample_record("q0", 1);
        rec.recipients = vec!["B@example.test".into(), "b@example.test".into(), "x@elsewhere.test".into()];
        assert!(add(&mut groups, &domains, rec));
        let mut foreign = sample_record("q1", 1);
        foreign.recipients = vec!["x@elsewhere.test".into()];
        assert!(!add(&mut groups, &domains, foreign), "no digest outside the relayed domains");
        assert_eq!(groups.keys().collect::<Vec<_>>(), ["b@example.test"]);
        assert_eq!(groups["b@example.test"].items.len(), 1, "one entry for one message");
        for i in 0..MAX_LISTED + 5 {
            add(&mut groups, &domains, sample_record(&format!("r{i}"), 2));
        }
        assert_eq!((groups["b@example.test"].items.len(), groups["b@example.test"].more), (MAX_LISTED, 6));
    }

    #[test]
    fn a_digest_mail() {
        let signer = Signer::new(b"k");
        let run = compose::Run {
            signer: &signer,
            link_base: "https://q.test",
            from: "Quarantine <quarantine@mx.test>",
            hostname: "mx.test",
            now: 1000,
            exp: 2000,
        };
        let items = [sample_record("q1", 900)];
        let (entry, body) =
            compose::build(&run, &compose::Listing { rcpt: "b@example.test", items: &items, more: 3 }, "d1".into());
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            (entry.sender, entry.is_bounce, entry.recipients[0].address.as_str()),
            (None, true, "b@example.test")
        );
        assert!(text.contains("Subject: Quarantine digest: 4 held messages\r\n"), "{text}");
        assert!(text.contains("Message-ID: <d1@mx.test>\r\nAuto-Submitted: auto-generated\r\n"), "{text}");
        assert!(text.contains("...and 3 more not listed here"), "{text}");
        assert!(text.split("\r\n").all(|l| l.len() <= 998), "RFC 5322 §2.1.1 line limit");
    }
}
