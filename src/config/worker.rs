//! A scanning worker's config file (`mxgate worker --config FILE`):
//! `[worker]`, plus the `[scan]`, `[dns]` and `[log]` sections a gateway
//! has, which configure the stages the worker serves.

use super::{Dns, Log};
use crate::pipeline::stages::STAGES;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    pub worker: Worker,
    #[serde(default)]
    pub scan: crate::pipeline::ScanConfig,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default)]
    pub log: Log,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Worker {
    /// Address and port the worker listens on.
    pub listen: SocketAddr,
    /// Shared with the gateways' `[[pipeline.stage]] secret` (at least 16
    /// characters): callers must present it, and the worker's own key is
    /// derived from it unless `cert` and `key` are set.
    #[serde(default)]
    pub secret: Option<String>,
    /// The worker's certificate and key (PEM), for gateways that verify
    /// workers against a CA (`[[pipeline.stage]] ca`).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Require a client certificate signed by this CA (mutual TLS).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Built-in stages served; default: those `[scan] stages` enables
    /// (`spf`, `dkim`, `dmarc`, `arc` are served together as `auth`).
    #[serde(default)]
    pub stages: Option<Vec<String>>,
    /// Scans running at once; past it the worker answers 503 busy and the
    /// gateway tries another worker.
    #[serde(default = "max_in_flight")]
    pub max_in_flight: usize,
    /// Largest request accepted (413 past it).
    #[serde(default = "max_message_size")]
    pub max_message_size: usize,
    /// Name used as the SPF `%{r}` macro, as `[smtp] hostname` is on a gateway.
    #[serde(default = "hostname")]
    pub hostname: String,
    /// The organisation's domains, for the phishing stage (`[relay] domains`
    /// on a gateway).
    #[serde(default)]
    pub domains: Vec<String>,
}

fn max_in_flight() -> usize {
    64
}
fn max_message_size() -> usize {
    26 << 20
}
fn hostname() -> String {
    "localhost".into()
}

pub fn validate_worker(c: &WorkerConfig) -> Result<(), (&'static str, String)> {
    let w = &c.worker;
    if let Some(s) = &w.secret
        && s.len() < 16
    {
        return Err(("worker.secret", "must be at least 16 characters".into()));
    }
    if w.secret.is_none() && w.ca.is_none() {
        return Err(("worker.secret", "required (or `ca`, to accept callers by certificate)".into()));
    }
    if w.secret.is_none() && (w.cert.is_none() || w.key.is_none()) {
        return Err(("worker.cert", "without `secret`, the worker needs its own `cert` and `key`".into()));
    }
    if w.cert.is_some() != w.key.is_some() {
        return Err(("worker.key", "`cert` and `key` go together".into()));
    }
    for p in [&w.cert, &w.key, &w.ca].into_iter().flatten() {
        if !p.is_file() {
            return Err(("worker", format!("{}: cannot read the file", p.display())));
        }
    }
    if w.max_in_flight == 0 {
        return Err(("worker.max_in_flight", "must be at least 1".into()));
    }
    for s in w.stages.iter().flatten() {
        if !STAGES.contains(&s.as_str()) {
            return Err(("worker.stages", format!("unknown stage `{s}`; a worker serves: {}", STAGES.join(", "))));
        }
    }
    c.scan.validate()
}
