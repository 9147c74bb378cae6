//! The DNS list stages end to end: the test DNS server publishes listings,
//! mail arrives over SMTP from 127.0.0.1, and the verdict is read from the
//! session reply or the delivered X-Mxgate-* headers.

mod common;

use common::dns::DnsServer;
use common::{Behaviour, Downstream, Gateway, message};
use std::net::Ipv4Addr;

const FROM: &str = "a@sender.test";
const TO: &str = "b@example.test";

/// 127.0.0.1, written backwards as the lists are queried.
const CLIENT: &str = "1.0.0.127";

async fn gateway(dns: &DnsServer, scan: &str) -> (Downstream, Gateway) {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, &format!("@rest\n{scan}{}", dns.config())).await;
    (down, gw)
}

async fn send(gw: &Gateway, content: &str) -> String {
    gw.client().await.send_mail(FROM, &[TO], content).await
}

/// The unfolded value of the first `name:` header of `text`.
fn header(text: &str, name: &str) -> String {
    let head = text.split("\r\n\r\n").next().unwrap().replace("\r\n\t", " ").replace("\r\n ", " ");
    let prefix = format!("{name}: ");
    head.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {name} in {text}")).to_string()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Block list `bl.test` and allow list `wl.test`, private addresses checked
/// (the test client is loopback); `extra` goes into `[scan.dnsbl]`.
fn lists(extra: &str) -> String {
    format!(
        r#"[scan]
stages = ["dnsbl"]
[scan.dnsbl]
check_private = true
{extra}
[[scan.dnsbl.zones]]
zone = "bl.test"
[[scan.dnsbl.zones]]
zone = "wl.test"
label = "WL"
allow = true
codes = [{{ code = "127.0.10.3", name = "hi", meaning = "high trust", score = -2.0 }}]
"#
    )
}

#[tokio::test]
async fn a_listed_client_is_rejected_in_the_session_naming_the_list() {
    let dns = DnsServer::start().await;
    dns.a(&format!("{CLIENT}.bl.test"), ip("127.0.0.2"));
    let (down, gw) = gateway(&dns, &lists("")).await;
    let reply = send(&gw, &message("listed", "Hi.")).await;
    assert!(
        reply.starts_with(
            "550 5.7.1 Message rejected: DNSBL_BL_TEST: client 127.0.0.1 is listed in bl.test (127.0.0.2)"
        ),
        "{reply}"
    );
    assert_eq!(down.count(), 0);
}

#[tokio::test]
async fn an_allow_list_lowers_the_score_and_unlisted_clients_pass() {
    let dns = DnsServer::start().await;
    let (down, gw) = gateway(&dns, &lists("")).await;
    // Not listed anywhere: delivered with nothing to say.
    assert!(send(&gw, &message("clean", "Hi.")).await.starts_with("250"));
    let text = down.wait_for(1, 10).await[0].text();
    assert_eq!(header(&text, "X-Mxgate-Verdict"), "deliver");
    assert_eq!(header(&text, "X-Mxgate-Symbols"), "none");

    // The allow list answers with the configured code.
    dns.a(&format!("{CLIENT}.wl.test"), ip("127.0.10.3"));
    let (down, gw) = gateway(&dns, &lists("")).await;
    assert!(send(&gw, &message("trusted", "Hi.")).await.starts_with("250"));
    let text = down.wait_for(1, 10).await[0].text();
    assert_eq!(header(&text, "X-Mxgate-Symbols"), "DNSWL_WL_HI(-2.0)");
    assert_eq!(header(&text, "X-Mxgate-Score"), "-2.0");
}

#[tokio::test]
async fn loopback_clients_are_not_looked_up_unless_asked() {
    let dns = DnsServer::start().await;
    dns.a(&format!("{CLIENT}.bl.test"), ip("127.0.0.2"));
    let scan = "[scan]\nstages = [\"dnsbl\"]\n[[scan.dnsbl.zones]]\nzone = \"bl.test\"\n";
    let (down, gw) = gateway(&dns, scan).await;
    assert!(send(&gw, &message("private", "Hi.")).await.starts_with("250"));
    let text = down.wait_for(1, 10).await[0].text();
    assert_eq!(header(&text, "X-Mxgate-Symbols"), "none");
    assert_eq!(dns.queries(), 0, "a loopback client cannot be listed, so no list is asked");
}

#[tokio::test]
async fn a_refusal_or_a_dead_list_is_unavailable_not_an_error() {
    let dns = DnsServer::start().await;
    // Lists answer 127.255.255.x to refuse a query: that is not a listing.
    dns.a(&format!("{CLIENT}.bl.test"), ip("127.255.255.254"));
    let scan = lists("timeout = \"300ms\"");
    let (down, gw) = gateway(&dns, &scan).await;
    assert!(send(&gw, &message("refused", "Hi.")).await.starts_with("250"));
    let text = down.wait_for(1, 10).await[0].text();
    assert_eq!(header(&text, "X-Mxgate-Symbols"), "DNSBL_UNAVAILABLE(0.0)");
    assert_eq!(header(&text, "X-Mxgate-Verdict"), "deliver");

    // A nameserver that never answers: the lookup times out.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let down = Downstream::start(Behaviour::default()).await;
    let dead = format!("[dns]\nnameservers = [\"{}\"]\n", silent.local_addr().unwrap());
    let gw = Gateway::start(down.addr, &format!("@rest\n{scan}{dead}")).await;
    assert!(send(&gw, &message("dead", "Hi.")).await.starts_with("250"));
    let text = down.wait_for(1, 10).await[0].text();
    assert_eq!(header(&text, "X-Mxgate-Symbols"), "DNSBL_UNAVAILABLE(0.0)");
}

const URI_LISTS: &str = r#"[scan]
stages = ["uribl"]
[[scan.uribl.zones]]
zone = "uribl.test"
label = "TEST"
"#;

#[tokio::test]
async fn a_listed_link_domain_scores_and_can_reject() {
    let dns = DnsServer::start().await;
    dns.a("evil.test.uribl.test", ip("127.0.0.2"));
    let (down, gw) = gateway(&dns, URI_LISTS).await;
    let body = "Log in at https://login.evil.test/account or http://www.good.test/.";
    assert!(send(&gw, &message("link", body)).await.starts_with("250"));
    let text = down.wait_for(1, 10).await[0].text();
    assert_eq!(header(&text, "X-Mxgate-Symbols"), "URIBL_TEST(5.0)");
    assert_eq!(header(&text, "X-Mxgate-Verdict"), "tag", "5.0 reaches the default tag score");

    // An operator may give the list a hard action; the reason names the domain.
    let (_down, gw) = gateway(&dns, &format!("{URI_LISTS}action = \"reject\"\n")).await;
    let html =
        "MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n<p>Hi</p><a href=\"http://a.b.evil.test/x\">bank</a>";
    let content = format!("From: <{FROM}>\r\nTo: <{TO}>\r\nSubject: html\r\n{html}\r\n");
    let reply = send(&gw, &content).await;
    assert!(
        reply.starts_with("550 5.7.1 Message rejected: URIBL_TEST: link domain evil.test is listed in uribl.test"),
        "{reply}"
    );
}
