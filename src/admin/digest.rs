//! The pages behind digest links, and `POST /api/v1/quarantine/digest`.
//!
//! `/digest/{release,allow}` need no token: the link's signature is the
//! authority. A GET only shows what the link would do, with a button; only
//! the POST that button sends acts, so mail scanners that follow links do
//! not release mail. The POST carries the same signed fields and is checked
//! again in full, so it needs no CSRF token either.

use super::{AdminState, error};
use crate::quarantine::Outcome;
use crate::quarantine::digest::{self, Action, Invalid, Link, Signer, links};
use crate::store::{QRecord, QStatus, StoreError};
use crate::time::rfc5322;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The link pages; mount outside the token-protected `/api/v1`.
pub fn routes() -> Router<Arc<AdminState>> {
    Router::new().route("/digest/{action}", get(confirm).post(act))
}

/// `POST /quarantine/digest`; mount inside `/api/v1`.
pub fn api_routes() -> Router<Arc<AdminState>> {
    Router::new().route("/quarantine/digest", post(run))
}

/// Sends the digests due now: `{"recipients": n, "messages": m}`.
async fn run(State(s): State<Arc<AdminState>>, h: HeaderMap) -> Response {
    match digest::run_now(&s.quarantine, &s.queue, &s.cfg, &super::quarantine::actor(&h)).await {
        Ok(summary) => Json(summary).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn confirm(
    State(s): State<Arc<AdminState>>,
    Path(action): Path<String>,
    Query(p): Query<BTreeMap<String, String>>,
) -> Response {
    let (link, rec) = match checked(&s, &action, &p).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    if rec.status != QStatus::Held {
        return status_page(StatusCode::OK, &rec);
    }
    let (title, button) = match link.action {
        Action::Release => ("Release this message?", "Release"),
        Action::Allow => ("Release this message and allow its sender?", "Release and allow sender"),
    };
    let body = html! {
        (summary(&rec, &link))
        @if link.action == Action::Allow {
            (allowed(&rec, &link, "will be added"))
        }
        // Relative action: right behind a reverse proxy with a path prefix.
        form method="post" action=(link.action.as_str()) {
            // The fields just checked, the signature as given.
            @for (k, v) in [("id", link.id.clone()), ("rcpt", link.rcpt.clone()), ("exp", link.exp.to_string()),
                ("sig", p.get("sig").cloned().unwrap_or_default())] {
                input type="hidden" name=(k) value=(v);
            }
            button type="submit" { (button) }
        }
        p.note { "Nothing happens until you press the button." }
    };
    page(StatusCode::OK, title, body)
}

async fn act(State(s): State<Arc<AdminState>>, Path(action): Path<String>, body: Bytes) -> Response {
    let p = links::parse_form(&String::from_utf8_lossy(&body));
    let (link, _) = match checked(&s, &action, &p).await {
        Ok(x) => x,
        Err(page) => return page,
    };
    let by = format!("digest:{}", link.rcpt);
    let out = match link.action {
        Action::Release => s.quarantine.release(&link.id, &by).await,
        Action::Allow => s.quarantine.allow(&link.id, &by, Some(&link.rcpt)).await,
    };
    match out {
        Ok(Outcome::Done(rec)) => {
            let body = html! {
                (summary(&rec, &link))
                p { "The message is on its way to your mailbox." }
                @if link.action == Action::Allow {
                    (allowed(&rec, &link, "was added"))
                }
            };
            page(StatusCode::OK, "Released", body)
        }
        Ok(Outcome::Refused(rec)) => status_page(StatusCode::CONFLICT, &rec),
        Ok(Outcome::NotFound) => gone_message(),
        Err(e) => internal(e),
    }
}

/// The link's checks, in order: a known action, the signature, the expiry,
/// the message, and that the link's recipient is one of its recipients.
async fn checked(s: &AdminState, action: &str, p: &BTreeMap<String, String>) -> Result<(Link, QRecord), Response> {
    let Some(action) = Action::parse(action) else {
        return Err(page(StatusCode::NOT_FOUND, "Not found", html! { p { "There is no such page." } }));
    };
    let signer = Signer::load(s.quarantine.store().as_ref(), &s.cfg.quarantine.digest).await.map_err(internal)?;
    let link = match signer.check(action, p, crate::time::now()) {
        Ok(l) => l,
        Err(Invalid::Malformed(field)) => {
            let body =
                html! { p { "The link lacks its " code { (field) } " part. Copy the whole link from the digest." } };
            return Err(page(StatusCode::BAD_REQUEST, "Incomplete link", body));
        }
        Err(Invalid::BadSignature) => {
            let body =
                html! { p { "This link is not valid: it was changed, or it is not from a digest of this gateway." } };
            return Err(page(StatusCode::FORBIDDEN, "Invalid link", body));
        }
        Err(Invalid::Expired(l)) => {
            let when = rfc5322(l.exp);
            let body = html! {
                p { "This link expired on " (when) ". Use a newer digest, or ask your mail administrator." }
            };
            return Err(page(StatusCode::GONE, "Link expired", body));
        }
    };
    let rec = match s.quarantine.get(&link.id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(gone_message()),
        Err(e) => return Err(internal(e)),
    };
    // Signed links only name recipients, but check: a link acts for its
    // recipient and nobody else.
    if !rec.recipients.iter().any(|r| r.eq_ignore_ascii_case(&link.rcpt)) {
        let body = html! { p { "This message was not sent to " (link.rcpt) "." } };
        return Err(page(StatusCode::FORBIDDEN, "Not your message", body));
    }
    // One click must not deliver a message to everyone it was sent to: a
    // message with several recipients is released by an administrator.
    if rec.recipients.len() > 1 {
        let n = rec.recipients.len();
        let body =
            html! { p { "This message was sent to " (n) " recipients. Ask your mail administrator to release it." } };
        return Err(page(StatusCode::FORBIDDEN, "Released by an administrator", body));
    }
    Ok((link, rec))
}

fn summary(rec: &QRecord, link: &Link) -> Markup {
    let from = if rec.from.is_empty() { rec.sender.as_deref().unwrap_or("<>") } else { &rec.from };
    html! {
        dl {
            dt { "From" } dd { (from) }
            dt { "Subject" } dd { (rec.subject) }
            dt { "Received" } dd { (rfc5322(rec.received_at)) }
            dt { "For" } dd { (link.rcpt) }
            dt { "Held because" } dd { (rec.reason) }
        }
    }
}

/// What "allow" does: the sender goes on the allow list for this
/// recipient (the pipeline still asks SPF to vouch for it).
fn allowed(rec: &QRecord, link: &Link, done: &str) -> Markup {
    let sender = rec.sender.as_deref().unwrap_or("<>");
    html! { p { "The sender " b { (sender) } " " (done) " to the allow list for " (link.rcpt) "." } }
}

/// A message that is no longer held: say what became of it.
fn status_page(code: StatusCode, rec: &QRecord) -> Response {
    let when = rec.changed.as_ref().map(|c| rfc5322(c.at)).unwrap_or_default();
    let (title, text) = match rec.status {
        QStatus::Released => ("Already released", format!("This message was already released on {when}.")),
        QStatus::Deleted => ("Deleted", format!("This message was deleted from the quarantine on {when}.")),
        QStatus::Expired => ("Expired", "This message was kept for its retention period and is gone.".to_string()),
        QStatus::Held => ("Held", "This message is still held.".to_string()),
    };
    let body = html! { p { (text) } p { "Subject: " (rec.subject) } };
    page(code, title, body)
}

fn gone_message() -> Response {
    page(StatusCode::NOT_FOUND, "Message not found", html! { p { "The quarantine has no such message." } })
}

fn internal(e: StoreError) -> Response {
    tracing::error!(error = %e, "digest link page failed");
    let body = html! { p { "Something went wrong on our side. Please try again later." } };
    page(StatusCode::INTERNAL_SERVER_ERROR, "Error", body)
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#f6f6f6}\
main{max-width:36rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:8px}\
h1{font-size:1.3rem}dt{font-weight:600;margin-top:.5rem}dd{margin:0;overflow-wrap:anywhere}\
button{font-size:1rem;padding:.6rem 1.2rem;margin-top:1rem;border:0;border-radius:6px;background:#1d5fbf;color:#fff}\
.note{color:#666;font-size:.9rem}";

/// An HTML page with headers that allow no script, no framing, no
/// referrer (the URL carries the link) and no caching.
fn page(code: StatusCode, title: &str, body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " - quarantine" }
                style { (PreEscaped(CSS)) }
            }
            body { main { h1 { (title) } (body) } }
        }
    };
    let mut r = (code, doc).into_response();
    let h = r.headers_mut();
    let csp =
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
