//! The auth stage end to end: messages signed and sealed here with
//! mail-auth, keys and policies published by the test DNS server, mail sent
//! through SMTP from 127.0.0.1, and the verdict read back from the session
//! reply, the delivered Authentication-Results and X-Mxgate-Symbols, or the
//! quarantine.

mod common;

use common::dns::DnsServer;
use common::{Behaviour, Downstream, Gateway, quarantine_show, queue_id};
use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults};

const TO: &str = "b@example.test";

/// A 1024-bit RSA test key (`openssl genrsa -traditional 1024`) and its
/// public key as published in DNS.
const RSA_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIICWwIBAAKBgQDOQPe23YzEX16j8TG02P+L2r/Vy3OHQ3KjqJPIrlA+ktFA60Or
WKvC9LdRgqDQf1dZZ8ATWc4MQ+g4g/I33y2y10bztXB+2v5jd6JN8cLcA/VoLAUN
BpeOrHGwI6LgJ/FTgYViOUmP+HeI2P9YBKI2IgL0vVSx4yT17iVxRboGowIDAQAB
AoGAPkQcxIcD/TCxeJrTH762/zit21RNb1NsY338B4SgUxOtuoSL7EmbqQKJ6UCf
XfJjo2kP8oeVDdzeWVl0IWvt9loHBnZlRivLgkKntZYBJjOO4Wuj6YymJAvmxzI+
TA09rdjHCypmuBsvrJ8JIuyVEdbIlw7p/5bQJquCXv1UsTECQQDpddS5vVyiAHzk
3sopnJbZK74I5VMJLt9FdT+kuD7hyIX6YymSCnOBCMFM9WyouCrFa7ud4HWWe1hW
V6gvqS+5AkEA4iq0ed9M6GX4Fzi9Z0CFXJ16VVy0vgY4+683t/9XdmZaXS/Bnu2d
PNWb5O73vtIdUrMfMwe4xqfc0Vs9/qm/OwJALedDOnonOptJ815y9ZeaeX0GUo10
tDuJHwkcyHCJvK9G2KKiy9pON7LW/yDKiqobjtHOBA7cUAhUqDV4Flb30QJAJk8v
hNlDMLZdAKn2wy+Vp2txVlY+s1Vgf5ldachRq1eJBPHa7S24jZ5tKqkjw+nZV7HJ
nh43uUajy76V0LY2EwJAVXGXfka2O6QUWGfU6kgxZZOPqDhxJdmzBkre7pFVAYCg
Ihk2wKHL9aMyiFqIJo/nFa/4q4yGaw4RSIE2W/HmmA==
-----END RSA PRIVATE KEY-----
";
const RSA_DNS: &str = "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDOQPe23YzEX16j8TG02P+L2r/Vy3OHQ3KjqJPIrlA\
+ktFA60OrWKvC9LdRgqDQf1dZZ8ATWc4MQ+g4g/I33y2y10bztXB+2v5jd6JN8cLcA/VoLAUNBpeOrHGwI6LgJ/FTgYViOUmP+HeI2P9YBKI2IgL0vVS\
x4yT17iVxRboGowIDAQAB";

/// An Ed25519 test key (`openssl genpkey -algorithm ed25519`): seed, public
/// key, and the public key as published in DNS.
const ED_SEED: &str = "742af0bb1c8e34da2bd03be317a9e00a05459da811bf0b3f30212159592c9646";
const ED_PUBLIC: &str = "4b98cdaa2a13eab6d6937ee4496cb3f8e4daa50d5418f698c7fcb3af96b54242";
const ED_DNS: &str = "v=DKIM1; k=ed25519; p=S5jNqioT6rbWk37kSWyz+OTapQ1UGPaYx/yzr5a1QkI=";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn ed_key() -> Ed25519Key {
    Ed25519Key::from_seed_and_public_key(&hex(ED_SEED), &hex(ED_PUBLIC)).unwrap()
}

fn rsa_key() -> RsaKey<Sha256> {
    let der = rustls_pemfile::private_key(&mut RSA_KEY.as_bytes()).unwrap().unwrap();
    RsaKey::<Sha256>::from_key_der(der).unwrap()
}

/// A message from `from`, CRLF line ends.
fn message(from: &str, subject: &str, body: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <{TO}>\r\nSubject: {subject}\r\nDate: Mon, 2 Jun 2025 10:00:00 +0000\r\n\
Message-ID: <{subject}@s.test>\r\n\r\n{body}\r\n"
    )
}

