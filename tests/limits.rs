//! Each limit and its reply. A misbehaving client gets a clear reply and is
//! disconnected; other sessions keep working.

mod common;
use common::*;

async fn gateway(smtp_extra: &str) -> (Downstream, Gateway) {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, &format!("@smtp\n{smtp_extra}")).await;
    (down, gw)
}

async fn ready(gw: &Gateway) -> Client {
    let mut c = gw.client().await;
    c.envelope("a@sender.test", &["b@example.test"]).await;
    c
}

#[tokio::test]
async fn message_size_declared_and_actual() {
    let (_d, gw) = gateway("max_message_size = 2000").await;
    let mut c = gw.client().await;
    let ehlo = c.say("EHLO client.test", "250").await;
    assert!(ehlo.contains("SIZE 2000"));
    c.say("MAIL FROM:<a@sender.test> SIZE=2001", "552 5.3.4").await;
    c.say("MAIL FROM:<a@sender.test> SIZE=100", "250").await;
    c.say("RCPT TO:<b@example.test>", "250").await;
    c.say("DATA", "354").await;
    c.send(&format!("Subject: big\r\n\r\n{}\r\n.\r\n", "x\r\n".repeat(1000))).await;
    c.expect("552 5.3.4").await;
    c.say("NOOP", "250").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn recipients_per_message() {
    let (_d, gw) = gateway("max_recipients = 2").await;
    let mut c = gw.client().await;
    c.say("EHLO client.test", "250").await;
    c.say("MAIL FROM:<a@sender.test>", "250").await;
    c.say("RCPT TO:<r1@example.test>", "250").await;
    c.say("RCPT TO:<r2@example.test>", "250").await;
    c.say("RCPT TO:<r3@example.test>", "452 4.5.3").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn command_line_length() {
    let (_d, gw) = gateway("max_command_line = 600").await;
    let mut c = gw.client().await;
    c.say(&format!("NOOP {}", "x".repeat(700)), "500 5.5.2").await;
    c.say("NOOP", "250").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn text_line_length_and_header_size() {
    let (_d, gw) = gateway("max_line_length = 100\nmax_header_size = 1000").await;
    let mut c = ready(&gw).await;
    c.say("DATA", "354").await;
    c.send(&format!("Subject: x\r\n\r\n{}\r\n.\r\n", "y".repeat(101))).await;
    c.expect("550 5.6.0").await;
    c.say("MAIL FROM:<a@sender.test>", "250").await;
    c.say("RCPT TO:<b@example.test>", "250").await;
    c.say("DATA", "354").await;
    c.send(&format!("{}\r\nbody\r\n.\r\n", "X-Pad: 0123456789\r\n".repeat(60))).await;
    c.expect("552 5.3.4").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn command_timeout() {
    let (_d, gw) = gateway("command_timeout = \"300ms\"").await;
    let mut c = gw.client().await;
    c.expect("421 4.4.2").await;
    assert!(c.closed().await);
    gw.shutdown().await;
}

#[tokio::test]
async fn data_timeout_and_minimum_rate() {
    let (d, gw) = gateway("data_timeout = \"300ms\"\nmin_data_rate = 100000\nmin_data_rate_after = \"200ms\"").await;
    let mut c = ready(&gw).await;
    c.say("DATA", "354").await;
    c.send("Subject: slow\r\n").await;
    c.expect("421 4.4.2").await;
    assert!(c.closed().await);
    // A trickle that never times out is cut by the rate limit.
    let mut c = ready(&gw).await;
    c.say("DATA", "354").await;
    let mut reply = String::new();
    for _ in 0..20 {
        c.send("x").await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Ok(r) = tokio::time::timeout(std::time::Duration::from_millis(10), c.reply()).await {
            reply = r;
            break;
        }
    }
    assert!(reply.starts_with("421 4.4.2") && reply.contains("rate"), "{reply:?}");
    assert_eq!(d.count(), 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn connections_per_ip_and_in_total() {
    let (_d, gw) = gateway("max_connections_per_ip = 2").await;
    let mut a = gw.client().await;
    let _b = gw.client().await;
    let mut c = Client::connect(gw.smtp).await;
    assert!(c.greeting.starts_with("421 4.7.0"), "{}", c.greeting);
    assert!(c.closed().await);
    a.say("NOOP", "250").await;
    gw.shutdown().await;
    let (_d, gw) = gateway("max_connections = 1").await;
    let _a = gw.client().await;
    let c = Client::connect(gw.smtp).await;
    assert!(c.greeting.starts_with("421 4.7.0"), "{}", c.greeting);
    gw.shutdown().await;
}

#[tokio::test]
async fn too_many_errors_disconnects_only_that_client() {
    let (down, gw) = gateway("max_errors = 3").await;
    let mut good = gw.client().await;
    good.say("EHLO good.test", "250").await;
    let mut bad = gw.client().await;
    bad.say("FOO", "500").await;
    bad.say("BAR", "500").await;
    bad.send("BAZ\r\n").await;
    bad.expect("500").await;
    bad.expect("421 4.7.0").await;
    assert!(bad.closed().await);
    let r = good.send_mail("a@sender.test", &["b@example.test"], &message("still", "works")).await;
    assert!(r.starts_with("250"), "{r}");
    down.wait_for(1, 10).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn unauthorised_pipelining() {
    let (down, gw) = gateway("").await;
    // Without EHLO a client may not pipeline.
    let mut c = gw.client().await;
    c.say("HELO old.test", "250").await;
    c.send("MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@example.test>\r\n").await;
    c.expect("554 5.5.0").await;
    assert!(c.closed().await);
    // Content before the 354 is refused.
    let mut c = ready(&gw).await;
    c.send("DATA\r\nSubject: eager\r\n\r\nx\r\n.\r\n").await;
    c.expect("554 5.5.0").await;
    assert!(c.closed().await);
    assert_eq!(down.count(), 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn recipients_past_the_limit_are_not_errors_but_long_lines_are() {
    let (_d, gw) = gateway("max_errors = 3\nmax_recipients = 2\nmax_command_line = 600").await;
    let mut c = gw.client().await;
    c.say("EHLO client.test", "250").await;
    let batch: String = (0..30).map(|i| format!("RCPT TO:<r{i}@example.test>\r\n")).collect();
    c.send(&format!("MAIL FROM:<a@sender.test>\r\n{batch}")).await;
    c.expect("250").await;
    for i in 0..30 {
        c.expect(if i < 2 { "250" } else { "452 4.5.3" }).await;
    }
    c.say("NOOP", "250").await;
    for _ in 0..2 {
        c.say(&format!("NOOP {}", "x".repeat(700)), "500 5.5.2").await;
    }
    c.send(&format!("NOOP {}\r\n", "x".repeat(700))).await;
    c.expect("500 5.5.2").await;
    c.expect("421 4.7.0").await;
    assert!(c.closed().await);
    gw.shutdown().await;
}
