//! The command line: `serve`, `check-config` and `queue ...`.

mod cluster;
pub mod http;
mod quarantine;
mod queue;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "mxgate", version, about = "SMTP secure email gateway")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run
pub enum Cmd {
    /// Run the gateway.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file (and MXGATE_* overrides) and exit.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Look into and act on the queue of a running gateway.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
        #[command(flatten)]
        target: Target,
    },
    /// Run a storage node of the cluster.
    Storage {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a scanning worker: serve built-in stages to gateways.
    Worker {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The storage cluster as a running gateway sees it.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
        #[command(flatten)]
        target: Target,
    },
    /// Search, show, release, delete and allow quarantined messages of a running gateway.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
        #[command(flatten)]
        target: Target,
    },
}

/// Search filters; every one given must match.
#[derive(clap::Args, Default)]
pub struct Search {
    /// An envelope recipient, exactly.
    #[arg(long)]
    pub recipient: Option<String>,
    /// The envelope sender, exactly (<> for the null sender).
    #[arg(long)]
    pub sender: Option<String>,
    /// A domain of the sender or of any recipient.
    #[arg(long)]
    pub domain: Option<String>,
    /// A symbol name; NAME* matches a prefix (ATTACHMENT_*).
    #[arg(long)]
    pub symbol: Option<String>,
    /// Text in the policy's reason.
    #[arg(long)]
    pub reason: Option<String>,
    /// Text in the Subject.
    #[arg(long)]
    pub subject: Option<String>,
    /// held, released, expired, deleted or all (default: all).
    #[arg(long)]
    pub status: Option<String>,
    /// From: unix seconds, 2026-11-26, 2026-11-26T10:00:00Z or a duration ago (24h).
    #[arg(long)]
    pub since: Option<String>,
    /// Until (exclusive), like --since.
    #[arg(long)]
    pub until: Option<String>,
    /// Page size, 1 to 500.
    #[arg(long)]
    pub limit: Option<String>,
    /// The cursor printed under the previous page.
    #[arg(long)]
    pub cursor: Option<String>,
    /// newest (default) or oldest first.
    #[arg(long)]
    pub order: Option<String>,
}

#[derive(Subcommand)]
pub enum QuarantineAction {
    /// Quarantined messages, newest first, with filters.
    List {
        #[command(flatten)]
        search: Search,
    },
    /// One message: envelope, headers, reasons and a text preview.
    Show {
        id: String,
        /// Print the raw message (RFC 5322) instead.
        #[arg(long)]
        raw: bool,
    },
    /// Deliver held messages to their original recipients (exactly once).
    Release {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Delete held messages (the record stays, marked deleted).
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Allow each message's sender and release the message.
    Allow {
        #[arg(required = true)]
        ids: Vec<String>,
        /// Allow the sender for this recipient only (default: every recipient).
        #[arg(long)]
        scope: Option<String>,
    },
    /// Release, delete or allow every message matching a search.
    Bulk {
        /// release, delete or allow
        action: String,
        #[command(flatten)]
        search: Search,
    },
    /// The audit log: who did what, when (newest first).
    Audit {
        #[arg(long, default_value = "50")]
        limit: usize,
    },
}

/// Where the running gateway's admin listener is.
#[derive(clap::Args)]
pub struct Target {
    /// The gateway's config file: the admin address and token are read from it.
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    /// Admin URL, e.g. http://127.0.0.1:8025 (overrides --config).
    #[arg(long, global = true, env = "MXGATE_ADMIN_URL")]
    pub url: Option<String>,
    /// Admin bearer token (overrides --config).
    #[arg(long, global = true, env = "MXGATE_ADMIN_TOKEN")]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum ClusterAction {
    /// Every storage node: health, load, records, how far behind.
    Status,
}

#[derive(Subcommand)]
pub enum QueueAction {
    /// Every queued message, with why it is still there.
    List,
    /// One message: envelope, each recipient's state and last reply, next attempt.
    Show { id: String },
    /// Attempt delivery now.
    Retry { id: String },
    /// Remove without delivering.
    Delete { id: String },
}

pub use cluster::run as cluster;
pub use quarantine::run as quarantine;
pub use queue::run as queue;
