//! The quarantine through its API and CLI, end to end: messages the policy
//! holds arrive over SMTP, are found with filters, shown with reasons and a
//! safe preview, released exactly once (also when two consoles race),
//! deleted, expired, and every action is in the audit log.

mod common;

use common::http::call;
use common::mime::zip_with_exe;
use common::{Behaviour, Downstream, Gateway, queue_id};
use serde_json::Value;

const TOKEN: &str = "s3cret-admin-token";

fn config(extra: &str) -> String {
    format!("@admin\ntoken = \"{TOKEN}\"\n@rest\n[scan]\nstages = [\"attachment\"]\n{extra}")
}

async fn setup(extra: &str) -> (Downstream, Gateway) {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, &config(extra)).await;
    (down, gw)
}

/// Sends a message that the attachment stage quarantines; returns its id.
async fn hold(gw: &Gateway, from: &str, to: &[&str], subject: &str) -> String {
    let mut c = gw.client().await;
    let reply = c.send_mail(from, to, &zip_with_exe(subject)).await;
    assert!(reply.starts_with("250"), "{reply}");
    queue_id(&reply)
}

async fn api(gw: &Gateway, method: &str, path: &str) -> (u16, Value) {
    let r = call(gw.admin, method, path, Some(TOKEN), None).await;
    (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_zip_holding_an_exe_is_found_shown_and_released_once() {
    let (down, gw) = setup("").await;
    let id = hold(&gw, "a@sender.test", &["b@example.test", "c@example.test"], "Invoice 42").await;

    let (status, list) = api(&gw, "GET", "/api/v1/quarantine").await;
    assert_eq!(status, 200);
    let rec = &list[0];
    assert_eq!((rec["id"].as_str(), rec["status"].as_str()), (Some(id.as_str()), Some("held")));
    assert_eq!(rec["subject"], "Invoice 42");
    assert_eq!(rec["from"], "a@sender.test");
    assert_eq!(rec["recipients"], serde_json::json!(["b@example.test", "c@example.test"]));
    let reasons = rec["reasons"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r.as_str().unwrap().contains("invoice.exe")), "{reasons:?}");

    let (status, shown) = api(&gw, "GET", &format!("/api/v1/quarantine/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(shown["preview"]["attachments"][0]["name"], "invoice.zip");
    assert!(shown["preview"]["text"].as_str().unwrap().contains("Please see the attached file."));
    let raw = call(gw.admin, "GET", &format!("/api/v1/quarantine/{id}/raw"), Some(TOKEN), None).await;
    assert_eq!(raw.header("content-type"), Some("message/rfc822"));
    assert!(raw.text().contains("Subject: Invoice 42"));
    assert_eq!(down.count(), 0, "nothing is delivered while held");

    let (status, released) = api(&gw, "POST", &format!("/api/v1/quarantine/{id}/release")).await;
    assert_eq!(status, 200, "{released}");
    assert_eq!(released["record"]["status"], "released");
    let got = down.wait_for(1, 10).await;
    assert_eq!(got[0].rcpts, ["b@example.test", "c@example.test"], "the original envelope");
    assert_eq!(got[0].from, "a@sender.test");
    let text = got[0].text();
    assert!(text.starts_with("X-Mxgate-Released: by api at "), "{}", &text[..200]);

    let (status, again) = api(&gw, "POST", &format!("/api/v1/quarantine/{id}/release")).await;
    assert_eq!(status, 409, "{again}");
    assert!(again["error"].as_str().unwrap().contains("was already released by api at "), "{again}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(down.count(), 1, "released once");
}

#[tokio::test]
async fn two_consoles_releasing_at_once_deliver_one_copy() {
    let (down, gw) = setup("").await;
    let mut held = Vec::new();
    for i in 0..10 {
        held.push(hold(&gw, "a@sender.test", &["b@example.test"], &format!("race {i}")).await);
    }
    let mut calls = Vec::new();
    for id in &held {
        for _ in 0..3 {
            let path = format!("/api/v1/quarantine/{id}/release");
            let admin = gw.admin;
            calls.push(tokio::spawn(async move { call(admin, "POST", &path, Some(TOKEN), None).await.status }));
        }
    }
    let mut codes = Vec::new();
    for c in calls {
        codes.push(c.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|&&c| c == 200).count(), 10, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 409).count(), 20, "{codes:?}");
    down.wait_for(10, 20).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut subjects: Vec<String> = down.messages().iter().map(|m| m.text()).collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!((down.count(), subjects.len()), (10, 10), "each message exactly once");
}

#[tokio::test]
async fn delete_drops_the_body_and_blocks_release() {
    let (down, gw) = setup("").await;
    let id = hold(&gw, "a@sender.test", &["b@example.test"], "to delete").await;
    let (status, del) = api(&gw, "DELETE", &format!("/api/v1/quarantine/{id}")).await;
    assert_eq!((status, del["record"]["status"].as_str()), (200, Some("deleted")));
    let raw = call(gw.admin, "GET", &format!("/api/v1/quarantine/{id}/raw"), Some(TOKEN), None).await;
    assert_eq!(raw.status, 410, "{}", raw.text());
    let (_, shown) = api(&gw, "GET", &format!("/api/v1/quarantine/{id}")).await;
    assert_eq!((shown["has_body"].as_bool(), shown["preview"].is_null()), (Some(false), true));
    assert_eq!(api(&gw, "POST", &format!("/api/v1/quarantine/{id}/release")).await.0, 409);
    assert_eq!(api(&gw, "DELETE", &format!("/api/v1/quarantine/{id}")).await.0, 409);
    assert_eq!(down.count(), 0);
}

#[tokio::test]
async fn retention_ends_in_expiry() {
    let (_down, gw) = setup("[quarantine]\nretention = \"1s\"\nsweep_interval = \"1s\"\n").await;
    let id = hold(&gw, "a@sender.test", &["b@example.test"], "short-lived").await;
    let path = format!("/api/v1/quarantine/{id}");
    let expired = common::eventually(15, || async { api(&gw, "GET", &path).await.1["status"] == "expired" }).await;
    assert!(expired, "{}", api(&gw, "GET", &path).await.1);
    let raw = call(gw.admin, "GET", &format!("{path}/raw"), Some(TOKEN), None).await;
    assert_eq!(raw.status, 410);
    let (_, audit) = api(&gw, "GET", "/api/v1/audit").await;
    assert!(audit.as_array().unwrap().iter().any(|e| e["action"] == "expire" && e["id"] == id.as_str()), "{audit}");
}

#[tokio::test]
async fn filters_narrow_and_pages_follow_the_cursor() {
    let (_down, gw) = setup("").await;
    let a = hold(&gw, "x@one.test", &["b@example.test"], "Quarterly report").await;
    let b = hold(&gw, "y@two.test", &["c@other.test"], "Holiday photos").await;
    let c = hold(&gw, "y@two.test", &["b@example.test"], "Quarterly numbers").await;
    let q = |query: &'static str| {
        let gw = &gw;
        async move { ids(&api(gw, "GET", &format!("/api/v1/quarantine?{query}")).await.1) }
    };
    assert_eq!(q("").await, [c.as_str(), &b, &a], "newest first");
    assert_eq!(q("order=oldest").await, [a.as_str(), &b, &c]);
    assert_eq!(q("recipient=b@example.test").await, [c.as_str(), &a]);
    assert_eq!(q("sender=Y@two.test").await, [c.as_str(), &b], "addresses match without case");
    assert_eq!(q("domain=other.test").await, [b.as_str()]);
    assert_eq!(q("subject=quarterly").await, [c.as_str(), &a]);
    assert_eq!(q("symbol=ATTACHMENT_*").await.len(), 3);
    assert_eq!(q("symbol=NO_SUCH_SYMBOL").await.len(), 0);
    assert_eq!(q("status=released").await.len(), 0);
    assert_eq!(q("since=1h").await.len(), 3);
    assert_eq!(q("until=2020-01-01").await.len(), 0);
    let first = call(gw.admin, "GET", "/api/v1/quarantine?limit=2", Some(TOKEN), None).await;
    assert_eq!(ids(&first.json()), [c.as_str(), &b]);
    let cursor = first.header("x-next-cursor").expect("a next cursor").to_string();
    let (_, rest) = api(&gw, "GET", &format!("/api/v1/quarantine?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&rest), [a.as_str()]);
}

#[tokio::test]
async fn the_api_refuses_bad_tokens_unknown_ids_and_bad_filters() {
    let (_down, gw) = setup("").await;
    for token in [None, Some("wrong")] {
        let r = call(gw.admin, "GET", "/api/v1/quarantine", token, None).await;
        assert_eq!(r.status, 401, "{}", r.text());
    }
    assert_eq!(call(gw.admin, "GET", "/healthz", None, None).await.status, 200);
    assert_eq!(call(gw.admin, "GET", "/readyz", None, None).await.status, 200);
    let (status, body) = api(&gw, "GET", "/api/v1/quarantine/NOSUCHID").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("no quarantined message NOSUCHID")));
    assert_eq!(api(&gw, "POST", "/api/v1/quarantine/NOSUCHID/release").await.0, 404);
    for (query, says) in [
        ("status=lost", "invalid `status`"),
        ("limit=9999", "invalid `limit`"),
        ("since=someday", "invalid `since`"),
        ("colour=red", "unknown filter `colour`"),
    ] {
        let (status, body) = api(&gw, "GET", &format!("/api/v1/quarantine?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(body["error"].as_str().unwrap().contains(says), "{query}: {body}");
    }
    let bad = call(gw.admin, "POST", "/api/v1/quarantine/bulk", Some(TOKEN), Some("{\"action\":\"explode\"}")).await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    let ids: Vec<String> = (0..10_001).map(|i| format!("\"{i}\"")).collect();
    let body = format!("{{\"action\":\"release\",\"ids\":[{}]}}", ids.join(","));
    let big = call(gw.admin, "POST", "/api/v1/quarantine/bulk", Some(TOKEN), Some(&body)).await;
    assert_eq!((big.status, big.json()["error"].as_str()), (400, Some("at most 10000 ids per bulk request")));
    // Even a path that is not UTF-8 gets a JSON error.
    for path in ["/api/v1/quarantine/%FF", "/api/v1/queue/%FF/retry"] {
        let r = call(gw.admin, "GET", path, Some(TOKEN), None).await;
        let r = if r.status == 405 { call(gw.admin, "POST", path, Some(TOKEN), None).await } else { r };
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.json()["error"].as_str().is_some(), "{path}");
    }
}

#[tokio::test]
async fn bulk_allow_and_the_audit_log() {
    let (down, gw) = setup("").await;
    let a = hold(&gw, "x@one.test", &["b@example.test"], "bulk one").await;
    let b = hold(&gw, "x@one.test", &["b@example.test"], "bulk two").await;
    let c = hold(&gw, "z@three.test", &["b@example.test"], "keep").await;
    let body = r#"{"action":"release","filter":{"sender":"x@one.test"}}"#;
    let tally = call(gw.admin, "POST", "/api/v1/quarantine/bulk", Some(TOKEN), Some(body)).await.json();
    let mut done: Vec<String> = serde_json::from_value(tally["done"].clone()).unwrap();
    done.sort();
    assert_eq!(done, [a.clone(), b.clone()]);
    down.wait_for(2, 10).await;

    let (status, allowed) = api(&gw, "POST", &format!("/api/v1/quarantine/{c}/allow")).await;
    assert_eq!((status, allowed["record"]["status"].as_str()), (200, Some("released")), "{allowed}");
    let (_, list) = api(&gw, "GET", "/api/v1/allowlist").await;
    assert_eq!(list, serde_json::json!([{ "sender": "z@three.test", "scope": "*" }]));
    let del = call(gw.admin, "DELETE", "/api/v1/allowlist?sender=z@three.test", Some(TOKEN), None).await;
    assert_eq!(del.status, 200);

    let (_, audit) = api(&gw, "GET", "/api/v1/audit").await;
    let log: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_string(), e["id"].as_str().unwrap().to_string()))
        .collect();
    for want in [("release", &a), ("release", &b), ("allow", &c), ("release", &c)] {
        assert!(log.contains(&(want.0.to_string(), want.1.clone())), "{want:?} in {log:?}");
    }
    assert!(log.iter().any(|(act, _)| act == "disallow"));
    assert!(audit.as_array().unwrap().iter().all(|e| e["by"] == "api" && e["at"].as_u64().unwrap() > 0));
}

#[tokio::test]
async fn without_a_token_web_pages_cannot_use_the_api() {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, "[scan]\nstages = [\"attachment\"]\n").await;
    let id = hold(&gw, "a@sender.test", &["b@example.test"], "csrf").await;
    let path = format!("/api/v1/quarantine/{id}/release");
    let h = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    for headers in [h("Origin", "http://evil.test"), h("Sec-Fetch-Site", "cross-site"), h("Host", "rebound.evil.test")]
    {
        let r = common::http::request(gw.admin, "POST", &path, &headers, b"").await;
        assert_eq!(r.status, 403, "{headers:?}: {}", r.text());
    }
    assert_eq!(api(&gw, "GET", &format!("/api/v1/quarantine/{id}")).await.1["status"], "held");
    assert_eq!(call(gw.admin, "POST", &path, None, None).await.status, 200, "the CLI's requests still work");
}
