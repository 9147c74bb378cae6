//! Scanning workers for the tests: real `mxgate worker` processes, an
//! in-test worker speaking protocol v1 whose answers the test holds or
//! fails, an HTTPS client for the protocol, and the `[[pipeline.stage]]`
//! tables that point a gateway at them.

use super::cluster::{Daemon, Sent, session};
use super::downstream::Received;
use super::http::Resp;
use super::mime::{tiny_pe, with_attachment};
use super::process::{Proc, free_addr};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// The secret of the test vector in docs/worker-protocol.md.
pub const SECRET: &str = "worker-secret-0123456789";
/// Its derived Ed25519 public key, as the document gives it.
pub const SECRET_PUBLIC: &str = "91f437b78a1f77ca22a1e03a9472f9de1b5dadead462d613c7bfc9ae6f93e901";

/// A secret no other test uses. Tests run side by side and pick ports by
/// binding and releasing them, so a worker may get the port of another
/// test's killed worker; with its own secret it refuses that test's
/// gateway instead of scanning for it.
pub fn fresh_secret() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("worker-test-secret-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// A real `mxgate worker` on loopback, killed on drop.
pub struct WorkerProc {
    pub daemon: Daemon,
    pub addr: SocketAddr,
    pub secret: String,
    _dir: tempfile::TempDir,
}

impl WorkerProc {
    /// A worker serving attachment and phishing; `extra` lines go into
    /// `[worker]`. A port taken meanwhile by another test is replaced.
    pub async fn start(secret: &str, extra: &str) -> WorkerProc {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let addr = free_addr();
            let text = format!(
                "[worker]\nlisten = \"{addr}\"\nsecret = {secret:?}\ndomains = [\"example.test\"]\n{extra}\n\
                 [scan]\nstages = [\"attachment\", \"phishing\"]\n[log]\nlevel = \"info\"\n"
            );
            let config = dir.path().join("worker.toml");
            std::fs::write(&config, text).unwrap();
            let daemon = Daemon::spawn("worker", &config, dir.path());
            let w = WorkerProc { daemon, addr, secret: secret.to_string(), _dir: dir };
            if w.wait_listening().await {
                return w;
            }
        }
        panic!("no free port for a worker in 5 tries");
    }

    /// True once listening; false when its port was taken.
    async fn wait_listening(&self) -> bool {
        let said = |w: &[&str]| self.daemon.logged(w);
        let done = super::wait_until(20, || said(&["worker listening"]) || said(&["cannot start"])).await;
        let log = self.daemon.log_text();
        assert!(
            done && (said(&["worker listening"]) || log.contains("in use")),
            "worker {} did not start:\n{log}",
            self.addr
        );
        said(&["worker listening"])
    }

    pub fn kill9(&mut self) {
        self.daemon.kill9();
    }

    /// Starts again on the same address.
    pub async fn restart(&mut self) {
        self.daemon.restart();
        assert!(self.wait_listening().await, "worker {} could not have its port back", self.addr);
    }

    /// `GET /v1/load` with the right token.
    pub async fn load(&self) -> serde_json::Value {
        let r = https(self.addr, "GET", "/v1/load", Some(&self.secret), &[], &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }
}

/// `[[pipeline.stage]]` for a built-in or custom stage on `workers`;
/// `extra` lines are added to the table.
pub fn stage(name: &str, workers: &[SocketAddr], secret: &str, extra: &str) -> String {
    let list: Vec<String> = workers.iter().map(|a| format!("\"{a}\"")).collect();
    format!("[[pipeline.stage]]\nname = \"{name}\"\nremote = [{}]\nsecret = {secret:?}\n{extra}\n", list.join(", "))
}

/// A gateway process in a directory of its own, started once it says so.
/// Its ports are picked by binding and releasing them, so another test's
/// listener may take one first: then it starts again on other ports.
pub async fn gateway(down: SocketAddr, extra: &str) -> (Proc, tempfile::TempDir) {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let (smtp, admin) = (free_addr(), free_addr());
        let config = super::write_config(dir.path(), &smtp.to_string(), &admin.to_string(), down, extra);
        let log = dir.path().join("mxgate.log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_mxgate"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn mxgate");
        let p = Proc { child, smtp, admin, config, log };
        let said = |w: &str| p.log_text().contains(w);
        let done = super::wait_until(20, || said("mxgate started") || said("cannot start")).await;
        assert!(done && (said("mxgate started") || said("in use")), "the gateway did not start:\n{}", p.log_text());
        if said("mxgate started") {
            return (p, dir);
        }
    }
    panic!("no free ports for a gateway in 5 tries");
}

/// The certificate for the key derived from `secret`, as `mxgate worker`
/// makes it when it has no `cert` of its own.
pub fn derived_cert(secret: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let (der, _) = mxgate::worker::trust::derived_key(secret);
    let pair = rcgen::KeyPair::try_from(der.as_slice()).expect("derived key");
    let cert = rcgen::CertificateParams::new(vec!["mxgate-worker".to_string()]).unwrap().self_signed(&pair).unwrap();
    (vec![cert.der().clone()], PrivateKeyDer::try_from(der).unwrap())
}

/// A CA certificate and its key. It also names 127.0.0.1, so that a
/// worker presenting it as its own is wrong only in being a CA.
pub fn test_ca() -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, "worker test CA");
    (p.self_signed(&key).unwrap(), key)
}

