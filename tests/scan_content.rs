//! The `phishing` and `heuristics` stages end to end: messages go in over
//! SMTP and the delivered copy carries the verdict in X-Mxgate-Verdict and
//! the symbols in X-Mxgate-Symbols. The gateway protects example.test and
//! other.test (its relay domains) and knows one executive, Jane Doe.

mod common;

use common::{Behaviour, Downstream, Gateway};

const SCAN: &str =
    "@rest\n[scan]\nstages = [\"phishing\", \"heuristics\"]\n[scan.phishing]\nexecutives = [\"Jane Doe\"]\n";
const TO: &str = "bob@example.test";
const DATE: &str = "Date: Thu, 26 Nov 2026 10:00:00 +0000";

async fn gateway() -> (Downstream, Gateway) {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, SCAN).await;
    (down, gw)
}

/// A well-formed message from `from` with `extra` headers (CRLF-ended)
/// and a text/plain body.
fn plain(from: &str, subject: &str, extra: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: <{TO}>\r\nSubject: {subject}\r\n{DATE}\r\nMessage-ID: <{subject}@mail.test>\r\n{extra}\r\n{body}\r\n"
    )
}

/// A well-formed multipart/alternative message with a text and an HTML
/// version.
fn alternative(from: &str, subject: &str, text: &str, html: &str) -> String {
    plain(
        from,
        subject,
        "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n",
        &format!(
            "--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\
             --alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--alt--"
        ),
    )
}

/// Sends one message with `sender` as the envelope sender and returns the
/// delivered copy.
async fn deliver(sender: &str, content: &str) -> String {
    let (down, gw) = gateway().await;
    let reply = gw.client().await.send_mail(sender, &[TO], content).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    down.wait_for(1, 10).await[0].text()
}

/// The value of a header of the delivered copy, unfolded.
fn header(text: &str, name: &str) -> String {
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let unfolded = head.replace("\r\n\t", " ").replace("\r\n ", " ");
    let prefix = format!("{name}: ");
    unfolded.split("\r\n").find_map(|l| l.strip_prefix(prefix.as_str())).unwrap_or_default().to_string()
}

