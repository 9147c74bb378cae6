//! The verdict policy end to end: thresholds, per-symbol overrides, allow
//! and block lists, parser limits, stage failures, and the headers on the
//! delivered copy.

mod common;

use common::{Behaviour, Downstream, Gateway, quarantine_show, queue_id, queue_show};

const FROM: &str = "alice@sender.test";
const TO: &str = "bob@example.test";

fn plain(subject: &str, extra_headers: &str) -> String {
    format!(
        "From: Alice <{FROM}>\r\nTo: <{TO}>\r\nSubject: {subject}\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <{subject}@sender.test>\r\n{extra_headers}\r\nHello Bob.\r\n"
    )
}

/// A multipart/mixed message with `n` text parts.
fn with_parts(n: usize) -> String {
    let mut m = format!(
        "From: <{FROM}>\r\nTo: <{TO}>\r\nSubject: parts\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
    );
    for i in 0..n {
        m.push_str(&format!("--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"));
    }
    m.push_str("--b--\r\n");
    m
}

/// Multiparts nested `depth` deep around one text part.
fn nested(depth: usize) -> String {
    let mut m = format!("From: <{FROM}>\r\nTo: <{TO}>\r\nSubject: deep\r\nMIME-Version: 1.0\r\n");
    for d in 0..depth {
        m.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{d}\"\r\n\r\n--b{d}\r\n"));
    }
    m.push_str("Content-Type: text/plain\r\n\r\nbottom\r\n");
    for d in (0..depth).rev() {
        m.push_str(&format!("--b{d}--\r\n"));
    }
    m
}

async fn gateway(extra: &str) -> (Downstream, Gateway) {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, &format!("@rest\n{extra}")).await;
    (down, gw)
}

async fn send(gw: &Gateway, content: &str) -> String {
    gw.client().await.send_mail(FROM, &[TO], content).await
}

fn header<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}: ");
    text.lines().filter_map(|l| l.strip_prefix(prefix.as_str())).collect()
}

#[tokio::test]
async fn delivered_mail_carries_the_verdict_and_forged_results_are_removed() {
    let (down, gw) = gateway("[scan]\nstages = []\n").await;
    let forged = "Authentication-Results: MX.Gateway.Test; dkim=pass header.d=bank.test\r\n\
Authentication-Results: upstream.test; spf=pass smtp.mailfrom=sender.test\r\nX-Mxgate-Verdict: deliver\r\n";
    let reply = send(&gw, &plain("hello", forged)).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let text = down.wait_for(1, 10).await[0].text();
    assert_eq!(
        header(&text, "Authentication-Results"),
        ["mx.gateway.test; none", "upstream.test; spf=pass smtp.mailfrom=sender.test"]
    );
    assert!(!text.contains("bank.test"), "{text}");
    assert_eq!(header(&text, "X-Mxgate-Verdict"), ["deliver"]);
    assert_eq!(header(&text, "X-Mxgate-Score"), ["0.0"]);
    assert_eq!(header(&text, "Subject"), ["hello"]);
}

#[tokio::test]
async fn block_listed_client_and_sender_are_rejected_in_the_session() {
    let (down, gw) = gateway("[scan]\nstages = []\n[policy]\nblock_ips = [\"127.0.0.0/8\"]\n").await;
    let reply = send(&gw, &plain("blocked", "")).await;
    assert!(
        reply.starts_with("550 5.7.1 Message rejected: BLOCKLIST_IP: client 127.0.0.1 is on the block list"),
        "{reply}"
    );
    let (down2, gw2) = gateway("[scan]\nstages = []\n[policy]\nblock_senders = [\"sender.test\"]\n").await;
    let reply = send(&gw2, &plain("blocked", "")).await;
    assert!(reply.starts_with("550 5.7.1 Message rejected: BLOCKLIST_SENDER"), "{reply}");
    assert_eq!((down.count(), down2.count()), (0, 0));
}

/// MIME_TOO_MANY_PARTS, given a score and no hard action, stands in for
/// any scored symbol.
const SCORED: &str = "[scan]\nstages = []\n[scan.limits]\nmax_parts = 3\n\
[policy.symbols.MIME_TOO_MANY_PARTS]\nscore = 6.0\naction = \"deliver\"\n";

#[tokio::test]
async fn score_over_the_tag_threshold_prefixes_the_subject() {
    let (down, gw) = gateway(SCORED).await;
    assert!(send(&gw, &with_parts(5)).await.starts_with("250"));
    let text = down.wait_for(1, 10).await[0].text();
    assert_eq!(header(&text, "Subject"), ["[SPAM] parts"]);
    assert_eq!(header(&text, "X-Mxgate-Verdict"), ["tag"]);
    assert_eq!(header(&text, "X-Mxgate-Symbols"), ["MIME_TOO_MANY_PARTS(6.0)"]);
}

