//! `[[pipeline.stage]]`: where and how a stage runs. A built-in stage runs
//! in-process unless it names `remote` workers; the adapters for outside
//! scanners (`clamav`, `rspamd`, `spamassassin`) exist only here.
//!
//! ```toml
//! [[pipeline.stage]]
//! name = "attachment"
//! remote = ["10.0.0.21:7500", "10.0.0.22:7500"]
//! secret = "the workers' [worker] secret"
//! timeout = "10s"
//! on_error = "tempfail"      # tempfail | skip | quarantine
//! ```

use super::config::OnError;
use super::finding::Action;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Stages that call an outside scanner rather than run our own code.
pub const ADAPTERS: &[&str] = &["clamav", "rspamd", "spamassassin"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    pub stage: Vec<StageDef>,
}

/// When a stage runs relative to the 250.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Before the 250: the verdict can still reject in the session.
    #[default]
    InSession,
    /// After the 250, before delivery: for slow scanners. A message the
    /// stage condemns is quarantined (never bounced: no backscatter).
    AfterQueue,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageDef {
    /// A built-in stage (`auth`, `dnsbl`, `uribl`, `attachment`, `phishing`,
    /// `heuristics`) or an adapter (`clamav`, `rspamd`, `spamassassin`).
    pub name: String,
    /// Built-in stages only: run on these workers (`host:port`) instead of
    /// in-process.
    #[serde(default)]
    pub remote: Vec<String>,
    /// The workers' `[worker] secret`; required with `remote` unless `cert`
    /// and `key` authenticate this gateway (mutual TLS).
    #[serde(default)]
    pub secret: Option<String>,
    /// Verify the workers' certificates against this CA (PEM). Without it,
    /// a worker must present the key derived from `secret`.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Client certificate and key presented to workers (mutual TLS).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Time one attempt may take; overrides `[scan] timeout`. A remote
    /// stage retries once elsewhere, so it may wait twice this long.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// What an error, a timeout or no available endpoint does; overrides
    /// `[scan] on_error`.
    #[serde(default)]
    pub on_error: Option<OnError>,
    #[serde(default)]
    pub mode: Mode,
    /// Requests outstanding per remote endpoint; past it the endpoint is
    /// saturated (backpressure instead of unbounded memory).
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: usize,
    /// `clamav` and `spamassassin`: `host:port`, or the path of a Unix socket.
    #[serde(default)]
    pub address: Option<String>,
    /// `rspamd`: base URL of its normal worker, such as `http://127.0.0.1:11333`.
    #[serde(default)]
    pub url: Option<String>,
    /// `rspamd`: sent as the `Password` header when set.
    #[serde(default)]
    pub password: Option<String>,
    /// `rspamd` and `spamassassin`: their scores are multiplied by this
    /// before they join ours.
    #[serde(default = "defaults::weight")]
    pub weight: f64,
    /// `rspamd` (action `reject`) and `spamassassin` (spam): what spam gets.
    #[serde(default = "defaults::spam_action")]
    pub spam_action: Action,
    /// `clamav`: largest message sent to clamd (its StreamMaxLength). A
    /// larger message, or clamd's own "exceeds" answer, is never clean:
    /// it gets `CLAMAV_LIMIT` with the `on_limit` action.
    #[serde(default = "defaults::max_size")]
    pub max_size: u64,
    #[serde(default = "defaults::on_limit")]
    pub on_limit: Action,
}

mod defaults {
    use super::Action;
    pub fn max_in_flight() -> usize {
        32
    }
    pub fn weight() -> f64 {
        1.0
    }
    pub fn spam_action() -> Action {
        Action::Quarantine
    }
    pub fn max_size() -> u64 {
        25 << 20
    }
    pub fn on_limit() -> Action {
        Action::Quarantine
    }
}

impl StageDef {
    pub fn is_adapter(&self) -> bool {
        ADAPTERS.contains(&self.name.as_str())
    }

    pub fn is_remote(&self) -> bool {
        !self.remote.is_empty()
    }
}

/// Checks `[[pipeline.stage]]` against itself and `[scan]`; errors name
/// the stage.
pub fn validate(defs: &[StageDef], scan: &super::ScanConfig) -> Result<(), (&'static str, String)> {
    const KEY: &str = "pipeline.stage";
    let builtin = super::stages::STAGES;
    for (i, d) in defs.iter().enumerate() {
        let err = |m: String| Err((KEY, format!("`{}`: {m}", d.name)));
        if defs[..i].iter().any(|o| o.name == d.name) {
            return err("configured twice".into());
        }
        if d.name.is_empty() || !d.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return err("a stage name is lower-case letters, digits and `_`".into());
        }
        let is_builtin = builtin.contains(&d.name.as_str());
        if ["spf", "dkim", "dmarc", "arc"].contains(&d.name.as_str()) {
            return err("the four methods run as one stage named `auth`".into());
        }
        if is_builtin && !super::stages::ALL.iter().any(|s| super::stages::stage_of(s) == d.name && scan.enabled(s)) {
            return err("not enabled in `[scan] stages`".into());
        }
        if d.is_adapter() && d.is_remote() {
            return err("an adapter runs on the gateway and calls its scanner itself: drop `remote`".into());
        }
        if !is_builtin && !d.is_adapter() && !d.is_remote() {
            let all = [builtin, ADAPTERS].concat().join(", ");
            return err(format!("unknown stage; known: {all}; any other name needs `remote` workers"));
        }
        if d.is_remote() {
            if d.address.is_some() || d.url.is_some() {
                return err("`address` and `url` are for adapters; a remote stage names its workers in `remote`".into());
            }
            for r in &d.remote {
                if r.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()) {
                    return err(format!("remote `{r}` is not host:port"));
                }
            }
            if d.secret.as_ref().is_some_and(|s| s.len() < 16) {
                return err("`secret` must be at least 16 characters".into());
            }
            if d.secret.is_none() && (d.ca.is_none() || d.cert.is_none()) {
                return err("remote stages need `secret` (or `ca`, `cert` and `key` for mutual TLS)".into());
            }
        }
        if d.timeout.is_some_and(|t| t.is_zero()) {
            return err("`timeout` must be longer than 0s".into());
        }
        if d.max_in_flight == 0 {
            return err("`max_in_flight` must be at least 1".into());
        }
        if !d.weight.is_finite() {
            return err("`weight` must be a number".into());
        }
    }
    Ok(())
}
