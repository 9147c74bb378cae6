//! The command line: `serve`, `check-config` and `queue ...`.

mod http;
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

pub use queue::run as queue;