#[tokio::test]
async fn score_thresholds_quarantine_and_reject() {
    let (down, gw) = gateway(&format!("{SCORED}[policy]\nquarantine_score = 5.0\n")).await;
    let reply = send(&gw, &with_parts(5)).await;
    let entry = quarantine_show(gw.admin, &queue_id(&reply)).await.expect("held message in the quarantine");
    assert_eq!(entry["status"], "held");
    assert_eq!(entry["action"], "quarantine");
    let why = entry["reason"].as_str().unwrap();
    assert!(why.contains("spam score 6.0 reached the quarantine threshold 5.0"), "{why}");
    // A quarantined message is not in the delivery queue, so a queue retry
    // cannot leak it.
    let id = queue_id(&reply);
    let (ok, _, err) = common::mxgate(&["queue", "retry", &id, "--url", &format!("http://{}", gw.admin)]).await;
    assert!(!ok && err.contains("no queued message"), "{err}");
    assert!(queue_show(gw.admin, &id).await.is_none());
    assert_eq!(quarantine_show(gw.admin, &id).await.unwrap()["status"], "held");

    let (_, gw2) = gateway(&format!("{SCORED}[policy]\nquarantine_score = 5.0\nreject_score = 6.0\n")).await;
    let reply = send(&gw2, &with_parts(5)).await;
    assert!(
        reply.starts_with("550 5.7.1 Message rejected: spam score 6.0 reached the reject threshold 6.0"),
        "{reply}"
    );
    assert_eq!(down.count(), 0);
}

#[tokio::test]
async fn allow_listed_client_skips_scoring_but_not_content_limits() {
    let allow = "[policy]\nreject_score = 5.0\nallow_ips = [\"127.0.0.0/8\"]\n";
    let (down, gw) = gateway(&format!("{SCORED}{allow}")).await;
    assert!(send(&gw, &with_parts(5)).await.starts_with("250"));
    let text = down.wait_for(1, 10).await[0].text();
    assert_eq!(header(&text, "X-Mxgate-Verdict"), ["deliver"]);
    assert!(header(&text, "X-Mxgate-Symbols")[0].contains("ALLOWLIST_IP"));

    // Without the override, the part limit keeps its quarantine action.
    let (_, gw2) = gateway(&format!("[scan]\nstages = []\n[scan.limits]\nmax_parts = 3\n{allow}")).await;
    let reply = send(&gw2, &with_parts(5)).await;
    let entry = quarantine_show(gw2.admin, &queue_id(&reply)).await.unwrap();
    assert_eq!(entry["status"], "held");
}

/// The envelope sender is only a claim: an allow-listed sender counts when
/// SPF passes for it.
#[tokio::test]
async fn allow_listed_sender_counts_only_when_spf_vouches_for_it() {
    let dns = common::dns::DnsServer::start().await;
    let scored = SCORED.replace("stages = []", "stages = [\"spf\"]");
    let cfg = format!("{}{scored}[policy]\nreject_score = 5.0\nallow_senders = [\"sender.test\"]\n", dns.config());
    let (down, gw) = gateway(&cfg).await;
    let reply = send(&gw, &with_parts(5)).await;
    assert!(reply.starts_with("550 5.7.1 Message rejected: spam score"), "no SPF record, no trust: {reply}");
    dns.txt("sender.test", "v=spf1 ip4:127.0.0.1 -all");
    assert!(send(&gw, &with_parts(5)).await.starts_with("250"));
    let text = down.wait_for(1, 10).await[0].text();
    assert_eq!(header(&text, "X-Mxgate-Verdict"), ["deliver"]);
    let head = text.split("\r\n\r\n").next().unwrap();
    assert!(head.contains("ALLOWLIST_SENDER(0.0)") && head.contains("SPF_PASS("), "{head}");
}

/// Headers readers may resolve differently are held, not guessed at.
#[tokio::test]
async fn ambiguous_from_and_content_headers_are_quarantined() {
    let (_, gw) = gateway("[scan]\nstages = []\n").await;
    let two_froms = plain("twofrom", "From: <x@attacker.test>\r\n");
    let two_domains =
        plain("twodomains", "").replace(&format!("From: Alice <{FROM}>"), "From: ceo@bank.test, x@attacker.test");
    let two_types = "From: <a@sender.test>\r\nTo: <b@example.test>\r\nSubject: t\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"X\"\r\nContent-Type: text/plain\r\n\r\n--X\r\n\r\nhi\r\n--X--\r\n";
    for (content, symbol) in [
        (two_froms.as_str(), "MIME_DUPLICATE_HEADER"),
        (two_domains.as_str(), "MIME_MULTIPLE_FROM_DOMAINS"),
        (two_types, "MIME_DUPLICATE_HEADER"),
    ] {
        let reply = send(&gw, content).await;
        let entry = quarantine_show(gw.admin, &queue_id(&reply)).await.unwrap();
        assert_eq!(entry["status"], "held", "{symbol}");
        assert!(entry["reason"].as_str().unwrap().contains(symbol), "{symbol}: {}", entry["reason"]);
    }
}

