//! The quarantine web console over real HTTP (no browser): login with the
//! token or the password, the list and message pages, the sandboxed HTML
//! preview, CSRF and origin checks, release exactly once, bulk actions,
//! and a console that stays shut when no login secret is configured.
//! The browser side is tests/external/console_test.py.

mod common;

use common::http::{self, Resp};
use common::mime::{base64, tiny_pe, zip};
use common::{Behaviour, Downstream, Gateway, queue_id};
use std::net::SocketAddr;

const TOKEN: &str = "console-test-token-0123456789";
const SCAN: &str = "@rest\n[scan]\nstages = [\"attachment\"]\n";

/// A response with its body as text.
struct Page {
    status: u16,
    resp: Resp,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.resp.header(name)
    }

    /// The CSRF token of the first form on the page.
    fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a form with a CSRF field") + 19;
        self.body[at..at + 64].to_string()
    }
}

/// One request; `form` is an urlencoded body, `extra` one more header.
async fn web(
    admin: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
    extra: Option<(&str, &str)>,
) -> Page {
    let mut headers = Vec::new();
    if let Some(c) = cookie {
        headers.push(("Cookie".to_string(), c.to_string()));
    }
    if form.is_some() {
        headers.push(("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string()));
    }
    if let Some((k, v)) = extra {
        headers.push((k.to_string(), v.to_string()));
    }
    let resp = http::request(admin, method, path, &headers, form.unwrap_or("").as_bytes()).await;
    Page { status: resp.status, body: resp.text(), resp }
}

/// HTML that would run script and load a remote image if it were shown
/// as sent, plus the executable attachment that gets it held.
fn hostile(subject: &str) -> String {
    format!(
        "From: \"Mallory\" <a@sender.test>\r\nTo: <b@example.test>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n\
         --=_b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <p>Hello from <b>Mallory</b></p><script>document.title='pwned'</script>\
         <img src=\"http://127.0.0.1:9/track.png\"><img src=x onerror=\"document.title='pwned'\">\r\n\
         --=_b\r\nContent-Type: application/zip; name=\"setup.zip\"\r\n\
         Content-Disposition: attachment; filename=\"setup.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}--=_b--\r\n",
        base64(&zip(&[("setup.exe", &tiny_pe())]))
    )
}

async fn hold(gw: &Gateway, subject: &str) -> String {
    let reply = gw.client().await.send_mail("a@sender.test", &["b@example.test"], &hostile(subject)).await;
    queue_id(&reply)
}

/// Logs in and returns the cookie (`name=value`).
async fn login(admin: SocketAddr, form: &str) -> String {
    let r = web(admin, "POST", "/console/login", None, Some(form), None).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let set = r.header("set-cookie").expect("a session cookie").to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set.contains(attr), "{set}");
    }
    set.split(';').next().unwrap().to_string()
}

async fn audit(admin: SocketAddr) -> String {
    web(admin, "GET", "/api/v1/audit", None, None, Some(("Authorization", &format!("Bearer {TOKEN}")))).await.body
}

