//! The worker protocol, version 1, against a real `mxgate worker`: status
//! codes, document shapes, the key derived from the secret; a gateway
//! refusing a worker whose key it cannot trust, and with `ca` trusting a
//! leaf the CA signed but not a CA certificate; and `check-config` naming
//! the key of every bad `[[pipeline.stage]]` and `[worker]` setting.

mod common;
use common::cluster::{Sent, tail};
use common::worker::{self, SECRET, SECRET_PUBLIC, WorkerProc, blocked, check_config, https, send_fresh};
use common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;

const SCAN_TYPE: (&str, &str) = ("Content-Type", "application/vnd.mxgate.scan.v1");
const MAX_SIZE: usize = 8192;

/// A scan request body: the facts line, a line feed, the message.
fn scan_body(message: &str) -> Vec<u8> {
    let facts = json!({"queue_id": "Q1", "client_ip": "192.0.2.1", "helo": "client.test", "tls": false,
        "sender": "a@sender.test", "recipients": ["b@example.test"]});
    format!("{facts}\n{message}").into_bytes()
}

async fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: &[u8]) -> common::http::Resp {
    https(addr, "POST", path, token, &[SCAN_TYPE], body).await
}

/// A 4xx/5xx answer with the protocol's `{"error": "..."}` body.
fn error_of(r: &common::http::Resp, status: u16) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    v["error"].as_str().expect("error text").to_string()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().expect("an object").keys().map(String::as_str).collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_answers_as_protocol_v1_says() {
    let w = WorkerProc::start(SECRET, &format!("max_message_size = {MAX_SIZE}\nmax_in_flight = 7")).await;
    let a = w.addr;

    // TLS 1.3, and the key is the one derived from the secret.
    let tls = worker::tls_connect(a).await;
    let (_, conn) = tls.get_ref();
    assert_eq!(conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    let cert = conn.peer_certificates().expect("a certificate")[0].as_ref().to_vec();
    let (_, public) = mxgate::worker::trust::derived_key(SECRET);
    let vector: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&SECRET_PUBLIC[2 * i..2 * i + 2], 16).unwrap()).collect();
    assert_eq!(public.to_vec(), vector, "the derivation differs from the documented test vector");
    let mut spki = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    spki.extend_from_slice(&vector);
    assert!(cert.windows(spki.len()).any(|w| w == spki), "the worker's key is not derived from its secret");
    drop(tls);

    // The token first: every endpoint, known or not.
    for (method, path) in
        [("GET", "/v1/health"), ("GET", "/v1/load"), ("POST", "/v1/scan/attachment"), ("GET", "/v2/x")]
    {
        let none = https(a, method, path, None, &[], &[]).await;
        assert!(error_of(&none, 401).contains("bearer token"), "{path}");
        let wrong = https(a, method, path, Some("worker-secret-012345678X"), &[], &[]).await;
        error_of(&wrong, 401);
    }
    // Unknown stages and paths.
    let e = error_of(&post(a, "/v1/scan/sandbox", Some(SECRET), &scan_body("Subject: x\r\n\r\nx\r\n")).await, 404);
    assert!(e.contains("sandbox") && e.contains("attachment, phishing"), "{e}");
    for path in ["/v2/scan/attachment", "/v2/health", "/v1/scan/", "/v1/scan/attachment/x"] {
        error_of(&post(a, path, Some(SECRET), &scan_body("x")).await, 404);
    }
    error_of(&https(a, "GET", "/v1/scan/attachment", Some(SECRET), &[], &[]).await, 404);

    // Malformed and oversized bodies.
    let e = error_of(&post(a, "/v1/scan/attachment", Some(SECRET), b"Subject: no facts line").await, 400);
    assert!(e.contains("facts line"), "{e}");
    error_of(&post(a, "/v1/scan/attachment", Some(SECRET), b"{\"queue_id\": 1}\nSubject: x\r\n").await, 400);
    let big = scan_body(&format!("Subject: big\r\n\r\n{}", "x".repeat(MAX_SIZE)));
    let e = error_of(&post(a, "/v1/scan/attachment", Some(SECRET), &big).await, 413);
    assert!(e.contains(&MAX_SIZE.to_string()), "{e}");

    // A real scan: findings with their actions.
    let r = post(a, "/v1/scan/attachment", Some(SECRET), &scan_body(&blocked("proto"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let f = r.json();
    assert_eq!(keys(&f), ["auth_results", "symbols"]);
    let exe = f["symbols"].as_array().unwrap().iter().find(|s| s["name"] == "ATTACHMENT_EXECUTABLE");
    let exe = exe.unwrap_or_else(|| panic!("no ATTACHMENT_EXECUTABLE in {f}"));
    assert_eq!((exe["score"].as_f64(), exe["action"].as_str()), (Some(5.0), Some("quarantine")), "{exe}");
    assert!(exe["reason"].as_str().unwrap().contains("setup.exe"), "{exe}");
    let r = post(a, "/v1/scan/phishing", Some(SECRET), &scan_body("From: <a@sender.test>\r\n\r\nhi\r\n")).await;
    assert_eq!((r.status, r.json()["symbols"].clone()), (200, json!([])), "{}", r.text());

    // Health and load documents.
    let h = https(a, "GET", "/v1/health", Some(SECRET), &[], &[]).await;
    assert_eq!(h.status, 200, "{}", h.text());
    let h = h.json();
    assert_eq!(keys(&h), ["protocol", "stages", "version"]);
    assert_eq!((h["protocol"].clone(), h["stages"].clone()), (json!(1), json!(["attachment", "phishing"])));
    assert!(h["version"].as_str().is_some_and(|v| !v.is_empty()), "{h}");
    let l = w.load().await;
    assert_eq!(keys(&l), ["busy", "failed", "in_flight", "max_in_flight", "served"]);
    // Two scans served; the 400s and the 413 failed; 404s are not scans.
    assert_eq!(l, json!({"in_flight": 0, "max_in_flight": 7, "served": 2, "failed": 3, "busy": 0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_refuses_a_worker_whose_key_is_not_derived_from_its_secret() {
    let w = WorkerProc::start(&worker::fresh_secret(), "").await;
    let down = Downstream::start(Behaviour::default()).await;
    let stage = worker::stage("attachment", &[w.addr], &worker::fresh_secret(), "on_error = \"tempfail\"");
    let (gw, _dir) = worker::gateway(down.addr, &format!("@rest\n[scan]\nstages = [\"attachment\"]\n{stage}")).await;

    match send_fresh(gw.smtp, &message("stranger", "hello")).await {
        Sent::Tempfail { reply, after_data: true } => assert!(reply.starts_with("451 4.7.1"), "{reply}"),
        other => panic!("a worker with another key scanned: {other:?}\n{}", tail(&gw.log_text())),
    }
    let named = wait_until(10, || gw.log_text().contains("not the one derived from the stage's secret")).await;
    assert!(named, "the gateway log does not name the key mismatch:\n{}", tail(&gw.log_text()));
    assert!(w.daemon.wait_log(&["refused a worker connection (TLS)"], 10).await, "{}", w.daemon.log_text());
    assert_eq!(down.count(), 0);
}

/// Runs `check-config` on a gateway file with `extra` (see `write_config`):
/// it must fail naming `key` (quoted as the error quotes it) and saying `words`.
async fn gateway_refused(extra: &str, key: &str, words: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "127.0.0.1:2525", "127.0.0.1:8025", "127.0.0.1:2526".parse().unwrap(), extra);
    let (ok, out, err) = mxgate(&["check-config", "--config", path.to_str().unwrap()]).await;
    assert!(!ok, "accepted:\n{extra}\n{out}");
    assert!(
        err.contains(&format!("key {key}")) && err.contains(words),
        "for\n{extra}\nexpected {key}, {words:?}: {err}"
    );
}

#[tokio::test]
async fn pipeline_stage_errors_name_their_key() {
    let s = format!("secret = \"{SECRET}\"\n");
    let scan = "@rest\n[scan]\nstages = [\"attachment\", \"phishing\"]\n";
    let table = |body: &str| format!("{scan}[[pipeline.stage]]\n{body}\n");
    let ok = table(&format!("name = \"attachment\"\nremote = [\"127.0.0.1:7501\"]\n{s}mode = \"after_queue\""));
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "127.0.0.1:2525", "127.0.0.1:8025", "127.0.0.1:2526".parse().unwrap(), &ok);
    let (good, out, err) = mxgate(&["check-config", "--config", path.to_str().unwrap()]).await;
    assert!(good && out.contains("configuration OK"), "a valid remote stage was refused: {err}");

    let cases = [
        (table("name = \"sandbox\""), "`pipeline.stage`", "`sandbox`: unknown stage"),
        (table("name = \"attachment\"\nremote = [\"127.0.0.1:7501\"]"), "`pipeline.stage`", "need `secret`"),
        (table("name = \"attachment\"\nremote = [\"127.0.0.1:7501\"]\nsecret = \"short\""), "`pipeline.stage`", "16"),
        (table(&format!("name = \"attachment\"\nremote = [\"localhost\"]\n{s}")), "`pipeline.stage`", "not host:port"),
        (table(&format!("name = \"attachment\"\nremote = [\"h:99999\"]\n{s}")), "`pipeline.stage`", "not host:port"),
        (table(&format!("name = \"clamav\"\nremote = [\"127.0.0.1:7501\"]\n{s}")), "`pipeline.stage`", "drop `remote`"),
        (
            format!("{}[[pipeline.stage]]\nname = \"attachment\"\n", table("name = \"attachment\"")),
            "`pipeline.stage`",
            "configured twice",
        ),
        (table("name = \"heuristics\"\nmode = \"after_queue\""), "`pipeline.stage`", "not enabled in `[scan] stages`"),
        (table("name = \"attachment\"\nmax_in_flight = 0"), "`pipeline.stage`", "max_in_flight"),
        (
            table("name = \"attachment\"\nmode = \"later\""),
            "`pipeline.stage[0].mode`",
            "`later` is not one of the allowed values",
        ),
        (table("name = \"attachment\"\nremotes = []"), "`pipeline.stage[0].remotes`", "unknown key"),
    ];
    for (extra, key, words) in &cases {
        gateway_refused(extra, key, words).await;
    }
}

#[tokio::test]
async fn worker_config_errors_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let file =
        |worker: &str| format!("[worker]\nlisten = \"127.0.0.1:7501\"\n{worker}\n[scan]\nstages = [\"attachment\"]\n");
    let s = format!("secret = \"{SECRET}\"\n");
    let (ok, out, err) = check_config(dir.path(), "good.toml", &file(&s)).await;
    assert!(ok && out.contains("configuration OK"), "a valid worker file was refused: {err}");

    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not read").unwrap();
    let cases = [
        (file("secret = \"short\""), "worker.secret", "at least 16"),
        (file(""), "worker.secret", "required"),
        (file(&format!("{s}stages = [\"clamav\"]")), "worker.stages", "unknown stage `clamav`"),
        (file(&format!("{s}max_in_flight = 0")), "worker.max_in_flight", "at least 1"),
        (file(&format!("{s}cert = {:?}", cert.display().to_string())), "worker.key", "go together"),
        (file(&format!("{s}listne = \"x\"")), "worker.listne", "unknown key"),
        ("[worker]\nsecret = \"worker-test-secret-0123456789\"\n".to_string(), "worker.listen", "missing"),
        (file(&format!("{s}ca = \"/nonexistent/ca.pem\"")), "worker", "cannot read"),
    ];
    for (i, (text, key, words)) in cases.iter().enumerate() {
        let (ok, _, err) = check_config(dir.path(), &format!("bad{i}.toml"), text).await;
        assert!(!ok, "accepted:\n{text}");
        assert!(
            err.contains(&format!("key `{key}`")) && err.contains(words),
            "for\n{text}\nexpected {key}, {words:?}: {err}"
        );
    }
    // `mxgate worker` refuses the same file, naming the same key.
    let path = dir.path().join("bad0.toml");
    let (ok, _, err) = mxgate(&["worker", "--config", path.to_str().unwrap()]).await;
    assert!(!ok && err.contains("key `worker.secret`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_ca_the_gateway_trusts_a_signed_leaf_but_not_a_ca_certificate() {
    let (ca, ca_key) = worker::test_ca();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let findings = json!({"symbols": [{"name": "SANDBOX_SEEN", "score": 0.5, "reason": "looked"}], "auth_results": []});
    let ca_as_leaf =
        (vec![ca.der().clone()], rustls::pki_types::PrivateKeyDer::try_from(ca_key.serialize_der()).unwrap());

    for (what, identity, trusted) in
        [("a leaf the CA signed", worker::signed_leaf(&ca, &ca_key), true), ("the CA itself", ca_as_leaf, false)]
    {
        let secret = worker::fresh_secret();
        let answer = worker::Answer::Findings(findings.clone());
        let fake = worker::FakeWorker::start_as(identity, &secret, answer, false).await;
        let down = Downstream::start(Behaviour::default()).await;
        let stage =
            worker::stage("sandbox", &[fake.addr], &secret, &format!("ca = {:?}", ca_path.display().to_string()));
        let (gw, _gw_dir) = worker::gateway(down.addr, &format!("@rest\n{stage}")).await;
        match (send_fresh(gw.smtp, &message("ca", "hello")).await, trusted) {
            (Sent::Queued(_), true) => {
                let m = down.wait_for(1, 20).await;
                assert_eq!(worker::symbol_fields(&m[0]), ["SANDBOX_SEEN(0.5)"]);
            }
            (Sent::Tempfail { reply, after_data: true }, false) => {
                assert!(reply.starts_with("451 4.7.1"), "{reply}");
                // Refused in the handshake: the token never left the gateway.
                assert_eq!(fake.scan_count(), 0);
                // webpki: a CA certificate is not a server certificate.
                let logged = wait_until(10, || gw.log_text().contains("CaUsedAsEndEntity")).await;
                assert!(logged, "{}", tail(&gw.log_text()));
                assert_eq!(down.count(), 0);
            }
            (other, _) => panic!("{what}: {other:?}\n{}", tail(&gw.log_text())),
        }
    }
}
