//! `[scan]`: which stages run, their time limits and error policy, the
//! parser limits, and each stage's own settings.

use super::message::Limits;
use super::stages;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    /// Stages that run, by name; all built-in stages by default.
    pub stages: Vec<String>,
    /// Time one stage may take before its `on_error` policy applies.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// What a stage error or timeout does: tempfail, skip or quarantine.
    pub on_error: OnError,
    /// Per-stage `timeout` and `on_error`: `[scan.stage.dnsbl]`.
    pub stage: BTreeMap<String, StageRule>,
    pub limits: Limits,
    pub auth: stages::auth::AuthConfig,
    pub dnsbl: stages::dnsbl::DnsblConfig,
    pub uribl: stages::uribl::UriblConfig,
    pub attachment: stages::attachment::AttachmentConfig,
    pub phishing: stages::phishing::PhishingConfig,
    pub heuristics: stages::heuristics::HeuristicsConfig,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            stages: stages::ALL.iter().map(|s| s.to_string()).collect(),
            timeout: Duration::from_secs(10),
            on_error: OnError::Tempfail,
            stage: BTreeMap::new(),
            limits: Limits::default(),
            auth: Default::default(),
            dnsbl: Default::default(),
            uribl: Default::default(),
            attachment: Default::default(),
            phishing: Default::default(),
            heuristics: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// 451 4.7.1: the sender retries later (nothing passes unscanned).
    Tempfail,
    /// Fail open: the message goes on, and the skip is recorded in the
    /// X-Mxgate-Symbols header and the log.
    Skip,
    /// Hold the message instead of delivering it.
    Quarantine,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRule {
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    pub on_error: Option<OnError>,
}

impl ScanConfig {
    /// Names every unknown stage by its key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let known = || stages::ALL.join(", ");
        for s in &self.stages {
            if !stages::ALL.contains(&s.as_str()) {
                return Err(("scan.stages", format!("unknown stage `{s}`; known: {}", known())));
            }
        }
        if self.enabled("dmarc") && !(self.enabled("spf") && self.enabled("dkim")) {
            return Err(("scan.stages", "dmarc needs spf and dkim".into()));
        }
        for (s, rule) in &self.stage {
            if ["spf", "dkim", "dmarc", "arc"].contains(&s.as_str()) {
                return Err(("scan.stage", format!("`{s}` runs in the stage named `auth`: use [scan.stage.auth]")));
            }
            if !stages::ALL.contains(&s.as_str()) && s != "auth" {
                return Err(("scan.stage", format!("unknown stage `{s}`; known: auth, {}", known())));
            }
            if rule.timeout.is_some_and(|t| t.is_zero()) {
                return Err(("scan.stage", format!("[scan.stage.{s}] timeout must be longer than 0s")));
            }
        }
        if self.timeout.is_zero() {
            return Err(("scan.timeout", "must be longer than 0s".into()));
        }
        // The auth stage's two phases must end before the stage's own limit,
        // or DMARC is never applied when a sender's DNS is slow.
        if self.auth.timeout * 2 >= self.rule("auth").0 {
            return Err(("scan.auth.timeout", "twice it must be shorter than the auth stage's timeout".into()));
        }
        Ok(())
    }

    pub fn enabled(&self, name: &str) -> bool {
        self.stages.iter().any(|s| s == name)
    }

    /// The time limit and error policy of a stage; the four auth methods
    /// run as one stage named `auth`.
    pub fn rule(&self, name: &str) -> (Duration, OnError) {
        let r = self.stage.get(name);
        (r.and_then(|r| r.timeout).unwrap_or(self.timeout), r.and_then(|r| r.on_error).unwrap_or(self.on_error))
    }
}
