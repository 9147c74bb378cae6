//! `/api/v1/quarantine`: search, show, raw download, release, delete,
//! release-and-allow, bulk actions; `/api/v1/audit` and
//! `/api/v1/allowlist`. Errors are JSON `{"error": ...}`: 400 for a bad
//! filter or body, 404 for an unknown id, 409 when the status forbids the
//! action (already released, deleted, expired).

use super::extract::{Id, Params};
use super::{AdminState, error};
use crate::quarantine::{BulkAction, Outcome, filter, preview};
use crate::store::{AllowEntry, QRecord, StoreError};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/quarantine", get(list))
        .route("/quarantine/bulk", post(bulk))
        .route("/quarantine/{id}", get(show).delete(delete))
        .route("/quarantine/{id}/raw", get(raw))
        .route("/quarantine/{id}/release", post(release))
        .route("/quarantine/{id}/allow", post(allow))
        .route("/audit", get(audit))
        .route("/allowlist", get(allow_list).delete(disallow))
}

/// A record as the API shows it: every stored field, plus `reasons`, one
/// line per symbol (`NAME: why`).
#[derive(Serialize)]
pub struct View {
    #[serde(flatten)]
    rec: QRecord,
    reasons: Vec<String>,
}

pub fn view(rec: QRecord) -> View {
    let reasons = rec.symbols.iter().map(|s| format!("{}: {}", s.name, s.reason)).collect();
    View { rec, reasons }
}

/// Who is acting: `api`, or `api:<name>` when the caller says who it is
/// with `X-Mxgate-Actor` (the CLI sends `cli:<user>`).
pub fn actor(headers: &HeaderMap) -> String {
    let named = headers
        .get("x-mxgate-actor")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().filter(|c| c.is_ascii_graphic()).take(64).collect::<String>());
    match named.filter(|n| !n.is_empty()) {
        Some(n) => format!("api:{n}"),
        None => "api".into(),
    }
}

fn internal(e: StoreError) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
}

fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("no quarantined message {id}"))
}

async fn list(State(s): State<Arc<AdminState>>, Params(params): Params) -> Response {
    let (f, page) = match filter::parse(&params, crate::time::now()) {
        Ok(x) => x,
        Err(msg) => return error(StatusCode::BAD_REQUEST, &msg),
    };
    match s.quarantine.search(f, page).await {
        Ok(r) => {
            let mut resp = Json(r.items.into_iter().map(view).collect::<Vec<_>>()).into_response();
            if let Some(next) = r.next.and_then(|n| n.parse().ok()) {
                resp.headers_mut().insert("x-next-cursor", next);
            }
            resp
        }
        Err(e) => internal(e),
    }
}

#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    view: View,
    preview: Option<preview::Preview>,
}

async fn show(State(s): State<Arc<AdminState>>, Id(id): Id) -> Response {
    let rec = match s.quarantine.get(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(&id),
        Err(e) => return internal(e),
    };
    let preview = match rec.has_body {
        true => match s.quarantine.raw(&id).await {
            Ok(raw) => Some(tokio::task::spawn_blocking(move || preview::build(&raw)).await.unwrap_or_default()),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return internal(e),
        },
        false => None,
    };
    Json(Shown { view: view(rec), preview }).into_response()
}

