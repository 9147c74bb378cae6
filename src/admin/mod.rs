//! The admin HTTP listener: health endpoints and the queue API under
//! `/api/v1` that `mxgate queue` uses. With `[admin] token` set, the API
//! needs `Authorization: Bearer <token>`; health endpoints never do.

mod cluster;
mod console;
pub mod digest;
pub mod extract;
pub mod quarantine;
mod queue;

use crate::queue::Queue;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub struct AdminState {
    pub queue: Queue,
    pub pipeline: Arc<crate::pipeline::Pipeline>,
    pub quarantine: crate::quarantine::Quarantine,
    pub cfg: Arc<crate::config::Config>,
    pub token: Option<String>,
    pub shutdown: watch::Receiver<bool>,
    /// With `[cluster]`: the storage cluster, for `/api/v1/cluster`.
    pub cluster: Option<Arc<crate::cluster::gateway::Cluster>>,
}

pub fn router(state: Arc<AdminState>) -> Router {
    let api = queue::routes()
        .merge(quarantine::routes())
        .merge(digest::api_routes())
        .route("/pipeline/stages", get(stage_times))
        .route("/pipeline/workers", get(workers))
        .route("/cluster", get(cluster::status))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .nest("/api/v1", api)
        // Outside the token layer: a digest link's signature is its authority.
        .merge(digest::routes())
        .merge(console::routes(state.clone()))
        .route("/", get(|| async { Redirect::to("/console/") }))
        .fallback(|| async { (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"error": "no such endpoint"}))) })
        .with_state(state)
}

pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    let mut stop = state.shutdown.clone();
    let app = router(state);
    let graceful = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    // The peer address is for the console's login log.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(graceful).await {
        tracing::error!(error = %e, "admin listener failed");
    }
}

/// Time spent in each stage since start, for the benchmark and operators.
async fn stage_times(State(s): State<Arc<AdminState>>) -> axum::Json<Vec<crate::pipeline::StageTime>> {
    axum::Json(s.pipeline.stage_times())
}

/// Every remote stage's workers: in service or not, load, last error.
async fn workers(State(s): State<Arc<AdminState>>) -> axum::Json<Vec<crate::pipeline::remote::EndpointStatus>> {
    axum::Json(s.pipeline.workers())
}

async fn ready(State(s): State<Arc<AdminState>>) -> Response {
    match *s.shutdown.borrow() {
        true => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response(),
        false => match &s.cluster {
            Some(c) if c.writable_count() < c.quorum => {
                (StatusCode::SERVICE_UNAVAILABLE, "storage cluster below write_quorum\n").into_response()
            }
            _ => (StatusCode::OK, "ready\n").into_response(),
        },
    }
}

async fn auth(State(s): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    if let Some(token) = s.token.as_deref().filter(|t| !t.is_empty()) {
        let given =
            req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| console::constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    } else if let Some(why) = browser_on_loopback(req.headers()) {
        return error(StatusCode::FORBIDDEN, why);
    }
    next.run(req).await
}

/// Without a token, the API trusts whoever reaches the loopback listener;
/// a web page in a browser on this machine reaches it too. Browsers mark
/// their requests (Origin, Sec-Fetch-Site) and name the site's host, so a
/// cross-site form, or a DNS name rebound to 127.0.0.1, is refused. (A
/// bearer token is never sent by a browser on its own: with one, this
/// check is not needed.)
fn browser_on_loopback(h: &axum::http::HeaderMap) -> Option<&'static str> {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok());
    if get("origin").is_some() || get("sec-fetch-site").is_some_and(|v| v != "none") {
        return Some("requests from web pages need admin.token");
    }
    let host = get("host").unwrap_or("");
    let name = host.rsplit_once(':').map_or(host, |(n, p)| if p.parse::<u16>().is_ok() { n } else { host });
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let loopback =
        name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    (!host.is_empty() && !loopback).then_some("without admin.token the API answers only to a loopback Host")
}

pub fn error(code: StatusCode, msg: &str) -> Response {
    (code, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}
