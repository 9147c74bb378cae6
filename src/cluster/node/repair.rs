//! Bringing copies back together after failures.
//! - Hinted handoff: records this node took for a down owner are sent to
//!   it once it answers, then the hint (and, when this node is not an
//!   owner, its copy) is dropped.
//! - Anti-entropy: every `repair_interval`, and at start, this node asks
//!   each peer for digests of the keys both own, lists the buckets that
//!   differ and pulls the copies that differ; merging keeps the winner.
//!   Until one full pass has run, the node reports `catching_up` and
//!   gateways do not read from it.

use super::Node;
use super::serve::{digests, keys};
use crate::cluster::client::{CallError, Client};
use crate::cluster::core::cell::Cond;
use crate::cluster::core::placement::owns;
use crate::cluster::core::repair::{Digests, to_pull};
use crate::cluster::wire::{Item, Request, Response};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const CALL: Duration = Duration::from_secs(10);
const BATCH: usize = 500;

pub async fn handoff_loop(node: Arc<Node>) {
    loop {
        let mut busy = false;
        for (i, peer) in node.peers.iter().enumerate() {
            if let Some(peer) = peer {
                match handoff(&node, i, peer).await {
                    Ok(n) => busy |= n > 0,
                    Err(e) => tracing::debug!(peer = %peer.addr, error = %e, "hinted handoff waits"),
                }
            }
        }
        if !busy {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Sends up to one batch of hinted records to `peer`; how many it sent.
async fn handoff(node: &Node, peer_id: usize, peer: &Client) -> Result<usize, String> {
    let owner = &node.nodes[peer_id];
    let prefix = crate::cluster::node::writer::hint_key(owner, b"");
    let (mut keys, mut items) = (Vec::new(), Vec::new());
    for kv in node.store.trees.hints.scan_prefix(&prefix).take(BATCH) {
        let (k, _) = kv.map_err(|e| e.to_string())?;
        let key = k[prefix.len()..].to_vec();
        // A hint whose record is gone here has nothing to hand over.
        let Some(s) = node.store.get(&key).map_err(|e| e.to_string())? else {
            keys.push((key, None));
            continue;
        };
        keys.push((key.clone(), Some(s.cell.ver)));
        let body = node.store.body(&key, &s).map_err(|e| e.to_string())?;
        items.push(Item { key, cell: s.cell, cond: Cond::Merge, hint_for: None, body });
    }
    if keys.is_empty() {
        return Ok(0);
    }
    if !items.is_empty() {
        peer.call(&Request::Put(items), CALL).await.map_err(|e| e.to_string())?;
    }
    let n = keys.len();
    // A copy this node holds only as a stand-in is dropped once the owner has it.
    let (mine, theirs): (Vec<_>, Vec<_>) =
        keys.into_iter().partition(|(k, _)| owns(k, &node.nodes, node.replicas, node.me));
    node.store.handed_off(owner.clone(), mine, false).await.map_err(|e| e.to_string())?;
    node.store.handed_off(owner.clone(), theirs, true).await.map_err(|e| e.to_string())?;
    tracing::info!(to = %owner, records = n, "hinted handoff");
    Ok(n)
}

pub async fn anti_entropy_loop(node: Arc<Node>) {
    loop {
        let mut complete = true;
        for (i, peer) in node.peers.iter().enumerate() {
            let Some(peer) = peer else { continue };
            match anti_entropy(&node, &node.nodes[i], peer).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(peer = %peer.addr, records = n, "anti-entropy pulled records"),
                // A peer that cannot be reached has nothing to give now.
                Err(CallError::Unreachable(_) | CallError::Timeout(_)) => {}
                Err(e) => {
                    complete = false;
                    tracing::warn!(peer = %peer.addr, error = %e, "anti-entropy failed");
                }
            }
        }
        if complete && node.catching_up.swap(false, Ordering::Relaxed) {
            tracing::info!(records = node.store.records(), "caught up with every reachable peer; serving reads");
        }
        tokio::time::sleep(node.repair_interval).await;
    }
}

/// One pass with one peer; how many records it pulled.
async fn anti_entropy(node: &Node, peer_name: &str, peer: &Client) -> Result<usize, CallError> {
    let local = |e: crate::store::StoreError| CallError::Node(e.to_string());
    let me = node.name.clone();
    let theirs = match peer.call(&Request::Digests { peer: me.clone() }, CALL).await? {
        Response::Digests(d) => Digests(d),
        _ => return Err(CallError::Node("unexpected answer to Digests".into())),
    };
    let ours = digests(node, peer_name).map_err(local)?;
    let differing: Vec<u32> = ours.differing(&theirs).into_iter().map(|b| b as u32).collect();
    let mut pulled = 0;
    for chunk in differing.chunks(64) {
        let listed = match peer.call(&Request::Keys { peer: me.clone(), buckets: chunk.to_vec() }, CALL).await? {
            Response::Keys(k) => k,
            _ => return Err(CallError::Node("unexpected answer to Keys".into())),
        };
        let mine: HashMap<Vec<u8>, u64> = keys(node, peer_name, chunk).map_err(local)?.into_iter().collect();
        for batch in to_pull(&mine, &listed).chunks(BATCH) {
            let cells = match peer.call(&Request::Get { keys: batch.to_vec(), bodies: true }, CALL).await? {
                Response::Cells(c) => c,
                _ => return Err(CallError::Node("unexpected answer to Get".into())),
            };
            // A tombstone past its time is being purged everywhere: pulling
            // it back would keep it alive between the peers' purges.
            let cutoff = super::tidy::now_micros().saturating_sub(node.tombstone_ttl.as_micros() as u64);
            let items: Vec<Item> = cells
                .into_iter()
                .filter_map(|(key, cell, body)| {
                    Some(Item { key, cell: cell?, cond: Cond::Merge, hint_for: None, body })
                })
                .filter(|i| !(i.cell.dead && i.cell.ver < cutoff))
                .collect();
            pulled += items.len();
            node.store.put(items).await.map_err(local)?;
        }
    }
    Ok(pulled)
}
