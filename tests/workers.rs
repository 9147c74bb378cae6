//! Remote scanning workers end to end: a gateway process whose attachment
//! and phishing stages run on real `mxgate worker` processes, senders on
//! SMTP, and a recording downstream. Workers are killed with SIGKILL
//! mid-stream; a blocked message must never pass unscanned, and mail the
//! gateway cannot scan is answered 451, not delivered.

mod common;
use common::cluster::{Sent, delivered, poll, tail};
use common::process::Proc;
use common::worker::{self, Answer, FakeWorker, WorkerProc, blocked, clean, names, quarantined, send_fresh};
use common::*;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MESSAGES: usize = 300;
const SENDERS: usize = 4;
/// Messages from this index on are sent only after the kill.
const AFTER_KILL: usize = 120;
/// The kill comes once this many are acknowledged, with more in flight.
const KILL_AT: usize = 60;

/// A gateway process with both stages on `workers`.
async fn gateway(down: SocketAddr, workers: &[SocketAddr], secret: &str) -> (Proc, tempfile::TempDir) {
    let opts = "timeout = \"5s\"\non_error = \"tempfail\"";
    let extra = format!(
        "@rest\n[scan]\nstages = [\"attachment\", \"phishing\"]\n{}{}",
        worker::stage("attachment", workers, secret, opts),
        worker::stage("phishing", workers, secret, opts)
    );
    worker::gateway(down, &extra).await
}

/// One message to send: its tag, whether it carries a program, its index.
type Job = (String, bool, usize);

#[derive(Default)]
struct Tally {
    /// (tag, blocked, queue id, sent after the kill) of every 250.
    acked: Mutex<Vec<(String, bool, String, bool)>>,
    tempfails: AtomicUsize,
    killed: AtomicBool,
}

