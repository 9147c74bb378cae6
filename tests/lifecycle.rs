//! The binary as an operator meets it: config errors, the queue CLI and
//! graceful shutdown on SIGTERM.

mod common;
use common::process::{Proc, free_addr};
use common::*;

const FAST: &str = "@rest\n[queue]\nretry_initial = \"1s\"\nretry_max = \"1s\"\n";

#[tokio::test]
async fn malformed_config_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "[smtp]\nlisten = \"127.0.0.1:2525\"\nhostnam = \"x\"\n[relay]\ndomains = [\"a.test\"]\ndownstream = \"127.0.0.1:2526\"\n",
            "smtp.hostnam",
        ),
        (
            "[smtp]\nmax_recipients = \"many\"\n[relay]\ndomains = [\"a.test\"]\ndownstream = \"127.0.0.1:2526\"\n",
            "smtp.max_recipients",
        ),
        ("[relay]\ndomains = []\ndownstream = \"127.0.0.1:2526\"\n", "relay.domains"),
        ("[relay]\ndomains = [\"a.test\"]\ndownstream = \"nowhere:port\"\n", "relay.downstream"),
        ("[relay]\ndomains = [\"a.test\"]\ndownstream = \"h:25\"\n[admin]\nlisten = \"0.0.0.0:8025\"\n", "admin.token"),
        (
            "[relay]\ndomains = [\"a.test\"]\ndownstream = \"h:25\"\n[tls]\ncert = \"/nonexistent.pem\"\nkey = \"/nonexistent.key\"\n",
            "tls.cert",
        ),
        (
            "[relay]\ndomains = [\"a.test\"]\ndownstream = \"h:25\"\n[queue]\nretry_initial = \"soon\"\n",
            "queue.retry_initial",
        ),
        ("[relay]\ndomains = [\"a.test\"]\ndownstream = \"h:25\"\n[bogus]\nx = 1\n", "bogus"),
    ];
    for (text, key) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        for cmd in ["check-config", "serve"] {
            let (ok, _, err) = mxgate(&[cmd, "--config", p]).await;
            assert!(!ok, "{cmd} accepted a bad config: {text}");
            assert!(err.contains(p) && err.contains(&format!("`{key}`")), "{cmd}: {err}");
        }
    }
    let (ok, out, _) = mxgate(&["check-config", "--config", "config/mxgate.toml"]).await;
    assert!(ok && out.contains("configuration OK"));
    // Environment overrides are validated too.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mxgate"))
        .args(["check-config", "--config", "config/mxgate.toml"])
        .env("MXGATE_SMTP__MAX_RECIPIENTS", "0")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("`smtp.max_recipients`"));
}

#[tokio::test]
async fn queue_list_show_retry_delete() {
    let dir = tempfile::tempdir().unwrap();
    let down_addr = free_addr();
    let gw = Proc::start(dir.path(), down_addr, "@rest\n[queue]\nretry_initial = \"1h\"\nretry_max = \"2h\"\n").await;
    let cfg = gw.config.to_str().unwrap().to_string();
    let mut c = Client::connect(gw.smtp).await;
    let a = queue_id(&c.send_mail("a@sender.test", &["b@example.test"], &message("stuck1", "x")).await);
    c.say("MAIL FROM:<a@sender.test>", "250").await;
    c.say("RCPT TO:<c@example.test>", "250").await;
    c.say("DATA", "354").await;
    c.send(&format!("{}.\r\n", message("stuck2", "x"))).await;
    let b = queue_id(&c.expect("250").await);
    // Wait for the first (failed) attempts.
    let tried = eventually(10, || async { queue_show(gw.admin, &a).await.is_some_and(|v| v["attempts"] == 1) }).await;
    assert!(tried);
    let (ok, out, _) = mxgate(&["queue", "list", "--config", &cfg]).await;
    assert!(ok && out.contains(&a) && out.contains(&b) && out.contains("2 message(s)"), "{out}");
    // "Why is this mail stuck?" in one command.
    let (ok, out, _) = mxgate(&["queue", "show", &a, "--config", &cfg]).await;
    assert!(ok, "{out}");
    assert!(out.contains("b@example.test") && out.contains("connect to") && out.contains("next attempt in"), "{out}");
    // Retry with the downstream back: delivered now, not in an hour.
    let down = Downstream::start_on(down_addr, Behaviour::default()).await;
    let (ok, out, _) = mxgate(&["queue", "retry", &a, "--config", &cfg]).await;
    assert!(ok && out.contains("scheduled"), "{out}");
    assert_eq!(down.wait_for(1, 10).await[0].rcpts, vec!["b@example.test"]);
    let (ok, out, _) = mxgate(&["queue", "delete", &b, "--config", &cfg]).await;
    assert!(ok && out.contains("deleted"), "{out}");
    let (ok, _, err) = mxgate(&["queue", "show", &b, "--config", &cfg]).await;
    assert!(!ok && err.contains("404"), "{err}");
    let (ok, out, _) = mxgate(&["queue", "list", "--json", "--config", &cfg]).await;
    assert!(ok && out.trim() == "[]", "{out}");
    // No gateway there: a clear error, not a hang.
    let (ok, _, err) = mxgate(&["queue", "list", "--url", &format!("http://{}", free_addr())]).await;
    assert!(!ok && err.contains("cannot reach the admin listener"), "{err}");
}