/// `NAME(score)` entries of X-Mxgate-Symbols.
fn symbols(text: &str) -> Vec<String> {
    header(text, "X-Mxgate-Symbols").split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// The symbols of one stage family (`PHISH_`, `HEUR_`), in order.
fn family(text: &str, prefix: &str) -> Vec<String> {
    symbols(text).into_iter().filter(|s| s.starts_with(prefix)).collect()
}

#[tokio::test]
async fn a_well_formed_message_is_delivered_with_no_symbols() {
    let html =
        "<p>The minutes are at <a href=\"https://docs.sender.test/minutes\">https://www.sender.test/minutes</a>.</p>";
    let msg =
        alternative("Alice Smith <alice@sender.test>", "minutes", "The minutes: https://www.sender.test/minutes", html);
    let text = deliver("alice@sender.test", &msg).await;
    assert_eq!(header(&text, "X-Mxgate-Verdict"), "deliver");
    assert_eq!(header(&text, "X-Mxgate-Score"), "0.0");
    assert_eq!(family(&text, "PHISH_"), Vec::<String>::new(), "{text}");
    assert_eq!(family(&text, "HEUR_"), Vec::<String>::new(), "{text}");
    assert_eq!(header(&text, "Subject"), "minutes");
}

#[tokio::test]
async fn an_outsider_using_an_executives_name_is_tagged() {
    let msg = plain("\"Doe, Jane\" <jane.doe.ceo@freemail.test>", "urgent", "", "Please wire the payment today.");
    let text = deliver("jane.doe.ceo@freemail.test", &msg).await;
    assert_eq!(family(&text, "PHISH_"), ["PHISH_DISPLAY_NAME_SPOOF(6.0)"], "{text}");
    assert_eq!(header(&text, "X-Mxgate-Verdict"), "tag");
    assert_eq!(header(&text, "Subject"), "[SPAM] urgent");
}

#[tokio::test]
async fn the_executive_writing_from_the_protected_domain_is_not_a_spoof() {
    let msg = plain("Jane Doe <jane@example.test>", "board", "", "See you at the board meeting.");
    let text = deliver("jane@example.test", &msg).await;
    assert_eq!(family(&text, "PHISH_"), Vec::<String>::new(), "{text}");
    assert_eq!(header(&text, "X-Mxgate-Verdict"), "deliver");
}

#[tokio::test]
async fn a_lookalike_of_a_protected_domain_is_tagged() {
    let body = "Your mailbox is full; log in at https://xn--xample-9uf.test/login to keep it.";
    let msg = plain("IT Desk <it@examp1e.test>", "mailbox", "", body);
    let text = deliver("it@examp1e.test", &msg).await;
    assert_eq!(family(&text, "PHISH_"), ["PHISH_LOOKALIKE_DOMAIN(5.0)"], "{text}");
    assert_eq!(header(&text, "X-Mxgate-Verdict"), "tag");
}

#[tokio::test]
async fn link_text_showing_another_site_than_the_target_is_tagged() {
    let html = "<p>Please <a href=\"https://evil.test/x\">https://www.example.test/login</a> today.</p>";
    let msg = alternative("Alice <alice@sender.test>", "login", "Please log in today.", html);
    let text = deliver("alice@sender.test", &msg).await;
    assert_eq!(family(&text, "PHISH_"), ["PHISH_LINK_MISMATCH(5.0)"], "{text}");
    assert_eq!(header(&text, "X-Mxgate-Verdict"), "tag");
}

#[tokio::test]
async fn a_reply_to_elsewhere_scores_a_little() {
    let msg =
        plain("Alice <alice@sender.test>", "invoice", "Reply-To: <billing@elsewhere.test>\r\n", "Invoice attached.");
    let text = deliver("alice@sender.test", &msg).await;
    assert_eq!(family(&text, "PHISH_"), ["PHISH_REPLYTO_MISMATCH(1.0)"], "{text}");
    assert_eq!(header(&text, "X-Mxgate-Verdict"), "deliver");
}

#[tokio::test]
async fn missing_date_and_message_id_score_but_do_not_tag() {
    let msg = format!("From: Alice <alice@sender.test>\r\nTo: <{TO}>\r\nSubject: bare\r\n\r\nhello\r\n");
    let text = deliver("alice@sender.test", &msg).await;
    assert_eq!(family(&text, "HEUR_"), ["HEUR_MISSING_DATE(1.0)", "HEUR_MISSING_MESSAGE_ID(0.5)"], "{text}");
    assert_eq!(header(&text, "X-Mxgate-Verdict"), "deliver");
    assert_eq!(header(&text, "X-Mxgate-Score"), "1.5");
}

#[tokio::test]
async fn html_with_script_is_flagged() {
    let html = "<html><body onload=\"go()\"><p>Hello</p><script>location='https://evil.test'</script></body></html>";
    let msg = plain("Alice <alice@sender.test>", "script", "MIME-Version: 1.0\r\nContent-Type: text/html\r\n", html);
    let text = deliver("alice@sender.test", &msg).await;
    assert_eq!(family(&text, "HEUR_"), ["HEUR_HTML_ONLY(0.5)", "HEUR_HTML_EXECUTABLE(2.5)"], "{text}");
    assert_eq!(header(&text, "X-Mxgate-Verdict"), "deliver");
}

/// Three broken messages on one connection: each is answered 250, no stage
/// fails, and the session still works afterwards.
#[tokio::test]
async fn malformed_mime_is_answered_and_the_session_survives() {
    let (down, gw) = gateway().await;
    let broken_boundary = plain(
        "Alice <alice@sender.test>",
        "boundary",
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"never-used\"\r\n",
        "--other\r\nContent-Type: text/html\r\n\r\n<a href=\"https://evil.test/\">www.bank.test\r\n--other",
    );
    let mut bad_utf8 = plain(
        "Alice <alice@sender.test>",
        "utf8",
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n",
        "<p style=\"display:none\">BODY</p><a href=\"https://evil.test/\">www.bank.test</a>",
    )
    .into_bytes();
    let at = bad_utf8.windows(4).position(|w| w == b"BODY").unwrap();
    bad_utf8.splice(at..at + 4, [0xff, 0xfe, 0xc3, 0x28]);
    let from = bad_utf8.windows(5).position(|w| w == b"Alice").unwrap();
    bad_utf8.splice(from..from + 5, [0xc0, 0xaf, 0xed, 0xa0, 0x80]);
    let broken_base64 = plain(
        "Alice <alice@sender.test>",
        "base64",
        "MIME-Version: 1.0\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n",
        "aGVsbG8gd29y!!!bGQ=\r\n====\r\n%%%",
    );

    let mut c = gw.client().await;
    for content in [broken_boundary.as_bytes(), &bad_utf8, broken_base64.as_bytes()] {
        c.envelope("alice@sender.test", &[TO]).await;
        c.say("DATA", "354").await;
        c.send_bytes(content).await;
        c.send(".\r\n").await;
        c.expect("250 2.0.0").await;
    }
    c.say("NOOP", "250").await;

    let delivered = down.wait_for(3, 10).await;
    assert_eq!(delivered.len(), 3);
    for m in &delivered {
        let text = m.text();
        assert!(!text.contains("_ERROR("), "a stage failed: {text}");
        assert!(["deliver", "tag"].contains(&header(&text, "X-Mxgate-Verdict").as_str()), "{text}");
    }
    let by_subject = |s: &str| delivered.iter().map(|m| m.text()).find(|t| header(t, "Subject").ends_with(s)).unwrap();
    // The link is still found behind the undecodable bytes; the From with
    // an undecodable display name yields no address.
    let utf8 = by_subject("utf8");
    assert_eq!(family(&utf8, "PHISH_"), ["PHISH_LINK_MISMATCH(3.0)"], "{utf8}");
    assert!(family(&utf8, "HEUR_").contains(&"HEUR_MISSING_FROM(2.0)".to_string()), "{utf8}");
    assert_eq!(symbols(&by_subject("base64")), ["MIME_BAD_ENCODING(1.0)"]);
    assert_eq!(header(&by_subject("boundary"), "X-Mxgate-Verdict"), "deliver");
}
