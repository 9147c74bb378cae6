//! `failover`: steady load on a gateway with a storage node killed midway.
//!
//! SESSIONS workers each send one message per SMTP session (connect, EHLO,
//! MAIL, RCPT, DATA, QUIT, as smtp-source does without -d), back to back,
//! until the load's time is up, and record when each session started and
//! ended and the reply code it ended with: 250, the 4xx or 5xx that ended
//! it, or 0 when there was no SMTP answer at all (refused, closed, timed
//! out). A timer SIGKILLs the storage node at `kill_at` on the same clock,
//! so every figure is measured from the kill.

use crate::smtp;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a session may take before it counts as an error.
const SESSION_LIMIT: Duration = Duration::from_secs(30);

pub struct Plan {
    pub target: SocketAddr,
    pub sessions: usize,
    pub seconds: f64,
    pub kill_pid: i32,
    pub kill_at: f64,
    pub size: usize,
}

/// One message: seconds since the load started, and the final code.
#[derive(Clone)]
struct Answer {
    start: f64,
    end: f64,
    code: u16,
    text: String,
}

pub async fn run(plan: Plan, answers_file: Option<&Path>) -> Result<(), String> {
    if plan.kill_pid <= 1 || plan.kill_at <= 0.0 || plan.kill_at >= plan.seconds {
        return Err("need --kill-pid > 1 and 0 < --kill-at < --seconds".into());
    }
    let wire = Arc::new(message(plan.size));
    let log: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs_f64(plan.seconds);
    let workers: Vec<_> = (0..plan.sessions.max(1))
        .map(|w| {
            let (wire, log, target) = (wire.clone(), log.clone(), plan.target);
            tokio::spawn(async move {
                while Instant::now() < until {
                    let start = t0.elapsed().as_secs_f64();
                    let to = format!("user{}@example.test", w % 50);
                    let r = smtp::deliver(target, SESSION_LIMIT, "bench@sender.test", &to, &wire).await;
                    let end = t0.elapsed().as_secs_f64();
                    let (code, text) = match r {
                        Ok(t) => (code_of(&t), String::new()),
                        Err(e) => (code_after_step(&e), e),
                    };
                    log.lock().unwrap().push(Answer { start, end, code, text });
                }
            })
        })
        .collect();
    tokio::time::sleep_until((t0 + Duration::from_secs_f64(plan.kill_at)).into()).await;
    // SAFETY: kill(2) with a pid and a signal number; no memory is shared.
    let rc = unsafe { libc::kill(plan.kill_pid, libc::SIGKILL) };
    let kill = t0.elapsed().as_secs_f64();
    if rc != 0 {
        return Err(format!("kill -9 {}: {}", plan.kill_pid, std::io::Error::last_os_error()));
    }
    for w in workers {
        let _ = w.await;
    }
    let log = log.lock().unwrap().clone();
    if let Some(path) = answers_file {
        write_answers(path, &log, kill)?;
    }
    println!("{}", summary(&plan, &log, kill));
    Ok(())
}

/// The code a reply text starts with (0 when it has none).
fn code_of(text: &str) -> u16 {
    text.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// `smtp::Session` errors read "<step>: <server's reply>" when the server
/// answered, "<step>: <io error>" when it did not.
fn code_after_step(e: &str) -> u16 {
    e.split_once(": ").map_or(0, |(_, rest)| code_of(rest))
}

/// ~`size` octets of text in 78-character lines, no line starting with a
/// dot, after a few headers; ends with the end-of-data line.
fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: <bench@sender.test>\r\nTo: <user@example.test>\r\nSubject: cluster failover load\r\n\
Message-ID: <failover@sender.test>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\n"
        .to_vec();
    let line = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmno\r\n";
    let mut n = 0;
    while n < size {
        m.extend_from_slice(line);
        n += line.len();
    }
    m.extend_from_slice(b".\r\n");
    m
}

