//! Cluster benchmark (`bench/cluster.sh`): what a storage node's failure
//! costs the senders, and how fast a returning node catches up.
//!
//! Subcommands:
//! - `failover`: steady SMTP load on a gateway (one message per session,
//!   many sessions at once) that records the time and the reply code of
//!   every message; at a set moment it SIGKILLs a storage node (by pid) and
//!   reports the 4xx answers, the stall and the rates around the kill.
//! - `write`: many concurrent enqueues of small entries (~1 KB) through the
//!   cluster client (`ClusterStore`, the gateway's own code) while one node
//!   is down; prints how many of them that node should hold.
//! - `catchup`: watches the returning node until it has caught up (see
//!   bench/cluster.md for the exact rule) and then checks that it holds
//!   every record and body it owns.
//! - `ready`: waits for a gateway's `/healthz`.
//!
//! Every address it talks to must be loopback.

mod catchup;
mod failover;
#[allow(dead_code, unused_imports)]
#[path = "../bench_quarantine/http.rs"]
mod http;
#[path = "../bench_load/smtp.rs"]
mod smtp;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "mxgate benchmark: storage cluster failover and catch-up")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Steady SMTP load recording every answer; SIGKILL a node midway.
    Failover {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 20)]
        sessions: usize,
        /// Length of the whole load, seconds.
        #[arg(long)]
        seconds: f64,
        /// Process to SIGKILL (a storage node).
        #[arg(long)]
        kill_pid: i32,
        /// When to kill it, seconds after the load started.
        #[arg(long)]
        kill_at: f64,
        /// Payload octets per message (like smtp-source -l).
        #[arg(long, default_value_t = 10240)]
        size: usize,
        /// Every answer as a JSON line (start, end, code).
        #[arg(long)]
        answers: Option<PathBuf>,
    },
    /// Enqueue records through the cluster client while a node is down.
    Write {
        /// A storage node's config file: its [cluster] section is used.
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        count: usize,
        /// The node that is down (its entry in cluster.nodes).
        #[arg(long)]
        down: String,
        #[arg(long, default_value_t = 1024)]
        size: usize,
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        #[arg(long, default_value = "catchup")]
        prefix: String,
    },
    /// Wait until a returning node has caught up; then check its records.
    Catchup {
        #[arg(long)]
        config: PathBuf,
        /// The returning node (its entry in cluster.nodes).
        #[arg(long)]
        node: String,
        /// Records `write` wrote (ids prefix0..count).
        #[arg(long)]
        count: usize,
        #[arg(long, default_value = "catchup")]
        prefix: String,
        /// Unix time (seconds) the node was started.
        #[arg(long)]
        since: f64,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Wait for GET /healthz = 200; print seconds since --since (unix time).
    Ready {
        #[arg(long)]
        admin: SocketAddr,
        #[arg(long)]
        since: f64,
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

fn loopback(a: &SocketAddr) -> Result<(), String> {
    if a.ip().is_loopback() { Ok(()) } else { Err(format!("{a} is not a loopback address")) }
}

/// The `[cluster]` section of a storage node's file, every node on loopback.
pub fn cluster_config(path: &std::path::Path) -> Result<mxgate::config::Cluster, String> {
    let cfg = mxgate::config::load_node(path).map_err(|e| e.to_string())?;
    for n in &cfg.cluster.nodes {
        let a: SocketAddr = n.parse().map_err(|_| format!("cluster node {n} is not an ip:port"))?;
        loopback(&a)?;
    }
    Ok(cfg.cluster)
}

#[tokio::main]
async fn main() {
    let r = match Cli::parse().cmd {
        Cmd::Failover { target, sessions, seconds, kill_pid, kill_at, size, answers } => match loopback(&target) {
            Ok(()) => {
                let plan = failover::Plan { target, sessions, seconds, kill_pid, kill_at, size };
                failover::run(plan, answers.as_deref()).await
            }
            Err(e) => Err(e),
        },
        Cmd::Write { config, count, down, size, concurrency, prefix } => {
            catchup::write(&config, count, &down, size, concurrency, &prefix).await
        }
        Cmd::Catchup { config, node, count, prefix, since, timeout } => {
            catchup::watch(&config, &node, count, &prefix, since, timeout).await
        }
        Cmd::Ready { admin, since, timeout } => match loopback(&admin) {
            Ok(()) => http::ready(admin, since, timeout).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = r {
        eprintln!("bench_cluster: {e}");
        std::process::exit(1);
    }
}
