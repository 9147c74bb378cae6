//! Anti-entropy between two nodes, as the real nodes do it: the initiator
//! sends its bucket digests of the keys both own; the peer lists keys and
//! fingerprints of the buckets that differ; the initiator pulls what it
//! lacks or holds in another version and merges it (`Cond::Merge`). Each
//! round repairs one side; the peer's own round repairs the other.

use super::net::{Body, End};
use super::sim::Sim;
use mxgate::cluster::core::NodeId;
use mxgate::cluster::core::cell::{Applied, Cond};
use mxgate::cluster::core::repair::{self, Digests};
use std::collections::HashMap;

impl Sim {
    /// Node `a` starts a round with `b`.
    pub fn start_sync(&mut self, a: NodeId, b: NodeId) {
        if !self.nodes[a].up {
            return;
        }
        self.counts.add("anti-entropy rounds");
        let digests = self.digests(a, b);
        self.net.send(&mut self.rng, self.now, End::Node(a), End::Node(b), Body::SyncDigests { digests });
    }

    /// `repair::shared`, remembered per key for every pair of nodes:
    /// placement never changes during a run, and recomputing it for every
    /// digest was most of the run time.
    fn shares(&self, key: &[u8], a: NodeId, b: NodeId) -> bool {
        let n = self.nodes.len();
        let mut memo = self.shared_memo.borrow_mut();
        let bits = match memo.get(key) {
            Some(bits) => *bits,
            None => {
                let pairs = (0..n * n).filter(|i| repair::shared(key, &self.names, self.cfg.replicas, i / n, i % n));
                let bits = pairs.fold(0u32, |bits, i| bits | 1 << i);
                *memo.entry(key.to_vec()).or_insert(bits)
            }
        };
        bits & 1 << (a * n + b) != 0
    }

    /// Fingerprints of what `me` holds of the keys it shares with `peer`.
    fn shared_fingerprints(&self, me: NodeId, peer: NodeId) -> Vec<(Vec<u8>, u64)> {
        let mut fps: Vec<(Vec<u8>, u64)> = (self.nodes[me].cells.iter())
            .filter(|(k, _)| self.shares(k, me, peer))
            .map(|(k, c)| (k.clone(), c.fingerprint(k)))
            .collect();
        fps.sort();
        fps
    }

    fn digests(&self, me: NodeId, peer: NodeId) -> Digests {
        let mut d = Digests::default();
        for (k, c) in &self.nodes[me].cells {
            if self.shares(k, me, peer) {
                d.add(k, c);
            }
        }
        d
    }

    pub fn on_sync(&mut self, n: NodeId, peer: NodeId, body: Body) {
        let reply = match body {
            Body::SyncDigests { digests } => {
                let differing = self.digests(n, peer).differing(&digests);
                if differing.is_empty() {
                    self.counts.add("anti-entropy rounds found equal");
                    return;
                }
                self.counts.add_n("buckets differing", differing.len() as u64);
                let entries = (self.shared_fingerprints(n, peer).into_iter())
                    .filter(|(k, _)| differing.contains(&repair::bucket(k)))
                    .collect();
                Body::SyncListing { entries }
            }
            Body::SyncListing { entries } => {
                let mine: HashMap<Vec<u8>, u64> = self.shared_fingerprints(n, peer).into_iter().collect();
                let keys = repair::to_pull(&mine, &entries);
                if keys.is_empty() {
                    return;
                }
                Body::SyncPull { keys }
            }
            Body::SyncPull { keys } => {
                let node = &self.nodes[n];
                let cells = keys.into_iter().filter_map(|k| node.cells.get(&k).cloned().map(|c| (k, c))).collect();
                Body::SyncCells { cells }
            }
            Body::SyncCells { cells } => {
                for (k, c) in cells {
                    self.counts.add("copies pulled");
                    if self.apply(n, &k, &c, Cond::Merge) == Applied::Taken {
                        self.counts.add("copies repaired by anti-entropy");
                    }
                }
                return;
            }
            other => panic!("node got {other:?} from a peer"),
        };
        self.reply(n, End::Node(peer), reply);
    }
}
