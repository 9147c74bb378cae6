//! `/api/v1/queue`: list, show, retry and delete queued messages. `show`
//! explains in one sentence why a message is still in the queue.

use super::extract::Id;
use super::{AdminState, error};
use crate::store::{QueueEntry, RcptStatus};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use std::sync::Arc;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/queue", get(list))
        .route("/queue/{id}", get(show).delete(delete))
        .route("/queue/{id}/retry", post(retry))
}

/// A queue entry as the API shows it.
#[derive(Serialize)]
pub struct View {
    #[serde(flatten)]
    entry: QueueEntry,
    delivering: bool,
    /// Why the message is still here, in words.
    why: String,
}

fn view(s: &AdminState, entry: QueueEntry) -> View {
    let delivering = s.queue.is_delivering(&entry.id);
    let why = explain(&entry, delivering, crate::time::now());
    View { entry, delivering, why }
}

pub fn explain(e: &QueueEntry, delivering: bool, now: u64) -> String {
    if delivering {
        return "a delivery attempt is running now".into();
    }
    let pending = e.recipients.iter().filter(|r| r.status == RcptStatus::Pending).count();
    match (&e.last_error, e.attempts) {
        (_, 0) => "waiting for its first delivery attempt".into(),
        (Some(err), n) => format!(
            "{pending} recipient(s) deferred after {n} attempt(s); last error: {err}; next attempt in {}s",
            e.next_attempt.saturating_sub(now)
        ),
        (None, n) => format!(
            "{pending} recipient(s) pending after {n} attempt(s); next attempt in {}s",
            e.next_attempt.saturating_sub(now)
        ),
    }
}

async fn list(State(s): State<Arc<AdminState>>) -> Response {
    match s.queue.ctx().store.list().await {
        Ok(mut all) => {
            all.sort_by(|a, b| a.id.cmp(&b.id));
            Json(all.into_iter().map(|e| view(&s, e)).collect::<Vec<_>>()).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn show(State(s): State<Arc<AdminState>>, Id(id): Id) -> Response {
    match s.queue.ctx().store.get(&id).await {
        Ok(Some(e)) => Json(view(&s, e)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, &format!("no queued message {id}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn retry(State(s): State<Arc<AdminState>>, Id(id): Id) -> Response {
    match s.queue.retry(&id).await {
        Ok(true) => Json(serde_json::json!({ "id": id, "result": "scheduled for delivery now" })).into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            &format!("no queued message {id} (a quarantined message is released with `mxgate quarantine release`)"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn delete(State(s): State<Arc<AdminState>>, Id(id): Id) -> Response {
    match s.queue.delete(&id).await {
        Ok(true) => Json(serde_json::json!({ "id": id, "result": "deleted" })).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, &format!("no queued message {id}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
