//! `seed`: N quarantined records with ~2 KB bodies, written through
//! `EmbeddedStore` as the gateway writes them, spread over the 29.5 days
//! before now (a 30-day retention's worth), oldest first as mail arrives.
//! Most are held; 8 % are marked released and 4 % are deleted through the
//! store's own status change (which drops the body and writes the audit).

use crate::data::{self, SUBJECT_WORDS, SYMBOLS};
use crate::parts::{Rng, paragraphs};
use mxgate::pipeline::{Action, Symbol};
use mxgate::store::{Actor, AuditEntry, EmbeddedStore, QRecord, QStatus, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinSet;

const DAY: u64 = 86_400;

/// Message texts shared by the bodies (each body has its own headers).
const TEXTS: usize = 256;

pub async fn run(dir: &Path, count: usize, concurrency: usize) -> Result<(), String> {
    let store = Arc::new(EmbeddedStore::open(dir).map_err(|e| format!("open {}: {e}", dir.display()))?);
    let before = store.quarantine_len();
    let mut rng = Rng::new(0x5eed_0004);
    let texts: Vec<String> = (0..TEXTS).map(|_| paragraphs(&mut rng, 1_500, true)).collect();
    let end = mxgate::time::now();
    let span = DAY * 59 / 2;
    let (start, t0) = (end - span, Instant::now());
    let (mut inflight, mut bytes, mut deleted) = (JoinSet::new(), 0usize, Vec::new());
    for i in 0..count {
        // Arrival times rise with i (with jitter inside each slot), so ids
        // sort like real ones: time first.
        let at_us =
            start * 1_000_000 + (i as u128 * span as u128 * 1_000_000 / count as u128) as u64 + rng.below(999) as u64;
        let (rec, body) = record(&mut rng, i, at_us, &texts);
        bytes += body.len();
        if rng.below(100) < 4 {
            deleted.push(rec.id.clone());
        }
        let s = store.clone();
        inflight.spawn(async move { s.quarantine(rec, body).await });
        while inflight.len() >= concurrency {
            inflight.join_next().await.expect("a write in flight").map_err(|e| e.to_string())?.map_err(err)?;
        }
    }
    while let Some(r) = inflight.join_next().await {
        r.map_err(|e| e.to_string())?.map_err(err)?;
    }
    let insert_secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    for id in &deleted {
        let s = store.clone();
        let id = id.clone();
        inflight.spawn(async move {
            let audit = AuditEntry {
                at: end,
                by: "api".into(),
                action: "delete".into(),
                id: id.clone(),
                detail: String::new(),
            };
            s.q_change(&id, QStatus::Deleted, Actor { by: "api".into(), at: end }, audit).await.map(|_| ())
        });
        while inflight.len() >= concurrency {
            inflight.join_next().await.expect("a write in flight").map_err(|e| e.to_string())?.map_err(err)?;
        }
    }
    while let Some(r) = inflight.join_next().await {
        r.map_err(|e| e.to_string())?.map_err(err)?;
    }
    let delete_secs = t1.elapsed().as_secs_f64();
    store.close().await.map_err(err)?;
    let summary = serde_json::json!({
        "count": count,
        "records_before": before,
        "insert_secs": insert_secs,
        "inserts_per_s": count as f64 / insert_secs,
        "body_bytes": bytes,
        "deleted": deleted.len(),
        "delete_secs": delete_secs,
        "end": end,
    });
    println!("{summary}");
    Ok(())
}

fn err(e: mxgate::store::StoreError) -> String {
    e.to_string()
}

/// One record and its body. Record i has sender i·7919 mod 5000 and
/// recipient i·104729 mod 2000 (both cycle through every value, mixed).
fn record(rng: &mut Rng, i: usize, at_us: u64, texts: &[String]) -> (QRecord, Vec<u8>) {
    let at = at_us / 1_000_000;
    let id = format!("{at_us:013X}{:03X}BE01", i & 0xfff);
    let null_sender = rng.below(100) == 0;
    let sender = (!null_sender).then(|| data::sender(i.wrapping_mul(7919)));
    let mut recipients = vec![data::recipient(i.wrapping_mul(104_729))];
    if rng.below(10) == 0 {
        recipients.push(data::recipient(rng.below(data::RECIPIENTS)));
        recipients.dedup();
    }
    let words: Vec<&str> = (0..3 + rng.below(5)).map(|_| SUBJECT_WORDS[rng.below(SUBJECT_WORDS.len())]).collect();
    let mut subject = words.join(" ");
    subject[..1].make_ascii_uppercase();
    let symbols = symbols(rng);
    let score: f64 = symbols.iter().map(|s| s.score).sum();
    let reason = match symbols[0].action {
        Some(_) => format!("{}: {}", symbols[0].name, symbols[0].reason),
        None => format!("spam score {score:.1} reached the quarantine threshold 10"),
    };
    let from = sender.clone().unwrap_or_else(|| format!("MAILER-DAEMON@{}", data::domain(i)));
    let body = body(&id, &from, &recipients[0], &subject, at, &texts[rng.below(texts.len())]);
    let status = if rng.below(100) < 8 { QStatus::Released } else { QStatus::Held };
    let rec = QRecord {
        id: id.clone(),
        received_at: at,
        client_ip: format!("203.0.113.{}", rng.below(254) + 1),
        helo: format!("mail.{}", data::domain(i.wrapping_mul(7919))),
        tls: rng.below(3) > 0,
        sender,
        recipients,
        smtputf8: false,
        eight_bit: false,
        from: from.clone(),
        to: String::new(),
        subject,
        date: String::new(),
        message_id: format!("<{id}@{}>", from.rsplit('@').next().unwrap_or("x.test")),
        size: body.len() as u64,
        action: Action::Quarantine,
        score,
        symbols,
        reason,
        status,
        expires_at: at + 30 * DAY,
        changed: (status == QStatus::Released).then(|| Actor { by: "api".into(), at: at + 3_600 }),
        has_body: true,
    };
    (rec, body)
}

/// One to three symbols: the first carries the hard action (an attachment
/// or phishing verdict) or, one time in four, the score alone decided.
fn symbols(rng: &mut Rng) -> Vec<Symbol> {
    let mut out: Vec<Symbol> = Vec::new();
    for k in 0..1 + rng.below(3) {
        let (name, score, why) = SYMBOLS[rng.below(SYMBOLS.len())];
        if out.iter().any(|s| s.name == name) {
            continue;
        }
        let mut s = Symbol::new(name, score, why.replace("{}", &format!("file{}", rng.below(1000))));
        if k == 0 && rng.below(4) > 0 {
            s = s.with_action(Action::Quarantine);
        }
        out.push(s);
    }
    out
}

fn body(id: &str, from: &str, to: &str, subject: &str, at: u64, text: &str) -> Vec<u8> {
    let date = mxgate::time::rfc5322(at);
    format!(
        "Received: from mail.sender.test (mail.sender.test [203.0.113.9])\r\n\tby mx.example.test (mxgate) with ESMTPS id {id}\r\n\t\
         for <{to}>; {date}\r\nFrom: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <{id}@sender.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         X-Mxgate-Action: quarantine\r\n\r\n{text}"
    )
    .into_bytes()
}
