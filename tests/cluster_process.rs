//! The cluster as real processes on loopback: three `mxgate storage` nodes,
//! one or two `mxgate serve` gateways and a recording downstream. Nodes
//! and gateways are killed with SIGKILL mid-stream; every message that got
//! a 250 must still arrive, and `cluster status` must settle back to all
//! healthy with every record on `replicas` nodes.

mod common;
use common::cluster::{self, Nodes, REPLICAS, Sent, delivered, poll, send, send_fresh, session, tail};
use common::process::free_addr;
use common::*;
use serde_json::Value;
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MESSAGES: usize = 5000;
const SESSIONS_PER_GATEWAY: usize = 4;

/// What the senders were told.
#[derive(Default)]
struct Tally {
    /// (tag, queue id) of every 250.
    acked: Mutex<Vec<(String, String)>>,
    tempfails: AtomicUsize,
    tempfails_after_data: AtomicUsize,
    breaks: AtomicUsize,
}

impl Tally {
    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
}

/// Sends tags from `work` until none are left; a tag that gets a 4xx (or a
/// broken session) goes back to the end of the line, as a sender's retry.
async fn sender(addr: SocketAddr, work: Arc<Mutex<VecDeque<String>>>, tally: Arc<Tally>) {
    let mut c = None;
    loop {
        let Some(tag) = work.lock().unwrap().pop_front() else { return };
        if c.is_none() {
            c = session(addr).await;
        }
        let sent = match c.as_mut() {
            Some(c) => send(c, &tag).await,
            None => Sent::Broken,
        };
        match sent {
            Sent::Queued(id) => tally.acked.lock().unwrap().push((tag, id)),
            Sent::Tempfail { after_data, .. } => {
                tally.tempfails.fetch_add(1, Ordering::SeqCst);
                if after_data {
                    tally.tempfails_after_data.fetch_add(1, Ordering::SeqCst);
                }
                work.lock().unwrap().push_back(tag);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Sent::Broken => {
                tally.breaks.fetch_add(1, Ordering::SeqCst);
                c = None;
                work.lock().unwrap().push_back(tag);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// True when every node is up and owes nothing, and the records held add
/// up to `want` (plus at most `slack`: copies of messages answered 451
/// after a write that reached fewer than `write_quorum` nodes).
fn settled(v: &Value, want: u64, slack: u64) -> bool {
    let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
    let sum: u64 = nodes.iter().map(|n| n["records"].as_u64().unwrap_or(0)).sum();
    nodes.len() == 3
        && nodes.iter().all(|n| n["state"] == "up" && n["behind"] == 0 && n["holding_for_others"] == 0)
        && (want..=want + slack).contains(&sum)
}

async fn wait_settled(admin: SocketAddr, want: u64, slack: u64, secs: u64) -> (bool, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let v = cluster::status(admin).await;
        if settled(&v, want, slack) || tokio::time::Instant::now() > deadline {
            return (settled(&v, want, slack), v);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_messages_survive_a_storage_node_kill() {
    let mut nodes = Nodes::start(3).await;
    let down = Downstream::start(Behaviour::default()).await;
    let gws = [nodes.gateway("gw1", &down).await, nodes.gateway("gw2", &down).await];
    let tags: VecDeque<String> = (0..MESSAGES).map(|i| format!("load{i:05}")).collect();
    let work = Arc::new(Mutex::new(tags));
    let tally = Arc::new(Tally::default());
    let mut senders = Vec::new();
    for gw in &gws {
        for _ in 0..SESSIONS_PER_GATEWAY {
            senders.push(tokio::spawn(sender(gw.proc.smtp, work.clone(), tally.clone())));
        }
    }
    let logs = |gws: &[cluster::GatewayProc; 2], nodes: &Nodes| {
        format!("gw1:\n{}\ngw2:\n{}\n{}", tail(&gws[0].proc.log_text()), tail(&gws[1].proc.log_text()), nodes.logs())
    };

    // A third of the way in, node 1 dies; two thirds in, it comes back.
    let third = wait_until(180, || tally.acked() >= MESSAGES / 3).await;
    assert!(third, "only {} acknowledged before the kill\n{}", tally.acked(), logs(&gws, &nodes));
    nodes.kill9(1);
    println!("killed node 1 after {} messages acknowledged", tally.acked());
    let seen_down =
        poll(10, || async { cluster::status(gws[0].proc.admin).await["nodes"][1]["state"] == "down" }).await;
    assert!(seen_down, "gateway 1 still counts on the killed node:\n{:#}", cluster::status(gws[0].proc.admin).await);
    let two_thirds = wait_until(180, || tally.acked() >= 2 * MESSAGES / 3).await;
    assert!(two_thirds, "stuck at {} acknowledged with node 1 down\n{}", tally.acked(), logs(&gws, &nodes));
    nodes.restart(1).await;
    println!("restarted node 1 after {} messages acknowledged", tally.acked());
    let finished = tokio::time::timeout(Duration::from_secs(180), futures_util::future::join_all(senders)).await;
    assert!(finished.is_ok(), "senders stuck at {} acknowledged\n{}", tally.acked(), logs(&gws, &nodes));
    let acked = tally.acked.lock().unwrap().clone();
    println!(
        "acknowledged {} messages; 4xx answers: {} ({} after DATA); broken sessions: {}",
        acked.len(),
        tally.tempfails.load(Ordering::SeqCst),
        tally.tempfails_after_data.load(Ordering::SeqCst),
        tally.breaks.load(Ordering::SeqCst)
    );

    // Every 250 reaches the downstream.
    let arrived = poll(90, || async {
        let got = delivered(&down);
        acked.iter().all(|(t, _)| got.contains_key(t))
    })
    .await;
    let got = delivered(&down);
    let missing: Vec<&String> = acked.iter().map(|(t, _)| t).filter(|t| !got.contains_key(*t)).collect();
    assert!(
        arrived,
        "{} acknowledged messages never arrived, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        logs(&gws, &nodes)
    );
    let duplicates: usize = got.values().map(|n| n - 1).sum();
    println!("delivered {} messages, {} distinct, {duplicates} duplicates", down.count(), got.len());
    assert_eq!(duplicates, 0, "no gateway died, so nothing is delivered twice");

    // Every node up, owing nothing, and each record on `replicas` nodes:
    // every message's queue record (a tombstone once delivered) plus one
    // heartbeat per gateway.
    let keys = acked.iter().map(|(_, id)| id).collect::<HashSet<_>>().len() as u64 + 2;
    let slack = REPLICAS * tally.tempfails_after_data.load(Ordering::SeqCst) as u64;
    let (ok, v) = wait_settled(gws[0].proc.admin, REPLICAS * keys, slack, 60).await;
    let held: u64 = v["nodes"].as_array().unwrap().iter().map(|n| n["records"].as_u64().unwrap_or(0)).sum();
    println!("cluster status after the run:\n{v:#}");
    println!("records held: {held}, expected {} (+ up to {slack} for 451-answered writes)", REPLICAS * keys);
    assert!(ok, "cluster did not settle to {} records (+{slack})\n{}", REPLICAS * keys, logs(&gws, &nodes));
    // The other gateway, asked through the command line, sees the same.
    let admin = gws[1].proc.admin;
    let agrees = poll(20, || async { settled(&cluster::status_cli(admin).await, REPLICAS * keys, slack) }).await;
    let v = cluster::status_cli(admin).await;
    assert!(agrees, "the other gateway's `mxgate cluster status` disagrees:\n{v:#}");
    assert_eq!(v["accepting_mail"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_gateways_queue_is_delivered_by_the_other() {
    let nodes = Nodes::start(3).await;
    let down = Downstream::start(Behaviour { tempfail_data: usize::MAX, ..Default::default() }).await;
    let mut a = nodes.gateway("gw-a", &down).await;
    let b = nodes.gateway("gw-b", &down).await;

    // Gateway A queues 50 messages the downstream does not take yet.
    let tags: Vec<String> = (0..50).map(|i| format!("orphan{i:02}")).collect();
    let mut c = session(a.proc.smtp).await.expect("gateway A takes a session");
    for tag in &tags {
        let sent = send(&mut c, tag).await;
        assert!(matches!(sent, Sent::Queued(_)), "{tag}: {sent:?}");
    }
    let tried = wait_until(20, || down.connections.load(Ordering::SeqCst) > 0).await;
    assert!(tried, "gateway A never tried to deliver:\n{}", tail(&a.proc.log_text()));

    // A dies holding all of them; then the downstream recovers.
    a.proc.kill9();
    down.behaviour.lock().unwrap().tempfail_data = 0;
    let all = poll(60, || async {
        let got = delivered(&down);
        tags.iter().all(|t| got.contains_key(t))
    })
    .await;
    let got = delivered(&down);
    let missing: Vec<&String> = tags.iter().filter(|t| !got.contains_key(*t)).collect();
    assert!(all, "{} of A's messages never arrived: {missing:?}\nB:\n{}", missing.len(), tail(&b.proc.log_text()));

    let v = cluster::status(b.proc.admin).await;
    let taken = v["taken_over"].as_u64().unwrap_or(0);
    let duplicates: usize = got.values().map(|n| n - 1).sum();
    println!("gateway B took over {taken} messages; {duplicates} delivered twice");
    assert!(taken >= 50, "taken_over is {taken}:\n{v:#}");
    // The downstream accepted nothing before A died, so nothing of A's
    // can have been delivered twice.
    assert_eq!(duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_write_quorum_the_gateway_answers_451() {
    let mut nodes = Nodes::start(3).await;
    let down = Downstream::start(Behaviour::default()).await;
    let gw = nodes.gateway("gw1", &down).await;
    let smtp = gw.proc.smtp;
    let sent = send_fresh(smtp, "before").await;
    assert!(matches!(sent, Sent::Queued(_)), "with every node up: {sent:?}");
    // Delivered before the nodes die: this test is about new mail.
    assert!(wait_until(20, || delivered(&down).contains_key("before")).await, "{}", tail(&gw.proc.log_text()));

    // Two of three nodes die: no write can reach write_quorum = 2.
    nodes.kill9(0);
    nodes.kill9(2);
    match send_fresh(smtp, "below-quorum").await {
        Sent::Tempfail { reply, after_data: true } => assert!(reply.starts_with("451 4.3.0"), "{reply}"),
        other => panic!("expected 451 4.3.0 after DATA, got {other:?}\n{}", tail(&gw.proc.log_text())),
    }
    let noticed = poll(10, || async {
        let v = cluster::status(gw.proc.admin).await;
        v["accepting_mail"] == false && v["writable"] == 1
    })
    .await;
    assert!(noticed, "status does not say mail is refused:\n{:#}", cluster::status(gw.proc.admin).await);

    // One node back is a quorum again.
    nodes.restart(0).await;
    let accepted = poll(30, || async { matches!(send_fresh(smtp, "after").await, Sent::Queued(_)) }).await;
    assert!(accepted, "no 250 after node 0 returned\n{}\n{}", tail(&gw.proc.log_text()), nodes.logs());
    let after = wait_until(30, || delivered(&down).contains_key("after")).await;
    assert!(after, "delivered: {:?}\n{}", delivered(&down), tail(&gw.proc.log_text()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_and_logged() {
    let nodes = Nodes::start(3).await;
    let down = Downstream::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (smtp, admin) = (free_addr(), free_addr());
    let extra = nodes.gateway_extra("gw-stranger", "not-the-cluster-secret");
    let config = write_config(dir.path(), &smtp.to_string(), &admin.to_string(), down.addr, &extra);
    let mut gw = cluster::Daemon::spawn("serve", &config, dir.path());

    let waits = gw.wait_log(&["waiting for storage nodes"], 20).await;
    assert!(waits, "the gateway does not say it waits for the cluster:\n{}", gw.log_text());
    let refusal = ["refused a cluster connection", "secret"];
    let refused = wait_until(20, || nodes.nodes.iter().any(|n| n.logged(&refusal))).await;
    assert!(refused, "no node logged the refusal:\n{}", nodes.logs());
    // It keeps waiting: running, but taking no mail.
    assert!(gw.running(), "the gateway exited:\n{}", gw.log_text());
    assert!(tokio::net::TcpStream::connect(smtp).await.is_err(), "a gateway outside the cluster opened SMTP");
}
