//! Whole-message tests of the heuristics stage.

use super::*;
use crate::pipeline::{Facts, message};

fn scan(sender: &str, raw: &str) -> Vec<String> {
    let facts = Facts::test(sender);
    let parsed = message::parse(raw.as_bytes());
    let input = Input { facts: &facts, raw: raw.as_bytes(), message: parsed.as_ref() };
    let stage = Heuristics::new(&HeuristicsConfig { max_to_recipients: 3, ..Default::default() }).unwrap();
    stage.scan(&input).symbols.into_iter().map(|s| s.name).collect()
}

const HEAD: &str = "From: Ann <a@sender.test>\r\nTo: b@example.test\r\nSubject: s\r\n";
const DATE: &str = "Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n";
const ID: &str = "Message-ID: <1.2@sender.test>\r\n";

#[test]
fn well_formed_mail_scores_nothing() {
    assert!(scan("a@sender.test", &format!("{HEAD}{DATE}{ID}\r\nhi\r\n")).is_empty());
    assert!(scan("", &format!("{HEAD}{DATE}{ID}\r\nbounce\r\n")).is_empty());
    assert!(scan("bounce@mail.sender.test", &format!("{HEAD}{DATE}{ID}\r\nhi\r\n")).is_empty());
    let alt = "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
               --b\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--b--\r\n";
    assert!(scan("a@sender.test", &format!("{HEAD}{DATE}{ID}{alt}")).is_empty());
}

#[test]
fn header_problems() {
    assert_eq!(scan("a@sender.test", &format!("{HEAD}\r\nhi\r\n")), ["HEUR_MISSING_DATE", "HEUR_MISSING_MESSAGE_ID"]);
    let bad = "Date: yesterday-ish\r\nMessage-ID: no-brackets\r\n";
    assert_eq!(scan("a@sender.test", &format!("{HEAD}{bad}\r\nhi\r\n")), ["HEUR_BAD_DATE", "HEUR_BAD_MESSAGE_ID"]);
    let bad = "Date: Mon, 45 Foo 2026 99:00:00 +0000\r\nMessage-ID: <no-at>\r\n";
    assert_eq!(scan("a@sender.test", &format!("{HEAD}{bad}\r\nhi\r\n")), ["HEUR_BAD_DATE", "HEUR_BAD_MESSAGE_ID"]);
    let no_from = format!("To: b@example.test\r\n{DATE}{ID}\r\nhi\r\n");
    assert_eq!(scan("a@sender.test", &no_from), ["HEUR_MISSING_FROM"]);
    assert_eq!(scan("a@sender.test", &format!("From: nobody\r\n{DATE}{ID}\r\nhi\r\n")), ["HEUR_MISSING_FROM"]);
    assert_eq!(scan("x@elsewhere.test", &format!("{HEAD}{DATE}{ID}\r\nhi\r\n")), ["HEUR_FROM_SENDER_MISMATCH"]);
    let many = format!("From: a@sender.test\r\nTo: a@x.test, b@x.test, c@x.test, d@x.test\r\n{DATE}{ID}\r\nhi\r\n");
    assert_eq!(scan("a@sender.test", &many), ["HEUR_MANY_RECIPIENTS"]);
}

#[test]
fn html_problems() {
    let html = |body: &str| format!("{HEAD}{DATE}{ID}Content-Type: text/html\r\n\r\n{body}\r\n");
    assert_eq!(scan("a@sender.test", &html("<p>hi</p>")), ["HEUR_HTML_ONLY"]);
    let script = html("<p>hi</p><script>document.location='https://evil.test'</script>");
    assert_eq!(scan("a@sender.test", &script), ["HEUR_HTML_ONLY", "HEUR_HTML_EXECUTABLE"]);
    let hidden = html(&format!("<p>buy</p><div style=\"display:none\">{}</div>", "lorem ipsum ".repeat(20)));
    assert_eq!(scan("a@sender.test", &hidden), ["HEUR_HTML_ONLY", "HEUR_INVISIBLE_TEXT"]);
    let preheader = html("<div style=\"display:none\">Your March statement is ready to view online.</div><p>x</p>");
    assert_eq!(scan("a@sender.test", &preheader), ["HEUR_HTML_ONLY"]);
}

#[test]
fn hostile_input_does_not_panic() {
    for raw in ["", "\r\n", "Date:\r\nMessage-ID:\r\nFrom:\r\nTo:\r\n\r\n", "Message-ID: <@>\r\nDate: \u{0}\r\n\r\n"] {
        let _ = scan("", raw);
    }
}
