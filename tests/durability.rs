//! An acknowledged message is never lost: kill -9 at any moment, restart,
//! and every message that got a 250 is delivered, whole, exactly as sent.

mod common;
use common::process::{Proc, free_addr};
use common::*;
use std::collections::HashSet;

const RETRY: &str = "@rest\n[queue]\nretry_initial = \"1s\"\nretry_max = \"1s\"\n";

#[tokio::test]
async fn kill_9_after_250_while_the_downstream_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let down_addr = free_addr(); // nothing listens there yet
    let mut gw = Proc::start(dir.path(), down_addr, RETRY).await;
    let mut ids = Vec::new();
    let mut c = Client::connect(gw.smtp).await;
    c.say("EHLO client.test", "250").await;
    for i in 0..20 {
        c.say("MAIL FROM:<a@sender.test>", "250").await;
        c.say("RCPT TO:<b@example.test>", "250").await;
        c.say("DATA", "354").await;
        c.send(&format!("{}.\r\n", message(&format!("durable{i}"), &"body line\r\n".repeat(i * 50)))).await;
        ids.push(queue_id(&c.expect("250").await));
    }
    gw.kill9();
    let down = Downstream::start_on(down_addr, Behaviour::default()).await;
    let gw = Proc::start(dir.path(), down_addr, RETRY).await;
    let got = down.wait_for(20, 30).await;
    let seen: HashSet<String> = got.iter().map(|m| m.text().split(" id ").nth(1).unwrap()[..20].to_string()).collect();
    for (i, id) in ids.iter().enumerate() {
        let m = got.iter().find(|m| m.text().contains(&format!("id {id}\r\n"))).unwrap_or_else(|| panic!("{id} lost"));
        assert!(m.text().ends_with(&format!("\r\n\r\n{}\r\n", "body line\r\n".repeat(i * 50))));
    }
    assert_eq!(seen.len(), 20, "every message delivered");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(down.count(), 20, "and none twice");
    drop(gw);
}

#[tokio::test]
async fn kill_9_during_a_stream_of_messages() {
    let dir = tempfile::tempdir().unwrap();
    let down_addr = free_addr();
    let mut gw = Proc::start(dir.path(), down_addr, RETRY).await;
    // Four concurrent senders; each message carries its own checksum line.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut senders = Vec::new();
    for s in 0..4 {
        let (addr, acked) = (gw.smtp, acked.clone());
        senders.push(tokio::spawn(async move {
            let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else { return };
            drop(tcp);
            let mut c = Client::connect(addr).await;
            if !c.say_soft("EHLO client.test").await.starts_with("250") {
                return;
            }
            for i in 0.. {
                let tag = format!("s{s}m{i}");
                let body = format!("X-Tag: {tag}\r\n\r\n{}\r\nend {tag}\r\n", "payload line\r\n".repeat(10 + i % 400));
                if !c.say_soft("MAIL FROM:<a@sender.test>").await.starts_with("250")
                    || !c.say_soft("RCPT TO:<b@example.test>").await.starts_with("250")
                    || !c.say_soft("DATA").await.starts_with("354")
                {
                    return;
                }
                c.send_soft(&format!("{body}.\r\n")).await;
                if c.reply().await.starts_with("250") {
                    acked.lock().unwrap().push(tag);
                } else {
                    return;
                }
            }
        }));
    }
    let enough = wait_until(30, || acked.lock().unwrap().len() >= 150).await;
    assert!(enough, "senders made no progress: {} acknowledged; log:\n{}", acked.lock().unwrap().len(), gw.log_text());
    gw.kill9();
    for s in senders {
        let _ = s.await;
    }
    let acked = acked.lock().unwrap().clone();
    let down = Downstream::start_on(down_addr, Behaviour::default()).await;
    let _gw = Proc::start(dir.path(), down_addr, RETRY).await;
    let got = down.wait_for(acked.len(), 60).await;
    let mut delivered = HashSet::new();
    for m in &got {
        let text = m.text();
        let tag = text.split("X-Tag: ").nth(1).unwrap().lines().next().unwrap().to_string();
        // Never a partial message: the last line names the same tag.
        assert!(text.ends_with(&format!("end {tag}\r\n")), "partial message delivered: {tag}");
        assert!(delivered.insert(tag.clone()), "{tag} delivered twice");
    }
    for tag in &acked {
        assert!(delivered.contains(tag), "acknowledged message {tag} was lost");
    }
}

/// A quarantine verdict's 250 is as durable as a delivery's: kill -9 right
/// after it, restart, and every held message is there, whole, and its
/// release delivers it once.
#[tokio::test]
async fn kill_9_after_a_quarantine_250() {
    let dir = tempfile::tempdir().unwrap();
    let down = Downstream::start(Behaviour::default()).await;
    let extra = "@admin\ntoken = \"t0ken\"\n@rest\n[scan]\nstages = [\"attachment\"]\n";
    let mut gw = Proc::start(dir.path(), down.addr, extra).await;
    let mut ids = Vec::new();
    let mut c = Client::connect(gw.smtp).await;
    for i in 0..10 {
        let reply = c.send_mail("a@sender.test", &["b@example.test"], &mime::zip_with_exe(&format!("held{i}"))).await;
        ids.push(queue_id(&reply));
    }
    gw.kill9();
    let gw = Proc::start(dir.path(), down.addr, extra).await;
    for (i, id) in ids.iter().enumerate() {
        let raw = http::call(gw.admin, "GET", &format!("/api/v1/quarantine/{id}/raw"), Some("t0ken"), None).await;
        assert_eq!(raw.status, 200, "{id} lost: {}", raw.text());
        assert!(raw.text().contains(&format!("Subject: held{i}\r\n")) && raw.text().ends_with("--=_b--\r\n"));
    }
    let list = http::call(gw.admin, "GET", "/api/v1/quarantine?status=held", Some("t0ken"), None).await.json();
    assert_eq!(list.as_array().unwrap().len(), 10, "the search index is rebuilt from the store");
    let r = http::call(gw.admin, "POST", &format!("/api/v1/quarantine/{}/release", ids[3]), Some("t0ken"), None).await;
    assert_eq!(r.status, 200);
    assert!(down.wait_for(1, 10).await[0].text().contains("Subject: held3\r\n"));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(down.count(), 1);
    drop(gw);
}
