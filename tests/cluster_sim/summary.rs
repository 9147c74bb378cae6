//! Running many seeds and telling the reader what they did.

use super::chaos::RunResult;
use super::check::Counts;

/// Runs `seeds`, sums their counters and collects every broken property
/// (and, with `available`, every 451 given while two nodes were writable).
pub fn run_seeds(seeds: std::ops::Range<u64>, run: fn(u64) -> RunResult, available: bool) -> (Counts, Vec<String>) {
    let (mut total, mut broken) = (Counts::default(), Vec::new());
    for seed in seeds {
        let r = run(seed);
        total.add_n("runs", 1);
        total.merge(&r.counts);
        let c = &r.cfg;
        let shape = format!("{} nodes, {} gateways, replicas {}, quorum {}", c.nodes, c.gateways, c.replicas, c.quorum);
        let unavailable =
            r.unavailable.iter().filter(|_| available).map(|u| format!("451 with two nodes writable: {u}"));
        let problems = r.problems.iter().cloned().chain(unavailable);
        broken.extend(problems.take(3).map(|p| format!("seed {seed} ({shape}): {p}")));
    }
    (total, broken)
}

pub fn summary(title: &str, c: &Counts) {
    let g = |k| c.get(k);
    println!("== {title}: {} runs, {} writes started", g("runs"), g("writes started"));
    println!(
        "property 1, acknowledged writes survive: {} acknowledged with {} copies at the time; {} owner copies found after repair",
        g("writes acknowledged"),
        g("copies at acknowledgement"),
        g("acknowledged copies found on owners")
    );
    println!(
        "property 2, owners converge: {} keys identical on every owner; {} hints handed off, {} anti-entropy rounds repaired {} copies",
        g("keys identical on every owner"),
        g("hints handed off"),
        g("anti-entropy rounds"),
        g("copies repaired by anti-entropy")
    );
    println!(
        "property 3, lattice: {} removals, {} deletes and {} purges acknowledged, {} node applies checked",
        g("removals acknowledged"),
        g("deletes acknowledged"),
        g("purges acknowledged"),
        g("node applies")
    );
    println!(
        "property 4, a release is won once: {} started, {} races, {} won, {} refused",
        g("releases started"),
        g("release races"),
        g("releases won"),
        g("releases refused")
    );
    println!(
        "faults: {} crashes, {} links cut, {} of {} messages lost, {} dropped at a cut, {} timeouts, {} refused connections",
        g("nodes crashed"),
        g("links cut"),
        g("messages lost"),
        g("messages sent"),
        g("messages dropped at a cut"),
        g("requests timed out"),
        g("connections refused")
    );
    println!(
        "property 5, failover: {} sends to stand-ins, {} hints taken, {} writes unavailable, {} of them with 2 nodes writable ({} with a skipped owner back)",
        g("sends to stand-ins"),
        g("hints taken"),
        g("writes unavailable"),
        g("unavailable with 2 writable"),
        g("unavailable with a skipped owner back")
    );
    println!("all counters: {:?}", c.0);
}

pub fn assert_did_work(c: &Counts, names: &[&str]) {
    for n in names {
        assert!(c.get(n) > 0, "the simulation never got to '{n}': {:?}", c.0);
    }
}
