//! The worker's request handler: authentication, the three endpoints,
//! and the bound on scans running at once.

use super::protocol::{self, ErrorBody, Health, Load};
use crate::pipeline::{Input, Stage, message};
use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

pub struct Served {
    pub stage: Arc<dyn Stage>,
    pub timeout: Duration,
}

pub struct Handler {
    pub stages: BTreeMap<&'static str, Served>,
    pub secret: Option<String>,
    pub max_in_flight: usize,
    pub max_message_size: usize,
    pub in_flight: AtomicUsize,
    pub served: AtomicU64,
    pub failed: AtomicU64,
    pub busy: AtomicU64,
}

type Answer = Response<Full<Bytes>>;

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(serde_json::to_vec(body).expect("serialise"))));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", "application/json".parse().expect("header"));
    r
}

fn error(status: StatusCode, message: impl Into<String>) -> Answer {
    json(status, &ErrorBody { error: message.into() })
}

impl Handler {
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Answer, std::convert::Infallible> {
        if !self.authorized(&req) {
            return Ok(error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token (the worker's secret)"));
        }
        let path = req.uri().path().to_string();
        Ok(match (req.method(), path.as_str()) {
            (&Method::GET, protocol::HEALTH) => json(StatusCode::OK, &self.health()),
            (&Method::GET, protocol::LOAD) => json(StatusCode::OK, &self.load()),
            (&Method::POST, p) if protocol::scan_stage(p).is_some() => {
                let stage = protocol::scan_stage(p).unwrap_or_default().to_string();
                self.scan(&stage, req).await
            }
            _ => error(
                StatusCode::NOT_FOUND,
                "no such endpoint: this worker speaks protocol v1 (/v1/scan/{stage}, /v1/health, /v1/load)",
            ),
        })
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let Some(secret) = &self.secret else { return true };
        let given = req.headers().get("authorization").map(|v| v.as_bytes()).unwrap_or_default();
        let want = format!("Bearer {secret}");
        // Compared in constant time: the token is the worker's only lock.
        given.len() == want.len() && given.iter().zip(want.as_bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    fn health(&self) -> Health {
        Health {
            protocol: protocol::VERSION,
            stages: self.stages.keys().map(|s| s.to_string()).collect(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn load(&self) -> Load {
        Load {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            max_in_flight: self.max_in_flight,
            served: self.served.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
        }
    }

    async fn scan(&self, name: &str, req: Request<Incoming>) -> Answer {
        let Some(served) = self.stages.get(name) else {
            let known: Vec<&str> = self.stages.keys().copied().collect();
            return error(
                StatusCode::NOT_FOUND,
                format!("stage `{name}` is not served here; served: {}", known.join(", ")),
            );
        };
        // Backpressure: past the bound the caller tries another worker.
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.busy.fetch_add(1, Ordering::Relaxed);
            return error(StatusCode::SERVICE_UNAVAILABLE, format!("busy: {} scans running", self.max_in_flight));
        }
        // Released even when the caller hangs up and this future is dropped.
        let _slot = Slot(&self.in_flight);
        let answer = self.scan_body(served, req).await;
        let counter = if answer.status() == StatusCode::OK { &self.served } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
        answer
    }

    async fn scan_body(&self, served: &Served, req: Request<Incoming>) -> Answer {
        let body = match Limited::new(req.into_body(), self.max_message_size).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                let max = self.max_message_size;
                return error(StatusCode::PAYLOAD_TOO_LARGE, format!("the request exceeds {max} octets"));
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the request: {e}")),
        };
        let (facts, raw) = match protocol::decode_scan(&body) {
            Ok(x) => x,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        };
        let parsed = message::parse(raw);
        let input = Input { facts: &facts, raw, message: parsed.as_ref() };
        let run = AssertUnwindSafe(served.stage.check(&input)).catch_unwind();
        match tokio::time::timeout(served.timeout, run).await {
            Ok(Ok(Ok(findings))) => json(StatusCode::OK, &findings),
            Ok(Ok(Err(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, e.0),
            Ok(Err(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, "the stage panicked"),
            Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("timed out after {:?}", served.timeout)),
        }
    }
}

struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
