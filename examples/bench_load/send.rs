//! `send`: COUNT messages from the corpus over SESSIONS concurrent
//! connections, one message per SMTP session (as most mail reaching an MX
//! arrives), then one JSON line on stdout. A failed session is counted and
//! not retried, so the sink comes up short and the run shows as incomplete.

use crate::corpus;
use crate::smtp;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Shared {
    /// (MAIL FROM, RCPT TO, DATA on the wire)
    msgs: Vec<(String, String, Vec<u8>)>,
    next: AtomicUsize,
    count: usize,
    ok: AtomicUsize,
    bytes: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

pub async fn run(target: SocketAddr, sessions: usize, count: usize, limit: u64) -> Result<(), String> {
    let corpus = corpus::build()?;
    let mut kinds = std::collections::BTreeMap::new();
    for i in 0..count {
        *kinds.entry(corpus[i % corpus.len()].kind.name()).or_insert(0usize) += 1;
    }
    let shared = Arc::new(Shared {
        msgs: corpus.iter().map(|m| (m.mail_from.clone(), m.rcpt.clone(), m.wire())).collect(),
        next: AtomicUsize::new(0),
        count,
        ok: AtomicUsize::new(0),
        bytes: AtomicUsize::new(0),
        errors: Mutex::new(Vec::new()),
    });
    let limit = Duration::from_secs(limit);
    let start = Instant::now();
    let workers: Vec<_> = (0..sessions.max(1)).map(|_| tokio::spawn(worker(shared.clone(), target, limit))).collect();
    for w in workers {
        let _ = w.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let ok = shared.ok.load(Ordering::Relaxed);
    let errors = shared.errors.lock().map(|e| e.clone()).unwrap_or_default();
    let summary = serde_json::json!({
        "count": count,
        "sessions": sessions,
        "sent": ok,
        "errors": errors.len(),
        "error_samples": errors.iter().take(5).collect::<Vec<_>>(),
        "secs": secs,
        "msgs_per_s": ok as f64 / secs,
        "bytes": shared.bytes.load(Ordering::Relaxed),
        "kinds": kinds,
    });
    println!("{summary}");
    if errors.is_empty() { Ok(()) } else { Err(format!("{} of {count} messages failed", errors.len())) }
}

async fn worker(s: Arc<Shared>, target: SocketAddr, limit: Duration) {
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= s.count {
            return;
        }
        let (from, to, wire) = &s.msgs[i % s.msgs.len()];
        match smtp::deliver(target, limit, from, to, wire).await {
            Ok(_) => {
                s.ok.fetch_add(1, Ordering::Relaxed);
                s.bytes.fetch_add(wire.len(), Ordering::Relaxed);
            }
            Err(e) => {
                if let Ok(mut v) = s.errors.lock() {
                    v.push(format!("message {i}: {e}"));
                }
            }
        }
    }
}
