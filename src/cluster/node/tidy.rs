//! Keeping a node's records to what it should hold.
//! - Records it no longer owns (after the node list changed) and holds no
//!   hint for are written to their owners, and dropped here once both
//!   have taken them: they are moved, never wiped.
//! - Tombstones of removed queue entries are dropped once older than
//!   `[node] tombstone_ttl`: by then every copy has long been replaced by
//!   the tombstone. A node that was away longer than that must be wiped
//!   before it rejoins, or it could bring back delivered messages.

use super::Node;
use super::store::Stored;
use crate::cluster::core::cell::{Cond, kind};
use crate::cluster::core::placement::owners;
use crate::cluster::wire::{Item, Request, Response};
use crate::store::StoreError;
use std::sync::Arc;
use std::time::Duration;

const BATCH: usize = 500;

pub async fn tidy_loop(node: Arc<Node>) {
    loop {
        tokio::time::sleep(node.tidy_interval).await;
        if node.catching_up() {
            continue;
        }
        match tidy(&node).await {
            Ok((0, 0)) => {}
            Ok((moved, purged)) => tracing::info!(moved, purged, "tidied records"),
            Err(e) => tracing::warn!(error = %e, "tidying records failed; it runs again later"),
        }
    }
}

/// One pass: (records moved to their owners, tombstones purged).
async fn tidy(node: &Arc<Node>) -> Result<(usize, usize), String> {
    let n = node.clone();
    let (strays, old) = tokio::task::spawn_blocking(move || candidates(&n)).await.map_err(|e| e.to_string())??;
    let mut moved = 0;
    for batch in strays.chunks(BATCH) {
        moved += move_to_owners(node, batch).await?;
    }
    let keys = old.into_iter().map(|(k, s)| (k, Some(s.cell.ver))).collect::<Vec<_>>();
    let purged = keys.len();
    if purged > 0 {
        node.store.handed_off(String::new(), keys, true).await.map_err(|e| e.to_string())?;
    }
    Ok((moved, purged))
}

type Found = (Vec<(Vec<u8>, Stored)>, Vec<(Vec<u8>, Stored)>);

/// Records this node does not own (and holds no hint for), and owned
/// tombstones past their time; at most a few batches of each per pass.
fn candidates(node: &Node) -> Result<Found, String> {
    let cutoff = now_micros().saturating_sub(node.tombstone_ttl.as_micros() as u64);
    let (mut strays, mut old) = (Vec::new(), Vec::new());
    for kv in node.store.trees.cells.iter() {
        let (k, v) = kv.map_err(|e| e.to_string())?;
        let s = Stored::decode(&v).map_err(|e: StoreError| e.to_string())?;
        let owners = owners(&k, &node.nodes, node.replicas);
        if !owners.contains(&node.me) {
            let hinted = owners.iter().any(|o| hint_held(node, &node.nodes[*o], &k));
            if !hinted && strays.len() < 4 * BATCH {
                strays.push((k.to_vec(), s));
            }
        } else if s.cell.dead && k.first() == Some(&kind::QUEUE) && s.cell.ver < cutoff && old.len() < 4 * BATCH {
            old.push((k.to_vec(), s));
        }
        if strays.len() >= 4 * BATCH && old.len() >= 4 * BATCH {
            break;
        }
    }
    Ok((strays, old))
}

fn hint_held(node: &Node, owner: &str, key: &[u8]) -> bool {
    node.store.trees.hints.contains_key(super::writer::hint_key(owner, key)).unwrap_or(true)
}

/// Writes a batch to every owner; drops the local copies once all took it.
async fn move_to_owners(node: &Node, batch: &[(Vec<u8>, Stored)]) -> Result<usize, String> {
    let mut items_by_owner: Vec<Vec<Item>> = vec![Vec::new(); node.nodes.len()];
    for (k, s) in batch {
        let body = node.store.body(k, s).map_err(|e| e.to_string())?;
        for o in owners(k, &node.nodes, node.replicas) {
            let item =
                Item { key: k.clone(), cell: s.cell.clone(), cond: Cond::Merge, hint_for: None, body: body.clone() };
            items_by_owner[o].push(item);
        }
    }
    for (o, items) in items_by_owner.into_iter().enumerate().filter(|(_, i)| !i.is_empty()) {
        let Some(peer) = &node.peers[o] else { continue };
        match peer.call(&Request::Put(items), Duration::from_secs(30)).await {
            Ok(Response::Applied(_)) => {}
            Ok(other) => return Err(format!("{}: unexpected answer {other:?}", peer.addr)),
            Err(e) => return Err(format!("{}: {e}", peer.addr)),
        }
    }
    let keys: Vec<_> = batch.iter().map(|(k, s)| (k.clone(), Some(s.cell.ver))).collect();
    let n = keys.len();
    node.store.handed_off(String::new(), keys, true).await.map_err(|e| e.to_string())?;
    Ok(n)
}

pub(super) fn now_micros() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}
