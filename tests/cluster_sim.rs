//! Deterministic simulation of the replication core (`cluster::core`):
//! in-memory storage nodes, gateways and a network that delays, loses and
//! cuts messages, all driven by a seeded generator and a tick clock.
//! Random runs check the guarantees over hundreds of seeds; the stories
//! after them walk through single failures step by step; the two ignored
//! stories at the end state guarantees the core does not keep yet.
//!
//! A failing seed replays exactly: `chaos::chaos(seed)` or `chaos::one_down(seed)`.

#[path = "cluster_sim/chaos.rs"]
mod chaos;
#[path = "cluster_sim/check.rs"]
mod check;
#[path = "cluster_sim/gateway.rs"]
mod gateway;
#[path = "cluster_sim/net.rs"]
mod net;
#[path = "cluster_sim/node.rs"]
mod node;
#[path = "cluster_sim/repair.rs"]
mod repair;
#[path = "cluster_sim/rng.rs"]
mod rng;
#[path = "cluster_sim/sim.rs"]
mod sim;
#[path = "cluster_sim/summary.rs"]
mod summary;

use check::Report;
use gateway::Op;
use mxgate::cluster::core::placement;
use mxgate::cluster::core::repair::bucket;
use net::End;
use sim::{Config, Sim};
use std::collections::BTreeSet;
use summary::{assert_did_work, run_seeds, summary};

/// 300 random clusters (3 to 5 nodes, 2 or 3 copies, any quorum, one or
/// two gateways), each 2,500 ticks of traffic while nodes crash, links are
/// cut and messages are lost; then heal, repair and check properties 1-4:
/// every 250 was on a quorum at once and is on every owner at the end;
/// owners agree; removals and status changes never go backwards; a release
/// is won at most once wherever two quorums must overlap (2w > r).
#[test]
fn random_crashes_partitions_and_loss_lose_no_acknowledged_write() {
    let (total, broken) = run_seeds(0..300, chaos::chaos, false);
    summary("random faults", &total);
    assert!(broken.is_empty(), "{} problems, first ones:\n{}", broken.len(), broken[..broken.len().min(12)].join("\n"));
    assert_did_work(
        &total,
        &[
            "nodes crashed",
            "nodes restarted",
            "links cut",
            "links healed",
            "messages lost",
            "messages dropped at a cut",
            "requests timed out",
            "connections refused",
            "sends to stand-ins",
            "hints handed off",
            "stand-in copies dropped",
            "copies repaired by anti-entropy",
            "writes unavailable",
            "removals acknowledged",
            "deletes acknowledged",
            "purges acknowledged",
            "release races",
            "releases won",
            "releases refused",
        ],
    );
    assert!(total.get("writes acknowledged") > total.get("writes started") / 2, "most writes got through");
}

/// Property 5 on the recommended shape (3 nodes, 2 copies, quorum 2) with
/// a lossless network and one node down at a time: a write that starts
/// with two writable nodes in the gateway's view gets its 250. Also checks
/// properties 1-4 on these runs.
#[test]
fn with_one_node_down_writes_keep_succeeding() {
    let (total, broken) = run_seeds(0..100, chaos::one_down, true);
    summary("one node down at a time (3 nodes, replicas 2, quorum 2)", &total);
    assert!(broken.is_empty(), "{} problems, first ones:\n{}", broken.len(), broken[..broken.len().min(12)].join("\n"));
    // Property 5: two writable nodes in the health view are enough for
    // every write but a release, which needs the record's owners (counted
    // apart as "release waiting for an owner").
    assert_eq!(total.get("unavailable with 2 writable"), 0, "{:?}", total.0);
    assert_did_work(
        &total,
        &["nodes crashed", "connections refused", "sends to stand-ins", "hints handed off", "writes acknowledged"],
    );
}

/// The simulation itself: a seed is a complete description of a run.
#[test]
fn a_seed_replays_exactly() {
    let (a, b) = (chaos::chaos(7), chaos::chaos(7));
    assert_eq!(a.counts, b.counts);
    assert!(a.counts.get("writes started") > 100 && a.counts != chaos::chaos(8).counts);
}

