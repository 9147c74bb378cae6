//! `write` and `catchup`: a node misses a burst of writes and comes back.
//!
//! `write` enqueues COUNT queue entries (ids PREFIX00000000...) through
//! `ClusterStore`, the gateway's own cluster code, while one node is down:
//! every record that node owns goes to a stand-in with a hint for it.
//! `catchup` then watches the returning node through its own status and
//! its peers' (the figures `GET /api/v1/cluster` shows) until it has caught
//! up, and finally reads back every record and body it owns, from it alone.

use crate::cluster_config;
use mxgate::cluster::client::Client;
use mxgate::cluster::core::cell::kind;
use mxgate::cluster::core::health::State;
use mxgate::cluster::core::placement::owns;
use mxgate::cluster::gateway::Cluster;
use mxgate::cluster::store::ClusterStore;
use mxgate::cluster::tls::Security;
use mxgate::cluster::wire::{NodeStatus, Request, Response};
use mxgate::store::Store;
use mxgate::store::conformance::sample_entry;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

const CALL: Duration = Duration::from_secs(10);
const BATCH: usize = 500;

fn id(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:08}")
}

fn key(id: &str) -> Vec<u8> {
    [&[kind::QUEUE][..], id.as_bytes()].concat()
}

fn position(cfg: &mxgate::config::Cluster, node: &str) -> Result<usize, String> {
    cfg.nodes.iter().position(|n| n == node).ok_or(format!("{node} is not in cluster.nodes"))
}

/// The ids of the written records that `node` owns.
fn owned(cfg: &mxgate::config::Cluster, node: usize, prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| id(prefix, i)).filter(|id| owns(&key(id), &cfg.nodes, cfg.replicas, node)).collect()
}

/// Records the other nodes hold for `node` as hints; None while one of
/// them does not answer (its hints are unknown).
fn behind(statuses: &[Result<NodeStatus, String>], nodes: &[String], node: usize) -> Option<u64> {
    let mut sum = 0;
    for (i, s) in statuses.iter().enumerate().filter(|(i, _)| *i != node) {
        let s = s.as_ref().map_err(|_| i).ok()?;
        sum += s.hints.iter().filter(|(n, _)| *n == nodes[node]).map(|(_, c)| c).sum::<u64>();
    }
    Some(sum)
}

fn body(i: usize, size: usize) -> Vec<u8> {
    let mut b = format!("From: <a@sender.test>\r\nTo: <b@example.test>\r\nSubject: record {i}\r\n\r\n").into_bytes();
    while b.len() < size {
        b.extend_from_slice(b"catch-up benchmark record body text, seventy-two octets per line....\r\n");
    }
    b
}

