//! A storage node: a map of cells merged with `cell::decide`, and hints
//! for the owners it stood in for. A killed node keeps everything (it
//! answered only after applying) but refuses connections until restarted.

use super::check::brief;
use super::net::{Body, End};
use super::sim::Sim;
use mxgate::cluster::core::NodeId;
use mxgate::cluster::core::cell::{Applied, Cell, Cond, decide};
use mxgate::cluster::core::placement;
use std::collections::{BTreeSet, HashMap};

pub struct Node {
    pub id: NodeId,
    pub up: bool,
    pub cells: HashMap<Vec<u8>, Cell>,
    /// (owner, key): copies kept for an owner that was down.
    pub hints: BTreeSet<(NodeId, Vec<u8>)>,
    /// Lattice rules broken while applying (none expected).
    pub violations: Vec<String>,
    pub applies: u64,
}

impl Node {
    pub fn new(id: NodeId) -> Node {
        Node { id, up: true, cells: HashMap::new(), hints: BTreeSet::new(), violations: Vec::new(), applies: 0 }
    }

    /// Takes a copy as a node does, checking the lattice as it goes.
    pub fn apply(&mut self, key: &[u8], new: &Cell, cond: Cond) -> Applied {
        self.applies += 1;
        let old = self.cells.get(key).cloned();
        let applied = decide(old.as_ref(), new, cond);
        if applied == Applied::Taken {
            self.cells.insert(key.to_vec(), new.clone());
        }
        if let Some(old) = old {
            self.check_monotonic(key, &old);
        }
        applied
    }

    /// What a node holds never moves backwards: no live copy over a
    /// tombstone, no lower quarantine rank, nothing the merge order ranks lower.
    fn check_monotonic(&mut self, key: &[u8], old: &Cell) {
        let now = &self.cells[key];
        let k = format!("{} on node {}", String::from_utf8_lossy(key), self.id);
        let (was, is) = (brief(Some(old)), brief(Some(now)));
        if old.dead && !now.dead {
            self.violations.push(format!("{k}: live {is} replaced tombstone {was}"));
        }
        if !now.dead && now.rank < old.rank {
            self.violations.push(format!("{k}: rank fell from {} to {}", old.rank, now.rank));
        }
        if now.cmp_merge(old).is_lt() {
            self.violations.push(format!("{k}: {is} replaced the merge winner {was}"));
        }
    }

    pub fn holds(&self, key: &[u8]) -> Option<&Cell> {
        self.cells.get(key)
    }

    /// True when this node keeps `key` for some owner.
    pub fn hinted(&self, key: &[u8]) -> bool {
        self.hints.iter().any(|(_, k)| k == key)
    }
}

impl Sim {
    pub fn node_receive(&mut self, n: NodeId, from: End, body: Body) {
        if !self.nodes[n].up {
            // A killed process refuses connections; a gateway sees it at once.
            match body {
                Body::Write { wid, .. } => self.reply(n, from, Body::Refused { wid: Some(wid) }),
                Body::Probe { .. } => self.reply(n, from, Body::Refused { wid: None }),
                _ => {}
            }
            return;
        }
        let End::Node(peer) = from else {
            return self.gateway_request(n, from, body);
        };
        match body {
            Body::Handoff { key, cell } => {
                self.apply(n, &key, &cell, Cond::Merge);
                self.reply(n, from, Body::HandoffAck { fingerprint: cell.fingerprint(&key), key });
            }
            Body::HandoffAck { key, fingerprint } => self.handed_off(n, peer, key, fingerprint),
            other => self.on_sync(n, peer, other),
        }
    }

    fn gateway_request(&mut self, n: NodeId, from: End, body: Body) {
        match body {
            Body::Write { wid, key, cell, cond, hint_for } => {
                let applied = self.apply(n, &key, &cell, cond);
                // Kept means a copy at least as good is here: the owner needs it too.
                if let Some(owner) = hint_for
                    && applied != Applied::Refused
                    && self.nodes[n].hints.insert((owner, key))
                {
                    self.counts.add("hints taken");
                }
                self.reply(n, from, Body::WriteReply { wid, applied });
            }
            Body::Probe { sent } => {
                let records = self.nodes[n].cells.len() as u64;
                self.reply(n, from, Body::ProbeReply { sent, records });
            }
            other => panic!("node got {other:?} from a gateway"),
        }
    }

    pub fn apply(&mut self, n: NodeId, key: &[u8], cell: &Cell, cond: Cond) -> Applied {
        let applied = self.nodes[n].apply(key, cell, cond);
        if applied == Applied::Taken {
            self.changes += 1;
        }
        applied
    }

    pub fn reply(&mut self, n: NodeId, to: End, body: Body) {
        self.net.send(&mut self.rng, self.now, End::Node(n), to, body);
    }

    /// The owner confirmed a handed-off copy. The hint goes unless a newer
    /// copy arrived meanwhile (that one still has to be handed off), and
    /// the copy goes with the last hint: the stand-in owns nothing.
    fn handed_off(&mut self, n: NodeId, owner: NodeId, key: Vec<u8>, fingerprint: u64) {
        let node = &mut self.nodes[n];
        if node.cells.get(&key).is_some_and(|c| c.fingerprint(&key) != fingerprint) {
            return;
        }
        if !node.hints.remove(&(owner, key.clone())) {
            return;
        }
        self.changes += 1;
        self.counts.add("hints handed off");
        let owns = placement::owns(&key, &self.names, self.cfg.replicas, n);
        if !node.hinted(&key) && !owns {
            node.cells.remove(&key);
            self.counts.add("stand-in copies dropped");
        }
    }

    /// Sends every hinted copy to its owner (again, until confirmed).
    pub fn hand_off(&mut self, n: NodeId) {
        if !self.nodes[n].up {
            return;
        }
        let hints: Vec<(NodeId, Vec<u8>)> = self.nodes[n].hints.iter().cloned().collect();
        for (owner, key) in hints {
            let Some(cell) = self.nodes[n].cells.get(&key).cloned() else { continue };
            self.counts.add("handoffs sent");
            self.net.send(&mut self.rng, self.now, End::Node(n), End::Node(owner), Body::Handoff { key, cell });
        }
    }
}