/// A scripted cluster whose first probes have been answered.
fn story(nodes: usize, gateways: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(Config::scripted(nodes, 2, 2, gateways), seed);
    sim.run(10);
    for g in &sim.gws {
        assert!((0..nodes).all(|n| g.health.writable(n)), "every node answered a probe");
    }
    sim
}

#[test]
fn owner_killed_mid_write_a_stand_in_keeps_it_and_hands_it_back() {
    let mut sim = story(3, 1, 1);
    let key = b"q.story-1";
    let p = placement::preference(key, &sim.names);
    let (owner, other, stand_in) = (p[0], p[1], p[2]);

    // The write is on the wire to both owners when the first one is killed.
    let wid = sim.write(0, Op::Enqueue, key);
    sim.crash(owner);
    sim.run(5);
    assert_eq!(sim.report(0, wid), Some(Report::Acknowledged), "the 250 still goes out");
    assert!(!sim.gws[0].health.writable(owner), "the refused connection took the owner out of the view");
    assert_eq!(sim.nodes[owner].holds(key), None);
    let cell = sim.nodes[other].holds(key).cloned().expect("the other owner took it");
    assert_eq!(sim.nodes[stand_in].holds(key), Some(&cell), "the next node in line took the owner's copy");
    assert!(sim.nodes[stand_in].hints.contains(&(owner, key.to_vec())), "with a hint naming the owner");

    // Handing off to a dead owner achieves nothing; the hint stays.
    sim.hand_off(stand_in);
    sim.run(5);
    assert!(sim.nodes[stand_in].hinted(key));

    // The owner returns; the next probe puts it back in the view.
    sim.restart(owner);
    sim.run(10);
    assert!(sim.gws[0].health.writable(owner));
    sim.hand_off(stand_in);
    sim.run(5);
    assert_eq!(sim.nodes[owner].holds(key), Some(&cell), "the owner has its copy");
    assert_eq!(sim.nodes[stand_in].holds(key), None, "and the stand-in forgot it");
    assert!(sim.nodes[stand_in].hints.is_empty());
    assert_eq!(sim.check_final(), Vec::<String>::new());
}

#[test]
fn owner_cut_off_from_the_gateway_catches_up_by_anti_entropy() {
    let mut sim = story(3, 1, 2);
    let keys: Vec<Vec<u8>> = (0..)
        .map(|i| format!("q.missed-{i}").into_bytes())
        .filter(|k| {
            placement::owners(k, &sim.names, 2).iter().copied().collect::<BTreeSet<_>>() == BTreeSet::from([0, 1])
        })
        .take(5)
        .collect();

    // The gateway loses its link to owner 1; the nodes still reach each other.
    sim.cut(End::Gw(0), End::Node(1));
    sim.run(60);
    assert!(!sim.gws[0].health.writable(1), "silent past the health timeout");
    let wids: Vec<u64> = keys.iter().map(|k| sim.write(0, Op::Enqueue, k)).collect();
    sim.run(5);
    for (k, wid) in keys.iter().zip(wids) {
        assert_eq!(sim.report(0, wid), Some(Report::Acknowledged));
        assert!(sim.nodes[0].holds(k).is_some() && sim.nodes[1].holds(k).is_none());
        assert!(sim.nodes[2].hints.contains(&(1, k.clone())), "node 2 stood in for node 1");
    }

    // The stand-in dies before handing anything off; the link comes back.
    sim.crash(2);
    sim.net.heal(End::Gw(0), End::Node(1));
    sim.hand_off(2);
    sim.run(10);
    assert!(sim.nodes[1].cells.is_empty(), "a dead stand-in hands off nothing");

    // Node 1 compares digests with node 0: the buckets of the missed keys
    // differ, and it pulls exactly those keys.
    sim.start_sync(1, 0);
    sim.run(5);
    let buckets: BTreeSet<usize> = keys.iter().map(|k| bucket(k)).collect();
    assert_eq!(sim.counts.get("buckets differing"), buckets.len() as u64);
    assert_eq!(sim.counts.get("copies pulled"), keys.len() as u64);
    for k in &keys {
        assert_eq!(sim.nodes[1].holds(k), sim.nodes[0].holds(k));
    }
    sim.start_sync(0, 1);
    sim.run(5);
    assert_eq!(sim.counts.get("anti-entropy rounds found equal"), 1, "the other way round finds nothing to do");

    // The stand-in returns: the owner has everything, so the handoff only
    // lets the stand-in drop its copies.
    sim.restart(2);
    sim.hand_off(2);
    sim.run(5);
    assert_eq!(sim.counts.get("hints handed off"), keys.len() as u64);
    assert!(sim.nodes[2].cells.is_empty() && sim.nodes[2].hints.is_empty());
    assert_eq!(sim.check_final(), Vec::<String>::new());
}

