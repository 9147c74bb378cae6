//! A gateway: versions records with its hybrid clock, runs each write
//! through `write::Write` (owners first, stand-ins with hints for owners
//! it believes down) and keeps its health view from probes and failures.

use super::check::Report;
use super::net::{Body, End};
use super::sim::Sim;
use mxgate::cluster::core::NodeId;
use mxgate::cluster::core::cell::{Applied, Cell, Cond};
use mxgate::cluster::core::health::{Health, Probe};
use mxgate::cluster::core::placement;
use mxgate::cluster::core::write::{Outcome, Send, Write};
use std::collections::{BTreeMap, BTreeSet};

/// What a write does to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A new queue entry.
    Enqueue,
    /// The queue entry is delivered: a tombstone.
    Remove,
    /// A new quarantine record, held (rank 0).
    Hold,
    /// Held to released (rank 1), once: compare-and-set.
    Release,
    /// Deleted (rank 2), final.
    Delete,
    /// The quarantine record expires and goes: a tombstone over any status.
    Purge,
}

impl Op {
    /// (rank, dead, has_body, how nodes take it)
    fn shape(self) -> (u8, bool, bool, Cond) {
        match self {
            Op::Enqueue | Op::Hold => (0, false, true, Cond::Merge),
            Op::Remove | Op::Purge => (0, true, false, Cond::Merge),
            Op::Release => (1, false, true, Cond::Advance),
            Op::Delete => (2, false, false, Cond::Merge),
        }
    }
}

/// A write in flight.
pub struct Flight {
    pub op: Op,
    pub key: Vec<u8>,
    pub cell: Cell,
    pub cond: Cond,
    pub write: Write,
    /// Requests awaiting a reply, with their deadlines.
    pub waiting: BTreeMap<NodeId, u64>,
    /// What each counted reply said.
    pub replies: Vec<Applied>,
    pub writable_at_start: usize,
    /// Tick, health view and real node states when it started (for reports).
    pub started: (u64, Vec<bool>, Vec<bool>),
    /// Every node the write was sent to.
    pub asked: BTreeSet<NodeId>,
}

pub struct Gateway {
    pub name: String,
    pub health: Health,
    /// Clock skew in ticks: gateways' clocks disagree.
    pub skew: u64,
    last_ver: u64,
    next_wid: u64,
    pub flights: BTreeMap<u64, Flight>,
}

impl Gateway {
    pub fn new(id: usize, nodes: usize, health_timeout: u64, skew: u64) -> Gateway {
        let health = Health::new(nodes, health_timeout);
        Gateway { name: format!("gw{id}"), health, skew, last_ver: 0, next_wid: 0, flights: BTreeMap::new() }
    }

    /// Hybrid clock: wall time, but always past the last version issued.
    fn version(&mut self, now: u64) -> u64 {
        self.last_ver = (now + self.skew).max(self.last_ver + 1);
        self.last_ver
    }
}

impl Sim {
    /// Starts a write of `op` on `key` from gateway `g`; returns its id.
    pub fn write(&mut self, g: usize, op: Op, key: &[u8]) -> u64 {
        let (rank, dead, has_body, cond) = op.shape();
        let gw = &mut self.gws[g];
        let ver = gw.version(self.now);
        let data = if dead {
            Vec::new()
        } else {
            format!("{op:?} {} by {} v{ver}", String::from_utf8_lossy(key), gw.name).into_bytes()
        };
        let cell = Cell { ver, rank, dead, owner: gw.name.clone(), has_body, data };
        let prefs = placement::preference(key, &self.names);
        let health = &gw.health;
        // Conditional writes (releases) go to owners only, as the gateway does.
        let (write, sends) = match cond {
            Cond::Advance => Write::start_strict(prefs, self.cfg.replicas, self.cfg.quorum, |n| health.writable(n)),
            Cond::Merge => Write::start(prefs, self.cfg.replicas, self.cfg.quorum, |n| health.writable(n)),
        };
        let writable_at_start = health.writable_count();
        let view = (0..self.nodes.len()).map(|n| health.writable(n)).collect();
        let started = (self.now, view, self.nodes.iter().map(|n| n.up).collect());
        let wid = gw.next_wid;
        gw.next_wid += 1;
        let flight = Flight {
            op,
            key: key.to_vec(),
            cell,
            cond,
            write,
            waiting: BTreeMap::new(),
            replies: Vec::new(),
            writable_at_start,
            started,
            asked: BTreeSet::new(),
        };
        let unavailable = flight.write.outcome() == Some(Outcome::Unavailable);
        gw.flights.insert(wid, flight);
        self.counts.add("writes started");
        if unavailable {
            // Too few nodes in the health view: answer 451 without sending.
            self.finish(g, wid, Outcome::Unavailable);
        } else {
            for s in sends {
                self.send_write(g, wid, s);
            }
        }
        wid
    }

    fn send_write(&mut self, g: usize, wid: u64, s: Send) {
        let f = self.gws[g].flights.get_mut(&wid).expect("write in flight");
        f.waiting.insert(s.to, self.now + self.cfg.request_timeout);
        f.asked.insert(s.to);
        if s.hint_for.is_some() {
            self.counts.add("sends to stand-ins");
        }
        let body = Body::Write { wid, key: f.key.clone(), cell: f.cell.clone(), cond: f.cond, hint_for: s.hint_for };
        self.net.send(&mut self.rng, self.now, End::Gw(g), End::Node(s.to), body);
    }

