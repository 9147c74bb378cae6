//! `/console/msg/{id}`: one held message: its record, why it was held,
//! the actions its status allows, and a safe preview (header fields, the
//! text, the sanitised HTML in a sandboxed frame, the attachments by name).

use super::super::Shared;
use super::super::form::encode;
use super::super::layout::{self, size, when};
use super::super::session::Current;
use crate::quarantine::preview::{self, Preview};
use crate::store::{QRecord, QStatus, StoreError};
use axum::Extension;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

pub async fn page(state: Shared, Extension(s): Extension<Current>, Path(id): Path<String>) -> Response {
    let c = &state.0;
    let rec = match c.admin.quarantine.get(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(&s),
        Err(e) => return super::failed(e, &s),
    };
    let preview = match rec.has_body {
        true => match c.admin.quarantine.raw(&id).await {
            // Parsing a large message is CPU work: off the async threads.
            Ok(raw) => Some(tokio::task::spawn_blocking(move || preview::build(&raw)).await.unwrap_or_default()),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return super::failed(e, &s),
        },
        false => None,
    };
    let flash = c.sessions.take_flash(&s.id);
    let title = if rec.subject.is_empty() { "(no subject)" } else { rec.subject.as_str() };
    let body = html! {
        p { a href="/console/" { "← Quarantine" } }
        h1 { (title) }
        (actions(&s, &rec))
        div.card { (fields(&rec)) }
        h2 { "Why it was held" }
        div.card { (reasons(&rec)) }
        @match &preview {
            Some(p) => (shown(&rec, p)),
            None => p { "The message itself is gone (" (rec.status.as_str()) "); only its record is kept." },
        }
    };
    layout::page(title, Some(&s), flash, body).into_response()
}

pub fn not_found(s: &Current) -> Response {
    layout::notice(StatusCode::NOT_FOUND, "Not found", "There is no quarantined message with this id.", Some(s))
}

pub fn href(id: &str) -> String {
    format!("/console/msg/{}", encode(id))
}

/// The buttons the status allows; each is a POST form with the CSRF token,
/// and the script asks for confirmation first.
fn actions(s: &Current, rec: &QRecord) -> Markup {
    let base = href(&rec.id);
    let held = rec.status == QStatus::Held;
    let button = |path: &str, label: &str, ask: &str, class: &str| {
        html! {
            form method="post" action={ (base) "/" (path) } data-confirm=(ask) {
                input type="hidden" name="csrf" value=(s.csrf);
                button class=(class) type="submit" { (label) }
            }
        }
    };
    html! {
        div.actions {
            @if held {
                (button("release", "Release", "Release this message to its recipients?", "primary"))
                (button("allow", "Release and allow sender", "Release this message and always allow its sender?", ""))
            }
            @if rec.has_body && rec.status.can_become(QStatus::Deleted) {
                (button("delete", "Delete", "Delete this message for good?", "danger"))
            }
            @if rec.has_body {
                a.button href={ (base) "/raw" } download { "Download raw (.eml)" }
            }
        }
    }
}

fn fields(r: &QRecord) -> Markup {
    let or_none = |s: &str| if s.is_empty() { "—".to_string() } else { s.to_string() };
    html! {
        dl.fields {
            dt { "Status" } dd { span class={ "status-" (r.status.as_str()) } { (r.status.as_str()) }
                @if let Some(a) = &r.changed { " by " (a.by) " at " (when(a.at)) } }
            dt { "Received" } dd { (when(r.received_at)) " UTC from " (r.client_ip) " (" (r.helo) ")"
                @if r.tls { ", TLS" } }
            dt { "Envelope sender" } dd { (r.sender.as_deref().unwrap_or("<>")) }
            dt { "Recipients" } dd { (r.recipients.join(", ")) }
            dt { "From" } dd { (or_none(&r.from)) }
            dt { "To" } dd { (or_none(&r.to)) }
            dt { "Date" } dd { (or_none(&r.date)) }
            dt { "Message-ID" } dd { (or_none(&r.message_id)) }
            dt { "Size" } dd { (size(r.size)) }
            dt { "Verdict" } dd { (r.action.as_str()) ", score " (format!("{:.1}", r.score)) ": " (r.reason) }
            dt { "Id" } dd { code { (r.id) } }
            dt { "Kept until" } dd { (when(r.expires_at)) " UTC" }
        }
    }
}

fn reasons(r: &QRecord) -> Markup {
    html! {
        @if r.symbols.is_empty() {
            p { (r.reason) }
        } @else {
            table.reasons {
                thead { tr { th { "Symbol" } th { "Score" } th { "Reason" } } }
                tbody {
                    @for s in &r.symbols {
                        tr { td { code { (s.name) } } td { (format!("{:.1}", s.score)) } td { (s.reason) } }
                    }
                }
            }
        }
    }
}

/// The preview: attachments, the HTML in a sandboxed frame (no scripts, no
/// same-origin access, no navigation), the text, all header fields.
fn shown(r: &QRecord, p: &Preview) -> Markup {
    html! {
        @if !p.attachments.is_empty() {
            h2 { "Attachments" }
            div.card { table {
                thead { tr { th { "Name" } th { "Type" } th { "Size" } } }
                tbody { @for a in &p.attachments { tr { td { (a.name) } td { (a.content_type) } td { (size(a.size as u64)) } } } }
            } }
        }
        @if p.html.is_some() {
            h2 { "HTML preview" }
            @if p.blocked_images > 0 {
                p { (p.blocked_images) " remote image(s) were not loaded." }
            }
            iframe sandbox="" src={ (href(&r.id)) "/html" } title="HTML preview" referrerpolicy="no-referrer" {}
        }
        h2 { "Text" }
        pre { (p.text) }
        details {
            summary { "Header fields (" (p.headers.len()) ")" }
            div.card { table {
                tbody { @for (k, v) in &p.headers { tr { th { (k) } td { (v) } } } }
            } }
        }
    }
}