pub async fn write(
    config: &Path,
    count: usize,
    down: &str,
    size: usize,
    concurrency: usize,
    prefix: &str,
) -> Result<(), String> {
    let cfg = cluster_config(config)?;
    let d = position(&cfg, down)?;
    let cluster = Cluster::new(&cfg, "bench-writer".into()).await?;
    // The client must see the node as down, so that every write goes to a
    // stand-in at once instead of failing over write by write.
    let end = Instant::now() + Duration::from_secs(30);
    while matches!(cluster.health()[d].state, State::Up | State::CatchingUp)
        || cluster.writable_count() < cfg.write_quorum
    {
        if Instant::now() > end {
            return Err(format!("{down} is not seen down, or no write quorum: {:?}", cluster.health()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = Arc::new(ClusterStore::start(cluster.clone()));
    let t0 = Instant::now();
    let mut inflight = JoinSet::new();
    for i in 0..count {
        let (s, b) = (store.clone(), body(i, size));
        let mut e = sample_entry(&id(prefix, i));
        e.size = b.len() as u64;
        inflight.spawn(async move { s.enqueue(e, b).await });
        while inflight.len() >= concurrency {
            inflight
                .join_next()
                .await
                .expect("a write in flight")
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
    }
    while let Some(r) = inflight.join_next().await {
        r.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let statuses = cluster.statuses().await;
    let summary = json!({
        "count": count, "size": size, "concurrency": concurrency, "secs": secs,
        "writes_per_s": count as f64 / secs,
        "owned_by_down": owned(&cfg, d, prefix, count).len(),
        "behind": behind(&statuses, &cfg.nodes, d),
    });
    println!("{summary}");
    Ok(())
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// First moments (seconds since `since`) each condition held.
#[derive(Default)]
struct Firsts {
    answered: Option<f64>,
    records: Option<f64>,
    drained: Option<f64>,
    repaired: Option<f64>,
    all: Option<f64>,
}

fn mark(slot: &mut Option<f64>, cond: bool, t: f64) {
    if cond && slot.is_none() {
        *slot = Some(t);
    }
}

pub async fn watch(
    config: &Path,
    node: &str,
    count: usize,
    prefix: &str,
    since: f64,
    limit: u64,
) -> Result<(), String> {
    let cfg = cluster_config(config)?;
    let n = position(&cfg, node)?;
    let want = owned(&cfg, n, prefix, count);
    let cluster = Cluster::new(&cfg, "bench-watch".into()).await?;
    let end = Instant::now() + Duration::from_secs(limit);
    let (mut f, mut samples, mut last_sample) = (Firsts::default(), Vec::new(), -1.0);
    let mut last = json!(null);
    while f.all.is_none() && Instant::now() < end {
        let statuses = cluster.statuses().await;
        let t = unix_now() - since;
        let behind = behind(&statuses, &cfg.nodes, n);
        if let Ok(s) = &statuses[n] {
            mark(&mut f.answered, true, t);
            mark(&mut f.records, s.records >= want.len() as u64, t);
            mark(&mut f.drained, behind == Some(0), t);
            mark(&mut f.repaired, !s.catching_up, t);
            let done = s.records >= want.len() as u64 && behind == Some(0) && !s.catching_up;
            mark(&mut f.all, done, t);
            last = json!({"t": t, "records": s.records, "behind": behind, "catching_up": s.catching_up});
            if t - last_sample >= 1.0 || done {
                samples.push(last.clone());
                last_sample = t;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (present, missing) = verify(&cfg, node, &want).await?;
    let summary = json!({
        "node": node, "expected": want.len(), "caught_up": f.all, "answered": f.answered,
        "records_complete": f.records, "hints_drained": f.drained, "anti_entropy_done": f.repaired,
        "last": last, "verified_present": present, "missing": missing.len(),
        "missing_samples": missing.iter().take(5).collect::<Vec<_>>(), "samples": samples,
    });
    println!("{summary}");
    if f.all.is_none() {
        return Err(format!("{node} did not catch up within {limit} s: {last}"));
    }
    Ok(())
}

/// Asks `node` alone for each id (cell and body): (present, missing ids).
async fn verify(cfg: &mxgate::config::Cluster, node: &str, ids: &[String]) -> Result<(usize, Vec<String>), String> {
    let client = Client::new(node.to_string(), Security::new(cfg, "bench-watch")?);
    let (mut present, mut missing) = (0, Vec::new());
    for chunk in ids.chunks(BATCH) {
        let req = Request::Get { keys: chunk.iter().map(|i| key(i)).collect(), bodies: true };
        let cells = match client.call(&req, CALL).await.map_err(|e| format!("{node}: {e}"))? {
            Response::Cells(c) => c,
            _ => return Err(format!("{node}: unexpected answer to Get")),
        };
        for (id, (_, cell, b)) in chunk.iter().zip(cells) {
            if cell.is_some_and(|c| !c.dead) && b.is_some_and(|b| !b.is_empty()) {
                present += 1;
            } else {
                missing.push(id.clone());
            }
        }
    }
    Ok((present, missing))
}
