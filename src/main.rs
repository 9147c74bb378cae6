//! The `mxgate` binary: parse the command line, load the config, set up
//! logging, run, and shut down on SIGTERM/SIGINT.

use clap::Parser;
use mxgate::cli::{Cli, Cmd};
use mxgate::config::{Config, Log, LogFormat, NodeConfig};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match cli.command {
        Cmd::CheckConfig { config } => {
            // A [node] section makes a storage node's file, [worker] a worker's.
            let text = std::fs::read_to_string(&config).unwrap_or_default();
            let section = |name: &str| text.lines().any(|l| l.trim() == name);
            let checked = if section("[node]") {
                mxgate::config::load_node(&config).map(drop)
            } else if section("[worker]") {
                mxgate::config::load_worker(&config).map(drop)
            } else {
                mxgate::config::load(&config).map(drop)
            };
            match checked {
                Ok(()) => {
                    println!("{}: configuration OK", config.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Cmd::Serve { config } => match mxgate::config::load(&config) {
            Ok(cfg) => {
                init_logging(&cfg.log);
                rt.block_on(serve(cfg))
            }
            Err(e) => fail(&e.to_string()),
        },
        Cmd::Storage { config } => match mxgate::config::load_node(&config) {
            Ok(cfg) => {
                init_logging(&cfg.log);
                rt.block_on(storage(cfg))
            }
            Err(e) => fail(&e.to_string()),
        },
        Cmd::Worker { config } => match mxgate::config::load_worker(&config) {
            Ok(cfg) => {
                init_logging(&cfg.log);
                rt.block_on(until_signal(mxgate::worker::start(cfg), async |w: mxgate::worker::Running| w.stop()))
            }
            Err(e) => fail(&e.to_string()),
        },
        Cmd::Cluster { action, target } => match rt.block_on(mxgate::cli::cluster(action, target)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Cmd::Queue { action, target } => match rt.block_on(mxgate::cli::queue(action, target)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Cmd::Quarantine { action, target } => match rt.block_on(mxgate::cli::quarantine(action, target)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("mxgate: {msg}");
    ExitCode::FAILURE
}

fn init_logging(log: &Log) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match log.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Starts something, runs it until SIGTERM or SIGINT, then stops it.
async fn until_signal<R, F: std::future::Future<Output = Result<R, String>>>(
    start: F,
    stop: impl AsyncFnOnce(R),
) -> ExitCode {
    // Handlers first: a SIGTERM that arrives while starting must not kill
    // the process before it can shut down cleanly.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let running = match start.await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return fail(&e);
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    stop(running).await;
    ExitCode::SUCCESS
}

async fn serve(cfg: Config) -> ExitCode {
    until_signal(mxgate::server::start(cfg), async |running| running.shutdown().await).await
}

async fn storage(cfg: NodeConfig) -> ExitCode {
    until_signal(mxgate::cluster::node::start(cfg), async |running: mxgate::cluster::node::Running| {
        if let Err(e) = running.node.store.close().await {
            tracing::error!(error = %e, "flushing the store failed");
        }
    })
    .await
}
