//! Per-recipient quarantine digests end to end: messages held over SMTP,
//! a digest run through the API, the digests as the downstream receives
//! them, and their links: a GET only shows a confirmation page, the POST
//! releases exactly once, altered links are refused and old ones expire.

mod common;

use common::http::{Resp, request};
use common::mime::zip_with_exe;
use common::{Behaviour, Downstream, Gateway, queue_id};
use std::net::SocketAddr;

const TOKEN: &str = "digest-test-token";
const BASE: &str = "https://quarantine.example.test/q";

async fn api(gw: &Gateway, method: &str, path: &str, token: Option<&str>) -> Resp {
    let auth: Vec<(String, String)> =
        token.map(|t| ("Authorization".into(), format!("Bearer {t}"))).into_iter().collect();
    request(gw.admin, method, path, &auth, b"").await
}

/// Holds a message with an executable attachment for `rcpt`; its id.
async fn hold(gw: &Gateway, rcpt: &str, subject: &str) -> String {
    let reply = gw.client().await.send_mail("a@sender.test", &[rcpt], &zip_with_exe(subject)).await;
    queue_id(&reply)
}

async fn status(gw: &Gateway, id: &str) -> String {
    let r = api(gw, "GET", &format!("/api/v1/quarantine/{id}"), Some(TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["status"].as_str().unwrap().to_string()
}

/// Undoes quoted-printable (RFC 2045 §6.7): soft breaks and `=XX`.
fn unqp(s: &str) -> String {
    let s = s.replace("=\r\n", "");
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        match s.get(i + 1..i + 3).filter(|_| b[i] == b'=').and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(x) => (out.push(x), i += 3),
            None => (out.push(b[i]), i += 1),
        };
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first `action` link in a digest's text, as a path on the admin
/// listener (the link base is cut off).
fn link(digest: &str, action: &str) -> String {
    let start = digest.find(&format!("/digest/{action}?")).expect("a link in the digest");
    let end = digest[start..].find(char::is_whitespace).map_or(digest.len(), |e| start + e);
    digest[start..end].to_string()
}

fn param<'a>(path: &'a str, name: &str) -> &'a str {
    let q = path.split_once('?').unwrap().1;
    q.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}="))).unwrap()
}

/// The form a confirmation page shows, as a POST body.
fn form_body(page: &str) -> String {
    let mut body = Vec::new();
    for input in page.split("<input").skip(1) {
        let attr = |a: &str| input.split(&format!("{a}=\"")).nth(1).and_then(|v| v.split('"').next()).unwrap();
        let v = attr("value").replace("&amp;", "&").replace('@', "%40").replace('+', "%2B");
        body.push(format!("{}={v}", attr("name")));
    }
    body.join("&")
}

