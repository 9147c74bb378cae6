//! `/console/login` and `/console/logout`. The token logs in as
//! `console:token`, the password (user `admin`) as `console:admin`; both
//! names go into the audit log with every action of the session.

use super::super::form::{self, Form};
use super::super::layout;
use super::super::session::{self, Current, constant_time_eq};
use super::super::{Console, Shared};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::net::SocketAddr;
use std::time::Duration;

type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

/// A failed login waits this long before its answer, to slow guessing.
const FAIL_DELAY: Duration = Duration::from_millis(300);

pub async fn page(state: Shared, headers: HeaderMap) -> Response {
    let c = &state.0;
    if !c.can_log_in() {
        return unconfigured(StatusCode::OK);
    }
    let logged_in = form::cookie(&headers, session::COOKIE).and_then(|id| c.sessions.get(&id));
    if logged_in.is_some() {
        return Redirect::to("/console/").into_response();
    }
    layout::page("Log in", None, None, login_form(None, "admin")).into_response()
}

pub async fn submit(state: Shared, peer: Peer, body: Bytes) -> Response {
    let c = &state.0;
    if !c.can_log_in() {
        return unconfigured(StatusCode::FORBIDDEN);
    }
    if !FAILURES.allowed(crate::time::now()) {
        let form = login_form(Some("Too many failed logins; wait a minute."), "admin");
        return (StatusCode::TOO_MANY_REQUESTS, layout::page("Log in", None, None, form)).into_response();
    }
    let f = Form::parse(&body);
    let user: String = f.get("user").unwrap_or("").trim().chars().filter(|c| !c.is_control()).take(64).collect();
    let from = peer.map_or("unknown".to_string(), |Extension(ConnectInfo(a))| a.ip().to_string());
    let Some(actor) = check(c, &user, f.get("secret").unwrap_or("")) else {
        tracing::warn!(user = %user, from = %from, "console login failed");
        // Past the limit the log still says it; the audit log (durable,
        // written to disk) is not made to grow by a guessing client.
        if FAILURES.fail(crate::time::now()) {
            audit(c, "console", "login-failed", format!("user {user:?} from {from}")).await;
        }
        tokio::time::sleep(FAIL_DELAY).await;
        let form = login_form(Some("Wrong token, or wrong user or password."), &user);
        return (StatusCode::UNAUTHORIZED, layout::page("Log in", None, None, form)).into_response();
    };
    let s = c.sessions.create(actor);
    tracing::info!(actor, from = %from, "console login");
    audit(c, actor, "login", format!("from {from}")).await;
    let cookie = session::set_cookie(&s.id, c.sessions.ttl());
    ([(header::SET_COOKIE, cookie)], Redirect::to("/console/")).into_response()
}

pub async fn logout(state: Shared, Extension(s): Extension<Current>) -> Response {
    state.0.sessions.remove(&s.id);
    audit(&state.0, s.actor, "logout", String::new()).await;
    ([(header::SET_COOKIE, session::clear_cookie())], Redirect::to("/console/login")).into_response()
}

/// Failed logins, counted across all clients per minute: parallel
/// guessing is bounded by this, not by the per-request delay alone.
static FAILURES: Failures = Failures { window: std::sync::Mutex::new((0, 0)) };
const MAX_FAILURES_PER_MINUTE: u32 = 20;

struct Failures {
    /// (minute, failures in it)
    window: std::sync::Mutex<(u64, u32)>,
}

impl Failures {
    fn allowed(&self, now: u64) -> bool {
        let w = self.window.lock().unwrap();
        w.0 != now / 60 || w.1 < MAX_FAILURES_PER_MINUTE
    }

    /// Counts one; false once past the limit.
    fn fail(&self, now: u64) -> bool {
        let mut w = self.window.lock().unwrap();
        if w.0 != now / 60 {
            *w = (now / 60, 0);
        }
        w.1 += 1;
        w.1 <= MAX_FAILURES_PER_MINUTE
    }
}

/// Who the secret proves the caller to be. Both comparisons always run,
/// so the answer's timing says nothing about which secret was close.
fn check(c: &Console, user: &str, secret: &str) -> Option<&'static str> {
    let by_token = c.token().is_some_and(|t| constant_time_eq(secret.as_bytes(), t.as_bytes()));
    let by_password = c.password().is_some_and(|p| constant_time_eq(secret.as_bytes(), p.as_bytes()));
    if by_password && (user == "admin" || user.is_empty()) {
        Some("console:admin")
    } else if by_token {
        Some("console:token")
    } else {
        None
    }
}

async fn audit(c: &Console, by: &str, action: &str, detail: String) {
    if let Err(e) = c.admin.quarantine.note(by, action, "", detail).await {
        tracing::warn!(error = %e, action, "console: could not write the audit log");
    }
}

fn login_form(error: Option<&str>, user: &str) -> Markup {
    html! {
        form.login method="post" action="/console/login" {
            h1 { "Log in" }
            @if let Some(e) = error {
                p.error role="alert" { (e) }
            }
            p { "Use the admin token, or the user " code { "admin" } " with the admin password." }
            label { "User " input name="user" value=(user) autocomplete="username"; }
            label { "Token or password " input name="secret" type="password" autocomplete="current-password" autofocus; }
            button.primary type="submit" { "Log in" }
        }
    }
}

/// Neither `[admin] token` nor `[admin] password` is set: the console stays
/// shut and says how to open it.
fn unconfigured(code: StatusCode) -> Response {
    let body = html! {
        div.login {
            h1 { "The console needs a login secret" }
            p { "Neither " code { "[admin] token" } " nor " code { "[admin] password" } " is configured, so nobody can log in. \
                 The console is never open without authentication, not even on a loopback address." }
            p { "Set " code { "token" } " (also used by the API and " code { "mxgate" } " commands) or " code { "password" }
                " (user " code { "admin" } ", at least 8 characters) in the " code { "[admin]" } " section and restart mxgate." }
        }
    };
    (code, layout::page("Not configured", None, None, body)).into_response()
}
