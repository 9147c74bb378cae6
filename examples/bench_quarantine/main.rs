//! Quarantine benchmark (`bench/quarantine.sh`): search and show over a
//! large quarantine, and SMTP acceptance when every message is held
//! against when every message is delivered.
//!
//! Subcommands:
//! - `seed`: fills a store directory with N quarantined records and ~2 KB
//!   bodies through `EmbeddedStore` (the gateway's own storage code), many
//!   writes in flight so group commit batches them; prints the rate.
//! - `ready`: waits for a gateway's `/healthz` and prints the seconds since
//!   a given start time (startup with the index rebuilt from storage).
//! - `query`: times list/search and show requests over real HTTP against
//!   `/api/v1/quarantine`, one at a time, per kind of filter.
//! - `send`: sends messages carrying a zip with an executable over SMTP,
//!   concurrently, and prints the acceptance rate.
//! - `count`: counts the records a gateway's quarantine lists.
//! - `tarpit`: accepts TCP connections and never answers, so a gateway's
//!   deliveries wait while its acceptance is measured.
//!
//! Every address it talks to must be loopback.

mod data;
mod http;
#[allow(dead_code)]
#[path = "../bench_load/parts.rs"]
mod parts;
mod query;
mod seed;
mod send;
#[path = "../bench_load/smtp.rs"]
mod smtp;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "mxgate benchmark: quarantine search, show and acceptance")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fill a storage directory with quarantined records.
    Seed {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        count: usize,
        /// Writes in flight at once.
        #[arg(long, default_value_t = 512)]
        concurrency: usize,
    },
    /// Wait for GET /healthz = 200; print seconds since --since (unix time).
    Ready {
        #[arg(long)]
        admin: SocketAddr,
        #[arg(long)]
        since: f64,
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Time list/search and show requests.
    Query {
        #[arg(long)]
        admin: SocketAddr,
        #[arg(long, env = "BENCH_Q_TOKEN")]
        token: String,
        /// Timed requests per kind of query.
        #[arg(long, default_value_t = 200)]
        per_kind: usize,
    },
    /// Send messages with an executable attachment; print the rate.
    Send {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 20)]
        sessions: usize,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Count the records the quarantine lists.
    Count {
        #[arg(long)]
        admin: SocketAddr,
        #[arg(long, env = "BENCH_Q_TOKEN")]
        token: String,
    },
    /// Accept connections and stay silent until stopped or time runs out.
    Tarpit {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 600)]
        max_seconds: u64,
    },
}

fn loopback(a: &SocketAddr) -> Result<(), String> {
    if a.ip().is_loopback() { Ok(()) } else { Err(format!("{a} is not a loopback address")) }
}

#[tokio::main]
async fn main() {
    let r = match Cli::parse().cmd {
        Cmd::Seed { dir, count, concurrency } => seed::run(&dir, count, concurrency).await,
        Cmd::Ready { admin, since, timeout } => match loopback(&admin) {
            Ok(()) => http::ready(admin, since, timeout).await,
            Err(e) => Err(e),
        },
        Cmd::Query { admin, token, per_kind } => match loopback(&admin) {
            Ok(()) => query::run(admin, &token, per_kind).await,
            Err(e) => Err(e),
        },
        Cmd::Send { target, sessions, count, timeout } => match loopback(&target) {
            Ok(()) => send::run(target, sessions, count, timeout).await,
            Err(e) => Err(e),
        },
        Cmd::Count { admin, token } => match loopback(&admin) {
            Ok(()) => query::count(admin, &token).await,
            Err(e) => Err(e),
        },
        Cmd::Tarpit { listen, max_seconds } => match loopback(&listen) {
            Ok(()) => send::tarpit(listen, max_seconds).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = r {
        eprintln!("bench_quarantine: {e}");
        std::process::exit(1);
    }
}
