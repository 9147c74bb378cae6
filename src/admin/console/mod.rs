//! The quarantine web console under `/console/`: log in with the admin token
//! or password, search held messages, look at one safely, release, delete
//! or allow the sender, one at a time or in bulk.
//!
//! - `session`: in-memory logins, their CSRF tokens and flash messages.
//! - `form`: form bodies, cookies, the same-origin check.
//! - `layout`: the page shell, stylesheet and script.
//! - `pages`: login, list (with bulk actions), message.
//!
//! Every page is server-rendered (maud escapes all values). Defences, in
//! layers: a session cookie that is HttpOnly and SameSite=Strict; a CSRF
//! token in every POST form; an Origin/Referer check; and headers that
//! forbid framing, inline or foreign scripts, referrers and caching.

mod form;
mod layout;
mod pages;
mod session;

pub use session::constant_time_eq;

use super::AdminState;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use form::Form;
use session::{Current, Flash, Sessions};
use std::sync::Arc;

/// Largest form body accepted (a bulk form with ids of a full page is a
/// few KB).
const MAX_FORM: usize = 1024 * 1024;

/// The pages' policy: scripts only from /console/app.js, styles inline
/// (the one <style> element), frames only our own preview, no plugins, no
/// framing by anyone, forms only back to us.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What the console's handlers share.
struct Console {
    admin: Arc<AdminState>,
    sessions: Sessions,
}

impl Console {
    /// The admin token, when one is set (an empty one counts as none).
    fn token(&self) -> Option<&str> {
        self.admin.token.as_deref().filter(|t| !t.is_empty())
    }

    fn password(&self) -> Option<&str> {
        self.admin.cfg.admin.password.as_deref().filter(|p| !p.is_empty())
    }

    /// Without a token or a password nobody can log in: the console is
    /// never open without authentication, even on loopback.
    fn can_log_in(&self) -> bool {
        self.token().is_some() || self.password().is_some()
    }
}

type Shared = State<Arc<Console>>;

/// The console's routes, all under `/console/`, to be merged into the admin
/// router. The session store lives in the returned router, one per admin
/// listener.
pub fn routes(admin: Arc<AdminState>) -> Router<Arc<AdminState>> {
    let ttl = admin.cfg.admin.session_ttl;
    let c = Arc::new(Console { admin, sessions: Sessions::new(ttl) });
    let private = Router::new()
        .route("/console/", get(pages::list::page))
        .route("/console/bulk", post(pages::list::bulk))
        .route("/console/msg/{id}", get(pages::message::page))
        .route("/console/msg/{id}/html", get(pages::content::html))
        .route("/console/msg/{id}/raw", get(pages::content::raw))
        .route("/console/msg/{id}/release", post(pages::actions::release))
        .route("/console/msg/{id}/delete", post(pages::actions::delete))
        .route("/console/msg/{id}/allow", post(pages::actions::allow))
        .route("/console/logout", post(pages::login::logout))
        .route_layer(middleware::from_fn_with_state(c.clone(), require_session));
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/login", get(pages::login::page).post(pages::login::submit))
        .route("/console/app.js", get(app_js))
        .merge(private)
        .layer(middleware::from_fn(same_origin))
        .layer(middleware::from_fn(security_headers))
        .with_state(c)
}

async fn app_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], layout::JS).into_response()
}

/// Every private page needs a live session; a POST also needs the form's
/// `csrf` field to equal the session's token. The handler then finds the
/// `Current` session (and, for a POST, the parsed `Form`) in the request's
/// extensions.
async fn require_session(State(c): Shared, req: Request, next: Next) -> Response {
    let current = form::cookie(req.headers(), session::COOKIE).and_then(|id| c.sessions.get(&id));
    let Some(current) = current else {
        return Redirect::to("/console/login").into_response();
    };
    let (mut parts, body) = req.into_parts();
    if parts.method == Method::POST {
        let bytes = match axum::body::to_bytes(body, MAX_FORM).await {
            Ok(b) => b,
            Err(_) => {
                return layout::notice(StatusCode::PAYLOAD_TOO_LARGE, "Too large", "The form is too large.", None);
            }
        };
        let form = Form::parse(&bytes);
        if !form.get("csrf").is_some_and(|t| session::constant_time_eq(t.as_bytes(), current.csrf.as_bytes())) {
            tracing::warn!(path = %parts.uri.path(), "console POST without the session's CSRF token refused");
            let text = "This form did not come from this console session (or the session changed). Reload the page and try again.";
            return layout::notice(StatusCode::FORBIDDEN, "Forbidden", text, Some(&current));
        }
        parts.extensions.insert(form);
        parts.extensions.insert(current);
        return next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await;
    }
    parts.extensions.insert(current);
    next.run(Request::from_parts(parts, body)).await
}

/// Anything but GET and HEAD must come from a page of this origin, when the
/// browser says where it comes from (`Origin`, else `Referer`).
async fn same_origin(req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD) && !form::same_origin(req.headers()) {
        tracing::warn!(path = %req.uri().path(), "console request from another origin refused");
        return layout::notice(StatusCode::FORBIDDEN, "Forbidden", "This request came from another site.", None);
    }
    next.run(req).await
}

/// Headers on every console response unless the handler set its own (the
/// HTML preview sets a stricter policy that lets our own page frame it).
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    resp
}

/// 303 to `to` with a flash shown there (POST-redirect-GET).
fn after_post(c: &Console, s: &Current, flash: Flash, to: &str) -> Response {
    c.sessions.set_flash(&s.id, flash);
    Redirect::to(to).into_response()
}
