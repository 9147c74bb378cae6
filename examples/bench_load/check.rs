//! `check`: proves the path the benchmark measures. Sends COUNT corpus
//! messages one at a time through the gateway to `checkN@probe.test`, which
//! the gateway routes to a recording sink run here, and waits for each to
//! arrive. With `--expect-scan` (mxgate) every message must carry mxgate's
//! verdict headers with a delivering verdict, SPF must pass for every
//! message and DKIM and DMARC for the signed ones: a run whose DNS stub or
//! stages were not in play fails here instead of producing a figure.
//! Prints one JSON object: per kind, arrivals, verdicts, auth results,
//! symbols and the mean time from connect to arrival (the gateway idle).

use crate::corpus::{self, Kind};
use crate::smtp;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Failures after which the check stops.
const MAX_FAILURES: usize = 3;

pub async fn run(
    target: SocketAddr,
    listen: SocketAddr,
    count: usize,
    expect_scan: bool,
    limit: u64,
) -> Result<(), String> {
    let corpus = corpus::build()?;
    let listener = TcpListener::bind(listen).await.map_err(|e| format!("listen {listen}: {e}"))?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((c, _)) = listener.accept().await {
            tokio::spawn(sink_session(c, tx.clone()));
        }
    });
    let limit = Duration::from_secs(limit);
    let mut per_kind: BTreeMap<&str, Value> = BTreeMap::new();
    let mut failures = Vec::new();
    for i in 0..count {
        // The verdict is clear after a few failures; each may have waited
        // the full time limit.
        if failures.len() >= MAX_FAILURES {
            break;
        }
        let m = &corpus[i % corpus.len()];
        let start = Instant::now();
        let rcpt = format!("check{i}@probe.test");
        let sent = smtp::deliver(target, limit, &m.mail_from, &rcpt, &m.wire()).await;
        let got = match sent {
            Ok(_) => tokio::time::timeout(limit, rx.recv()).await.ok().flatten(),
            Err(e) => {
                failures.push(format!("message {i} ({}): {e}", m.kind.name()));
                None
            }
        };
        let k = per_kind.entry(m.kind.name()).or_insert_with(|| json!({"sent": 0, "arrived": 0, "ms_total": 0.0}));
        k["sent"] = json!(k["sent"].as_u64().unwrap_or(0) + 1);
        let Some(data) = got else {
            failures.push(format!("message {i} ({}) did not arrive", m.kind.name()));
            continue;
        };
        k["arrived"] = json!(k["arrived"].as_u64().unwrap_or(0) + 1);
        k["ms_total"] = json!(k["ms_total"].as_f64().unwrap_or(0.0) + start.elapsed().as_secs_f64() * 1000.0);
        if let Err(e) = inspect(&data, m.kind, expect_scan, k) {
            failures.push(format!("message {i} ({}): {e}", m.kind.name()));
        }
    }
    for k in per_kind.values_mut() {
        let n = k["arrived"].as_f64().unwrap_or(0.0).max(1.0);
        k["mean_ms"] = json!(k["ms_total"].as_f64().unwrap_or(0.0) / n);
    }
    let ok = failures.is_empty();
    println!(
        "{}",
        json!({"ok": ok, "count": count, "kinds": per_kind, "failures": failures.iter().take(10).collect::<Vec<_>>()})
    );
    if ok { Ok(()) } else { Err(format!("{} check failures, first: {}", failures.len(), failures[0])) }
}

/// Counts the verdict, symbols and auth results of one arrival into `k`.
fn inspect(data: &[u8], kind: Kind, expect_scan: bool, k: &mut Value) -> Result<(), String> {
    let head = String::from_utf8_lossy(&data[..data.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(data.len())]);
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let field = |name: &str| {
        unfolded.split("\r\n").find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let verdict = field("X-Mxgate-Verdict").unwrap_or_else(|| "(none)".into());
    bump(k, "verdicts", &verdict);
    for s in field("X-Mxgate-Symbols").unwrap_or_default().split(", ").filter(|s| !s.is_empty() && *s != "none") {
        bump(k, "symbols", s.split('(').next().unwrap_or(s));
    }
    let ar = field("Authentication-Results").unwrap_or_default();
    for method in ["spf", "dkim", "dmarc", "arc"] {
        let r = ar
            .split(';')
            .find_map(|p| p.trim().strip_prefix(&format!("{method}=")))
            .map(|r| r.split(' ').next().unwrap_or(r));
        bump(k, "auth", &format!("{method}={}", r.unwrap_or("(absent)")));
    }
    if !expect_scan {
        return Ok(());
    }
    if verdict != "deliver" && verdict != "tag" {
        return Err(format!("verdict {verdict}"));
    }
    let want: &[&str] = if kind == Kind::Signed { &["spf=pass", "dkim=pass", "dmarc=pass"] } else { &["spf=pass"] };
    match want.iter().find(|w| !ar.contains(**w)) {
        Some(w) => Err(format!("no {w} in Authentication-Results: {ar}")),
        None => Ok(()),
    }
}

fn bump(k: &mut Value, group: &str, key: &str) {
    let g = k.as_object_mut().map(|o| o.entry(group).or_insert_with(|| json!({})));
    if let Some(Value::Object(g)) = g {
        let n = g.get(key).and_then(Value::as_u64).unwrap_or(0);
        g.insert(key.to_string(), json!(n + 1));
    }
}

/// A minimal receiving SMTP server: accepts everything, sends each
/// message's content (dot-unstuffed) to `tx`.
async fn sink_session(c: TcpStream, tx: mpsc::UnboundedSender<Vec<u8>>) {
    // Replies to pipelined commands are small writes in a row: without
    // this, Nagle holds the second until the peer's delayed ACK (~40 ms).
    let _ = c.set_nodelay(true);
    let (r, mut w) = c.into_split();
    let mut r = BufReader::new(r);
    let limit = Duration::from_secs(60);
    if w.write_all(b"220 check-sink ESMTP\r\n").await.is_err() {
        return;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        match tokio::time::timeout(limit, r.read_until(b'\n', &mut line)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
        let verb = line.get(..4).map(|v| v.to_ascii_uppercase()).unwrap_or_default();
        let reply: &[u8] = match &verb[..] {
            b"EHLO" => b"250-check-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n",
            b"HELO" | b"MAIL" | b"RCPT" | b"RSET" | b"NOOP" => b"250 2.0.0 ok\r\n",
            b"DATA" => {
                if w.write_all(b"354 go ahead\r\n").await.is_err() {
                    return;
                }
                let mut msg = Vec::new();
                loop {
                    line.clear();
                    match tokio::time::timeout(limit, r.read_until(b'\n', &mut line)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return,
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    msg.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
                }
                let _ = tx.send(msg);
                b"250 2.0.0 received\r\n"
            }
            b"QUIT" => {
                let _ = w.write_all(b"221 2.0.0 bye\r\n").await;
                return;
            }
            _ => b"502 5.5.2 not implemented\r\n",
        };
        if w.write_all(reply).await.is_err() {
            return;
        }
    }
}