#[tokio::test]
async fn login_list_show_preview_and_release_once() {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, &format!("@admin\ntoken = \"{TOKEN}\"\n{SCAN}")).await;
    let a = gw.admin;
    let id = hold(&gw, "Invoice console-test").await;

    // Nothing without a session; `/` leads to the console.
    let r = web(a, "GET", "/console/", None, None, None).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/console/login")));
    assert_eq!(web(a, "GET", "/", None, None, None).await.header("location"), Some("/console/"));
    let r = web(a, "GET", &format!("/console/msg/{id}/raw"), None, None, None).await;
    assert_eq!(r.status, 303);
    let r = web(a, "GET", "/console/login", None, None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.header("content-security-policy").unwrap().contains("default-src 'self'"));
    assert!(r.body.contains("name=\"viewport\""));

    // A wrong token is refused, logged and audited.
    let r = web(a, "POST", "/console/login", None, Some("user=&secret=nope"), None).await;
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    let cookie = login(a, &format!("user=&secret={TOKEN}")).await;

    let list = web(a, "GET", "/console/", Some(&cookie), None, None).await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("Invoice console-test") && list.body.contains("ATTACHMENT_"), "{}", list.body);
    let found = web(a, "GET", "/console/?subject=console-test&status=all", Some(&cookie), None, None).await;
    assert!(found.body.contains(&id));
    let none = web(a, "GET", "/console/?subject=no-such-thing", Some(&cookie), None, None).await;
    assert!(!none.body.contains(&id) && none.body.contains("No messages match"));
    let bad = web(a, "GET", "/console/?since=yesterday-ish", Some(&cookie), None, None).await;
    assert!(bad.body.contains("invalid `since` value `yesterday-ish`"), "{}", bad.body);

    let page = web(a, "GET", &format!("/console/msg/{id}"), Some(&cookie), None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("setup.zip &gt; setup.exe: PE executable"), "the reason names the file: {}", page.body);
    assert!(page.body.contains("<iframe sandbox=\"\""), "{}", page.body);
    assert!(page.body.contains("Hello from Mallory"));

    // The preview: sanitised, and under a policy that forbids scripts and loads.
    let html = web(a, "GET", &format!("/console/msg/{id}/html"), Some(&cookie), None, None).await;
    assert_eq!(html.status, 200);
    assert_eq!(
        html.header("content-security-policy"),
        Some("default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox; frame-ancestors 'self'")
    );
    assert_eq!(html.header("x-content-type-options"), Some("nosniff"));
    assert!(html.body.contains("<b>Mallory</b>"), "{}", html.body);
    let lower = html.body.to_lowercase();
    assert!(!lower.contains("<script") && !lower.contains("onerror") && !lower.contains("127.0.0.1:9/"), "{lower}");

    let raw = web(a, "GET", &format!("/console/msg/{id}/raw"), Some(&cookie), None, None).await;
    assert_eq!(raw.header("content-type"), Some("message/rfc822"));
    assert!(raw.header("content-disposition").unwrap().starts_with("attachment"));
    assert!(raw.body.contains("Subject: Invoice console-test"));

    // CSRF: no token, a wrong token, or another origin: 403, nothing released.
    let csrf = page.csrf();
    let release = format!("/console/msg/{id}/release");
    assert_eq!(web(a, "POST", &release, Some(&cookie), Some(""), None).await.status, 403);
    assert_eq!(
        web(a, "POST", &release, Some(&cookie), Some(&format!("csrf={}", "0".repeat(64))), None).await.status,
        403
    );
    let evil = Some(("Origin", "http://evil.test"));
    assert_eq!(web(a, "POST", &release, Some(&cookie), Some(&format!("csrf={csrf}")), evil).await.status, 403);
    let shown = web(a, "GET", &format!("/console/msg/{id}"), Some(&cookie), None, None).await;
    assert!(shown.body.contains("status-held"));

    let origin = format!("http://{a}");
    let origin = Some(("Origin", origin.as_str()));
    let r = web(a, "POST", &release, Some(&cookie), Some(&format!("csrf={csrf}")), origin).await;
    assert_eq!((r.status, r.header("location")), (303, Some(format!("/console/msg/{id}").as_str())));
    let got = down.wait_for(1, 20).await;
    assert!(got[0].text().contains("X-Mxgate-Released: by console:token"), "{}", got[0].text());
    let after = web(a, "GET", &format!("/console/msg/{id}"), Some(&cookie), None, None).await;
    assert!(after.body.contains("Released: the message is queued"), "{}", after.body);

    // Again: refused, said plainly on the page.
    let r = web(a, "POST", &release, Some(&cookie), Some(&format!("csrf={csrf}")), origin).await;
    assert_eq!(r.status, 303);
    let again = web(a, "GET", &format!("/console/msg/{id}"), Some(&cookie), None, None).await;
    assert!(again.body.contains("already released, so it cannot be released"), "{}", again.body);

    // Exactly one copy: a later message arrives, and still one released copy.
    let reply = gw.client().await.send_mail("a@sender.test", &["b@example.test"], &common::message("later", "x")).await;
    assert!(reply.starts_with("250"), "{reply}");
    let got = down.wait_for(2, 20).await;
    assert_eq!(got.iter().filter(|m| m.text().contains("Subject: Invoice console-test")).count(), 1);

    // Logout ends the session.
    let r = web(a, "POST", "/console/logout", Some(&cookie), Some(&format!("csrf={csrf}")), None).await;
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(web(a, "GET", "/console/", Some(&cookie), None, None).await.status, 303);

    let log = audit(a).await;
    for needle in
        ["\"login-failed\"", "\"by\":\"console:token\",\"action\":\"login\"", "\"action\":\"release\"", "\"logout\""]
    {
        assert!(log.contains(needle), "{needle} in {log}");
    }
}