#[test]
fn two_gateways_race_to_release_one_record() {
    let mut sim = story(3, 2, 3);
    let key = b"z.story-3";
    let hold = sim.write(0, Op::Hold, key);
    sim.run(5);
    assert_eq!(sim.report(0, hold), Some(Report::Acknowledged));

    // Both gateways release in the same tick; both owners see gateway 0 first.
    let (a, b) = (sim.write(0, Op::Release, key), sim.write(1, Op::Release, key));
    sim.run(5);
    assert_eq!((sim.report(0, a), sim.report(1, b)), (Some(Report::Acknowledged), Some(Report::Refused)));

    // Another record; now each owner sees a different gateway first.
    let key2 = b"z.story-3b";
    let hold = sim.write(0, Op::Hold, key2);
    sim.run(5);
    assert_eq!(sim.report(0, hold), Some(Report::Acknowledged));
    let owners = placement::owners(key2, &sim.names, 2);
    sim.net.slow_down(End::Gw(0), End::Node(owners[1]), 2);
    sim.net.slow_down(End::Gw(1), End::Node(owners[0]), 2);
    let (a, b) = (sim.write(0, Op::Release, key2), sim.write(1, Op::Release, key2));
    sim.run(10);
    // Neither won a quorum of compare-and-sets: at most once, here not at all.
    assert_eq!((sim.report(0, a), sim.report(1, b)), (Some(Report::Refused), Some(Report::Refused)));
    let held: Vec<_> = owners.iter().map(|o| sim.nodes[*o].holds(key2).cloned().unwrap()).collect();
    assert!(held[0] != held[1] && held.iter().all(|c| c.rank == 1), "each owner took a different release");
    sim.start_sync(owners[0], owners[1]);
    sim.start_sync(owners[1], owners[0]);
    sim.run(10);
    assert_eq!(sim.nodes[owners[0]].holds(key2), sim.nodes[owners[1]].holds(key2), "repair agrees on one");

    // Deleting is final: a later release is refused everywhere.
    let del = sim.write(0, Op::Delete, key);
    sim.run(5);
    let late = sim.write(1, Op::Release, key);
    sim.run(5);
    assert_eq!((sim.report(0, del), sim.report(1, late)), (Some(Report::Acknowledged), Some(Report::Refused)));
    for o in placement::owners(key, &sim.names, 2) {
        assert_eq!(sim.nodes[o].holds(key).map(|c| c.rank), Some(2));
    }
    assert_eq!(sim.check_final(), Vec::<String>::new());
}

