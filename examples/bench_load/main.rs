//! Load generator and DNS stub for the scanning benchmark (`bench/run.sh`,
//! systems `postfix-mix` and `mxgate-scan`).
//!
//! `smtp-source` can only send one synthetic payload, so this tool sends a
//! realistic mix instead (plain text, HTML newsletters, DKIM-signed mail,
//! PDF and zip attachments: see `corpus.rs`), generated once per run from a
//! fixed seed. Subcommands:
//!
//! - `dns`: a DNS server on loopback (UDP and TCP) publishing the senders'
//!   SPF, DKIM and DMARC records; every other name is NXDOMAIN, so DNS list
//!   lookups are real queries answered "not listed".
//! - `send`: N messages over S concurrent sessions, one message per session,
//!   to a gateway; prints a JSON summary (sent, errors, msg/s).
//! - `check`: sends each kind of message one at a time through the gateway
//!   to its own recording sink and reports what arrived and, for mxgate,
//!   the verdict and authentication results each kind got.
//! - `corpus`: writes the corpus to a directory as `.eml` files.
//!
//! Written in Rust because a Python generator would take most of one of the
//! two cores the benchmark shares. Every address it talks to must be
//! loopback.

mod check;
mod corpus;
mod dns;
mod parts;
mod send;
mod smtp;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "mxgate benchmark: mixed-corpus load generator and DNS stub")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the senders' SPF/DKIM/DMARC records on UDP and TCP.
    Dns {
        #[arg(long)]
        listen: SocketAddr,
        /// Touched once both sockets are bound.
        #[arg(long)]
        ready_file: Option<PathBuf>,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 3600)]
        max_seconds: u64,
        /// Log every question to stderr.
        #[arg(long)]
        verbose: bool,
    },
    /// Send the mix to a gateway.
    Send {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 20)]
        sessions: usize,
        #[arg(long)]
        count: usize,
        /// Per-operation network timeout, seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Send every kind through the gateway to our own sink and report.
    Check {
        #[arg(long)]
        target: SocketAddr,
        /// Where the gateway delivers `probe.test`.
        #[arg(long)]
        listen: SocketAddr,
        /// Messages, sent one at a time (cycling through the corpus).
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// The gateway is mxgate: require verdict headers on every message.
        #[arg(long)]
        expect_scan: bool,
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Write the corpus as .eml files.
    Corpus {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn loopback(a: &SocketAddr) -> Result<(), String> {
    if a.ip().is_loopback() { Ok(()) } else { Err(format!("{a} is not a loopback address")) }
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Dns { listen, ready_file, max_seconds, verbose } => match loopback(&listen) {
            Ok(()) => dns::serve(listen, ready_file, max_seconds, verbose).await,
            Err(e) => Err(e),
        },
        Cmd::Send { target, sessions, count, timeout } => match loopback(&target) {
            Ok(()) => send::run(target, sessions, count, timeout).await,
            Err(e) => Err(e),
        },
        Cmd::Check { target, listen, count, expect_scan, timeout } => {
            match loopback(&target).and_then(|_| loopback(&listen)) {
                Ok(()) => check::run(target, listen, count, expect_scan, timeout).await,
                Err(e) => Err(e),
            }
        }
        Cmd::Corpus { dir } => corpus::write_dir(&dir),
    };
    if let Err(e) = r {
        eprintln!("bench_load: {e}");
        std::process::exit(1);
    }
}