fn write_answers(path: &Path, log: &[Answer], kill: f64) -> Result<(), String> {
    let mut out = String::new();
    for a in log {
        let line = json!({"start": a.start - kill, "end": a.end - kill, "code": a.code, "text": a.text});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| format!("{}: {e}", path.display()))
}

/// The figures, all in seconds relative to the kill unless named `_at`.
fn summary(plan: &Plan, log: &[Answer], kill: f64) -> Value {
    let ends = |pick: fn(u16) -> bool| {
        let mut v: Vec<f64> = log.iter().filter(|a| pick(a.code)).map(|a| a.end - kill).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let ok = ends(|c| c / 100 == 2);
    let temp = ends(|c| c / 100 == 4);
    let perm = ends(|c| c / 100 == 5);
    let none = ends(|c| c == 0);
    let after = |v: &[f64]| v.iter().filter(|t| **t >= 0.0).count();
    let temp_after: Vec<f64> = temp.iter().copied().filter(|t| *t >= 0.0).collect();
    let window = match (temp_after.first(), temp_after.last()) {
        (Some(a), Some(b)) => b - a,
        _ => 0.0,
    };
    // Rates of 250s while the load ran: after a warm-up, up to the kill;
    // and from the kill to the end of the load.
    let end = plan.seconds - kill;
    let warm = (kill / 2.0).min(2.0) - kill;
    let count = |from: f64, to: f64| ok.iter().filter(|t| **t >= from && **t < to).count() as f64;
    let rate_before = count(warm, 0.0) / -warm;
    let rate_after = count(0.0, end) / end;
    let samples = |pick: fn(u16) -> bool| -> Vec<String> {
        log.iter().filter(|a| pick(a.code) && a.end >= kill).take(3).map(|a| a.text.clone()).collect()
    };
    json!({
        "sessions": plan.sessions, "seconds": plan.seconds, "kill_at": kill, "size": plan.size,
        "messages": log.len(), "ok": ok.len(), "tempfail": temp.len(), "permfail": perm.len(), "no_answer": none.len(),
        "tempfail_before_kill": temp.len() - temp_after.len(),
        "tempfail_after_kill": temp_after.len(),
        "first_4xx": temp_after.first(), "last_4xx": temp_after.last(), "window_4xx": window,
        "permfail_after_kill": after(&perm), "no_answer_after_kill": after(&none),
        "rate_before": rate_before, "rate_after": rate_after,
        "longest_gap_before": longest_gap(&ok, warm, 0.0),
        "stall": longest_gap(&ok, 0.0, end),
        "tempfail_samples": samples(|c| c / 100 == 4),
        "error_samples": samples(|c| c == 0 || c / 100 == 5),
        "timeline": timeline(log, kill, plan.seconds),
    })
}

/// The longest time without a 250 answer that ends in [from, to): the gap
/// that spans `from` counts too (so the kill's own stall is measured).
fn longest_gap(ok: &[f64], from: f64, to: f64) -> f64 {
    let mut best: f64 = 0.0;
    for w in ok.windows(2) {
        if w[1] >= from && w[1] < to {
            best = best.max(w[1] - w[0]);
        }
    }
    best
}

/// Answers per second around the kill: [second, 250s, 4xx, 5xx, none].
fn timeline(log: &[Answer], kill: f64, seconds: f64) -> Vec<[i64; 5]> {
    let first = (-kill).floor() as i64;
    let last = (seconds - kill).ceil() as i64;
    let mut rows: Vec<[i64; 5]> = (first..last).map(|s| [s, 0, 0, 0, 0]).collect();
    for a in log {
        let s = (a.end - kill).floor() as i64;
        let Some(row) = rows.get_mut((s - first) as usize) else { continue };
        let col = match a.code / 100 {
            2 => 1,
            4 => 2,
            5 => 3,
            _ => 4,
        };
        row[col] += 1;
    }
    rows
}