#[tokio::test]
async fn messages_past_the_parser_limits_are_quarantined_not_passed() {
    let (down, gw) =
        gateway("[scan]\nstages = []\n[scan.limits]\nmax_depth = 4\nmax_parts = 50\nmax_decoded_size = 2000\n").await;
    for (content, symbol) in [
        (nested(8), "MIME_TOO_DEEP"),
        (with_parts(60), "MIME_TOO_MANY_PARTS"),
        (
            plain("big", "").replace("Hello Bob.", &"x".repeat(900).repeat(3).replace("xxxxxxxxxx", "xxxxxxxxx\r\n")),
            "MIME_DECODED_TOO_BIG",
        ),
    ] {
        let reply = send(&gw, &content).await;
        let entry = quarantine_show(gw.admin, &queue_id(&reply)).await.unwrap();
        assert_eq!(entry["status"], "held", "{symbol}");
        let names: Vec<&str> =
            entry["symbols"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert!(names.contains(&symbol), "{symbol} not in {names:?}");
    }
    // Within the limits the same shapes pass.
    assert!(send(&gw, &nested(3)).await.starts_with("250"));
    assert_eq!(down.wait_for(1, 10).await.len(), 1);
}

/// A DNS server that never answers: the dnsbl stage's lookups (2 s each)
/// hang past the stage timeout.
async fn black_hole() -> std::net::SocketAddr {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = tokio::net::TcpListener::bind(addr).await.ok();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        let mut held = Vec::new();
        loop {
            tokio::select! {
                r = udp.recv_from(&mut buf) => if r.is_err() { return },
                Some(Ok((c, _))) = async { match &tcp { Some(t) => Some(t.accept().await), None => None } } => held.push(c),
            }
        }
    });
    addr
}

#[tokio::test]
async fn a_stage_that_times_out_follows_its_on_error_policy() {
    let dns = black_hole().await;
    let base = format!(
        "[dns]\nnameservers = [\"{dns}\"]\n[scan]\nstages = [\"dnsbl\"]\n[scan.dnsbl]\ncheck_private = true\n\
[[scan.dnsbl.zones]]\nzone = \"bl.test\"\n[scan.stage.dnsbl]\ntimeout = \"1s\"\n"
    );

    let (_, gw) = gateway(&base).await;
    let reply = send(&gw, &plain("tempfail", "")).await;
    assert!(
        reply.starts_with("451 4.7.1 Message not scanned, try again later: DNSBL_ERROR: dnsbl: timed out after 1s"),
        "{reply}"
    );

    let (down, gw) = gateway(&format!("{base}on_error = \"skip\"\n")).await;
    assert!(send(&gw, &plain("skip", "")).await.starts_with("250"));
    let text = down.wait_for(1, 10).await[0].text();
    assert_eq!(header(&text, "X-Mxgate-Symbols"), ["DNSBL_ERROR(0.0)"]);
    assert_eq!(header(&text, "X-Mxgate-Verdict"), ["deliver"]);

    let (_, gw) = gateway(&format!("{base}on_error = \"quarantine\"\n")).await;
    let reply = send(&gw, &plain("quarantine", "")).await;
    let entry = quarantine_show(gw.admin, &queue_id(&reply)).await.unwrap();
    assert_eq!(entry["status"], "held");
    assert!(entry["reason"].as_str().unwrap().contains("DNSBL_ERROR"));
}

#[tokio::test]
async fn bad_scanning_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[relay]\ndomains = [\"a.test\"]\ndownstream = \"h:25\"\n";
    for (extra, key, says) in [
        ("[scan]\nstages = [\"antivirus\"]\n", "scan.stages", "unknown stage `antivirus`"),
        ("[scan]\nstages = [\"dmarc\"]\n", "scan.stages", "dmarc needs spf and dkim"),
        ("[scan]\non_error = \"ignore\"\n", "scan.on_error", "ignore"),
        ("[scan.stage.antivirus]\non_error = \"skip\"\n", "scan.stage", "unknown stage `antivirus`"),
        ("[scan.stage.dkim]\non_error = \"skip\"\n", "scan.stage", "use [scan.stage.auth]"),
        ("[scan.stage.heuristics]\ntimeout = \"0s\"\n", "scan.stage", "longer than 0s"),
        ("[scan]\ntimeout = \"5s\"\n", "scan.auth.timeout", "twice it must be shorter"),
        ("[scan.attachment]\nmax_archive_depth = 0\n", "scan", "scan.attachment.max_archive_depth"),
        ("[scan.attachment]\nblocked = [\"exe\"]\n", "scan.attachment.blocked", "unknown key"),
        ("[policy]\nblock_ips = [\"10.0.0.0/99\"]\n", "policy.block_ips", "bad prefix length"),
        ("[policy.symbols.X]\naction = \"explode\"\n", "policy.symbols.X.action", "explode"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, format!("{base}{extra}")).unwrap();
        let (ok, _, err) = common::mxgate(&["check-config", "--config", path.to_str().unwrap()]).await;
        assert!(!ok, "accepted: {extra}");
        assert!(err.contains(&format!("key `{key}`")) && err.contains(says), "{extra}: {err}");
    }
}