/// `msg` with a DKIM-Signature by `d=s.test s=ed` on top.
fn signed(msg: &str, body_length: bool) -> String {
    let sig = DkimSigner::from_key(ed_key())
        .domain("s.test")
        .selector("ed")
        .headers(["From", "To", "Subject", "Date"])
        .body_length(body_length)
        .sign(msg.as_bytes())
        .unwrap();
    format!("{}{msg}", sig.to_header())
}

/// The test DNS server, a downstream and a gateway running `stages`.
async fn setup(stages: &str) -> (DnsServer, Downstream, Gateway) {
    let dns = DnsServer::start().await;
    dns.txt("ed._domainkey.s.test", ED_DNS);
    dns.txt("rsa._domainkey.s.test", RSA_DNS);
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, &format!("@rest\n[scan]\nstages = [{stages}]\n{}", dns.config())).await;
    (dns, down, gw)
}

async fn send(gw: &Gateway, from: &str, content: &str) -> String {
    gw.client().await.send_mail(from, &[TO], content).await
}

/// The delivered message with `subject`, once `n` messages have arrived.
async fn delivered(down: &Downstream, n: usize, subject: &str) -> String {
    let all = down.wait_for(n, 10).await;
    let m = all.iter().map(|m| m.text()).find(|t| t.contains(&format!("Subject: {subject}\r\n")));
    m.unwrap_or_else(|| panic!("{subject} not delivered"))
}

/// The unfolded value of the first `name:` header of `text`.
fn header(text: &str, name: &str) -> String {
    let head = text.split("\r\n\r\n").next().unwrap().replace("\r\n\t", " ").replace("\r\n ", " ");
    let prefix = format!("{name}: ");
    head.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {name} in {text}")).to_string()
}

