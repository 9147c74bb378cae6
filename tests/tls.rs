//! STARTTLS inbound (RFC 3207) and towards the downstream.

mod common;
use common::*;
use std::sync::Arc;

#[tokio::test]
async fn starttls_then_a_full_transaction() {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, "").await;
    let mut c = gw.client().await;
    c.say("EHLO client.test", "250").await;
    c.say("MAIL FROM:<a@sender.test>", "250").await;
    let mut c = c.starttls().await;
    // RFC 3207 §4.2: the session starts over; the MAIL above is forgotten.
    c.say("RCPT TO:<b@example.test>", "503 5.5.1").await;
    let ehlo = c.say("EHLO client.test", "250").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    c.say("STARTTLS", "503 5.5.1").await;
    c.say("MAIL FROM:<a@sender.test>", "250").await;
    c.say("RCPT TO:<b@example.test>", "250").await;
    c.say("DATA", "354").await;
    c.send(&format!("{}.\r\n", message("secret", "over tls"))).await;
    c.expect("250 2.0.0").await;
    let got = down.wait_for(1, 10).await;
    assert!(got[0].text().contains("with ESMTPS id"), "{}", got[0].text());
    gw.shutdown().await;
}

#[tokio::test]
async fn commands_pipelined_after_starttls_are_refused() {
    // CVE-2011-0411: a man in the middle appends plaintext commands after
    // STARTTLS hoping they run inside the TLS session.
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, "").await;
    let mut c = gw.client().await;
    c.say("EHLO client.test", "250").await;
    c.send("STARTTLS\r\nMAIL FROM:<evil@sender.test>\r\n").await;
    c.expect("554 5.5.0").await;
    assert!(c.closed().await);
    gw.shutdown().await;
}

#[tokio::test]
async fn certificate_from_files_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["mx.gateway.test".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let down = Downstream::start(Behaviour::default()).await;
    let extra = format!("@rest\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n", cert.display(), key.display());
    let gw = Gateway::start(down.addr, &extra).await;
    // A client that trusts exactly this certificate completes the handshake.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut c = gw.client().await;
    c.say("EHLO client.test", "250").await;
    c.say("STARTTLS", "220").await;
    let name = rustls::pki_types::ServerName::try_from("mx.gateway.test").unwrap();
    let tls =
        tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, c.io).await.expect("verified TLS 1.2 handshake");
    let mut c = Client::over(Box::new(tls));
    c.say("EHLO client.test", "250").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn opportunistic_tls_to_the_downstream() {
    let down = Downstream::start(Behaviour { starttls: true, ..Default::default() }).await;
    let gw = Gateway::start(down.addr, "@relay\ntls = \"opportunistic\"").await;
    let mut c = gw.client().await;
    assert!(c.send_mail("a@sender.test", &["b@example.test"], &message("m", "x")).await.starts_with("250"));
    let got = down.wait_for(1, 10).await;
    assert!(got[0].tls, "the gateway should have used STARTTLS");
    gw.shutdown().await;
}

#[tokio::test]
async fn required_tls_verifies_the_downstream_certificate() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = (ck.cert.pem(), ck.key_pair.serialize_pem());
    let down = Downstream::start(Behaviour { starttls: true, cert: Some(pem), ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ck.cert.pem()).unwrap();
    // The route names the host, so the certificate is checked for "localhost".
    let relay = format!(
        "@relay\ntls = \"require\"\ntls_ca = \"{}\"\n[relay.routes]\n\"other.test\" = \"localhost:{}\"",
        ca.display(),
        down.addr.port()
    );
    let gw = Gateway::start(down.addr, &relay).await;
    let mut c = gw.client().await;
    assert!(c.send_mail("a@sender.test", &["b@other.test"], &message("m", "x")).await.starts_with("250"));
    let got = down.wait_for(1, 10).await;
    assert!(got[0].tls);
    gw.shutdown().await;
}

#[tokio::test]
async fn required_tls_defers_when_the_downstream_cannot_prove_itself() {
    // No STARTTLS offered; and offered with an untrusted certificate.
    for b in [Behaviour::default(), Behaviour { starttls: true, ..Default::default() }] {
        let down = Downstream::start(b).await;
        let gw = Gateway::start(down.addr, "@relay\ntls = \"require\"").await;
        let mut c = gw.client().await;
        let r = c.send_mail("a@sender.test", &["b@example.test"], &message("m", "x")).await;
        let id = queue_id(&r);
        let deferred =
            eventually(10, || async { queue_show(gw.admin, &id).await.is_some_and(|v| v["attempts"] == 1) }).await;
        assert!(deferred, "message should be deferred after one attempt");
        assert_eq!(down.count(), 0, "nothing may be sent without verified TLS");
        gw.shutdown().await;
    }
}