#[test]
fn a_removed_queue_entry_never_comes_back_from_a_late_copy() {
    let mut sim = story(3, 2, 4);
    let key = b"q.story-4";
    let p = placement::preference(key, &sim.names);
    let (slow_owner, other, stand_in) = (p[0], p[1], p[2]);

    // Gateway 1's link to one owner is slow: the request times out while
    // the copy is still on its way, and a stand-in takes it.
    sim.net.slow_down(End::Gw(1), End::Node(slow_owner), 30);
    let put = sim.write(1, Op::Enqueue, key);
    sim.run(15);
    assert_eq!(sim.report(1, put), Some(Report::Acknowledged));
    assert!(sim.nodes[stand_in].hints.contains(&(slow_owner, key.to_vec())));
    assert_eq!(sim.nodes[slow_owner].holds(key), None, "the first copy is still in flight");

    // Delivered: gateway 0 removes the entry on both owners.
    let rm = sim.write(0, Op::Remove, key);
    sim.run(5);
    assert_eq!(sim.report(0, rm), Some(Report::Acknowledged));
    let tombstone = sim.nodes[other].holds(key).cloned().unwrap();
    assert!(tombstone.dead);

    // The late copy lands on the owner, and the stand-in hands over its
    // live copy: the tombstone wins both times, and the stand-in forgets.
    let applies = sim.nodes[slow_owner].applies;
    sim.run(30);
    sim.hand_off(stand_in);
    sim.run(5);
    assert_eq!(sim.nodes[slow_owner].applies, applies + 2, "both live copies arrived");
    assert_eq!(sim.nodes[slow_owner].holds(key), Some(&tombstone));
    assert_eq!(sim.nodes[stand_in].holds(key), None);
    assert_eq!(sim.check_final(), Vec::<String>::new());
}

// Two stories that once failed: an owner back in the view takes the place
// of a lost stand-in, and releases use owners only.

#[test]
fn a_stand_in_lost_after_the_owner_is_back_gives_the_write_to_the_owner() {
    let mut sim = story(3, 1, 5);
    let key = b"q.story-5";
    let p = placement::preference(key, &sim.names);
    let (owner, other, stand_in) = (p[0], p[1], p[2]);

    // A timed-out request has just taken the owner out of the view, so the
    // write goes to the other owner and to the stand-in, with a hint.
    sim.gws[0].health.failed(owner, "timeout");
    sim.net.slow_down(End::Gw(0), End::Node(stand_in), 10);
    let wid = sim.write(0, Op::Enqueue, key);
    // The stand-in dies before the write reaches it; by the time the
    // refusal comes back, the owner has answered a probe again.
    sim.crash(stand_in);
    sim.run(8);
    assert!(sim.gws[0].health.writable(owner) && !sim.nodes[stand_in].up);
    sim.run(10);
    // Two writable nodes, both owners: the write must succeed on them.
    assert_eq!(sim.report(0, wid), Some(Report::Acknowledged));
    assert!(sim.nodes[owner].holds(key).is_some() && sim.nodes[other].holds(key).is_some());
}

#[test]
fn a_split_cluster_releases_a_record_once() {
    let mut sim = Sim::new(Config::scripted(4, 2, 2, 2), 6);
    sim.run(10);
    let key = b"z.story-6";
    let p = placement::preference(key, &sim.names);
    let (a, b, c, d) = (p[0], p[1], p[2], p[3]);

    // The owners store the record but their replies are lost: the gateway
    // times out and both stand-ins take it too. Four copies, all held.
    let hold = sim.write(0, Op::Hold, key);
    sim.run(1);
    sim.cut(End::Gw(0), End::Node(a));
    sim.cut(End::Gw(0), End::Node(b));
    sim.run(15);
    assert_eq!(sim.report(0, hold), Some(Report::Acknowledged));
    assert!((0..4).all(|n| sim.nodes[n].holds(key).is_some_and(|c| c.rank == 0)));
    sim.net.heal(End::Gw(0), End::Node(a));
    sim.net.heal(End::Gw(0), End::Node(b));

    // The network splits: {gateway 0, a, b} and {gateway 1, c, d}.
    for x in [End::Gw(1), End::Node(c), End::Node(d)] {
        for y in [End::Gw(0), End::Node(a), End::Node(b)] {
            sim.cut(x, y);
        }
    }
    sim.run(60);
    // Each side releases the record; at most one may deliver it.
    let (r0, r1) = (sim.write(0, Op::Release, key), sim.write(1, Op::Release, key));
    sim.run(10);
    let won = [sim.report(0, r0), sim.report(1, r1)].iter().filter(|r| **r == Some(Report::Acknowledged)).count();
    assert!(won <= 1, "both sides of the split released {}", String::from_utf8_lossy(key));
}
