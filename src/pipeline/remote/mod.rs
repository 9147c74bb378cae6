//! A stage that runs on scanning workers (`mxgate worker`, or any server
//! speaking `docs/worker-protocol.md`).
//!
//! - `balance`: least outstanding requests, ejection (pure).
//! - `conn`: HTTP/1.1 over TLS to one worker, pooled.
//!
//! A scan goes to the least busy healthy worker below `max_in_flight`; a
//! failure or timeout is retried once on another. No worker available
//! (all down, or all full: backpressure) is a stage error, so the stage's
//! `on_error` applies: by default 451, never a silent pass.

pub mod balance;
pub mod conn;

use super::{Findings, Input, Stage, StageDef, StageError};
use crate::store::BoxFut;
use crate::worker::protocol;
use balance::{Candidate, Failure, Health, State};
use bytes::Bytes;
use conn::{CallError, Conn};
use hyper::Method;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often each worker's health is checked.
const PROBE_EVERY: Duration = Duration::from_secs(1);

pub struct Endpoint {
    pub addr: String,
    conn: Conn,
    outstanding: AtomicUsize,
    health: Mutex<Health>,
    served: AtomicU64,
    failed: AtomicU64,
}

/// One worker as `GET /api/v1/pipeline/workers` reports it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct EndpointStatus {
    pub stage: String,
    pub addr: String,
    pub up: bool,
    pub outstanding: usize,
    pub served: u64,
    pub failed: u64,
    pub last_error: Option<String>,
}

pub struct RemoteStage {
    name: &'static str,
    endpoints: Vec<Arc<Endpoint>>,
    timeout: Duration,
    max_in_flight: usize,
    next: AtomicUsize,
}

/// Why no attempt could be made.
enum Unavailable {
    Down,
    Full,
}

impl RemoteStage {
    /// `timeout` bounds one attempt: `[[pipeline.stage]] timeout`, or the
    /// `[scan]` one.
    pub fn new(d: &StageDef, timeout: Duration) -> Result<RemoteStage, String> {
        let trust = crate::worker::trust::ClientTrust {
            stage: &d.name,
            secret: d.secret.as_deref(),
            ca: d.ca.as_ref(),
            cert: d.cert.as_ref(),
            key: d.key.as_ref(),
        };
        let tls = crate::worker::trust::client_config(&trust)?;
        let endpoints = d
            .remote
            .iter()
            .map(|addr| {
                Ok(Arc::new(Endpoint {
                    addr: addr.clone(),
                    conn: Conn::new(addr, tls.clone(), d.secret.as_deref())?,
                    outstanding: AtomicUsize::new(0),
                    health: Mutex::new(Health::default()),
                    served: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                }))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(RemoteStage {
            // Stage names live as long as the process; a config is loaded
            // once, so this leaks a few bytes once.
            name: static_name(&d.name),
            endpoints,
            timeout,
            max_in_flight: d.max_in_flight,
            next: AtomicUsize::new(0),
        })
    }

    fn pick(&self, exclude: Option<usize>) -> Result<usize, Unavailable> {
        let cs: Vec<Candidate> = self
            .endpoints
            .iter()
            .map(|e| Candidate {
                up: e.health.lock().expect("health lock").state == State::Up,
                outstanding: e.outstanding.load(Ordering::Relaxed),
            })
            .collect();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        match balance::pick(&cs, self.max_in_flight, exclude, start) {
            Some(i) => Ok(i),
            None if cs.iter().enumerate().any(|(i, c)| c.up && Some(i) != exclude) => Err(Unavailable::Full),
            None => Err(Unavailable::Down),
        }
    }

    async fn scan(&self, input: &Input<'_>) -> Result<Findings, StageError> {
        let body = Bytes::from(protocol::encode_scan(input.facts, input.raw));
        let path = format!("{}{}", protocol::SCAN_PREFIX, self.name);
        let mut tried = None;
        let mut errors = Vec::new();
        // One attempt, and one retry on another worker.
        for _ in 0..2 {
            let i = match self.pick(tried) {
                Ok(i) => i,
                // No other worker for the retry: the first error says why.
                Err(_) if tried.is_some() => break,
                Err(Unavailable::Full) => {
                    errors.push(format!("every worker is busy ({} scans each)", self.max_in_flight));
                    break;
                }
                Err(Unavailable::Down) => {
                    errors.push("no worker is in service".to_string());
                    break;
                }
            };
            let ep = &self.endpoints[i];
            match self.attempt(ep, &path, body.clone()).await {
                Ok(f) => return Ok(f),
                Err(e) => errors.push(format!("{}: {e}", ep.addr)),
            }
            tried = Some(i);
        }
        Err(StageError(errors.join("; ")))
    }

    async fn attempt(&self, ep: &Endpoint, path: &str, body: Bytes) -> Result<Findings, String> {
        ep.outstanding.fetch_add(1, Ordering::Relaxed);
        // Decremented even when the session is cut and this future dropped.
        let _slot = Release(&ep.outstanding);
        let answer = tokio::time::timeout(self.timeout, ep.conn.call(Method::POST, path, Some(body))).await;
        let result = match answer {
            Err(_) => Err((Failure::Failed, format!("no answer within {:?}", self.timeout))),
            Ok(Err(CallError::Unreachable(e))) => Err((Failure::Unreachable, e)),
            Ok(Err(CallError::Failed(e))) => Err((Failure::Failed, e)),
            Ok(Ok((200, b))) => protocol::decode_findings(&b).map_err(|e| (Failure::Failed, e)),
            // Busy is the worker's own backpressure, not a fault.
            Ok(Ok((503, b))) => return Err(protocol::error_text(503, &b)),
            Ok(Ok((status, b))) => Err((Failure::Failed, protocol::error_text(status, &b))),
        };
        match result {
            Ok(f) => {
                ep.served.fetch_add(1, Ordering::Relaxed);
                ep.health.lock().expect("health lock").succeeded();
                Ok(f)
            }
            Err((how, e)) => {
                ep.failed.fetch_add(1, Ordering::Relaxed);
                ep.note_failure(self.name, how, e.clone());
                Err(e)
            }
        }
    }

    pub fn status(&self) -> Vec<EndpointStatus> {
        self.endpoints
            .iter()
            .map(|e| {
                let h = e.health.lock().expect("health lock").clone();
                EndpointStatus {
                    stage: self.name.to_string(),
                    addr: e.addr.clone(),
                    up: h.state == State::Up,
                    outstanding: e.outstanding.load(Ordering::Relaxed),
                    served: e.served.load(Ordering::Relaxed),
                    failed: e.failed.load(Ordering::Relaxed),
                    last_error: h.last_error,
                }
            })
            .collect()
    }

    /// Health probes, one loop per worker, ending with the stage.
    fn probe(&self) {
        for ep in &self.endpoints {
            let weak = Arc::downgrade(ep);
            let (name, limit) = (self.name, self.timeout.min(Duration::from_secs(2)));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(PROBE_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(ep) = weak.upgrade() else { return };
                    ep.probe_once(name, limit).await;
                }
            });
        }
    }
}

