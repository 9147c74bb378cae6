//! The scanning pipeline, between DATA and the 250 reply: every accepted
//! message passes through it before it is queued, so a verdict can still
//! reject it in the session (no backscatter).
//!
//! - `finding`: what stages report (symbols, auth results) and the decision.
//! - `message`: parse once with mail-parser; parser limits as symbols.
//! - `policy`: allow/block lists, per-symbol overrides, score thresholds.
//! - `headers`: Authentication-Results, X-Mxgate-*, subject tagging.
//! - `html`: a small tolerant HTML tokenizer for the stages that read links.
//! - `lists`: allow/block list matching (addresses, domains, CIDR).
//! - `stages`: the built-in stages, one file or directory each.
//! - `config`: `[scan]`, the stage list, time limits and error policy.
//!
//! A stage's input is plain data (`Facts` and the raw message; the parsed
//! view is derived from the bytes) and its output is `Findings`, so the same
//! stage can run in another process.

pub mod allow;
pub mod config;
pub mod finding;
pub mod headers;
pub mod html;
pub mod lists;
pub mod message;
pub mod policy;
pub mod remote;
pub mod stage_def;
pub mod stages;

pub use config::{OnError, ScanConfig};
pub use finding::{Action, Decision, Findings, StageError, Symbol, fmt_score};
pub use policy::PolicyConfig;
pub use stage_def::{Mode, PipelineConfig, StageDef};

use crate::store::BoxFut;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a stage may know about the session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Facts {
    pub queue_id: String,
    pub client_ip: String,
    pub helo: String,
    pub tls: bool,
    pub sender: Option<String>,
    pub recipients: Vec<String>,
}

#[cfg(test)]
impl Facts {
    /// A session from 192.0.2.1 (`client.test`) with this envelope sender,
    /// to b@example.test.
    pub fn test(sender: &str) -> Facts {
        Facts {
            queue_id: "Q".into(),
            client_ip: "192.0.2.1".into(),
            helo: "client.test".into(),
            tls: false,
            sender: Some(sender.into()),
            recipients: vec!["b@example.test".into()],
        }
    }
}

/// A stage's view of one message.
pub struct Input<'a> {
    pub facts: &'a Facts,
    /// The message as received, with our Received header on top.
    pub raw: &'a [u8],
    /// `None` when the message could not be parsed at all.
    pub message: Option<&'a mail_parser::Message<'a>>,
}

pub trait Stage: Send + Sync {
    fn name(&self) -> &'static str;
    fn check<'a>(&'a self, input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>>;
    /// Starts background work (a remote stage's health probes); called
    /// once inside the runtime.
    fn start(&self) {}
    /// A remote stage's workers, for status.
    fn workers(&self) -> Vec<remote::EndpointStatus> {
        Vec::new()
    }
}

/// A stage with its time limit, error policy, mode and running totals.
struct Slot {
    stage: Arc<dyn Stage>,
    timeout: Duration,
    on_error: OnError,
    mode: Mode,
    nanos: AtomicU64,
    runs: AtomicU64,
}

/// Time spent per stage since start: `(name, runs, total nanoseconds)`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageTime {
    pub stage: String,
    pub runs: u64,
    pub total_ns: u64,
}

pub struct Pipeline {
    slots: Vec<Slot>,
    limits: message::Limits,
    policy: PolicyConfig,
    /// Senders allowed from the quarantine.
    allowed: Arc<allow::AllowSet>,
}

impl Pipeline {
    pub fn new(stages: Vec<Arc<dyn Stage>>, scan: &ScanConfig, policy: PolicyConfig) -> Pipeline {
        let slots = stages
            .into_iter()
            .map(|stage| {
                let (timeout, on_error) = scan.rule(stage.name());
                let mode = Mode::InSession;
                Slot { stage, timeout, on_error, mode, nanos: AtomicU64::new(0), runs: AtomicU64::new(0) }
            })
            .collect();
        Pipeline { slots, limits: scan.limits.clone(), policy, allowed: Arc::default() }
    }

    /// Builds the configured stages: built-in, remote and adapters.
    pub fn from_config(cfg: &crate::config::Config) -> Result<Pipeline, String> {
        let p = Pipeline::new(stages::build(cfg)?, &cfg.scan, cfg.policy.clone());
        Ok(p.with_defs(&cfg.pipeline.stage))
    }

    /// Applies `[[pipeline.stage]]`'s `timeout`, `on_error` and `mode`.
    fn with_defs(mut self, defs: &[StageDef]) -> Pipeline {
        for slot in &mut self.slots {
            let Some(d) = defs.iter().find(|d| d.name == slot.stage.name()) else { continue };
            let attempt = d.timeout.unwrap_or(slot.timeout);
            // A remote stage bounds each attempt itself and retries once.
            slot.timeout = if d.is_remote() { attempt * 2 + Duration::from_secs(1) } else { attempt };
            slot.on_error = d.on_error.unwrap_or(slot.on_error);
            slot.mode = d.mode;
        }
        self
    }

    /// Starts the stages' background work (health probes).
    pub fn start(&self) {
        self.slots.iter().for_each(|s| s.stage.start());
    }