/// A worker certificate for 127.0.0.1 (not a CA) that `ca` signs.
pub fn signed_leaf(
    ca: &rcgen::Certificate,
    ca_key: &rcgen::KeyPair,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, ca, ca_key).unwrap();
    (vec![cert.der().clone()], PrivateKeyDer::try_from(key.serialize_der()).unwrap())
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS 1.3 connection that accepts any certificate; the test checks
/// the one presented itself.
pub async fn tls_connect(addr: SocketAddr) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(mxgate::tls::accept_any())
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("worker reachable");
    let name = ServerName::try_from("mxgate-worker").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.expect("TLS handshake with the worker")
}

/// One HTTP/1.1 request over TLS, `Connection: close`; `token` becomes
/// the bearer token.
pub async fn https(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = tls_connect(addr).await;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut all = req.into_bytes();
    all.extend_from_slice(body);
    s.write_all(&all).await.unwrap();
    s.flush().await.unwrap();
    let mut raw = Vec::new();
    // A worker may close without close_notify; what arrived is the answer.
    let _ = s.read_to_end(&mut raw).await;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no HTTP head in {text:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    Resp { status, headers, body: raw[split + 4..].to_vec() }
}

/// What the in-test worker answers to a scan.
#[derive(Clone)]
pub enum Answer {
    /// 200 with this findings document.
    Findings(serde_json::Value),
    /// This status with a protocol error body.
    Status(u16),
}

/// A scan request as the in-test worker received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// An in-test worker speaking protocol v1 (TLS 1.3 with the key derived
/// from its secret): scans wait for a permit from `gate` (none with
/// `held`), then get `answer`.
pub struct FakeWorker {
    pub addr: SocketAddr,
    pub scans: Arc<Mutex<Vec<Seen>>>,
    pub answered: Arc<AtomicUsize>,
    pub gate: Arc<Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeWorker {
    pub async fn start(secret: &str, answer: Answer, held: bool) -> FakeWorker {
        Self::start_as(derived_cert(secret), secret, answer, held).await
    }

    /// The same, presenting `certs` (leaf first) and `key`.
    pub async fn start_as(
        (certs, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
        secret: &str,
        answer: Answer,
        held: bool,
    ) -> FakeWorker {
        let mut sc = rustls::ServerConfig::builder_with_provider(ring())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        sc.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(sc));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = Arc::new(Semaphore::new(if held { 0 } else { Semaphore::MAX_PERMITS }));
        let token = format!("Bearer {secret}");
        let state = Arc::new(Fake { token, answer, scans: Default::default(), answered: Default::default(), gate });
        let (scans, answered, gate) = (state.scans.clone(), state.answered.clone(), state.gate.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, state) = (acceptor.clone(), state.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let svc = hyper::service::service_fn(move |req| state.clone().handle(req));
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
                });
            }
        });
        FakeWorker { addr, scans, answered, gate, task }
    }

    pub fn scan_count(&self) -> usize {
        self.scans.lock().unwrap().len()
    }

    /// Lets `n` held scans answer.
    pub fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }
}

