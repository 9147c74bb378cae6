//! Answers gateways and peers: one task per connection reads frames, one
//! task per request answers it, and a writer task sends the answers in
//! whatever order they finish.

use super::Node;
use crate::cluster::core::repair::{Digests, bucket, shared};
use crate::cluster::tls::ServerStream;
use crate::cluster::wire::{CellItem, NodeStatus, Request, Response, pump, read_frame};
use crate::store::embedded::qindex::Scan;
use crate::store::{QFilter, QPage, StoreError};
use std::sync::Arc;
use tokio::sync::mpsc;

pub async fn connection(node: Arc<Node>, stream: ServerStream) {
    let (mut rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(pump(rx, wr));
    loop {
        let frame = match read_frame(&mut rd).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => return tracing::debug!(error = %e, "cluster connection closed"),
        };
        let (id, req) = match Request::decode(&frame) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "malformed request from a cluster peer; closing the connection");
                return;
            }
        };
        let (node, tx) = (node.clone(), tx.clone());
        tokio::spawn(async move {
            let resp = answer(&node, req).await.unwrap_or_else(|e| Response::Error(e.to_string()));
            let _ = tx.send(resp.encode(id));
        });
    }
}

async fn answer(node: &Arc<Node>, req: Request) -> Result<Response, StoreError> {
    let store = &node.store;
    Ok(match req {
        Request::Status => Response::Status(status(node)),
        Request::Put(items) => {
            node.room()?;
            Response::Applied(store.put(items).await?)
        }
        Request::Release(r) => {
            node.room()?;
            Response::Applied(vec![store.release(r).await?])
        }
        Request::Get { keys, bodies } => {
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                let s = store.get(&k)?;
                let body = match (&s, bodies) {
                    (Some(s), true) => store.body(&k, s)?,
                    _ => None,
                };
                out.push((k, s.map(|s| s.cell), body));
            }
            Response::Cells(out)
        }
        Request::Scan { prefix, after, limit, reverse } => {
            Response::Cells(scan(node, &prefix, &after, limit, reverse)?)
        }
        Request::Search(q) => {
            let (f, p): (QFilter, QPage) = serde_json::from_slice(&q).map_err(|e| StoreError::Index(e.to_string()))?;
            let ids = search(node, &f, &p);
            let keys = ids.into_iter().map(|id| [b"z".as_slice(), id.as_bytes()].concat());
            let cells = keys.filter_map(|k| store.get(&k).ok().flatten().map(|s| (k, Some(s.cell), None))).collect();
            Response::Cells(cells)
        }
        Request::Due { now, budget } => {
            let ids = node.store.index.read().unwrap().due(now, budget as usize);
            let keys = ids.into_iter().map(|id| [b"z".as_slice(), id.as_bytes()].concat());
            Response::Cells(
                keys.filter_map(|k| store.get(&k).ok().flatten().map(|s| (k, Some(s.cell), None))).collect(),
            )
        }
        Request::Digests { peer } => Response::Digests(digests(node, &peer)?.0),
        // Reads every record: off the async workers.
        Request::Keys { peer, buckets } => {
            let n = node.clone();
            Response::Keys(blocking(move || keys(&n, &peer, &buckets)).await?)
        }
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Index(e.to_string()))?
}

pub fn status(node: &Node) -> NodeStatus {
    NodeStatus {
        name: node.name.clone(),
        records: node.store.records(),
        load: node.store.queued.load(std::sync::atomic::Ordering::Relaxed),
        catching_up: node.catching_up(),
        hints: node.store.hints(&node.nodes),
        disk_free: crate::store::disk_free(&node.path).unwrap_or(0),
    }
}

fn scan(node: &Node, prefix: &[u8], after: &[u8], limit: u32, reverse: bool) -> Result<Vec<CellItem>, StoreError> {
    let err = |e: sled::Error| StoreError::Index(e.to_string());
    let tree = &node.store.trees.cells;
    let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match (after.is_empty(), reverse) {
        (true, false) => Box::new(tree.scan_prefix(prefix)),
        (true, true) => Box::new(tree.scan_prefix(prefix).rev()),
        (false, false) => {
            Box::new(tree.range(after.to_vec()..).skip_while(move |kv| kv.as_ref().is_ok_and(|(k, _)| &k[..] == after)))
        }
        (false, true) => Box::new(tree.range(..after.to_vec()).rev()),
    };
    let mut out = Vec::new();
    for kv in iter {
        let (k, v) = kv.map_err(err)?;
        if !k.starts_with(prefix) {
            break;
        }
        out.push((k.to_vec(), Some(super::store::Stored::decode(&v)?.cell), None));
        if out.len() >= limit as usize {
            break;
        }
    }
    Ok(out)
}

/// A quarantine search over this node's index, in chunks so the writer
/// is never held up for long.
fn search(node: &Node, f: &QFilter, p: &QPage) -> Vec<String> {
    let mut scan = Scan::default();
    loop {
        let more = node.store.index.read().unwrap().search_chunk(f, p, &mut scan, 32 * 1024);
        if !more {
            break;
        }
    }
    scan.finish(p).0
}

/// Digests of the keys this node shares with `peer`, kept by the writer.
pub fn digests(node: &Node, peer: &str) -> Result<Digests, StoreError> {
    let (_, them) = node.pair(peer)?;
    Ok(node.store.digests.lock().unwrap()[them].clone())
}

/// Keys and fingerprints this node shares with `peer` in `buckets`.
pub fn keys(node: &Node, peer: &str, buckets: &[u32]) -> Result<Vec<(Vec<u8>, u64)>, StoreError> {
    let (me, them) = node.pair(peer)?;
    let mut out = Vec::new();
    for kv in node.store.trees.cells.iter() {
        let (k, v) = kv.map_err(|e| StoreError::Index(e.to_string()))?;
        if buckets.contains(&(bucket(&k) as u32)) && shared(&k, &node.nodes, node.replicas, me, them) {
            out.push((k.to_vec(), super::store::Stored::decode(&v)?.cell.fingerprint(&k)));
        }
    }
    Ok(out)
}
