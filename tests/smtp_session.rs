//! Every command and extension, as transcripts against the real server.

mod common;
use common::*;

#[tokio::test]
async fn a_whole_transaction_is_relayed_with_a_trace_header() {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, "").await;
    let mut c = gw.client().await;
    assert!(c.greeting.starts_with("220 mx.gateway.test ESMTP"), "{}", c.greeting);
    let ehlo = c.say("EHLO client.test", "250-mx.gateway.test").await;
    for ext in ["PIPELINING", "SIZE 26214400", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS"] {
        assert!(ehlo.contains(ext), "EHLO lacks {ext}: {ehlo}");
    }
    c.say("MAIL FROM:<a@sender.test>", "250 2.1.0").await;
    c.say("RCPT TO:<b@example.test>", "250 2.1.5").await;
    c.say("DATA", "354").await;
    c.send(&format!("{}.\r\n", message("hello", "..leading dot\r\nbody"))).await;
    let done = c.expect("250 2.0.0 Ok: queued as ").await;
    let id = done.trim().rsplit(' ').next().unwrap().to_string();
    c.say("QUIT", "221 2.0.0").await;
    let got = down.wait_for(1, 10).await;
    assert_eq!(got[0].from, "a@sender.test");
    assert_eq!(got[0].rcpts, vec!["b@example.test"]);
    let text = got[0].text();
    assert!(
        text.starts_with("Received: from client.test ([127.0.0.1])\r\n\tby mx.gateway.test (mxgate) with ESMTP id "),
        "{text}"
    );
    assert!(text.contains(&format!("id {id}\r\n\tfor <b@example.test>;")), "{text}");
    assert!(text.ends_with("\r\n\r\n.leading dot\r\nbody\r\n"), "{text:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn helo_rset_noop_vrfy_help_and_sequence_errors() {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, "").await;
    let mut c = gw.client().await;
    c.say("MAIL FROM:<a@sender.test>", "503 5.5.1").await;
    c.say("HELO client.test", "250 mx.gateway.test").await;
    c.say("NOOP", "250 2.0.0").await;
    c.say("VRFY someone", "252 2.1.5").await;
    c.say("HELP", "214-2.0.0").await;
    c.say("EXPN list", "502 5.5.1").await;
    c.say("RCPT TO:<b@example.test>", "503 5.5.1").await;
    c.say("DATA", "503 5.5.1").await;
    c.say("MAIL FROM:<a@sender.test>", "250").await;
    c.say("MAIL FROM:<a@sender.test>", "503 5.5.1").await;
    c.say("DATA", "554 5.5.1").await;
    c.say("RSET", "250 2.0.0").await;
    c.say("RCPT TO:<b@example.test>", "503 5.5.1").await;
    c.say("FROB", "500 5.5.2").await;
    c.say("MAIL FROM:bad", "501 5.5.4").await;
    c.say("MAIL FROM:<a@sender.test> FOO=BAR", "555 5.5.4").await;
    c.say("QUIT", "221").await;
    assert!(c.closed().await);
    gw.shutdown().await;
}

#[tokio::test]
async fn no_open_relay() {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, "").await;
    let mut c = gw.client().await;
    c.say("EHLO client.test", "250").await;
    c.say("MAIL FROM:<a@sender.test>", "250").await;
    c.say("RCPT TO:<victim@elsewhere.test>", "550 5.7.1").await;
    c.say("RCPT TO:<b@sub.example.test>", "550 5.7.1").await;
    c.say("RCPT TO:<b@EXAMPLE.test>", "250").await;
    // <postmaster> without a domain must be accepted (RFC 5321 §4.5.1).
    c.say("RCPT TO:<postmaster>", "250").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn pipelined_transactions_get_replies_in_order() {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, "").await;
    let mut c = gw.client().await;
    c.say("EHLO client.test", "250").await;
    c.send("MAIL FROM:<a@sender.test>\r\nRCPT TO:<x@nowhere.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n").await;
    c.expect("250 2.1.0").await;
    c.expect("550 5.7.1").await;
    c.expect("250 2.1.5").await;
    c.expect("354").await;
    // Content, the terminator and the next transaction in one write.
    c.send(&format!("{}.\r\nMAIL FROM:<c@sender.test>\r\nRCPT TO:<d@example.test>\r\nDATA\r\n", message("one", "1")))
        .await;
    c.expect("250 2.0.0 Ok: queued").await;
    c.expect("250 2.1.0").await;
    c.expect("250 2.1.5").await;
    c.expect("354").await;
    c.send(&format!("{}.\r\nQUIT\r\n", message("two", "2"))).await;
    c.expect("250 2.0.0 Ok: queued").await;
    c.expect("221").await;
    let got = down.wait_for(2, 10).await;
    let mut rcpts: Vec<String> = got.iter().map(|m| m.rcpts.join(",")).collect();
    rcpts.sort();
    assert_eq!(rcpts, vec!["b@example.test", "d@example.test"]);
    gw.shutdown().await;
}

#[tokio::test]
async fn bdat_chunks_including_dots_and_empty_last() {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, "").await;
    let mut c = gw.client().await;
    c.envelope("a@sender.test", &["b@example.test"]).await;
    let part1 = "Subject: chunked\r\n\r\n.line with dot\r\n";
    let part2 = ".\r\nend\r\n";
    c.send(&format!("BDAT {}\r\n{part1}", part1.len())).await;
    c.expect(&format!("250 2.0.0 {} octets received", part1.len())).await;
    // A chunk and the next command in one write (RFC 3030 pipelining).
    c.send(&format!("BDAT {}\r\n{part2}BDAT 0 LAST\r\n", part2.len())).await;
    c.expect("250 2.0.0").await;
    c.expect("250 2.0.0 Ok: queued as").await;
    c.say("DATA", "503 5.5.1").await;
    let got = down.wait_for(1, 10).await;
    assert!(got[0].text().ends_with("Subject: chunked\r\n\r\n.line with dot\r\n.\r\nend\r\n"), "{:?}", got[0].text());
    // BDAT without a transaction is consumed and refused.
    c.send("BDAT 5 LAST\r\nhello").await;
    c.expect("503 5.5.1").await;
    c.say("NOOP", "250").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn smtputf8_and_8bitmime() {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, "").await;
    let mut c = gw.client().await;
    c.say("EHLO client.test", "250").await;
    c.say("MAIL FROM:<jöran@sender.test>", "553 5.6.7").await;
    c.say("MAIL FROM:<jöran@sender.test> SMTPUTF8 BODY=8BITMIME", "250").await;
    c.say("RCPT TO:<bjørn@example.test>", "250").await;
    c.say("DATA", "354").await;
    c.send("Subject: grüße\r\n\r\nbödy\r\n.\r\n").await;
    c.expect("250").await;
    let got = down.wait_for(1, 10).await;
    assert_eq!(got[0].rcpts, vec!["bjørn@example.test"]);
    // Relayed with the parameters the content needs, and its size.
    let params = &got[0].mail_params;
    assert!(params.contains("SMTPUTF8") && params.contains("BODY=8BITMIME") && params.contains("SIZE="), "{params}");
    assert!(got[0].text().contains("with UTF8SMTP id"));
    assert!(got[0].text().ends_with("Subject: grüße\r\n\r\nbödy\r\n"));
    gw.shutdown().await;
}
