//! The simulated network: every message waits a random number of ticks,
//! may be lost, and is dropped when its link is cut at the moment it
//! would arrive (a partition that starts mid-flight loses it too).

use super::rng::Rng;
use mxgate::cluster::core::NodeId;
use mxgate::cluster::core::cell::{Applied, Cell, Cond};
use mxgate::cluster::core::repair::Digests;
use std::collections::{BTreeMap, BTreeSet};

/// One end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum End {
    Gw(usize),
    Node(NodeId),
}

#[derive(Debug, Clone)]
pub enum Body {
    /// Gateway to node: store this copy (for `hint_for` when standing in).
    Write {
        wid: u64,
        key: Vec<u8>,
        cell: Cell,
        cond: Cond,
        hint_for: Option<NodeId>,
    },
    WriteReply {
        wid: u64,
        applied: Applied,
    },
    /// A killed node's answer to a gateway request: the connection was
    /// refused (`wid` None for a probe).
    Refused {
        wid: Option<u64>,
    },
    Probe {
        sent: u64,
    },
    ProbeReply {
        sent: u64,
        records: u64,
    },
    /// Hinted handoff: a stand-in gives the owner the copy it kept.
    Handoff {
        key: Vec<u8>,
        cell: Cell,
    },
    HandoffAck {
        key: Vec<u8>,
        fingerprint: u64,
    },
    /// Anti-entropy, in order: the initiator's digests, the peer's keys
    /// in differing buckets, the keys to pull, the copies.
    SyncDigests {
        digests: Digests,
    },
    SyncListing {
        entries: Vec<(Vec<u8>, u64)>,
    },
    SyncPull {
        keys: Vec<Vec<u8>>,
    },
    SyncCells {
        cells: Vec<(Vec<u8>, Cell)>,
    },
}

#[derive(Debug, Clone)]
pub struct Msg {
    pub from: End,
    pub to: End,
    pub body: Body,
}

pub struct Net {
    /// Delay range in ticks.
    pub delay: (u64, u64),
    pub loss_per_mille: u64,
    cuts: BTreeSet<(End, End)>,
    /// Extra delay on one direction of a link (scripted stories).
    slow: BTreeMap<(End, End), u64>,
    queue: BTreeMap<(u64, u64), Msg>,
    seq: u64,
    pub sent: u64,
    pub lost: u64,
    pub dropped_at_cut: u64,
}

fn pair(a: End, b: End) -> (End, End) {
    if a <= b { (a, b) } else { (b, a) }
}

impl Net {
    pub fn new(delay: (u64, u64), loss_per_mille: u64) -> Net {
        Net {
            delay,
            loss_per_mille,
            cuts: BTreeSet::new(),
            slow: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            sent: 0,
            lost: 0,
            dropped_at_cut: 0,
        }
    }

    pub fn send(&mut self, rng: &mut Rng, now: u64, from: End, to: End, body: Body) {
        self.sent += 1;
        if rng.chance(self.loss_per_mille) {
            self.lost += 1;
            return;
        }
        let at = now + rng.range(self.delay.0, self.delay.1) + self.slow.get(&(from, to)).copied().unwrap_or(0);
        self.seq += 1;
        self.queue.insert((at, self.seq), Msg { from, to, body });
    }

    /// The next message due by `now`; messages over cut links are dropped.
    pub fn next_due(&mut self, now: u64) -> Option<Msg> {
        loop {
            let (&(at, _), _) = self.queue.first_key_value()?;
            if at > now {
                return None;
            }
            let (_, m) = self.queue.pop_first()?;
            if self.is_cut(m.from, m.to) {
                self.dropped_at_cut += 1;
                continue;
            }
            return Some(m);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn is_cut(&self, a: End, b: End) -> bool {
        self.cuts.contains(&pair(a, b))
    }

    /// Cuts the link both ways; false when it was already cut.
    pub fn cut(&mut self, a: End, b: End) -> bool {
        self.cuts.insert(pair(a, b))
    }

    pub fn cuts(&self) -> Vec<(End, End)> {
        self.cuts.iter().copied().collect()
    }

    pub fn heal(&mut self, a: End, b: End) {
        self.cuts.remove(&pair(a, b));
    }

    pub fn slow_down(&mut self, from: End, to: End, extra: u64) {
        self.slow.insert((from, to), extra);
    }

    /// Every link works again, at full speed and without loss.
    pub fn heal_all(&mut self) {
        self.cuts.clear();
        self.slow.clear();
        self.loss_per_mille = 0;
    }
}