#[tokio::test]
async fn password_login_and_bulk_actions() {
    let down = Downstream::start(Behaviour::default()).await;
    let cfg = format!("@admin\ntoken = \"{TOKEN}\"\npassword = \"correct horse\"\n{SCAN}");
    let gw = Gateway::start(down.addr, &cfg).await;
    let a = gw.admin;
    let ids = [hold(&gw, "bulk one").await, hold(&gw, "bulk two").await, hold(&gw, "other three").await];

    let wrong = web(a, "POST", "/console/login", None, Some("user=root&secret=correct+horse"), None).await;
    assert_eq!(wrong.status, 401);
    let cookie = login(a, "user=admin&secret=correct+horse").await;
    let csrf = web(a, "GET", "/console/", Some(&cookie), None, None).await.csrf();

    // Selected ids: the first one released.
    let form = format!("csrf={csrf}&q_status=held&action=release&id={}", ids[0]);
    let r = web(a, "POST", "/console/bulk", Some(&cookie), Some(&form), None).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/console/?status=held")));
    let list = web(a, "GET", "/console/?status=held", Some(&cookie), None, None).await;
    assert!(list.body.contains("Released 1 message."), "{}", list.body);
    assert!(!list.body.contains(&ids[0]) && list.body.contains(&ids[1]));
    down.wait_for(1, 20).await;

    // Everything matching a search: only "bulk" subjects still held.
    let form = format!("csrf={csrf}&q_status=held&q_subject=bulk&action=delete&all_matching=on");
    web(a, "POST", "/console/bulk", Some(&cookie), Some(&form), None).await;
    let list = web(a, "GET", "/console/?status=all", Some(&cookie), None, None).await;
    assert!(list.body.contains("Deleted 1 message."), "{}", list.body);
    let held = web(a, "GET", "/console/?status=held", Some(&cookie), None, None).await;
    assert!(held.body.contains(&ids[2]) && !held.body.contains(&ids[1]));

    // Nothing selected: said so.
    web(a, "POST", "/console/bulk", Some(&cookie), Some(&format!("csrf={csrf}&action=delete")), None).await;
    let list = web(a, "GET", "/console/", Some(&cookie), None, None).await;
    assert!(list.body.contains("No messages were selected."));

    // Paging: two per page, newest first; "Older" carries the cursor.
    let first = web(a, "GET", "/console/?status=all&limit=2", Some(&cookie), None, None).await;
    assert!(first.body.contains(&ids[2]) && first.body.contains(&ids[1]) && !first.body.contains(&ids[0]));
    let at = first.body.find("href=\"/console/?").expect("an Older link") + 6;
    let older = first.body[at..].split('"').next().unwrap().replace("&amp;", "&");
    assert!(older.contains("cursor="), "{older}");
    let second = web(a, "GET", &older, Some(&cookie), None, None).await;
    assert!(second.body.contains(&ids[0]) && !second.body.contains(&ids[1]), "{}", second.body);

    // Release and allow the sender, from the message page.
    let allow = format!("/console/msg/{}/allow", ids[2]);
    web(a, "POST", &allow, Some(&cookie), Some(&format!("csrf={csrf}")), None).await;
    let page = web(a, "GET", &format!("/console/msg/{}", ids[2]), Some(&cookie), None, None).await;
    assert!(page.body.contains("Released, and a@sender.test is allowed from now on."), "{}", page.body);
    let bearer = format!("Bearer {TOKEN}");
    let allowed = web(a, "GET", "/api/v1/allowlist", None, None, Some(("Authorization", &bearer))).await;
    assert!(allowed.body.contains("\"sender\":\"a@sender.test\""), "{}", allowed.body);
    down.wait_for(2, 20).await;

    let log = audit(a).await;
    assert!(log.contains("\"by\":\"console:admin\",\"action\":\"release\""), "{log}");
    assert!(log.contains("\"by\":\"console:admin\",\"action\":\"delete\""), "{log}");
    assert!(log.contains("user \\\"root\\\""), "{log}");
}

#[tokio::test]
async fn without_a_token_or_password_the_console_stays_shut() {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, "").await;
    let a = gw.admin;
    let r = web(a, "GET", "/console/login", None, None, None).await;
    assert!(r.body.contains("needs a login secret"), "{}", r.body);
    assert!(!r.body.contains("name=\"secret\""));
    assert_eq!(web(a, "POST", "/console/login", None, Some("user=admin&secret=x"), None).await.status, 403);
    assert_eq!(web(a, "GET", "/console/", None, None, None).await.header("location"), Some("/console/login"));
}