#[tokio::test]
async fn an_rsa_signed_message_with_spf_passes_dkim_spf_and_dmarc() {
    let (dns, down, gw) = setup("\"spf\", \"dkim\", \"dmarc\", \"arc\"").await;
    dns.txt("s.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.txt("_dmarc.s.test", "v=DMARC1; p=reject");
    let msg = message("a@s.test", "rsa", "Hello.");
    let sig = DkimSigner::from_key(rsa_key()).domain("s.test").selector("rsa").headers(["From", "To", "Subject"]);
    let content = format!("{}{msg}", sig.sign(msg.as_bytes()).unwrap().to_header());
    let reply = send(&gw, "a@s.test", &content).await;
    assert!(reply.starts_with("250"), "{reply}");
    let text = delivered(&down, 1, "rsa").await;
    let ar = header(&text, "Authentication-Results");
    assert!(ar.starts_with("mx.gateway.test; "), "{ar}");
    for part in [
        "spf=pass smtp.mailfrom=a@s.test",
        "dkim=pass header.d=s.test header.s=rsa",
        "arc=none",
        "dmarc=pass header.from=s.test policy.dmarc=reject",
    ] {
        assert!(ar.contains(part), "{part} not in {ar}");
    }
    let symbols = header(&text, "X-Mxgate-Symbols");
    for s in ["SPF_PASS(-0.2)", "DKIM_PASS(-0.2)", "ARC_NONE(0.0)", "DMARC_PASS(-0.5)"] {
        assert!(symbols.contains(s), "{s} not in {symbols}");
    }
}

#[tokio::test]
async fn a_body_changed_after_signing_fails_dkim() {
    let (_dns, down, gw) = setup("\"dkim\"").await;
    let good = signed(&message("a@s.test", "intact", "Pay 10 EUR."), false);
    assert!(send(&gw, "a@s.test", &good).await.starts_with("250"));
    let text = delivered(&down, 1, "intact").await;
    assert!(header(&text, "Authentication-Results").contains("dkim=pass header.d=s.test header.s=ed"));
    assert!(header(&text, "X-Mxgate-Symbols").contains("DKIM_PASS(-0.2)"));

    let altered = signed(&message("a@s.test", "altered", "Pay 10 EUR."), false).replace("Pay 10", "Pay 9000");
    assert!(send(&gw, "a@s.test", &altered).await.starts_with("250"));
    let text = delivered(&down, 2, "altered").await;
    let ar = header(&text, "Authentication-Results");
    assert!(ar.contains("dkim=fail (") && ar.contains("body hash did not verify"), "{ar}");
    assert!(ar.contains("header.d=s.test header.s=ed"), "{ar}");
    assert!(header(&text, "X-Mxgate-Symbols").contains("DKIM_FAIL(1.0)"));

    let unsigned = message("a@s.test", "unsigned", "Hi.");
    assert!(send(&gw, "a@s.test", &unsigned).await.starts_with("250"));
    let text = delivered(&down, 3, "unsigned").await;
    assert!(header(&text, "Authentication-Results").contains("dkim=none"));
    assert!(header(&text, "X-Mxgate-Symbols").contains("DKIM_NONE(0.0)"));
}

#[tokio::test]
async fn a_body_length_limit_that_leaves_content_unsigned_is_reported_and_does_not_align() {
    let (dns, down, gw) = setup("\"spf\", \"dkim\", \"dmarc\"").await;
    dns.txt("_dmarc.s.test", "v=DMARC1; p=none");
    // l= covering the whole body is a pass like any other.
    let whole = signed(&message("a@s.test", "whole", "Signed text."), true);
    assert!(whole.contains(" l="), "{whole}");
    assert!(send(&gw, "a@s.test", &whole).await.starts_with("250"));
    let text = delivered(&down, 1, "whole").await;
    assert!(header(&text, "Authentication-Results").contains("dkim=pass header.d=s.test"));
    assert!(header(&text, "Authentication-Results").contains("dmarc=pass header.from=s.test"));

    // Text appended after signing still verifies cryptographically, but the
    // signature vouches only for its prefix.
    let mut appended = signed(&message("a@s.test", "appended", "Signed text."), true);
    appended.push_str("Unsigned: send your password to http://x.test/\r\n");
    assert!(send(&gw, "a@s.test", &appended).await.starts_with("250"));
    let text = delivered(&down, 2, "appended").await;
    let ar = header(&text, "Authentication-Results");
    assert!(ar.contains("dkim=policy (l=14 signs only 14 of 62 body octets; "), "{ar}");
    assert!(ar.contains("the rest is unsigned) header.d=s.test header.s=ed"), "{ar}");
    assert!(ar.contains("dmarc=fail header.from=s.test policy.dmarc=none"), "{ar}");
    let symbols = header(&text, "X-Mxgate-Symbols");
    assert!(symbols.contains("DKIM_PARTIAL_BODY(1.0)") && symbols.contains("DMARC_POLICY_NONE(1.0)"), "{symbols}");
    assert!(!symbols.contains("DKIM_PASS"), "{symbols}");
}

#[tokio::test]
async fn spf_pass_fail_softfail_none_and_the_null_sender() {
    let (dns, down, gw) = setup("\"spf\"").await;
    dns.txt("pass.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.txt("fail.test", "v=spf1 ip4:192.0.2.1 -all");
    dns.txt("soft.test", "v=spf1 ip4:192.0.2.1 ~all");
    dns.txt("client.test", "v=spf1 ip4:127.0.0.0/8 -all");
    let cases = [
        ("a@pass.test", "spf=pass smtp.mailfrom=a@pass.test", "SPF_PASS(-0.2)"),
        ("a@fail.test", "spf=fail smtp.mailfrom=a@fail.test", "SPF_FAIL(1.5)"),
        ("a@soft.test", "spf=softfail smtp.mailfrom=a@soft.test", "SPF_SOFTFAIL(0.5)"),
        ("a@none.test", "spf=none smtp.mailfrom=a@none.test", "SPF_NONE(0.0)"),
        // RFC 7208 §2.4: a bounce is checked by its HELO name (EHLO client.test).
        ("", "spf=pass smtp.helo=client.test", "SPF_PASS(-0.2)"),
    ];
    for (n, (from, result, symbol)) in cases.into_iter().enumerate() {
        let subject = format!("spf{n}");
        let reply = send(&gw, from, &message("a@s.test", &subject, "Hi.")).await;
        assert!(reply.starts_with("250"), "{from}: {reply}");
        let text = delivered(&down, n + 1, &subject).await;
        let ar = header(&text, "Authentication-Results");
        assert_eq!(ar, format!("mx.gateway.test; {result}"));
        assert_eq!(header(&text, "X-Mxgate-Symbols"), symbol);
    }
}

#[tokio::test]
async fn dmarc_reject_quarantine_and_none_policies() {
    let (dns, down, gw) = setup("\"spf\", \"dkim\", \"dmarc\"").await;
    // SPF passes for the envelope domain, which is not the From domain:
    // nothing aligns, so each From domain's policy applies.
    dns.txt("bounce.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.txt("_dmarc.rej.test", "v=DMARC1; p=reject");
    dns.txt("_dmarc.quar.test", "v=DMARC1; p=quarantine");
    dns.txt("_dmarc.none.test", "v=DMARC1; p=none");

    let reply = send(&gw, "x@bounce.test", &message("ceo@rej.test", "rej", "Wire money.")).await;
    assert!(reply.starts_with("550 5.7.1 Message rejected: DMARC_POLICY_REJECT: rej.test fails DMARC"), "{reply}");

    let reply = send(&gw, "x@bounce.test", &message("ceo@quar.test", "quar", "Wire money.")).await;
    let entry = quarantine_show(gw.admin, &queue_id(&reply)).await.expect("held message in the quarantine");
    assert_eq!(entry["status"], "held");
    assert_eq!(entry["action"], "quarantine");
    let names: Vec<&str> = entry["symbols"].as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(names.contains(&"DMARC_POLICY_QUARANTINE") && names.contains(&"SPF_PASS"), "{names:?}");

    let reply = send(&gw, "x@bounce.test", &message("ceo@none.test", "none", "Wire money.")).await;
    assert!(reply.starts_with("250"), "{reply}");
    let text = delivered(&down, 1, "none").await;
    let ar = header(&text, "Authentication-Results");
    assert!(ar.contains("spf=pass smtp.mailfrom=x@bounce.test"), "{ar}");
    assert!(ar.contains("dmarc=fail header.from=none.test policy.dmarc=none"), "{ar}");
    assert!(header(&text, "X-Mxgate-Symbols").contains("DMARC_POLICY_NONE(1.0)"));
    assert!(header(&text, "X-Mxgate-Verdict").starts_with("deliver"));
    assert_eq!(down.count(), 1, "the rejected and quarantined messages were not delivered");
}

/// `msg` with an ARC set by `d=s.test s=ed` on top.
fn sealed(msg: &str) -> String {
    let parsed = AuthenticatedMessage::parse(msg.as_bytes()).unwrap();
    let results = AuthenticationResults::new("relay.s.test");
    let set = ArcSealer::from_key(ed_key())
        .domain("s.test")
        .selector("ed")
        .headers(["From", "To", "Subject"])
        .seal(&parsed, &results, &ArcOutput::default())
        .unwrap();
    format!("{}{msg}", set.to_header())
}

#[tokio::test]
async fn an_arc_chain_that_verifies_and_one_that_was_broken() {
    let (_dns, down, gw) = setup("\"arc\"").await;
    let good = sealed(&message("a@s.test", "sealed", "Forwarded."));
    assert!(send(&gw, "a@s.test", &good).await.starts_with("250"));
    let text = delivered(&down, 1, "sealed").await;
    assert_eq!(header(&text, "Authentication-Results"), "mx.gateway.test; arc=pass");
    assert_eq!(header(&text, "X-Mxgate-Symbols"), "ARC_PASS(-0.1)");

    let broken = sealed(&message("a@s.test", "broken", "Forwarded.")).replace("Forwarded.", "Changed.");
    assert!(send(&gw, "a@s.test", &broken).await.starts_with("250"));
    let text = delivered(&down, 2, "broken").await;
    assert!(header(&text, "Authentication-Results").starts_with("mx.gateway.test; arc=fail ("));
    assert_eq!(header(&text, "X-Mxgate-Symbols"), "ARC_FAIL(0.5)");
}

#[tokio::test]
async fn an_unreachable_dns_server_is_a_temperror_not_a_stage_error() {
    // A port nothing answers on: every lookup times out.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let down = Downstream::start(Behaviour::default()).await;
    let cfg = format!(
        "@rest\n[scan]\nstages = [\"spf\", \"dkim\", \"dmarc\"]\n[scan.auth]\ndns_timeout = \"200ms\"\ntimeout = \"1s\"\n\
[dns]\nnameservers = [\"{}\"]\n",
        silent.local_addr().unwrap()
    );
    let gw = Gateway::start(down.addr, &cfg).await;
    let content = signed(&message("a@s.test", "nodns", "Hi."), false);
    let reply = send(&gw, "a@s.test", &content).await;
    assert!(reply.starts_with("250"), "{reply}");
    let text = delivered(&down, 1, "nodns").await;
    let ar = header(&text, "Authentication-Results");
    assert!(ar.contains("spf=temperror smtp.mailfrom=a@s.test"), "{ar}");
    assert!(ar.contains("dkim=temperror"), "{ar}");
    let symbols = header(&text, "X-Mxgate-Symbols");
    assert!(symbols.contains("SPF_TEMPERROR(0.0)") && symbols.contains("DKIM_TEMPERROR(0.0)"), "{symbols}");
    assert!(!symbols.contains("AUTH_ERROR"), "{symbols}");
}