async fn raw(State(s): State<Arc<AdminState>>, Id(id): Id) -> Response {
    match s.quarantine.raw(&id).await {
        Ok(bytes) => {
            let name =
                format!("attachment; filename=\"{}.eml\"", id.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
            ([(header::CONTENT_TYPE, "message/rfc822".to_string()), (header::CONTENT_DISPOSITION, name)], bytes)
                .into_response()
        }
        Err(StoreError::NotFound(_)) => match s.quarantine.get(&id).await {
            Ok(Some(r)) => error(StatusCode::GONE, &format!("message {id} is {}; its body is gone", r.status.as_str())),
            _ => not_found(&id),
        },
        Err(e) => internal(e),
    }
}

/// The reply for a single-message action.
fn answer(id: &str, verb: &str, out: Result<Outcome, StoreError>) -> Response {
    match out {
        Ok(Outcome::Done(rec)) => {
            Json(serde_json::json!({ "id": id, "result": verb, "record": view(rec) })).into_response()
        }
        Ok(Outcome::Refused(rec)) => {
            let by = rec.changed.map(|c| format!(" by {} at {}", c.by, crate::time::rfc5322(c.at))).unwrap_or_default();
            let status = rec.status.as_str();
            error(StatusCode::CONFLICT, &format!("message {id} was already {status}{by}; it cannot be {verb} now"))
        }
        Ok(Outcome::NotFound) => not_found(id),
        Err(e) => internal(e),
    }
}

async fn release(State(s): State<Arc<AdminState>>, Id(id): Id, h: HeaderMap) -> Response {
    answer(&id, "released", s.quarantine.release(&id, &actor(&h)).await)
}

async fn delete(State(s): State<Arc<AdminState>>, Id(id): Id, h: HeaderMap) -> Response {
    answer(&id, "deleted", s.quarantine.delete(&id, &actor(&h)).await)
}

/// Releases and allows the sender; `?scope=<recipient>` limits the
/// allowance to that recipient (default: every recipient).
async fn allow(State(s): State<Arc<AdminState>>, Id(id): Id, h: HeaderMap, Params(p): Params) -> Response {
    let scope = p.get("scope").map(String::as_str).filter(|x| !x.is_empty());
    answer(&id, "released", s.quarantine.allow(&id, &actor(&h), scope).await)
}

/// Most messages one bulk request acts on.
const MAX_BULK: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkRequest {
    action: BulkAction,
    /// These ids...
    #[serde(default)]
    ids: Vec<String>,
    /// ...or every match of this search (the list's query parameters).
    filter: Option<BTreeMap<String, String>>,
    /// Most messages one request acts on (default and ceiling 10000).
    max: Option<usize>,
}

async fn bulk(
    State(s): State<Arc<AdminState>>,
    h: HeaderMap,
    body: Result<Json<BulkRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad bulk request: {}", e.body_text())),
    };
    let ids = match (&req.filter, req.ids.is_empty()) {
        (Some(params), true) => {
            let f = match filter::parse(params, crate::time::now()) {
                Ok((f, _)) => f,
                Err(m) => return error(StatusCode::BAD_REQUEST, &m),
            };
            match s.quarantine.ids(f, req.max.unwrap_or(MAX_BULK).min(MAX_BULK)).await {
                Ok(ids) => ids,
                Err(e) => return internal(e),
            }
        }
        (None, false) if req.ids.len() <= MAX_BULK => req.ids,
        (None, false) => return error(StatusCode::BAD_REQUEST, &format!("at most {MAX_BULK} ids per bulk request")),
        _ => return error(StatusCode::BAD_REQUEST, "give either `ids` or `filter`, not both and not neither"),
    };
    match s.quarantine.bulk(req.action, &ids, &actor(&h)).await {
        Ok(tally) => Json(tally).into_response(),
        Err(e) => internal(e),
    }
}

async fn audit(State(s): State<Arc<AdminState>>, Params(p): Params) -> Response {
    let limit = match p.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=10_000).contains(&n) => n,
        Some(_) => return error(StatusCode::BAD_REQUEST, "invalid `limit`: expected 1 to 10000"),
    };
    match s.quarantine.audit_log(limit).await {
        Ok(entries) => Json(entries).into_response(),
        Err(e) => internal(e),
    }
}

async fn allow_list(State(s): State<Arc<AdminState>>) -> Response {
    match s.quarantine.allow_list().await {
        Ok(entries) => Json(entries).into_response(),
        Err(e) => internal(e),
    }
}

/// `DELETE /api/v1/allowlist?sender=...&scope=...` (scope default `*`).
async fn disallow(State(s): State<Arc<AdminState>>, h: HeaderMap, Params(p): Params) -> Response {
    let Some(sender) = p.get("sender").filter(|x| !x.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "`sender` is required");
    };
    let entry =
        AllowEntry { sender: sender.to_lowercase(), scope: p.get("scope").map_or("*".into(), |x| x.to_lowercase()) };
    match s.quarantine.allow_list().await {
        Ok(all) if !all.contains(&entry) => return error(StatusCode::NOT_FOUND, "no such allow-list entry"),
        Err(e) => return internal(e),
        _ => {}
    }
    match s.quarantine.disallow(entry, &actor(&h)).await {
        Ok(()) => Json(serde_json::json!({ "result": "removed" })).into_response(),
        Err(e) => internal(e),
    }
}