    pub fn gw_receive(&mut self, g: usize, node: NodeId, body: Body) {
        match body {
            Body::WriteReply { wid, applied } => self.on_reply(g, node, wid, applied),
            Body::Refused { wid } => {
                self.counts.add("connections refused");
                self.gws[g].health.failed(node, "connection refused");
                if let Some(wid) = wid {
                    self.on_failure(g, node, wid);
                }
            }
            Body::ProbeReply { sent, records } => {
                let p = Probe { rtt_ms: self.now - sent, records, ..Probe::default() };
                self.gws[g].health.probe_ok(node, self.now, p);
            }
            other => panic!("gateway got {other:?}"),
        }
    }

    fn on_reply(&mut self, g: usize, node: NodeId, wid: u64, applied: Applied) {
        let Some(f) = self.gws[g].flights.get_mut(&wid) else { return };
        // A reply after the request timed out was already counted as a failure.
        if f.waiting.remove(&node).is_none() {
            return;
        }
        f.replies.push(applied);
        if let Some(out) = f.write.ack(node) {
            self.finish(g, wid, out);
        }
    }

    /// A request was refused or timed out: the write moves to a stand-in.
    fn on_failure(&mut self, g: usize, node: NodeId, wid: u64) {
        let gw = &mut self.gws[g];
        let Some(f) = gw.flights.get_mut(&wid) else { return };
        if f.waiting.remove(&node).is_none() {
            return;
        }
        let health = &gw.health;
        let (sends, out) = f.write.fail(node, |n| health.writable(n));
        for s in sends {
            self.send_write(g, wid, s);
        }
        if let Some(out) = out {
            self.finish(g, wid, out);
        }
    }

    /// Requests past their deadline fail (a lost message, a cut link).
    pub fn expire_requests(&mut self) {
        for g in 0..self.gws.len() {
            let late: Vec<(u64, NodeId)> = (self.gws[g].flights.iter())
                .flat_map(|(wid, f)| f.waiting.iter().filter(|(_, d)| **d <= self.now).map(|(n, _)| (*wid, *n)))
                .collect();
            for (wid, node) in late {
                self.counts.add("requests timed out");
                self.gws[g].health.failed(node, "timeout");
                self.on_failure(g, node, wid);
            }
            // Nothing left to wait for, yet the write never decided: it
            // would hang the SMTP session.
            let stuck: Vec<u64> =
                (self.gws[g].flights.iter()).filter(|(_, f)| f.waiting.is_empty()).map(|(w, _)| *w).collect();
            for wid in stuck {
                let f = self.gws[g].flights.remove(&wid).expect("write in flight");
                let key = String::from_utf8_lossy(&f.key);
                self.ledger.violations.push(format!("{key}: {:?} by gw{g} undecided with no request pending", f.op));
            }
        }
    }

    pub fn probe_all(&mut self, g: usize) {
        for n in 0..self.nodes.len() {
            self.net.send(&mut self.rng, self.now, End::Gw(g), End::Node(n), Body::Probe { sent: self.now });
        }
    }

    /// The write is decided: 250 or 451, and what the ledger must remember.
    fn finish(&mut self, g: usize, wid: u64, out: Outcome) {
        let f = self.gws[g].flights.remove(&wid).expect("write in flight");
        let report = match out {
            Outcome::Durable if f.replies.iter().all(|a| *a != Applied::Refused) => Report::Acknowledged,
            Outcome::Durable => Report::Refused,
            Outcome::Unavailable => Report::Unavailable,
        };
        if report == Report::Acknowledged {
            self.acknowledged(g, &f);
        }
        self.ledger.reports.insert((g, wid), report);
        self.counts.add(report.label());
        if report == Report::Unavailable && f.writable_at_start >= 2 {
            self.unavailable_with_two_writable(g, &f);
        }
        self.work.settled(g, f.op, &f.key, report);
    }

    /// A 451 although two nodes were writable when the write started:
    /// property 5 is about these. Those where an owner skipped as down at
    /// the start was back in the view (and never asked) when the write gave
    /// up are kept apart: `write::Write` never returns to such an owner.
    fn unavailable_with_two_writable(&mut self, g: usize, f: &Flight) {
        // Releases go to owners only (`Write::start_strict`): with one of
        // two owners down they wait, by design, for it to come back.
        if f.cond == Cond::Advance {
            self.counts.add("release waiting for an owner");
            return;
        }
        self.counts.add("unavailable with 2 writable");
        let (at, view, up) = &f.started;
        let key = String::from_utf8_lossy(&f.key);
        let owners = placement::owners(&f.key, &self.names, self.cfg.replicas);
        let health = &self.gws[g].health;
        let back: Vec<NodeId> =
            owners.iter().copied().filter(|o| !f.asked.contains(o) && health.writable(*o)).collect();
        if !back.is_empty() {
            self.counts.add("unavailable with a skipped owner back");
            return;
        }
        let now = self.now;
        self.ledger.unavailable.push(format!(
            "{key} (owners {owners:?}) by gw{g}: started at tick {at} with view {view:?}, nodes up {up:?}, asked {:?}; 451 at tick {now}",
            f.asked
        ));
    }
}
