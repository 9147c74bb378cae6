//! Random runs: every gateway writes queue entries and quarantine records
//! (and removes, releases and deletes them) while nodes crash and come
//! back, links are cut and healed, and messages are lost. Then the
//! cluster heals, repairs itself, and the checks run.

use super::check::{Counts, Report};
use super::gateway::Op;
use super::net::End;
use super::rng::Rng;
use super::sim::{Config, Sim};
use mxgate::cluster::core::NodeId;
use std::collections::BTreeMap;

/// What the clients know: entries they may remove, records they may
/// release or delete.
#[derive(Default)]
pub struct Workload {
    next: u64,
    /// Per gateway: its acknowledged queue entries not yet removed.
    live: BTreeMap<usize, Vec<Vec<u8>>>,
    /// Acknowledged quarantine records (any gateway may act on them).
    held: Vec<Vec<u8>>,
}

impl Workload {
    pub fn settled(&mut self, g: usize, op: Op, key: &[u8], report: Report) {
        match (op, report) {
            (Op::Enqueue, Report::Acknowledged) => self.live.entry(g).or_default().push(key.to_vec()),
            // A removal that got no 250 is tried again later.
            (Op::Remove, Report::Unavailable) => self.live.entry(g).or_default().push(key.to_vec()),
            (Op::Hold, Report::Acknowledged) => self.held.push(key.to_vec()),
            _ => {}
        }
    }
}

/// Fault rates, per mille per tick.
pub struct Faults {
    pub crash: u64,
    pub restart: u64,
    pub cut: u64,
    pub heal: u64,
    pub max_down: usize,
    /// Crash only when every node is up, every gateway sees it up, and
    /// the last restart is older than any refusal still in flight.
    pub one_at_a_time: bool,
}

impl Sim {
    fn random_write(&mut self, g: usize) {
        let n = self.work.next;
        self.work.next += 1;
        let roll = self.rng.below(100);
        let live = self.work.live.entry(g).or_default();
        if (35..50).contains(&roll) && !live.is_empty() {
            let key = live.swap_remove(self.rng.index(live.len()).unwrap_or(0));
            self.write(g, Op::Remove, &key);
        } else if roll < 50 {
            self.write(g, Op::Enqueue, format!("q{g}.{n}").as_bytes());
        } else if roll < 70 || self.work.held.is_empty() {
            self.write(g, Op::Hold, format!("z{g}.{n}").as_bytes());
        } else {
            let key = self.work.held[self.rng.index(self.work.held.len()).unwrap_or(0)].clone();
            if roll >= 90 {
                self.write(g, if roll < 96 { Op::Delete } else { Op::Purge }, &key);
                return;
            }
            self.counts.add("releases started");
            self.write(g, Op::Release, &key);
            // Now and then another gateway releases the same record at once.
            if self.gws.len() > 1 && self.rng.chance(400) {
                self.counts.add("release races");
                self.counts.add("releases started");
                self.write((g + 1) % self.gws.len(), Op::Release, &key);
            }
        }
    }

    /// Client traffic for one tick.
    pub fn traffic(&mut self, per_mille: u64) {
        for g in 0..self.gws.len() {
            if self.rng.chance(per_mille) {
                self.random_write(g);
            }
        }
    }

    fn all_seen_up(&self) -> bool {
        let up = |n: NodeId| self.nodes[n].up && self.gws.iter().all(|g| g.health.writable(n));
        (0..self.nodes.len()).all(up) && self.now > self.last_restart + 2 * self.cfg.delay.1
    }

    pub fn faults(&mut self, f: &Faults) {
        let n = self.nodes.len();
        if self.rng.chance(f.crash) && self.down_count() < f.max_down && (!f.one_at_a_time || self.all_seen_up()) {
            let up: Vec<NodeId> = (0..n).filter(|i| self.nodes[*i].up).collect();
            let i = self.rng.index(up.len()).expect("a node is up");
            self.crash(up[i]);
        }
        if self.rng.chance(f.restart) {
            let down: Vec<NodeId> = (0..n).filter(|i| !self.nodes[*i].up).collect();
            if let Some(i) = self.rng.index(down.len()) {
                self.restart(down[i]);
            }
        }
        if self.rng.chance(f.cut) {
            let a = self.rng.below(n as u64) as usize;
            let b = match self.rng.chance(500) {
                true => End::Gw(self.rng.below(self.gws.len() as u64) as usize),
                false => End::Node((a + 1 + self.rng.below(n as u64 - 1) as usize) % n),
            };
            self.cut(End::Node(a), b);
        }
        if self.rng.chance(f.heal) {
            let cuts = self.net.cuts();
            if let Some(i) = self.rng.index(cuts.len()) {
                self.net.heal(cuts[i].0, cuts[i].1);
                self.counts.add("links healed");
            }
        }
    }
}

pub struct RunResult {
    pub cfg: Config,
    pub counts: Counts,
    pub problems: Vec<String>,
    /// Writes refused while two nodes were writable in the health view.
    pub unavailable: Vec<String>,
}

/// Traffic and faults for `ticks`, then heal, repair and check.
pub fn run(seed: u64, cfg: Config, faults: &Faults, ticks: u64) -> RunResult {
    let mut sim = Sim::new(cfg.clone(), seed);
    sim.run(2 * cfg.probe_every); // first probes: nodes are Unknown until they answer
    for _ in 0..ticks {
        sim.traffic(80);
        sim.faults(faults);
        sim.tick();
    }
    let settled = sim.quiesce();
    let mut problems = sim.check_final();
    if !settled {
        problems.push("repair never settled".into());
    }
    RunResult { cfg, counts: sim.summary(), problems, unavailable: std::mem::take(&mut sim.ledger.unavailable) }
}

/// Any shape of cluster, any faults: the shape and rates come from the seed.
pub fn chaos(seed: u64) -> RunResult {
    let mut pick = Rng::new(seed ^ 0x5eed);
    let nodes = pick.range(3, 5) as usize;
    let replicas = pick.range(2, 3.min(nodes as u64)) as usize;
    let quorum = pick.range(1, replicas as u64) as usize;
    let max_delay = pick.range(2, 15);
    let cfg = Config {
        nodes,
        replicas,
        quorum,
        gateways: pick.range(1, 2) as usize,
        delay: (1, max_delay),
        loss_per_mille: [0, 5, 20, 50][pick.below(4) as usize],
        request_timeout: 2 * max_delay + 5,
        health_timeout: 100,
        probe_every: 25,
        handoff_every: 60,
        sync_every: 150,
    };
    let faults = Faults { crash: 3, restart: 8, cut: 4, heal: 8, max_down: nodes - 1, one_at_a_time: false };
    run(seed, cfg, &faults, 2500)
}

/// Three nodes, two copies, quorum two; a lossless network; one node
/// down at a time, and only once every gateway has seen the last one back.
pub fn one_down(seed: u64) -> RunResult {
    let cfg = Config {
        nodes: 3,
        replicas: 2,
        quorum: 2,
        gateways: 2,
        delay: (1, 8),
        loss_per_mille: 0,
        request_timeout: 21,
        health_timeout: 50,
        probe_every: 10,
        handoff_every: 60,
        sync_every: 150,
    };
    let faults = Faults { crash: 5, restart: 15, cut: 0, heal: 0, max_down: 1, one_at_a_time: true };
    run(seed, cfg, &faults, 2000)
}