async fn post_form(admin: SocketAddr, path: &str, body: &str) -> Resp {
    let ctype = [("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string())];
    request(admin, "POST", path, &ctype, body.as_bytes()).await
}

/// The digest in `msgs` addressed to `rcpt`, decoded.
fn digest_for(msgs: &[common::downstream::Received], rcpt: &str) -> String {
    let m = msgs.iter().find(|m| m.rcpts == [rcpt]).unwrap_or_else(|| panic!("no digest for {rcpt}"));
    assert_eq!(m.from, "", "digests have the null sender");
    unqp(&m.text())
}

#[tokio::test]
async fn the_digest_is_sent_and_its_links_release_once() {
    let down = Downstream::start(Behaviour::default()).await;
    let scan = "[scan]\nstages = [\"attachment\"]\n";
    let extra = format!("@admin\ntoken = \"{TOKEN}\"\n@rest\n{scan}[quarantine.digest]\nlink_base = \"{BASE}/\"\n");
    let gw = Gateway::start(down.addr, &extra).await;
    let one = hold(&gw, "b@example.test", "digest-one").await;
    let two = hold(&gw, "B@example.test", "digest-two").await;
    let three = hold(&gw, "c@example.test", "digest-three").await;

    assert_eq!(api(&gw, "POST", "/api/v1/quarantine/digest", None).await.status, 401, "the API needs the token");
    let r = api(&gw, "POST", "/api/v1/quarantine/digest", Some(TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"recipients": 2, "messages": 3}));
    let again = api(&gw, "POST", "/api/v1/quarantine/digest", Some(TOKEN)).await.json();
    assert_eq!(again, serde_json::json!({"recipients": 0, "messages": 0}), "nothing new since the last digest");

    let msgs = down.wait_for(2, 20).await;
    assert_eq!(msgs.len(), 2);
    let b = digest_for(&msgs, "b@example.test");
    let c = digest_for(&msgs, "c@example.test");
    assert!(b.contains("Subject: Quarantine digest: 2 held messages\r\n"), "{b}");
    assert!(b.contains("Auto-Submitted: auto-generated\r\n"), "{b}");
    assert!(b.contains("digest-one") && b.contains("digest-two") && !b.contains("digest-three"), "{b}");
    assert!(c.contains("Subject: Quarantine digest: 1 held message\r\n") && c.contains("digest-three"), "{c}");
    assert!(!c.contains("digest-one") && !c.contains("digest-two"), "{c}");
    assert!(b.contains(&format!("{BASE}/digest/release?id={one}&rcpt=b%40example.test&exp=")), "{b}");

    // GET shows a confirmation page and does nothing.
    let release = link(&b, "release");
    assert_eq!(param(&release, "id"), one, "oldest first");
    let page = request(gw.admin, "GET", &release, &[], b"").await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.contains("Release this message?") && html.contains("digest-one"), "{html}");
    assert!(html.contains(r#"<form method="post" action="release">"#), "{html}");
    assert!(page.header("content-security-policy").unwrap().contains("default-src 'none'"));
    assert_eq!(status(&gw, &one).await, "held", "a GET releases nothing");

    // An altered link is refused, on GET and on POST.
    let sig = param(&release, "sig");
    let flipped = if sig.ends_with('0') { "1" } else { "0" };
    let forged = release.replace(sig, &format!("{}{flipped}", &sig[..sig.len() - 1]));
    assert_eq!(request(gw.admin, "GET", &forged, &[], b"").await.status, 403);
    let other = release.replace(&one, &three);
    let r = post_form(gw.admin, "/digest/release", other.split_once('?').unwrap().1).await;
    assert_eq!(r.status, 403, "a link for another message: {}", r.text());
    assert_eq!(status(&gw, &three).await, "held");

    // The POST the page's button sends releases, once.
    let r = post_form(gw.admin, "/digest/release", &form_body(&html)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Released"), "{}", r.text());
    let msgs = down.wait_for(3, 20).await;
    assert!(msgs[2].text().contains("Subject: digest-one") && msgs[2].rcpts == ["b@example.test"]);
    assert!(msgs[2].text().contains("X-Mxgate-Released: by digest:b@example.test at "), "{}", msgs[2].text());
    let r = post_form(gw.admin, "/digest/release", &form_body(&html)).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("already released"), "{}", r.text());
    let shown = request(gw.admin, "GET", &release, &[], b"").await;
    assert!(shown.status == 200 && shown.text().contains("already released"), "{}", shown.text());

    // Release and allow: the sender is allowed for b only.
    let allow = link(&b[b.find("digest-two").unwrap()..], "allow");
    assert_eq!(param(&allow, "id"), two);
    let page = request(gw.admin, "GET", &allow, &[], b"").await.text();
    assert!(page.contains("allow its sender"), "{page}");
    let r = post_form(gw.admin, "/digest/allow", &form_body(&page)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let list = api(&gw, "GET", "/api/v1/allowlist", Some(TOKEN)).await.json();
    assert_eq!(list, serde_json::json!([{"sender": "a@sender.test", "scope": "b@example.test"}]));

    // A clean message after both releases: when it has arrived, a second
    // copy of the first release would have too.
    let marker = common::message("marker", "clean");
    gw.client().await.send_mail("a@sender.test", &["b@example.test"], &marker).await;
    let msgs = down.wait_for(5, 20).await;
    assert!(msgs.iter().any(|m| m.text().contains("Subject: marker")));
    let released =
        msgs.iter().filter(|m| m.from == "a@sender.test" && m.text().contains("\r\nSubject: digest-one\r\n"));
    assert_eq!(released.count(), 1, "one copy of the released message");
    let audit = api(&gw, "GET", "/api/v1/audit", Some(TOKEN)).await.text();
    assert!(audit.contains(r#""action":"digest""#) && audit.contains("sent 2 digests"), "{audit}");
}

#[tokio::test]
async fn links_expire_and_act_only_for_their_recipient() {
    let down = Downstream::start(Behaviour::default()).await;
    let extra = "@rest\n[scan]\nstages = [\"attachment\"]\n[quarantine.digest]\nlink_ttl = \"2s\"\nsecret = \"s3cret-s3cret-s3cret\"\n";
    let gw = Gateway::start(down.addr, extra).await;
    let id = hold(&gw, "b@example.test", "short-lived").await;
    let r = request(gw.admin, "POST", "/api/v1/quarantine/digest", &[], b"").await;
    assert_eq!(r.json(), serde_json::json!({"recipients": 1, "messages": 1}));
    let digest = unqp(&down.wait_for(1, 20).await[0].text());
    let release = link(&digest, "release");
    let page = request(gw.admin, "GET", &release, &[], b"").await;
    assert_eq!(page.status, 200, "{}", page.text());

    // A link signed with the configured key, but for someone the message
    // was not sent to.
    use mxgate::quarantine::digest::{Action, Link, Signer};
    let exp = param(&release, "exp").parse().unwrap();
    let stranger = Link { action: Action::Release, id: id.clone(), rcpt: "c@example.test".into(), exp };
    let q = Signer::new(b"s3cret-s3cret-s3cret").query(&stranger);
    assert_eq!(request(gw.admin, "GET", &format!("/digest/release?{q}"), &[], b"").await.status, 403);

    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let r = request(gw.admin, "GET", &release, &[], b"").await;
    assert_eq!(r.status, 410, "{}", r.text());
    assert!(r.text().contains("expired"), "{}", r.text());
    let r = post_form(gw.admin, "/digest/release", &form_body(&page.text())).await;
    assert_eq!(r.status, 410, "{}", r.text());
    let held = request(gw.admin, "GET", &format!("/api/v1/quarantine/{id}"), &[], b"").await.json();
    assert_eq!(held["status"], "held");
}

#[tokio::test]
async fn the_scheduler_sends_digests_on_its_own() {
    let down = Downstream::start(Behaviour::default()).await;
    let extra = "@rest\n[scan]\nstages = [\"attachment\"]\n[quarantine.digest]\ninterval = \"1s\"\n";
    let gw = Gateway::start(down.addr, extra).await;
    hold(&gw, "b@example.test", "scheduled").await;
    let digest = digest_for(&down.wait_for(1, 30).await, "b@example.test");
    assert!(digest.contains("Subject: Quarantine digest: 1 held message\r\n") && digest.contains("scheduled"));
}

/// One click must not deliver a message to all of its recipients: a
/// message sent to several gets no links, and a forged link is refused.
#[tokio::test]
async fn a_message_for_several_recipients_is_left_to_an_administrator() {
    let down = Downstream::start(Behaviour::default()).await;
    let extra = format!(
        "@admin\ntoken = \"{TOKEN}\"\n@rest\n[scan]\nstages = [\"attachment\"]\n[quarantine.digest]\nsecret = \"0123456789abcdef0123456789abcdef\"\n"
    );
    let gw = Gateway::start(down.addr, &extra).await;
    let rcpts = ["b@example.test", "c@example.test"];
    let id = queue_id(&gw.client().await.send_mail("a@sender.test", &rcpts, &zip_with_exe("for-two")).await);
    assert_eq!(api(&gw, "POST", "/api/v1/quarantine/digest", Some(TOKEN)).await.status, 200);
    let msgs = down.wait_for(2, 10).await;
    let digest = digest_for(&msgs, "b@example.test");
    assert!(digest.contains("Sent to 2 recipients: ask your mail administrator"), "{digest}");
    assert!(!digest.contains("/digest/release?"), "no release link: {digest}");
    // A link signed with the right key for this message is still refused.
    use mxgate::quarantine::digest::links::{Action, Link, Signer};
    let signer = Signer::new(b"0123456789abcdef0123456789abcdef");
    let link = Link { action: Action::Release, id: id.clone(), rcpt: "b@example.test".into(), exp: u64::MAX / 2 };
    let path = signer.url("", &link);
    let r = request(gw.admin, "GET", &path, &[], b"").await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(status(&gw, &id).await, "held");
}