/// Sends jobs until none are left; a 4xx or a broken session puts the job
/// back at the end of the line, as a sender's retry.
async fn sender(addr: SocketAddr, work: Arc<Mutex<VecDeque<Job>>>, tally: Arc<Tally>) {
    loop {
        let Some((tag, is_blocked, i)) = work.lock().unwrap().pop_front() else { return };
        while i >= AFTER_KILL && !tally.killed.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let after = tally.killed.load(Ordering::SeqCst);
        let content = if is_blocked { blocked(&tag) } else { clean(&tag) };
        match send_fresh(addr, &content).await {
            Sent::Queued(id) => tally.acked.lock().unwrap().push((tag, is_blocked, id, after)),
            Sent::Tempfail { .. } | Sent::Broken => {
                tally.tempfails.fetch_add(1, Ordering::SeqCst);
                work.lock().unwrap().push_back((tag, is_blocked, i));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_worker_never_lets_mail_pass_unscanned() {
    let secret = worker::fresh_secret();
    let mut w1 = WorkerProc::start(&secret, "").await;
    let mut w2 = WorkerProc::start(&secret, "").await;
    let down = Downstream::start(Behaviour::default()).await;
    let (gw, _dir) = gateway(down.addr, &[w1.addr, w2.addr], &secret).await;

    let jobs: VecDeque<Job> = (0..MESSAGES).map(|i| (format!("msg{i:03}"), i % 2 == 1, i)).collect();
    let work = Arc::new(Mutex::new(jobs));
    let tally = Arc::new(Tally::default());
    let senders: Vec<_> = (0..SENDERS).map(|_| tokio::spawn(sender(gw.smtp, work.clone(), tally.clone()))).collect();
    let acked = || tally.acked.lock().unwrap().len();
    assert!(wait_until(120, || acked() >= KILL_AT).await, "stuck at {}:\n{}", acked(), tail(&gw.log_text()));
    w1.kill9();
    tally.killed.store(true, Ordering::SeqCst);
    println!("killed worker 1 after {} messages acknowledged", acked());
    let done = tokio::time::timeout(Duration::from_secs(180), futures_util::future::join_all(senders)).await;
    assert!(done.is_ok(), "senders stuck at {} acknowledged:\n{}", acked(), tail(&gw.log_text()));

    let acked = tally.acked.lock().unwrap().clone();
    let after = acked.iter().filter(|a| a.3).count();
    println!(
        "{} acknowledged, {after} of them sent after the kill; {} 4xx",
        acked.len(),
        tally.tempfails.load(Ordering::SeqCst)
    );
    assert_eq!(acked.len(), MESSAGES);
    assert!(after >= MESSAGES - AFTER_KILL, "only {after} messages got a 250 after the kill");
    let taken_out = format!("{}", w1.addr);
    assert!(gw.log_text().lines().any(|l| l.contains("worker taken out of service") && l.contains(&taken_out)));

    // Clean ones at the downstream, once each, scanned by both stages;
    // blocked ones in the quarantine and never at the downstream.
    let clean_tags: Vec<&String> = acked.iter().filter(|a| !a.1).map(|a| &a.0).collect();
    let arrived = poll(60, || async { clean_tags.iter().all(|t| delivered(&down).contains_key(*t)) }).await;
    assert!(arrived, "clean messages missing downstream:\n{}", tail(&gw.log_text()));
    let got = delivered(&down);
    let leaked: Vec<&String> = acked.iter().filter(|a| a.1 && got.contains_key(&a.0)).map(|a| &a.0).collect();
    assert!(leaked.is_empty(), "blocked messages reached the downstream: {leaked:?}");
    assert!(got.values().all(|&n| n == 1), "delivered twice: {got:?}");
    for m in down.messages() {
        let fields = worker::symbol_fields(&m);
        assert_eq!(fields.len(), 1, "{}", m.text());
        assert!(fields[0].contains("PHISH_REPLYTO_MISMATCH"), "phishing did not run: {}", fields[0]);
        assert!(fields[0].contains("ATTACHMENT_UNSCANNED_ARCHIVE"), "attachment did not run: {}", fields[0]);
        assert!(!fields[0].contains("_ERROR"), "delivered despite a stage error: {}", fields[0]);
    }
    let held = quarantined(gw.admin).await;
    for (tag, _, id, _) in acked.iter().filter(|a| a.1) {
        let rec = held.get(id).unwrap_or_else(|| panic!("{tag} ({id}) got a 250 but is not in the quarantine"));
        assert!(names(rec).contains(&"ATTACHMENT_EXECUTABLE".to_string()), "{rec:#}");
    }
    assert!(w2.load().await["served"].as_u64().unwrap() > 0);
    for stage in ["attachment", "phishing"] {
        let view = worker::gateway_view(gw.admin, stage, w1.addr).await;
        assert_eq!(view["up"], false, "the killed worker is still in service: {view}");
        assert!(view["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{view}");
    }

    // No worker left: every message is refused with 451, nothing queued.
    w2.kill9();
    let before = down.count();
    for i in 0..5 {
        match send_fresh(gw.smtp, &clean(&format!("nobody{i}"))).await {
            Sent::Tempfail { reply, after_data: true } => assert!(reply.starts_with("451 4.7.1"), "{reply}"),
            other => panic!("with no worker: {other:?}\n{}", tail(&gw.log_text())),
        }
    }
    let queue = common::http::call(gw.admin, "GET", "/api/v1/queue", None, None).await.json();
    assert_eq!(queue.as_array().map(Vec::len), Some(0), "refused mail was queued: {queue:#}");
    assert_eq!(down.count(), before, "refused mail reached the downstream");

    // A worker back: probed back in, mail accepted and delivered again.
    w1.restart().await;
    let back = poll(30, || async { matches!(send_fresh(gw.smtp, &clean("back")).await, Sent::Queued(_)) }).await;
    assert!(back, "no 250 after worker 1 returned:\n{}", tail(&gw.log_text()));
    assert!(gw.log_text().contains("worker back in service"), "{}", tail(&gw.log_text()));
    assert_eq!(worker::gateway_view(gw.admin, "attachment", w1.addr).await["up"], true);
    assert_eq!(worker::gateway_view(gw.admin, "attachment", w2.addr).await["up"], false);
    assert!(wait_until(20, || delivered(&down).contains_key("back")).await);
}

/// A finding from the in-test worker's custom stage.
fn sandbox_findings() -> serde_json::Value {
    serde_json::json!({"symbols": [{"name": "SANDBOX_SEEN", "score": 0.5, "reason": "looked at it"}], "auth_results": []})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_in_flight_mail_is_refused_while_the_first_is_scanned() {
    let secret = worker::fresh_secret();
    let fake = FakeWorker::start(&secret, Answer::Findings(sandbox_findings()), true).await;
    let down = Downstream::start(Behaviour::default()).await;
    let opts = "timeout = \"60s\"\non_error = \"tempfail\"\nmax_in_flight = 1";
    let stage = worker::stage("sandbox", &[fake.addr], &secret, opts);
    let (gw, _dir) = worker::gateway(down.addr, &format!("@rest\n{stage}")).await;

    let smtp = gw.smtp;
    let first = tokio::spawn(async move { send_fresh(smtp, &message("first", "scan me slowly")).await });
    assert!(wait_until(20, || fake.scan_count() == 1).await, "the scan never reached the worker");
    // The worker holds the first scan: the bound is reached.
    for tag in ["second", "third"] {
        match send_fresh(gw.smtp, &message(tag, "no room")).await {
            Sent::Tempfail { reply, after_data: true } => {
                assert!(reply.starts_with("451 4.7.1") && reply.contains("busy"), "{reply}")
            }
            other => panic!("{tag} while the worker is full: {other:?}"),
        }
    }
    assert!(!first.is_finished(), "the first message was answered before its scan was");
    assert_eq!(fake.scan_count(), 1, "a message past the bound reached the worker");
    assert_eq!(down.count(), 0);

    fake.release(1);
    let id = match first.await.unwrap() {
        Sent::Queued(id) => id,
        other => panic!("first: {other:?}"),
    };
    let msgs = down.wait_for(1, 20).await;
    assert_eq!(delivered(&down).keys().collect::<Vec<_>>(), ["first"]);
    assert_eq!(worker::symbol_fields(&msgs[0]), ["SANDBOX_SEEN(0.5)"]);

    // The request as protocol v1 has it: facts line, LF, the message.
    let seen = fake.scans.lock().unwrap()[0].clone();
    assert_eq!(
        (seen.path.as_str(), seen.content_type.as_str()),
        ("/v1/scan/sandbox", "application/vnd.mxgate.scan.v1")
    );
    let nl = seen.body.iter().position(|&b| b == b'\n').expect("facts line");
    let facts: serde_json::Value = serde_json::from_slice(&seen.body[..nl]).unwrap();
    assert_eq!(facts["queue_id"], id.as_str());
    assert_eq!(facts["sender"], "a@sender.test");
    assert_eq!(facts["recipients"], serde_json::json!(["b@example.test"]));
    assert_eq!((facts["helo"].as_str(), facts["tls"].as_bool()), (Some("client.test"), Some(false)));
    let raw = String::from_utf8_lossy(&seen.body[nl + 1..]);
    assert!(raw.starts_with("Received: ") && raw.contains("\r\nSubject: first\r\n"), "{raw}");
}

/// Six blocked messages through a gateway whose attachment stage has an
/// in-test worker answering `status` and a real one. Every message must be
/// scanned by the real one (held, never delivered); returns the in-test
/// worker and how the gateway sees it.
async fn sent_past(status: u16) -> (FakeWorker, serde_json::Value) {
    let secret = worker::fresh_secret();
    let other = FakeWorker::start(&secret, Answer::Status(status), false).await;
    let real = WorkerProc::start(&secret, "").await;
    let down = Downstream::start(Behaviour::default()).await;
    let stage = worker::stage("attachment", &[other.addr, real.addr], &secret, "on_error = \"tempfail\"");
    let (gw, _dir) = worker::gateway(down.addr, &format!("@rest\n[scan]\nstages = [\"attachment\"]\n{stage}")).await;

    let mut ids = Vec::new();
    for i in 0..6 {
        match send_fresh(gw.smtp, &blocked(&format!("retried{i}"))).await {
            Sent::Queued(id) => ids.push(id),
            other => panic!("message {i}: {other:?}\n{}", tail(&gw.log_text())),
        }
    }
    assert!(other.scan_count() >= 1, "the worker answering {status} was never asked");
    assert_eq!(other.answered.load(Ordering::SeqCst), other.scan_count());
    assert_eq!(real.load().await["served"], 6, "each message is scanned once by the working worker");
    assert_eq!(worker::gateway_view(gw.admin, "attachment", real.addr).await["served"], 6);
    let held = quarantined(gw.admin).await;
    assert!(ids.iter().all(|id| held.contains_key(id)), "not all held: {ids:?} vs {:?}", held.keys());
    assert_eq!(down.count(), 0);
    let view = worker::gateway_view(gw.admin, "attachment", other.addr).await;
    (other, view)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_answering_500_is_retried_on_another() {
    let (failing, view) = sent_past(500).await;
    assert_eq!(view["failed"], failing.scan_count(), "every 500 counts against the worker: {view}");
    assert_eq!(view["served"], 0, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_passes_scans_on_without_counting_against_it() {
    let (_busy, view) = sent_past(503).await;
    assert_eq!((view["up"].as_bool(), view["failed"].as_u64()), (Some(true), Some(0)), "{view}");
}

/// The queue entry `id` as `GET /api/v1/queue/{id}` shows it.
async fn queued(admin: SocketAddr, id: &str) -> Option<serde_json::Value> {
    let r = common::http::call(admin, "GET", &format!("/api/v1/queue/{id}"), None, None).await;
    (r.status == 200).then(|| r.json())
}

fn queued_id(sent: Sent) -> String {
    match sent {
        Sent::Queued(id) => id,
        other => panic!("expected a 250: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_queue_verdicts_hold_after_the_250() {
    let down = Downstream::start(Behaviour::default()).await;
    let scan = "[scan]\nstages = [\"attachment\", \"heuristics\"]\n";
    let stage = "[[pipeline.stage]]\nname = \"attachment\"\nmode = \"after_queue\"\n";
    let gw = Gateway::start(down.addr, &format!("@rest\n{scan}{stage}")).await;

    let bad = queued_id(send_fresh(gw.smtp, &blocked("late-verdict")).await);
    let good = queued_id(send_fresh(gw.smtp, &clean("late-clean")).await);
    let held = poll(20, || async { quarantine_show(gw.admin, &bad).await.is_some() }).await;
    assert!(held, "the blocked message never reached the quarantine");
    let rec = quarantine_show(gw.admin, &bad).await.unwrap();
    assert_eq!(rec["status"], "held", "{rec:#}");
    assert!(names(&rec).contains(&"ATTACHMENT_EXECUTABLE".to_string()), "{rec:#}");
    assert!(queued(gw.admin, &bad).await.is_none(), "held, yet still queued");

    let msgs = down.wait_for(1, 20).await;
    assert_eq!(delivered(&down).keys().collect::<Vec<_>>(), ["late-clean"], "{good}");
    // One set of verdict headers: the in-session heuristics plus the
    // after-queue attachment findings.
    let fields = worker::symbol_fields(&msgs[0]);
    assert_eq!(fields.len(), 1, "{}", msgs[0].text());
    assert!(fields[0].contains("ATTACHMENT_UNSCANNED_ARCHIVE") && fields[0].contains("HEUR_"), "{}", fields[0]);
    assert_eq!(msgs[0].text().matches("X-Mxgate-Verdict:").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_queue_waits_for_a_dead_worker_then_scans() {
    let secret = worker::fresh_secret();
    let mut w = WorkerProc::start(&secret, "").await;
    w.kill9();
    let down = Downstream::start(Behaviour::default()).await;
    let stage = worker::stage("attachment", &[w.addr], &secret, "mode = \"after_queue\"\non_error = \"tempfail\"");
    let (gw, _dir) = worker::gateway(down.addr, &format!("@rest\n[scan]\nstages = [\"attachment\"]\n{stage}")).await;

    // Accepted in the session; the scan cannot run, so they wait queued.
    let good = queued_id(send_fresh(gw.smtp, &clean("waits-clean")).await);
    let bad = queued_id(send_fresh(gw.smtp, &blocked("waits-blocked")).await);
    for id in [&good, &bad] {
        let waited = poll(20, || async {
            let e = queued(gw.admin, id).await.unwrap_or_default();
            e["last_error"].as_str().is_some_and(|s| s.starts_with("after-queue scan: "))
        })
        .await;
        assert!(waited, "{id}: {:#}\n{}", queued(gw.admin, id).await.unwrap_or_default(), tail(&gw.log_text()));
    }
    assert_eq!(down.count(), 0, "delivered without the after-queue scan");

    w.restart().await;
    let back = wait_until(20, || gw.log_text().contains("worker back in service")).await;
    assert!(back, "{}", tail(&gw.log_text()));
    for id in [&good, &bad] {
        let r = common::http::call(gw.admin, "POST", &format!("/api/v1/queue/{id}/retry"), None, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let msgs = down.wait_for(1, 20).await;
    let fields = worker::symbol_fields(&msgs[0]);
    assert!(fields.len() == 1 && fields[0].contains("ATTACHMENT_UNSCANNED_ARCHIVE"), "{}", msgs[0].text());
    let held = poll(20, || async { quarantine_show(gw.admin, &bad).await.is_some() }).await;
    assert!(held, "the blocked message was not held after its scan:\n{}", tail(&gw.log_text()));
    assert_eq!(delivered(&down).keys().collect::<Vec<_>>(), ["waits-clean"]);
    assert_eq!(w.load().await["served"], 2);
}