impl Drop for FakeWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Fake {
    token: String,
    answer: Answer,
    scans: Arc<Mutex<Vec<Seen>>>,
    answered: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: u16, body: serde_json::Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert("content-type", "application/json".parse().unwrap());
    r
}

impl Fake {
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Reply, std::convert::Infallible> {
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        if auth != self.token {
            return Ok(reply(401, serde_json::json!({"error": "missing or wrong bearer token"})));
        }
        let path = req.uri().path().to_string();
        if path == "/v1/health" {
            return Ok(reply(200, serde_json::json!({"protocol": 1, "stages": ["sandbox"], "version": "test"})));
        }
        if !path.starts_with("/v1/scan/") {
            return Ok(reply(404, serde_json::json!({"error": "no such endpoint"})));
        }
        let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body = req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
        self.scans.lock().unwrap().push(Seen { path, content_type, body });
        // Each permit lets exactly one scan answer.
        self.gate.acquire().await.expect("gate open").forget();
        self.answered.fetch_add(1, Ordering::SeqCst);
        Ok(match &self.answer {
            Answer::Findings(f) => reply(200, f.clone()),
            Answer::Status(s) => reply(*s, serde_json::json!({"error": "the stage failed (in-test worker)"})),
        })
    }
}

/// Writes `text` as a config file in `dir` and runs `mxgate check-config`
/// on it: (exit success, stdout, stderr).
pub async fn check_config(dir: &Path, file: &str, text: &str) -> (bool, String, String) {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    super::mxgate(&["check-config", "--config", path.to_str().unwrap()]).await
}

/// One transaction with `content` on an open session (after EHLO).
pub use super::cluster::send_message as send;

/// One message on a session of its own.
pub async fn send_fresh(addr: SocketAddr, content: &str) -> Sent {
    match session(addr).await {
        Some(mut c) => send(&mut c, content).await,
        None => Sent::Broken,
    }
}

/// A message the attachment stage holds: a Windows program by name and content.
pub fn blocked(tag: &str) -> String {
    with_attachment(tag, "setup.exe", "application/octet-stream", &tiny_pe())
}

/// A message every stage passes, with something each reports: a Reply-To
/// in another domain than From (PHISH_REPLYTO_MISMATCH, 1.0) and a gzip
/// the attachment stage does not open (ATTACHMENT_UNSCANNED_ARCHIVE, 1.0).
pub fn clean(tag: &str) -> String {
    let gz = [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
    with_attachment(tag, "notes.gz", "application/gzip", &gz).replacen(
        "\r\nMIME-Version:",
        "\r\nReply-To: <desk@elsewhere.test>\r\nMIME-Version:",
        1,
    )
}

/// Every `X-Mxgate-Symbols` field of a delivered message, unfolded.
pub fn symbol_fields(m: &Received) -> Vec<String> {
    let text = m.text();
    let head = text.split("\r\n\r\n").next().unwrap_or("").replace("\r\n\t", " ").replace("\r\n ", " ");
    head.lines().filter_map(|l| l.strip_prefix("X-Mxgate-Symbols:")).map(|v| v.trim().to_string()).collect()
}

/// The quarantine's records by id (`GET /api/v1/quarantine`, one page).
pub async fn quarantined(admin: SocketAddr) -> HashMap<String, serde_json::Value> {
    let r = super::http::call(admin, "GET", "/api/v1/quarantine?limit=500", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json().as_array().cloned().unwrap_or_default();
    list.into_iter().map(|v| (v["id"].as_str().unwrap_or("").to_string(), v)).collect()
}

/// `GET /api/v1/pipeline/workers`: the entry for `stage` on `addr`.
pub async fn gateway_view(admin: SocketAddr, stage: &str, addr: SocketAddr) -> serde_json::Value {
    let r = super::http::call(admin, "GET", "/api/v1/pipeline/workers", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let list = r.json();
    let found = list.as_array().and_then(|l| l.iter().find(|e| e["stage"] == stage && e["addr"] == addr.to_string()));
    found.cloned().unwrap_or_else(|| panic!("no {stage} worker {addr} in {list:#}"))
}

/// The names of a verdict's symbols.
pub fn names(v: &serde_json::Value) -> Vec<String> {
    let list = v["symbols"].as_array().cloned().unwrap_or_default();
    list.iter().filter_map(|s| s["name"].as_str().map(str::to_string)).collect()
}