    /// Every remote stage's workers.
    pub fn workers(&self) -> Vec<remote::EndpointStatus> {
        self.slots.iter().flat_map(|s| s.stage.workers()).collect()
    }

    /// True when some stage runs after the 250.
    pub fn has_after_queue(&self) -> bool {
        self.slots.iter().any(|s| s.mode == Mode::AfterQueue)
    }

    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    /// The quarantine's allow list, which the quarantine keeps up to date.
    pub fn allowed(&self) -> &Arc<allow::AllowSet> {
        &self.allowed
    }

    /// Scans one message and decides what happens to it.
    pub async fn run(&self, facts: &Facts, raw: &[u8]) -> Decision {
        let mut symbols = self.policy.list_symbols(facts);
        if let Some(sender) = facts.sender.as_deref()
            && self.allowed.allows(sender, &facts.recipients)
        {
            // Trusted like the configured allow list: only with SPF_PASS.
            symbols.push(Symbol::new(
                "ALLOWLIST_SENDER",
                0.0,
                format!("sender {sender} was allowed from the quarantine"),
            ));
        }
        if symbols.iter().any(|s| s.action == Some(Action::Reject)) {
            return self.policy.decide(symbols, Vec::new());
        }
        let parsed = message::parse(raw);
        symbols.extend(message::limit_symbols(parsed.as_ref(), &self.limits));
        // A message past a parser limit that holds it anyway is not scanned
        // further: hostile structure must not cost more CPU than that.
        let held = symbols.iter().any(|s| self.policy.action_of(s) >= Some(Action::Quarantine));
        let mode = if held { None } else { Some(Mode::InSession) };
        self.scan(facts, raw, parsed.as_ref(), mode, symbols, Vec::new()).await
    }

    /// The after-queue stages, on a message the in-session stages passed:
    /// their findings join `before`'s and the policy decides again.
    pub async fn run_after(&self, facts: &Facts, raw: &[u8], before: Option<&Decision>) -> Decision {
        let parsed = message::parse(raw);
        let (symbols, auth) = before.map(|d| (d.symbols.clone(), d.auth_results.clone())).unwrap_or_default();
        self.scan(facts, raw, parsed.as_ref(), Some(Mode::AfterQueue), symbols, auth).await
    }

    /// Runs the slots of `mode` (none for `None`) concurrently and decides.
    async fn scan(
        &self,
        facts: &Facts,
        raw: &[u8],
        parsed: Option<&mail_parser::Message<'_>>,
        mode: Option<Mode>,
        mut symbols: Vec<Symbol>,
        mut auth_results: Vec<String>,
    ) -> Decision {
        let slots: Vec<&Slot> = self.slots.iter().filter(|s| Some(s.mode) == mode).collect();
        let input = Input { facts, raw, message: parsed };
        let results = futures_util::future::join_all(slots.iter().map(|s| run_slot(s, &input))).await;
        for (slot, result) in slots.iter().zip(results) {
            match result {
                Ok(f) => {
                    symbols.extend(f.symbols);
                    auth_results.extend(f.auth_results);
                }
                Err(e) => symbols.push(error_symbol(slot, &e, &facts.queue_id)),
            }
        }
        let d = self.policy.decide(symbols, auth_results);
        let phase = if mode == Some(Mode::AfterQueue) { "after queue" } else { "in session" };
        tracing::info!(queue_id = %facts.queue_id, action = d.action.as_str(), score = d.score,
            symbols = %d.symbol_list(), reason = %d.reason, phase, "scanned");
        d
    }

    pub fn stage_times(&self) -> Vec<StageTime> {
        self.slots
            .iter()
            .map(|s| StageTime {
                stage: s.stage.name().to_string(),
                runs: s.runs.load(Ordering::Relaxed),
                total_ns: s.nanos.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// One stage, bounded in time; a panic is an error like any other, so a
/// hostile message cannot take the session down with it.
async fn run_slot(slot: &Slot, input: &Input<'_>) -> Result<Findings, StageError> {
    let start = Instant::now();
    let fut = AssertUnwindSafe(slot.stage.check(input)).catch_unwind();
    let r = match tokio::time::timeout(slot.timeout, fut).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err(StageError("the stage panicked".into())),
        Err(_) => Err(StageError(format!("timed out after {:?}", slot.timeout))),
    };
    slot.nanos.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    slot.runs.fetch_add(1, Ordering::Relaxed);
    r
}

/// `<STAGE>_ERROR`, with the action the stage's `on_error` names.
fn error_symbol(slot: &Slot, e: &StageError, queue_id: &str) -> Symbol {
    let name = slot.stage.name();
    tracing::warn!(queue_id, stage = name, error = %e, on_error = ?slot.on_error, "stage failed");
    let s = Symbol::new(format!("{}_ERROR", name.to_ascii_uppercase()), 0.0, format!("{name}: {e}"));
    match slot.on_error {
        OnError::Tempfail => s.with_action(Action::Tempfail),
        OnError::Quarantine => s.with_action(Action::Quarantine),
        OnError::Skip => s,
    }
}
