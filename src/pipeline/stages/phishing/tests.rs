//! Whole-message tests of the phishing stage.

use super::*;
use crate::pipeline::Facts;

fn stage() -> Phishing {
    let cfg = PhishingConfig {
        executives: vec!["Jane Doe".into()],
        trusted_link_hosts: vec!["tracker.test".into()],
        ..Default::default()
    };
    Phishing::new(&cfg, &["Example.Test".into(), "other.test".into()]).unwrap()
}

fn scan(sender: &str, raw: &str) -> Vec<(String, f64)> {
    let facts = Facts::test(sender);
    let parsed = message::parse(raw.as_bytes());
    let input = Input { facts: &facts, raw: raw.as_bytes(), message: parsed.as_ref() };
    stage().scan(&input).symbols.into_iter().map(|s| (s.name, s.score)).collect()
}

fn mail(from: &str, extra: &str, body: &str) -> String {
    format!("From: {from}\r\nTo: b@example.test\r\nSubject: s\r\n{extra}\r\n{body}\r\n")
}

#[test]
fn clean_mail_has_no_symbols() {
    let html = "Content-Type: text/html\r\n";
    let body =
        "<p>See <a href=\"https://www.sender.test/x\">https://sender.test/x</a> or <a href=\"/rel\">here</a>.</p>";
    assert_eq!(scan("a@sender.test", &mail("Ann <a@sender.test>", html, body)), []);
    assert_eq!(scan("a@sender.test", &mail("Jane Doe <jane@example.test>", "", "hi")), []);
    assert_eq!(scan("", &mail("Jane Doe <jane@example.test>", "", "hi")), []);
}

#[test]
fn display_name_spoof() {
    let s = scan("x@free.test", &mail("\"Doe, Jane\" <ceo.office@free.test>", "", "wire money"));
    assert_eq!(s, [("PHISH_DISPLAY_NAME_SPOOF".to_string(), 6.0)]);
    let s = scan("x@free.test", &mail("\"boss@example.test\" <boss@free.test>", "", "hi"));
    assert_eq!(s, [("PHISH_DISPLAY_NAME_SPOOF".to_string(), 6.0)]);
}

#[test]
fn lookalike_sender_and_links() {
    let s = scan("x@examp1e.test", &mail("Bob <bob@exarnple.test>", "", "hi"));
    assert_eq!(s, [("PHISH_LOOKALIKE_DOMAIN".to_string(), 5.0)]);
    let s = scan("x@sender.test", &mail("Bob <bob@sender.test>", "", "log in: https://xn--xample-9uf.test/login"));
    assert_eq!(s, [("PHISH_LOOKALIKE_DOMAIN".to_string(), 5.0)]);
}

#[test]
fn link_mismatch_scores_by_shown_domain() {
    let html = "Content-Type: text/html\r\n";
    let ours = "<a href=\"https://evil.test/x\">https://www.example.test/login</a>";
    assert_eq!(scan("a@sender.test", &mail("a@sender.test", html, ours)), [("PHISH_LINK_MISMATCH".to_string(), 5.0)]);
    let theirs = "<a href=\"https://evil.test/x\">www.bank.test</a>";
    assert_eq!(scan("a@sender.test", &mail("a@sender.test", html, theirs)), [("PHISH_LINK_MISMATCH".to_string(), 3.0)]);
    let tracked = "<a href=\"https://r.tracker.test/x\">www.bank.test</a>";
    assert_eq!(scan("a@sender.test", &mail("a@sender.test", html, tracked)), []);
}

#[test]
fn reply_to_mismatch() {
    let s = scan("a@sender.test", &mail("a@sender.test", "Reply-To: <x@elsewhere.test>\r\n", "hi"));
    assert_eq!(s, [("PHISH_REPLYTO_MISMATCH".to_string(), 1.0)]);
    let s = scan("a@sender.test", &mail("a@example.test", "Reply-To: <x@elsewhere.test>\r\n", "hi"));
    assert_eq!(s, [("PHISH_REPLYTO_MISMATCH".to_string(), 3.0)]);
    let s = scan("a@sender.test", &mail("a@sender.test", "Reply-To: <list@lists.sender.test>\r\n", "hi"));
    assert_eq!(s, []);
}

#[test]
fn hostile_input_does_not_panic() {
    for raw in [
        "",
        "\r\n\r\n",
        "From: \"\u{0}\" <@>\r\n\r\n<a href=",
        "From: <a@b>\r\nContent-Type: text/html\r\n\r\n<a href=\"http://\u{2603}.\">www.\u{2603}.</a>",
    ] {
        let _ = scan("", raw);
    }
    let s = stage();
    let crlf = mail(
        "a@sender.test",
        "Content-Type: text/html\r\n",
        "<a href=\"https://evil.test\r\nX: y/\">www.bank.test</a>",
    );
    let parsed = message::parse(crlf.as_bytes());
    let facts = Facts { sender: None, ..Facts::test("") };
    let found = s.scan(&Input { facts: &facts, raw: crlf.as_bytes(), message: parsed.as_ref() });
    assert_eq!(found.symbols.len(), 1);
    assert!(found.symbols.iter().all(|s| !s.reason.contains(['\r', '\n'])), "{found:?}");
    let many = "<a href=\"https://evil.test/\">www.bank.test</a>".repeat(5000);
    let s = scan("a@sender.test", &mail("a@sender.test", "Content-Type: text/html\r\n", &many));
    assert_eq!(s.len(), 1);
}