impl Endpoint {
    async fn probe_once(&self, stage: &str, limit: Duration) {
        let answer = tokio::time::timeout(limit, self.conn.call(Method::GET, protocol::HEALTH, None)).await;
        let failure = match answer {
            Ok(Ok((200, _))) => None,
            Ok(Ok((status, b))) => Some((Failure::Failed, protocol::error_text(status, &b))),
            Ok(Err(CallError::Unreachable(e))) => Some((Failure::Unreachable, e)),
            Ok(Err(CallError::Failed(e))) => Some((Failure::Failed, e)),
            Err(_) => Some((Failure::Failed, format!("health check: no answer within {limit:?}"))),
        };
        match failure {
            None => {
                // A good probe brings a worker back, but does not excuse
                // failing scans: only a good scan resets that count.
                let mut h = self.health.lock().expect("health lock");
                if h.state == State::Down {
                    tracing::info!(stage, worker = %self.addr, "worker back in service");
                    h.succeeded();
                }
            }
            Some((how, e)) => self.note_failure(stage, how, e),
        }
    }

    fn note_failure(&self, stage: &str, how: Failure, error: String) {
        let out = self.health.lock().expect("health lock").failed(how, error.clone());
        if out {
            tracing::warn!(stage, worker = %self.addr, %error, "worker taken out of service; probing it");
        }
    }
}

struct Release<'a>(&'a AtomicUsize);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Stage for RemoteStage {
    fn name(&self) -> &'static str {
        self.name
    }

    fn check<'a>(&'a self, input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        Box::pin(self.scan(input))
    }

    fn start(&self) {
        self.probe();
    }

    fn workers(&self) -> Vec<EndpointStatus> {
        self.status()
    }
}

fn static_name(name: &str) -> &'static str {
    match super::stages::STAGES.iter().find(|n| **n == name) {
        Some(n) => n,
        None => Box::leak(name.to_string().into_boxed_str()),
    }
}
