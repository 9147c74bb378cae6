//! A storage cluster on loopback: storage nodes and gateways as real
//! `mxgate` processes, the SMTP transactions senders make against them,
//! and what `cluster status` says about them.

use super::client::Client;
use super::downstream::Downstream;
use super::process::{Proc, free_addr};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const SECRET: &str = "loopback-cluster-shared-secret";
pub const REPLICAS: u64 = 2;

/// A real `mxgate` process (`storage` or `serve`) logging to a file in its
/// directory; a new log file per start. Killed on drop.
pub struct Daemon {
    child: Option<Child>,
    role: &'static str,
    pub config: PathBuf,
    pub dir: PathBuf,
    pub log: PathBuf,
    starts: usize,
}

impl Daemon {
    pub fn spawn(role: &'static str, config: &Path, dir: &Path) -> Daemon {
        let mut d =
            Daemon { child: None, role, config: config.into(), dir: dir.into(), log: PathBuf::new(), starts: 0 };
        d.launch();
        d
    }

    fn launch(&mut self) {
        self.starts += 1;
        self.log = self.dir.join(format!("{}-{}.log", self.role, self.starts));
        let child = Command::new(env!("CARGO_BIN_EXE_mxgate"))
            .args([self.role, "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.log).unwrap())
            .spawn()
            .expect("spawn mxgate");
        self.child = Some(child);
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Starts again with the same config (and so the same data).
    pub fn restart(&mut self) {
        self.kill9();
        self.launch();
    }

    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// The current start's log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True when a line of the current log contains every one of `words`.
    pub fn logged(&self, words: &[&str]) -> bool {
        self.log_text().lines().any(|l| words.iter().all(|w| l.contains(w)))
    }

    pub async fn wait_log(&self, words: &[&str], secs: u64) -> bool {
        super::wait_until(secs, || self.logged(words)).await
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The `[cluster]` section every node and gateway shares (plus `extra`).
fn cluster_toml(nodes: &[String], secret: &str, extra: &str) -> String {
    let list: Vec<String> = nodes.iter().map(|n| format!("{n:?}")).collect();
    format!(
        "[cluster]\nnodes = [{}]\nreplicas = {REPLICAS}\nwrite_quorum = 2\nsecret = {secret:?}\n{extra}",
        list.join(", ")
    )
}

/// Storage nodes on loopback, each with its own data directory.
pub struct Nodes {
    pub nodes: Vec<Daemon>,
    pub addrs: Vec<String>,
    pub dir: tempfile::TempDir,
}

impl Nodes {
    /// `n` storage nodes with `SECRET`, anti-entropy every 2 s; returns once
    /// every one listens.
    pub async fn start(n: usize) -> Nodes {
        let dir = tempfile::tempdir().unwrap();
        let addrs: Vec<String> = (0..n).map(|_| free_addr().to_string()).collect();
        let mut nodes = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let home = dir.path().join(format!("n{i}"));
            std::fs::create_dir_all(&home).unwrap();
            let text = format!(
                "[node]\nlisten = \"{addr}\"\nrepair_interval = \"2s\"\n[storage]\npath = \"{}\"\n{}{}",
                home.join("data").display(),
                cluster_toml(&addrs, SECRET, ""),
                "[log]\nlevel = \"info\"\n"
            );
            let config = home.join("node.toml");
            std::fs::write(&config, text).unwrap();
            nodes.push(Daemon::spawn("storage", &config, &home));
        }
        let c = Nodes { nodes, addrs, dir };
        for i in 0..n {
            c.wait_listening(i).await;
        }
        c
    }

    async fn wait_listening(&self, i: usize) {
        let up = self.nodes[i].wait_log(&["storage node listening"], 20).await;
        assert!(up, "storage node {i} did not start; log:\n{}", self.nodes[i].log_text());
    }

    pub fn kill9(&mut self, i: usize) {
        self.nodes[i].kill9();
    }

    /// Restarts node `i` on its old data; returns once it listens.
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
        self.wait_listening(i).await;
    }

    /// Gateway config lines: quick retries, a 3 s lease, and this cluster
    /// (with `secret`), for `write_config`'s `extra`.
    pub fn gateway_extra(&self, name: &str, secret: &str) -> String {
        let cluster = cluster_toml(&self.addrs, secret, &format!("name = {name:?}\nlease = \"3s\"\n"));
        format!("@rest\n[queue]\nretry_initial = \"1s\"\nretry_max = \"2s\"\n{cluster}")
    }

    /// A gateway process using this cluster; returns once it takes SMTP
    /// connections (that is, once `write_quorum` nodes answered it).
    pub async fn gateway(&self, name: &str, downstream: &Downstream) -> GatewayProc {
        let dir = tempfile::tempdir().unwrap();
        let proc = Proc::start(dir.path(), downstream.addr, &self.gateway_extra(name, SECRET)).await;
        GatewayProc { proc, _dir: dir }
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes.iter().enumerate().map(|(i, n)| format!("--- node {i}:\n{}", tail(&n.log_text()))).collect()
    }
}

pub struct GatewayProc {
    pub proc: Proc,
    _dir: tempfile::TempDir,
}

/// The end of a log, for failure messages.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `GET /api/v1/cluster` on a gateway's admin listener.
pub async fn status(admin: SocketAddr) -> serde_json::Value {
    let r = super::http::call(admin, "GET", "/api/v1/cluster", None, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// `mxgate cluster status --json` against a gateway.
pub async fn status_cli(admin: SocketAddr) -> serde_json::Value {
    let (ok, out, err) = super::mxgate(&["cluster", "status", "--json", "--url", &format!("http://{admin}")]).await;
    assert!(ok, "mxgate cluster status failed: {err}");
    serde_json::from_str(&out).expect("JSON from cluster status")
}

/// What the gateway said to one transaction.
#[derive(Debug)]
pub enum Sent {
    /// 250 with this queue id.
    Queued(String),
    /// A 4xx; `after_data` when it came after the final dot (the gateway
    /// had tried to store the message).
    Tempfail { reply: String, after_data: bool },
    /// The connection broke.
    Broken,
}

/// A message of about 2 KB whose subject (and Message-ID) is `tag`.
pub fn mail(tag: &str) -> String {
    super::message(tag, &format!("{tag} {}\r\n", "x".repeat(70)).repeat(28))
}

/// One transaction on an open session (after EHLO).
pub async fn send(c: &mut Client, tag: &str) -> Sent {
    send_message(c, &mail(tag)).await
}

/// One transaction with `content` on an open session (after EHLO).
pub async fn send_message(c: &mut Client, content: &str) -> Sent {
    for cmd in ["MAIL FROM:<a@sender.test>", "RCPT TO:<b@example.test>", "DATA"] {
        let r = c.say_soft(cmd).await;
        match r.as_bytes().first() {
            Some(b'2' | b'3') => {}
            Some(b'4') => {
                c.send_soft("RSET\r\n").await;
                let _ = c.reply().await;
                return Sent::Tempfail { reply: r, after_data: false };
            }
            None => return Sent::Broken,
            _ => panic!("{cmd}: unexpected {r:?}"),
        }
    }
    c.send_soft(&format!("{content}.\r\n")).await;
    let r = c.reply().await;
    match r.as_bytes().first() {
        Some(b'2') => Sent::Queued(r.trim().rsplit(' ').next().unwrap().to_string()),
        Some(b'4') => Sent::Tempfail { reply: r, after_data: true },
        None => Sent::Broken,
        _ => panic!("end of DATA: unexpected {r:?}"),
    }
}

/// A new session and its EHLO; None when the gateway refuses it (4xx
/// greeting or EHLO) or closes it.
pub async fn session(addr: SocketAddr) -> Option<Client> {
    let mut c = Client::connect(addr).await;
    if !c.greeting.starts_with("220") || !c.say_soft("EHLO client.test").await.starts_with("250") {
        return None;
    }
    Some(c)
}

/// One message on a session of its own.
pub async fn send_fresh(addr: SocketAddr, tag: &str) -> Sent {
    match session(addr).await {
        Some(mut c) => send(&mut c, tag).await,
        None => Sent::Broken,
    }
}

/// How many times the downstream received each tag.
pub fn delivered(down: &Downstream) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for m in down.msgs.lock().unwrap().iter() {
        let text = String::from_utf8_lossy(&m.data);
        let tag = text.split("\r\nSubject: ").nth(1).and_then(|s| s.split("\r\n").next()).unwrap_or("?");
        *n.entry(tag.to_string()).or_insert(0) += 1;
    }
    n
}

/// Polls `f` every half second (it may be costly) for up to `secs`.
pub async fn poll<F: std::future::Future<Output = bool>>(secs: u64, mut f: impl FnMut() -> F) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}
