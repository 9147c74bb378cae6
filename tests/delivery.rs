//! Delivery: retries after 4xx, DSNs after 5xx, per-domain routes,
//! connection reuse and recipient verification.

mod common;
use common::*;

const FAST_RETRY: &str = "@rest\n[queue]\nretry_initial = \"1s\"\nretry_max = \"2s\"\n";

#[tokio::test]
async fn a_4xx_from_the_downstream_is_retried() {
    let down = Downstream::start(Behaviour { tempfail_data: 2, ..Default::default() }).await;
    let gw = Gateway::start(down.addr, FAST_RETRY).await;
    let mut c = gw.client().await;
    let id = queue_id(&c.send_mail("a@sender.test", &["b@example.test"], &message("retry", "x")).await);
    // While deferred, `queue show` says why.
    let explained = eventually(10, || async {
        queue_show(gw.admin, &id).await.is_some_and(|v| v["why"].as_str().unwrap_or("").contains("451 4.3.0 try later"))
    })
    .await;
    assert!(explained, "queue show should explain the deferral");
    let got = down.wait_for(1, 20).await;
    assert_eq!(got.len(), 1);
    // Delivered: gone from the queue.
    assert!(eventually(5, || async { queue_show(gw.admin, &id).await.is_none() }).await);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_5xx_bounces_to_the_sender_once_and_never_loops() {
    let down = Downstream::start(Behaviour { unknown_users: vec!["nobody".into()], ..Default::default() }).await;
    // DSNs to sender.test go to the same recording downstream.
    let gw = Gateway::start(down.addr, "").await;
    let mut c = gw.client().await;
    let r = c.send_mail("a@sender.test", &["nobody@example.test", "b@example.test"], &message("bounce", "x")).await;
    queue_id(&r);
    let got = down.wait_for(2, 10).await;
    let dsn = got.iter().find(|m| m.from.is_empty()).expect("a DSN with the null sender");
    assert_eq!(dsn.rcpts, vec!["a@sender.test"]);
    let text = dsn.text();
    assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status"), "{text}");
    assert!(text.contains("Final-Recipient: rfc822; nobody@example.test"));
    assert!(text.contains("Status: 5.1.1"));
    assert!(!text.contains("Final-Recipient: rfc822; b@example.test"));
    let normal = got.iter().find(|m| !m.from.is_empty()).unwrap();
    assert_eq!(normal.rcpts, vec!["b@example.test"]);
    // A message from the null sender that fails is dropped, not bounced.
    let mut c = gw.client().await;
    c.say("EHLO client.test", "250").await;
    c.say("MAIL FROM:<>", "250").await;
    c.say("RCPT TO:<nobody@example.test>", "250").await;
    c.say("DATA", "354").await;
    c.send(&format!("{}.\r\n", message("null", "x"))).await;
    let id = queue_id(&c.expect("250").await);
    assert!(eventually(10, || async { queue_show(gw.admin, &id).await.is_none() }).await);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(down.count(), 2, "no DSN for a null-sender message");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_5xx_at_data_bounces_every_recipient() {
    let down = Downstream::start(Behaviour { reject_data: true, ..Default::default() }).await;
    let sink = Downstream::start(Behaviour::default()).await;
    let extra = format!("@relay\n[relay.routes]\n\"sender.test\" = \"{}\"", sink.addr);
    let gw = Gateway::start(down.addr, &extra).await;
    let mut c = gw.client().await;
    queue_id(&c.send_mail("a@sender.test", &["b@example.test"], &message("refused", "x")).await);
    let got = sink.wait_for(1, 10).await;
    assert!(got[0].text().contains("554 5.6.0 content refused"), "{}", got[0].text());
    gw.shutdown().await;
}

#[tokio::test]
async fn per_domain_routes_and_connection_reuse() {
    let main = Downstream::start(Behaviour::default()).await;
    let other = Downstream::start(Behaviour::default()).await;
    let extra = format!("@relay\n[relay.routes]\n\"other.test\" = \"{}\"", other.addr);
    let gw = Gateway::start(main.addr, &extra).await;
    let mut c = gw.client().await;
    queue_id(&c.send_mail("a@sender.test", &["b@example.test", "c@other.test"], &message("split", "x")).await);
    assert_eq!(main.wait_for(1, 10).await[0].rcpts, vec!["b@example.test"]);
    assert_eq!(other.wait_for(1, 10).await[0].rcpts, vec!["c@other.test"]);
    // Ten messages one after another reuse one connection.
    for i in 0..10 {
        c.say("MAIL FROM:<a@sender.test>", "250").await;
        c.say("RCPT TO:<b@example.test>", "250").await;
        c.say("DATA", "354").await;
        c.send(&format!("{}.\r\n", message(&format!("m{i}"), "x"))).await;
        c.expect("250").await;
        main.wait_for(2 + i, 10).await;
    }
    assert_eq!(main.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn recipient_verification_rejects_unknown_users_at_rcpt() {
    let down = Downstream::start(Behaviour { unknown_users: vec!["ghost".into()], ..Default::default() }).await;
    let gw = Gateway::start(down.addr, "@relay\nverify_recipients = true").await;
    let mut c = gw.client().await;
    c.say("EHLO client.test", "250").await;
    c.say("MAIL FROM:<a@sender.test>", "250").await;
    c.say("RCPT TO:<ghost@example.test>", "550 5.1.1").await;
    c.say("RCPT TO:<real@example.test>", "250").await;
    let probes = down.connections.load(std::sync::atomic::Ordering::SeqCst);
    // Cached: asking again does not probe again.
    c.say("RCPT TO:<ghost@example.test>", "550 5.1.1").await;
    c.say("RCPT TO:<real@example.test>", "250").await;
    assert_eq!(down.connections.load(std::sync::atomic::Ordering::SeqCst), probes);
    gw.shutdown().await;
    // With the downstream unreachable the answer is temporary, never 250.
    let dead = Downstream::start(Behaviour::default()).await;
    let addr = dead.addr;
    dead.stop();
    drop(dead);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let gw = Gateway::start(addr, "@relay\nverify_recipients = true").await;
    let mut c = gw.client().await;
    c.say("EHLO client.test", "250").await;
    c.say("MAIL FROM:<a@sender.test>", "250").await;
    c.say("RCPT TO:<someone@example.test>", "451 4.4.3").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn a_message_that_outlives_max_lifetime_expires_with_a_dsn() {
    let sink = Downstream::start(Behaviour::default()).await;
    let dead = Downstream::start(Behaviour::default()).await;
    let dead_addr = dead.addr;
    dead.stop();
    drop(dead);
    let extra = format!(
        "@relay\n[relay.routes]\n\"sender.test\" = \"{}\"\n@rest\n[queue]\nmax_lifetime = \"1s\"\nretry_initial = \"1s\"\nretry_max = \"1s\"\n",
        sink.addr
    );
    let gw = Gateway::start(dead_addr, &extra).await;
    let mut c = gw.client().await;
    let id = queue_id(&c.send_mail("a@sender.test", &["b@example.test"], &message("expire", "x")).await);
    let got = sink.wait_for(1, 15).await;
    assert!(got[0].from.is_empty());
    let text = got[0].text();
    assert!(text.contains("message expired in the queue; last error: connect to"), "{text}");
    assert!(text.contains(&format!("X-Mxgate-Queue-ID: {id}")));
    assert!(eventually(5, || async { queue_show(gw.admin, &id).await.is_none() }).await);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_dsn_that_fails_is_dropped_not_bounced_again() {
    // The sender's mailbox is unknown too, so the DSN itself gets a 550.
    let b = Behaviour { unknown_users: vec!["nobody".into(), "a".into()], ..Default::default() };
    let down = Downstream::start(b).await;
    let gw = Gateway::start(down.addr, "").await;
    let mut c = gw.client().await;
    let id = queue_id(&c.send_mail("a@sender.test", &["nobody@example.test"], &message("loop", "x")).await);
    let empty = eventually(10, || async {
        let url = format!("http://{}", gw.admin);
        let (ok, out, _) = mxgate(&["queue", "list", "--json", "--url", &url]).await;
        ok && out.trim() == "[]"
    })
    .await;
    assert!(empty, "the original and its DSN should both be gone");
    assert!(queue_show(gw.admin, &id).await.is_none());
    assert_eq!(down.count(), 0);
    gw.shutdown().await;
}
