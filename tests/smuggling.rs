//! SMTP smuggling: only CRLF.CRLF ends DATA. Each payload tries to end the
//! message early and inject a second one; the downstream must receive
//! exactly what the client meant to send and nothing else.

mod common;
use common::*;

const PAYLOADS: &[(&str, &str)] = &[
    ("bare LF", "\n.\n"),
    ("CRLF dot LF", "\r\n.\n"),
    ("LF dot CRLF", "\n.\r\n"),
    ("bare CR", "\r.\r"),
    ("CR dot CRLF", "\r.\r\n"),
];

#[tokio::test]
async fn smuggled_messages_never_reach_the_downstream() {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, "").await;
    for (name, end) in PAYLOADS {
        let mut c = gw.client().await;
        c.envelope("a@sender.test", &["b@example.test"]).await;
        c.say("DATA", "354").await;
        let smuggled = format!(
            "Subject: outer\r\n\r\nhello{end}MAIL FROM:<evil@sender.test>\r\nRCPT TO:<smuggled@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n"
        );
        c.send(&smuggled).await;
        // The real terminator ends the one message, which is refused.
        c.expect("550 5.5.2").await;
        // The session is still in step: a clean message goes through.
        c.say("MAIL FROM:<a@sender.test>", "250").await;
        c.say("RCPT TO:<b@example.test>", "250").await;
        c.say("DATA", "354").await;
        c.send(&format!("Subject: clean {name}\r\n\r\nok\r\n.\r\n")).await;
        c.expect("250 2.0.0").await;
    }
    let got = down.wait_for(PAYLOADS.len(), 10).await;
    // Give a smuggled message time to show up if one slipped through.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let got_now = down.messages();
    assert_eq!(got_now.len(), got.len());
    for m in &got_now {
        assert_eq!(m.rcpts, vec!["b@example.test"]);
        assert!(m.text().contains("Subject: clean"), "{}", m.text());
        assert!(!m.text().contains("smuggled") && !m.text().contains("evil"));
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn bare_lf_in_bdat_is_refused() {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, "").await;
    let mut c = gw.client().await;
    c.envelope("a@sender.test", &["b@example.test"]).await;
    let chunk = "Subject: x\r\n\r\na\n.\nb\r\n";
    c.send(&format!("BDAT {} LAST\r\n{chunk}", chunk.len())).await;
    c.expect("550 5.5.2").await;
    c.say("NOOP", "250").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(down.count(), 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn dot_stuffing_is_undone_on_input_and_redone_on_output() {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, "").await;
    let mut c = gw.client().await;
    // A line of a single dot, a line starting with two dots, a line "..".
    let content = "Subject: dots\r\n\r\n..\r\n...x\r\n.y\r\n";
    let r = c.send_mail("a@sender.test", &["b@example.test"], content).await;
    assert!(r.starts_with("250"), "{r}");
    let got = down.wait_for(1, 10).await;
    // The downstream undoes its own dot-stuffing, so it must see the
    // client's original text: ".", "..x", "y".
    assert!(got[0].text().ends_with("Subject: dots\r\n\r\n.\r\n..x\r\ny\r\n"), "{:?}", got[0].text());
    gw.shutdown().await;
}
