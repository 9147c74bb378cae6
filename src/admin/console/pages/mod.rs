//! The console's pages: one file per screen.

pub mod actions;
pub mod content;
pub mod list;
pub mod login;
pub mod message;

use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::Response;

use super::layout;
use super::session::Current;

/// A store failure, as a page; the detail goes to the log, not the browser.
fn failed(e: StoreError, user: &Current) -> Response {
    tracing::error!(error = %e, "console: store operation failed");
    layout::notice(StatusCode::INTERNAL_SERVER_ERROR, "Error", "The store failed; see the server log.", Some(user))
}
