//! Test harness: the real gateway in-process or as a process, a recording
//! downstream SMTP server, and a transcript-style SMTP client.
#![allow(dead_code)]

pub mod client;
pub mod cluster;
pub mod dns;
pub mod downstream;
pub mod http;
pub mod mime;
pub mod process;
pub mod worker;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use client::Client;
pub use downstream::{Behaviour, Downstream};

/// A gateway running in this process.
pub struct Gateway {
    pub smtp: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    running: Option<mxgate::server::Running>,
}

impl Gateway {
    /// Starts a gateway relaying `example.test` to `downstream`; `extra` is
    /// TOML appended to the config (sections not already present).
    pub async fn start(downstream: SocketAddr, extra: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, downstream, extra).await
    }

    pub async fn start_in(dir: tempfile::TempDir, downstream: SocketAddr, extra: &str) -> Gateway {
        let path = write_config(dir.path(), "127.0.0.1:0", "127.0.0.1:0", downstream, extra);
        let cfg = mxgate::config::load(&path).unwrap_or_else(|e| panic!("test config: {e}"));
        let running = mxgate::server::start(cfg).await.expect("gateway starts");
        Gateway { smtp: running.smtp_addr, admin: running.admin_addr, dir, running: Some(running) }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.smtp).await
    }

    pub async fn shutdown(mut self) -> tempfile::TempDir {
        self.running.take().unwrap().shutdown().await;
        self.dir
    }
}

/// Writes a config file for a gateway on `smtp`/`admin` relaying to
/// `downstream`; see `split_extra` for `extra`.
pub fn write_config(dir: &Path, smtp: &str, admin: &str, downstream: SocketAddr, extra: &str) -> PathBuf {
    let (smtp_extra, mut relay_extra, admin_extra, log_extra, mut rest) = split_extra(extra);
    if !rest.contains("[scan]") {
        // Tests that are not about scanning run without stages: the
        // built-in ones would look up DNS through the system resolver.
        rest.push_str("[scan]\nstages = []\n");
    }
    if !relay_extra.contains("tls =") {
        relay_extra.insert_str(0, "tls = \"none\"\n");
    }
    let text = format!(
        r#"[smtp]
listen = "{smtp}"
hostname = "mx.gateway.test"
{smtp_extra}
[relay]
domains = ["example.test", "other.test"]
downstream = "{downstream}"
outbound = "{downstream}"
{relay_extra}
[storage]
path = "{data}"
[admin]
listen = "{admin}"
{admin_extra}
[log]
level = "warn"
{log_extra}
{rest}
"#,
        data = dir.join("data").display(),
    );
    let path = dir.join("mxgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `extra` may contain lines under `@smtp`, `@relay`, `@admin` and `@log` markers that
/// go into those base sections; everything after a `@rest` marker is appended.
fn split_extra(extra: &str) -> (String, String, String, String, String) {
    let (mut smtp, mut relay, mut admin, mut log, mut rest): (String, String, String, String, String) =
        Default::default();
    let mut target = &mut rest;
    for line in extra.lines() {
        match line.trim() {
            "@smtp" => target = &mut smtp,
            "@relay" => target = &mut relay,
            "@admin" => target = &mut admin,
            "@log" => target = &mut log,
            "@rest" => target = &mut rest,
            _ => {
                target.push_str(line);
                target.push('\n');
            }
        }
    }
    (smtp, relay, admin, log, rest)
}

/// Runs the real `mxgate` binary (without blocking the runtime the gateway
/// under test runs on) and returns its exit status, stdout and stderr.
pub async fn mxgate(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxgate")).args(args).output().await.expect("run mxgate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `mxgate queue show ID --json` against a gateway's admin listener.
pub async fn queue_show(admin: SocketAddr, id: &str) -> Option<serde_json::Value> {
    let url = format!("http://{admin}");
    let (ok, out, _) = mxgate(&["queue", "show", id, "--json", "--url", &url]).await;
    ok.then(|| serde_json::from_str(&out).expect("JSON from queue show"))
}

/// `mxgate quarantine show ID --json` against a gateway's admin listener.
pub async fn quarantine_show(admin: SocketAddr, id: &str) -> Option<serde_json::Value> {
    let url = format!("http://{admin}");
    let (ok, out, _) = mxgate(&["quarantine", "show", id, "--json", "--url", &url]).await;
    ok.then(|| serde_json::from_str(&out).expect("JSON from quarantine show"))
}

/// Polls an async condition until it holds, up to `secs` seconds.
pub async fn eventually<F: std::future::Future<Output = bool>>(secs: u64, mut f: impl FnMut() -> F) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The queue id named by a final "250 2.0.0 Ok: queued as ID" reply.
pub fn queue_id(reply: &str) -> String {
    assert!(reply.starts_with("250"), "{reply}");
    reply.trim().rsplit(' ').next().unwrap().to_string()
}

/// Polls `f` until it returns true, up to `secs` seconds.
pub async fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// A message with the given headers and body, CRLF line ends.
pub fn message(subject: &str, body: &str) -> String {
    format!(
        "From: <a@sender.test>\r\nTo: <b@example.test>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@sender.test>\r\n\r\n{body}\r\n"
    )
}
