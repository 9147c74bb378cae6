//! `/console/`: the search form, one page of results (newest first, an
//! "Older" link carries the cursor), and bulk actions on the selected
//! messages or on everything the search matches.

use super::super::form::{Form, encode};
use super::super::layout::{self, size, when};
use super::super::session::{Current, Flash};
use super::super::{Shared, after_post};
use crate::quarantine::{BulkAction, filter};
use crate::store::QRecord;
use axum::Extension;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use std::collections::BTreeMap;

/// Most messages one bulk action touches (as in the API).
const MAX_BULK: usize = 10_000;

/// The text fields of the search form: name, label, placeholder.
const FIELDS: [(&str, &str, &str); 7] = [
    ("recipient", "Recipient", "user@example.com"),
    ("sender", "Sender", "someone@example.net"),
    ("domain", "Domain", "example.net"),
    ("symbol", "Symbol", "ATTACHMENT_*"),
    ("subject", "Subject", "text in the subject"),
    ("since", "Since", "24h or 2026-11-26"),
    ("until", "Until", "2026-11-27"),
];

const STATUSES: [&str; 5] = ["held", "released", "deleted", "expired", "all"];

pub async fn page(
    state: Shared,
    Extension(s): Extension<Current>,
    Query(mut q): Query<BTreeMap<String, String>>,
) -> Response {
    let c = &state.0;
    // Held messages are what needs attention; `all` widens the search.
    q.entry("status".into()).or_insert_with(|| "held".into());
    let flash = c.sessions.take_flash(&s.id);
    let (items, next, error) = match filter::parse(&q, crate::time::now()) {
        Err(msg) => (Vec::new(), None, Some(msg)),
        Ok((f, p)) => match c.admin.quarantine.search(f, p).await {
            Ok(r) => (r.items, r.next, None),
            Err(e) => return super::failed(e, &s),
        },
    };
    let search: BTreeMap<String, String> = q.into_iter().filter(|(k, _)| k != "cursor").collect();
    let body = html! {
        h1 { "Quarantine" }
        (search_form(&search))
        @if let Some(e) = &error {
            p.error role="alert" { (e) }
        }
        (results(&s, &search, &items))
        @if let Some(n) = next {
            p.pager { a.button href={ "/console/?" (query(&search)) "&cursor=" (encode(&n)) } { "Older →" } }
        }
    };
    layout::page("Quarantine", Some(&s), flash, body).into_response()
}

fn search_form(q: &BTreeMap<String, String>) -> Markup {
    let status = q.get("status").map_or("held", String::as_str);
    html! {
        form.search method="get" action="/console/" role="search" {
            @for (name, label, hint) in FIELDS {
                label { (label) input name=(name) value=[q.get(name)] placeholder=(hint); }
            }
            label { "Status"
                select name="status" {
                    @for st in STATUSES { option value=(st) selected[st == status] { (st) } }
                }
            }
            button.primary.go type="submit" { "Search" }
        }
    }
}

fn results(s: &Current, search: &BTreeMap<String, String>, items: &[QRecord]) -> Markup {
    html! {
        form #bulk method="post" action="/console/bulk" data-confirm="" {
            input type="hidden" name="csrf" value=(s.csrf);
            @for (k, v) in search {
                input type="hidden" name={ "q_" (k) } value=(v);
            }
            div.actions {
                label { input #select-all type="checkbox"; " Select all on this page" }
                button type="submit" name="action" value="release" data-confirm="Release" { "Release" }
                button.danger type="submit" name="action" value="delete" data-confirm="Delete" { "Delete" }
                button type="submit" name="action" value="allow" data-confirm="Release and allow the sender of" { "Allow sender" }
                label { input type="checkbox" name="all_matching" value="on"; " Apply to all matching this search" }
            }
            div.card.listing {
                @if items.is_empty() {
                    p { "No messages match." }
                } @else {
                    table.list {
                        thead { tr { th {} th { "Time" } th { "From" } th { "To" } th { "Subject" } th { "Reasons" } th { "Size" } th { "Status" } } }
                        tbody { @for r in items { (row(r)) } }
                    }
                }
            }
        }
    }
}

fn row(r: &QRecord) -> Markup {
    let from = if !r.from.is_empty() { r.from.clone() } else { r.sender.clone().unwrap_or_else(|| "<>".into()) };
    let more = r.recipients.len().saturating_sub(3);
    html! {
        tr {
            td data-label="Select" { input type="checkbox" name="id" value=(r.id) aria-label="select"; }
            td.nowrap data-label="Time" { (when(r.received_at)) }
            td data-label="From" { (from) }
            td data-label="To" {
                (r.recipients.iter().take(3).cloned().collect::<Vec<_>>().join(", "))
                @if more > 0 { " +" (more) " more" }
            }
            td data-label="Subject" {
                a href={ "/console/msg/" (encode(&r.id)) } {
                    @if r.subject.is_empty() { "(no subject)" } @else { (r.subject) }
                }
            }
            td data-label="Reasons" { @for sym in &r.symbols { span.tag title=(sym.reason) { (sym.name) } } }
            td.nowrap data-label="Size" { (size(r.size)) }
            td.nowrap data-label="Status" { span class={ "status-" (r.status.as_str()) } { (r.status.as_str()) } }
        }
    }
}

/// The search as a query string.
fn query(q: &BTreeMap<String, String>) -> String {
    q.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// `POST /console/bulk`: `action` on the checked `id`s, or, with
/// `all_matching`, on every message the search (`q_*` fields) matches.
pub async fn bulk(state: Shared, Extension(s): Extension<Current>, Extension(f): Extension<Form>) -> Response {
    let c = &state.0;
    let search: BTreeMap<String, String> =
        f.0.iter().filter_map(|(k, v)| k.strip_prefix("q_").map(|k| (k.to_string(), v.clone()))).collect();
    let back = format!("/console/?{}", query(&search));
    let (action, done) = match f.get("action") {
        Some("release") => (BulkAction::Release, "Released"),
        Some("delete") => (BulkAction::Delete, "Deleted"),
        Some("allow") => (BulkAction::Allow, "Allowed the sender and released"),
        _ => return after_post(c, &s, Flash::warn("Choose release, delete or allow sender."), &back),
    };
    let ids = if f.get("all_matching") == Some("on") {
        let filter = match filter::parse(&search, crate::time::now()) {
            Ok((filter, _)) => filter,
            Err(msg) => return after_post(c, &s, Flash::warn(msg), &back),
        };
        match c.admin.quarantine.ids(filter, MAX_BULK).await {
            Ok(ids) => ids,
            Err(e) => return super::failed(e, &s),
        }
    } else {
        f.all("id").into_iter().take(MAX_BULK).collect()
    };
    if ids.is_empty() {
        return after_post(c, &s, Flash::warn("No messages were selected."), &back);
    }
    let tally = match c.admin.quarantine.bulk(action, &ids, s.actor).await {
        Ok(t) => t,
        Err(e) => return super::failed(e, &s),
    };
    let mut text = format!("{done} {} message{}.", tally.done.len(), plural(tally.done.len()));
    if !tally.refused.is_empty() {
        text += &format!(" {} refused: already released, deleted or expired.", tally.refused.len());
    }
    if !tally.not_found.is_empty() {
        text += &format!(" {} not found.", tally.not_found.len());
    }
    let flash = if tally.done.len() == ids.len() { Flash::ok(text) } else { Flash::warn(text) };
    after_post(c, &s, flash, &back)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
