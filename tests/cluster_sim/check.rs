//! What the simulation remembers and checks: every write the gateways
//! acknowledged (the 250s), releases that were won, queue entries that
//! were removed; then, at the end, the properties over every node.

use super::gateway::{Flight, Op};
use super::sim::Sim;
use mxgate::cluster::core::cell::Cell;
use mxgate::cluster::core::placement;
use std::collections::{BTreeMap, BTreeSet};

/// What the gateway told its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Durable on a quorum and every counted node took (or already beat)
    /// it: SMTP 250, or a release this gateway may deliver.
    Acknowledged,
    /// Durable, but a node refused the compare-and-set: a release that
    /// another gateway won (or that found no copy).
    Refused,
    /// Too few nodes: SMTP 451.
    Unavailable,
}

impl Report {
    pub fn label(self) -> &'static str {
        match self {
            Report::Acknowledged => "writes acknowledged",
            Report::Refused => "releases refused",
            Report::Unavailable => "writes unavailable",
        }
    }
}

/// Named counters, summed over seeds for the summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<&'static str, u64>);

impl Counts {
    pub fn add(&mut self, name: &'static str) {
        self.add_n(name, 1);
    }

    pub fn add_n(&mut self, name: &'static str, n: u64) {
        *self.0.entry(name).or_default() += n;
    }

    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    pub fn merge(&mut self, other: &Counts) {
        for (k, v) in &other.0 {
            self.add_n(k, *v);
        }
    }
}

pub struct Acked {
    pub key: Vec<u8>,
    pub cell: Cell,
    pub op: Op,
}

#[derive(Default)]
pub struct Ledger {
    pub acked: Vec<Acked>,
    pub reports: BTreeMap<(usize, u64), Report>,
    /// Key to the gateways whose release of it was acknowledged.
    pub releases_won: BTreeMap<Vec<u8>, Vec<usize>>,
    pub tombstoned: BTreeSet<Vec<u8>>,
    pub violations: Vec<String>,
    /// Writes that got a 451 although two nodes were writable.
    pub unavailable: Vec<String>,
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// A cell in one line: writer, version, status.
pub fn brief(c: Option<&Cell>) -> String {
    match c {
        None => "nothing".into(),
        Some(c) => format!("{} v{} rank {}{}", c.owner, c.ver, c.rank, if c.dead { " dead" } else { "" }),
    }
}

impl Sim {
    /// Property 1, at the moment of the 250: a quorum of nodes hold this
    /// version or one that beats it.
    pub(super) fn acknowledged(&mut self, g: usize, f: &Flight) {
        let holders =
            (self.nodes.iter()).filter(|n| n.holds(&f.key).is_some_and(|c| c.cmp_merge(&f.cell).is_ge())).count();
        if holders < self.cfg.quorum {
            let (key, now, q) = (show(&f.key), self.now, self.cfg.quorum);
            self.ledger
                .violations
                .push(format!("{key}: {:?} by gw{g} acknowledged at tick {now} on {holders} nodes < quorum {q}", f.op));
        }
        self.counts.add_n("copies at acknowledgement", holders as u64);
        self.counts.add(match f.op {
            Op::Enqueue => "queue entries acknowledged",
            Op::Remove => "removals acknowledged",
            Op::Hold => "quarantine records acknowledged",
            Op::Release => "releases won",
            Op::Delete => "deletes acknowledged",
            Op::Purge => "purges acknowledged",
        });
        match f.op {
            Op::Remove | Op::Purge => drop(self.ledger.tombstoned.insert(f.key.clone())),
            Op::Release => self.ledger.releases_won.entry(f.key.clone()).or_default().push(g),
            _ => {}
        }
        self.ledger.acked.push(Acked { key: f.key.clone(), cell: f.cell.clone(), op: f.op });
    }

    /// What gateway `g` answered for write `wid`, once decided.
    pub fn report(&self, g: usize, wid: u64) -> Option<Report> {
        self.ledger.reports.get(&(g, wid)).copied()
    }

    /// Properties 1 to 4 after quiescence; returns what broke.
    pub fn check_final(&mut self) -> Vec<String> {
        let mut bad = std::mem::take(&mut self.ledger.violations);
        for n in &mut self.nodes {
            bad.append(&mut n.violations);
        }
        let (names, r) = (&self.names, self.cfg.replicas);
        // 1. Every acknowledged write is on every owner.
        for a in &self.ledger.acked {
            for o in placement::owners(&a.key, names, r) {
                match self.nodes[o].holds(&a.key) {
                    Some(c) if c.cmp_merge(&a.cell).is_ge() => self.counts.add("acknowledged copies found on owners"),
                    held => bad.push(format!(
                        "{}: acknowledged {:?} ({}) lost on owner {o}, which holds {}",
                        show(&a.key),
                        a.op,
                        brief(Some(&a.cell)),
                        brief(held)
                    )),
                }
            }
        }
        // 2. Owners converge; nobody else keeps anything.
        let keys: BTreeSet<&Vec<u8>> = self.nodes.iter().flat_map(|n| n.cells.keys()).collect();
        for key in keys {
            let owners = placement::owners(key, names, r);
            let first = self.nodes[owners[0]].holds(key);
            if first.is_none() || owners.iter().any(|o| self.nodes[*o].holds(key) != first) {
                let held: Vec<String> =
                    owners.iter().map(|o| format!("node {o}: {}", brief(self.nodes[*o].holds(key)))).collect();
                bad.push(format!("{}: owners differ after repair: {}", show(key), held.join(", ")));
            }
            for (i, n) in self.nodes.iter().enumerate() {
                if !owners.contains(&i) && n.holds(key).is_some() {
                    bad.push(format!("{}: node {i} is no owner but kept {}", show(key), brief(n.holds(key))));
                }
            }
            self.counts.add("keys identical on every owner");
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some((o, k)) = n.hints.first() {
                bad.push(format!("node {i} still holds {} hints, e.g. {} for {o}", n.hints.len(), show(k)));
            }
        }
        // 3. A removed queue entry or purged record stays removed everywhere.
        for key in &self.ledger.tombstoned {
            for (i, n) in self.nodes.iter().enumerate() {
                if n.holds(key).is_some_and(|c| !c.dead) {
                    bad.push(format!("{}: removed, but node {i} holds the live {}", show(key), brief(n.holds(key))));
                }
            }
        }
        // 4. A release is won at most once when quorums intersect.
        if 2 * self.cfg.quorum > r {
            for (key, winners) in &self.ledger.releases_won {
                if winners.len() > 1 {
                    bad.push(format!("{}: released by gateways {winners:?}", show(key)));
                }
            }
        }
        bad
    }
}
