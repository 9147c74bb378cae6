//! A held message's content: the sanitised HTML for the preview frame and
//! the raw message for download. Both need the session cookie like every
//! other console page.

use super::super::Shared;
use super::super::layout;
use super::super::session::Current;
use super::message::not_found;
use crate::quarantine::preview;
use crate::store::StoreError;
use axum::Extension;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The preview's own policy, stricter than the pages': nothing loads but
/// inline `data:` images and inline styles, no script runs, the document
/// is sandboxed even when opened outside the frame, and only our own page
/// may frame it.
const PREVIEW_CSP: &str =
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox; frame-ancestors 'self'";

/// Placeholders the sanitiser leaves for blocked images and links.
const PREVIEW_STYLE: &str = "body{font-family:system-ui,sans-serif;margin:.6em;overflow-wrap:anywhere}\
    .mxgate-img{display:inline-block;border:1px dashed #999;color:#666;padding:0 .3em;font-size:.85em}\
    .mxgate-link{color:#1f5fbf;text-decoration:underline dotted}";

/// `GET /console/msg/{id}/html`: `preview::build(raw).html` in a minimal
/// document.
pub async fn html(state: Shared, Extension(s): Extension<Current>, Path(id): Path<String>) -> Response {
    let raw = match state.0.admin.quarantine.raw(&id).await {
        Ok(raw) => raw,
        Err(StoreError::NotFound(_)) => return gone(&state, &s, &id).await,
        Err(e) => return super::failed(e, &s),
    };
    let built = tokio::task::spawn_blocking(move || preview::build(&raw)).await.unwrap_or_default();
    let Some(html) = built.html else {
        return layout::notice(StatusCode::NOT_FOUND, "No HTML", "This message has no HTML part.", Some(&s));
    };
    let doc = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>{PREVIEW_STYLE}</style></head><body>{html}</body></html>"
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PREVIEW_CSP),
            (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        doc,
    )
        .into_response()
}

/// `GET /console/msg/{id}/raw`: the message as it was held, as a download.
pub async fn raw(state: Shared, Extension(s): Extension<Current>, Path(id): Path<String>) -> Response {
    match state.0.admin.quarantine.raw(&id).await {
        Ok(bytes) => {
            let name = id.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
            let disposition = format!("attachment; filename=\"{name}.eml\"");
            ([(header::CONTENT_TYPE, "message/rfc822".to_string()), (header::CONTENT_DISPOSITION, disposition)], bytes)
                .into_response()
        }
        Err(StoreError::NotFound(_)) => gone(&state, &s, &id).await,
        Err(e) => super::failed(e, &s),
    }
}

/// No body: either no such message, or its body was deleted or expired.
async fn gone(state: &Shared, s: &Current, id: &str) -> Response {
    match state.0.admin.quarantine.get(id).await {
        Ok(Some(r)) => {
            let text = format!("This message is {}; its content is gone.", r.status.as_str());
            layout::notice(StatusCode::GONE, "Gone", &text, Some(s))
        }
        Ok(None) => not_found(s),
        Err(e) => super::failed(e, s),
    }
}
