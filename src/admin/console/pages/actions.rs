//! The message page's buttons: release, delete, release and allow the
//! sender. Each answers with a redirect back to the message (303, so a
//! reload does not post again) and a flash saying what happened; an action
//! the status forbids (already released...) is a flash too, not an error.

use super::super::session::{Current, Flash};
use super::super::{Shared, after_post};
use super::message::{href, not_found};
use crate::quarantine::Outcome;
use crate::store::StoreError;
use axum::Extension;
use axum::extract::Path;
use axum::response::Response;

#[derive(Clone, Copy)]
enum Act {
    Release,
    Delete,
    Allow,
}

pub async fn release(state: Shared, Extension(s): Extension<Current>, Path(id): Path<String>) -> Response {
    act(state, s, id, Act::Release).await
}

pub async fn delete(state: Shared, Extension(s): Extension<Current>, Path(id): Path<String>) -> Response {
    act(state, s, id, Act::Delete).await
}

pub async fn allow(state: Shared, Extension(s): Extension<Current>, Path(id): Path<String>) -> Response {
    act(state, s, id, Act::Allow).await
}

async fn act(state: Shared, s: Current, id: String, what: Act) -> Response {
    let q = &state.0.admin.quarantine;
    let out: Result<Outcome, StoreError> = match what {
        Act::Release => q.release(&id, s.actor).await,
        Act::Delete => q.delete(&id, s.actor).await,
        Act::Allow => q.allow(&id, s.actor, None).await,
    };
    let flash = match out {
        Ok(Outcome::Done(rec)) => Flash::ok(match what {
            Act::Release => "Released: the message is queued for delivery to its recipients.".to_string(),
            Act::Delete => "Deleted: the message is gone; its record stays for the audit trail.".to_string(),
            Act::Allow => {
                format!("Released, and {} is allowed from now on.", rec.sender.as_deref().unwrap_or("the sender"))
            }
        }),
        Ok(Outcome::Refused(rec)) => {
            let verb = match what {
                Act::Release | Act::Allow => "released",
                Act::Delete => "deleted",
            };
            Flash::warn(format!(
                "Nothing done: this message is already {}, so it cannot be {verb}.",
                rec.status.as_str()
            ))
        }
        Ok(Outcome::NotFound) => return not_found(&s),
        Err(e) => return super::failed(e, &s),
    };
    after_post(&state.0, &s, flash, &href(&id))
}
