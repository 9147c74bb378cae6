//! `GET /api/v1/cluster`: the storage cluster as this gateway sees it, and
//! as each node reports itself (for `mxgate cluster status`).

use super::AdminState;
use crate::cluster::core::health::State as NodeState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

pub async fn status(State(s): State<Arc<AdminState>>) -> Response {
    let Some(c) = &s.cluster else {
        let msg = "this gateway runs single-node (no [cluster] section)";
        return (StatusCode::NOT_FOUND, Json(json!({ "error": msg }))).into_response();
    };
    let reports = c.statuses().await;
    // One snapshot after the nodes answered, so states and `writable` agree.
    let health = c.health();
    let nodes: Vec<_> = c
        .nodes
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            // How far behind: records the other nodes hold for this one.
            let behind: u64 = reports
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .flat_map(|r| r.hints.iter())
                .filter(|(n, _)| n == addr)
                .map(|(_, c)| *c)
                .sum();
            let h = &health[i];
            let (report, error) = match &reports[i] {
                Ok(r) => (Some(r), None),
                Err(e) => (None, Some(e.clone())),
            };
            json!({
                "address": addr,
                "state": h.state,
                "rtt_ms": (h.rtt_ms * 100.0).round() / 100.0,
                "inflight": h.inflight,
                "load": report.map(|r| r.load),
                "records": report.map(|r| r.records),
                "catching_up": report.map(|r| r.catching_up),
                "behind": behind,
                "holding_for_others": report.map(|r| r.hints.iter().map(|(_, c)| c).sum::<u64>()),
                "disk_free": report.map(|r| r.disk_free),
                "error": error.or_else(|| h.last_error.clone()),
            })
        })
        .collect();
    let writable = health.iter().filter(|h| matches!(h.state, NodeState::Up | NodeState::CatchingUp)).count();
    Json(json!({
        "gateway": c.name,
        "replicas": c.replicas,
        "write_quorum": c.quorum,
        "writable": writable,
        "accepting_mail": writable >= c.quorum,
        "taken_over": c.taken_over.load(std::sync::atomic::Ordering::Relaxed),
        "nodes": nodes,
    }))
    .into_response()
}