#[tokio::test]
async fn admin_api_needs_the_token_when_one_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Proc::start(dir.path(), free_addr(), "@admin\ntoken = \"s3cret\"\n").await;
    let url = format!("http://{}", gw.admin);
    let (ok, _, err) = mxgate(&["queue", "list", "--url", &url]).await;
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = mxgate(&["queue", "list", "--url", &url, "--token", "wrong"]).await;
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, out, _) = mxgate(&["queue", "list", "--config", gw.config.to_str().unwrap()]).await;
    assert!(ok && out.contains("queue is empty"), "{out}");
}

#[tokio::test]
async fn sigterm_finishes_transactions_and_refuses_new_commands() {
    let dir = tempfile::tempdir().unwrap();
    let down_addr = free_addr();
    let mut gw = Proc::start(dir.path(), down_addr, FAST).await;
    let mut idle = Client::connect(gw.smtp).await;
    idle.say("EHLO idle.test", "250").await;
    let mut busy = Client::connect(gw.smtp).await;
    busy.say("EHLO busy.test", "250").await;
    busy.say("MAIL FROM:<a@sender.test>", "250").await;
    busy.say("RCPT TO:<b@example.test>", "250").await;
    busy.say("DATA", "354").await;
    busy.send("Subject: in flight\r\n\r\nfirst half\r\n").await;
    let pid = gw.child.id().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    // The idle session is told to come back later.
    idle.expect("421 4.3.2").await;
    // New connections are no longer accepted.
    let refused = eventually(10, || async { tokio::net::TcpStream::connect(gw.smtp).await.is_err() }).await;
    assert!(refused, "listener still accepting after SIGTERM");
    // The transaction in progress completes and is acknowledged.
    busy.send("second half\r\n.\r\n").await;
    let id = queue_id(&busy.expect("250").await);
    busy.send("MAIL FROM:<a@sender.test>\r\n").await;
    busy.expect("421 4.3.2").await;
    assert_eq!(gw.terminate().await, Some(0), "exit status after SIGTERM; log:\n{}", gw.log_text());
    // Acknowledged before the stop, delivered after the restart.
    let down = Downstream::start_on(down_addr, Behaviour::default()).await;
    let _gw = Proc::start(dir.path(), down_addr, FAST).await;
    let got = down.wait_for(1, 20).await;
    assert!(got[0].text().contains(&format!("id {id}")) && got[0].text().ends_with("first half\r\nsecond half\r\n"));
}

#[tokio::test]
async fn json_logs_have_one_line_per_session_and_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let down = Downstream::start(Behaviour::default()).await;
    let mut gw = Proc::start(dir.path(), down.addr, "@log\nformat = \"json\"").await;
    let mut c = Client::connect(gw.smtp).await;
    let id = queue_id(&c.send_mail("a@sender.test", &["b@example.test"], &message("logged", "x")).await);
    c.say("QUIT", "221").await;
    down.wait_for(1, 10).await;
    assert_eq!(gw.terminate().await, Some(0));
    let lines: Vec<serde_json::Value> =
        gw.log_text().lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    let find = |msg: &str| lines.iter().filter(|l| l["message"] == msg).cloned().collect::<Vec<_>>();
    let accepted = find("message accepted");
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["queue_id"], id.as_str());
    let disposition = find("message disposition");
    assert!(disposition.iter().any(|l| l["queue_id"] == id.as_str() && l["outcome"] == "delivered"), "{disposition:?}");
    let sessions = find("session closed");
    assert!(sessions.iter().any(|l| l["accepted"] == 1 && l["end"] == "closed"), "{sessions:?}");
}
