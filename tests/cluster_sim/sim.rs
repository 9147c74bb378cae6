//! The simulator: storage nodes, gateways and the network, advanced one
//! tick (one simulated millisecond) at a time. No threads, no real time:
//! everything random comes from the seed.

use super::chaos::Workload;
use super::check::{Counts, Ledger};
use super::gateway::Gateway;
use super::net::{End, Msg, Net};
use super::node::Node;
use super::rng::Rng;
use mxgate::cluster::core::NodeId;
use std::cell::RefCell;
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct Config {
    pub nodes: usize,
    pub replicas: usize,
    pub quorum: usize,
    pub gateways: usize,
    /// Message delay range, in ticks.
    pub delay: (u64, u64),
    pub loss_per_mille: u64,
    /// A gateway gives up on a request after this many ticks.
    pub request_timeout: u64,
    /// A node silent for this long is down in a gateway's view.
    pub health_timeout: u64,
    /// Background work every so many ticks (0: never).
    pub probe_every: u64,
    pub handoff_every: u64,
    pub sync_every: u64,
}

impl Config {
    /// For stories: every message takes one tick, gateways probe every 5
    /// ticks, and repair runs only when the story asks for it.
    pub fn scripted(nodes: usize, replicas: usize, quorum: usize, gateways: usize) -> Config {
        Config {
            nodes,
            replicas,
            quorum,
            gateways,
            delay: (1, 1),
            loss_per_mille: 0,
            request_timeout: 10,
            health_timeout: 50,
            probe_every: 5,
            handoff_every: 0,
            sync_every: 0,
        }
    }
}

pub struct Sim {
    pub cfg: Config,
    pub names: Vec<String>,
    pub now: u64,
    pub rng: Rng,
    pub net: Net,
    pub nodes: Vec<Node>,
    pub gws: Vec<Gateway>,
    pub ledger: Ledger,
    pub counts: Counts,
    pub work: Workload,
    /// Bumped whenever a node's cells or hints change (quiescence test).
    pub changes: u64,
    pub last_restart: u64,
    /// Key to the pairs of nodes that both own it (see `shares`).
    pub shared_memo: RefCell<HashMap<Vec<u8>, u32>>,
}

fn every(now: u64, period: u64) -> bool {
    period > 0 && now.is_multiple_of(period)
}

impl Sim {
    pub fn new(cfg: Config, seed: u64) -> Sim {
        let mut rng = Rng::new(seed);
        let names = (0..cfg.nodes).map(|i| format!("10.0.0.{}:7400", 11 + i)).collect();
        let gws = (0..cfg.gateways).map(|g| Gateway::new(g, cfg.nodes, cfg.health_timeout, rng.below(40))).collect();
        Sim {
            net: Net::new(cfg.delay, cfg.loss_per_mille),
            nodes: (0..cfg.nodes).map(Node::new).collect(),
            gws,
            names,
            now: 0,
            rng,
            cfg,
            ledger: Ledger::default(),
            counts: Counts::default(),
            work: Workload::default(),
            changes: 0,
            last_restart: 0,
            shared_memo: RefCell::default(),
        }
    }

    pub fn tick(&mut self) {
        self.now += 1;
        while let Some(m) = self.net.next_due(self.now) {
            self.deliver(m);
        }
        self.expire_requests();
        for g in 0..self.gws.len() {
            self.gws[g].health.tick(self.now);
            // Gateways probe out of step with each other.
            if every(self.now + g as u64, self.cfg.probe_every) {
                self.probe_all(g);
            }
        }
        for n in 0..self.nodes.len() {
            if every(self.now + n as u64 * 7, self.cfg.handoff_every) {
                self.hand_off(n);
            }
            if every(self.now + n as u64 * 13, self.cfg.sync_every) {
                let peer = (n + 1 + self.rng.below(self.nodes.len() as u64 - 1) as usize) % self.nodes.len();
                self.start_sync(n, peer);
            }
        }
    }

    pub fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.tick();
        }
    }

    fn deliver(&mut self, m: Msg) {
        match (m.to, m.from) {
            (End::Node(n), from) => self.node_receive(n, from, m.body),
            (End::Gw(g), End::Node(n)) => self.gw_receive(g, n, m.body),
            (End::Gw(_), End::Gw(_)) => unreachable!("gateways do not talk to each other"),
        }
    }

    pub fn crash(&mut self, n: NodeId) {
        self.nodes[n].up = false;
        self.counts.add("nodes crashed");
    }

    pub fn restart(&mut self, n: NodeId) {
        self.nodes[n].up = true;
        self.last_restart = self.now;
        self.counts.add("nodes restarted");
    }

    pub fn cut(&mut self, a: End, b: End) {
        if self.net.cut(a, b) {
            self.counts.add("links cut");
        }
    }

    pub fn down_count(&self) -> usize {
        self.nodes.iter().filter(|n| !n.up).count()
    }

    /// Runs until nothing is in flight (background work should be off).
    /// Returns false if that never happens.
    pub fn drain(&mut self) -> bool {
        for _ in 0..100_000 {
            if self.net.is_empty() && self.gws.iter().all(|g| g.flights.is_empty()) {
                return true;
            }
            self.tick();
        }
        false
    }

    /// Heals every link, restarts every node, lets the gateways settle,
    /// then hands off hints and runs anti-entropy between every pair of
    /// nodes until a whole pass changes nothing. False if it never settles.
    pub fn quiesce(&mut self) -> bool {
        self.net.heal_all();
        for n in 0..self.nodes.len() {
            if !self.nodes[n].up {
                self.restart(n);
            }
        }
        (self.cfg.probe_every, self.cfg.handoff_every, self.cfg.sync_every) = (0, 0, 0);
        for _ in 0..20 {
            let before = self.changes;
            let drained = self.drain();
            for n in 0..self.nodes.len() {
                self.hand_off(n);
            }
            let handed = self.drain();
            for a in 0..self.nodes.len() {
                for b in (0..self.nodes.len()).filter(|b| *b != a) {
                    self.start_sync(a, b);
                }
            }
            if !(drained && handed && self.drain()) {
                return false;
            }
            if self.changes == before && self.nodes.iter().all(|n| n.hints.is_empty()) {
                return true;
            }
        }
        false
    }

    /// Counters of this run, the network's included.
    pub fn summary(&self) -> Counts {
        let mut c = self.counts.clone();
        c.add_n("messages sent", self.net.sent);
        c.add_n("messages lost", self.net.lost);
        c.add_n("messages dropped at a cut", self.net.dropped_at_cut);
        c.add_n("node applies", self.nodes.iter().map(|n| n.applies).sum());
        c
    }
}
