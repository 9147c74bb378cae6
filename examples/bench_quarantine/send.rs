//! `send`: COUNT messages over SESSIONS concurrent SMTP sessions, one
//! message per session, each ~10 KB of text plus a zip holding a Windows
//! program (the example of mail that is quarantined by default).
//! The same messages go to both gateway configurations; only the policy's
//! verdict for the attachment symbol differs. Prints one JSON line.
//!
//! `tarpit`: a next hop that accepts connections and never greets, so the
//! delivering gateway's deliveries wait instead of competing for the CPU:
//! the comparison is acceptance against acceptance.

use crate::parts::{Rng, base64_lines, paragraphs};
use crate::smtp;
use std::io::{Cursor, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use zip::write::SimpleFileOptions;

/// Distinct messages, cycled.
const VARIANTS: usize = 64;

/// (MAIL FROM, RCPT TO, DATA on the wire)
type Msg = (String, String, Vec<u8>);

pub async fn run(target: SocketAddr, sessions: usize, count: usize, limit: u64) -> Result<(), String> {
    let msgs: Arc<Vec<Msg>> = Arc::new((0..VARIANTS).map(message).collect());
    let (next, ok) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let limit = Duration::from_secs(limit);
    let start = Instant::now();
    let workers: Vec<_> = (0..sessions.max(1))
        .map(|_| {
            let (msgs, next, ok, errors) = (msgs.clone(), next.clone(), ok.clone(), errors.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    let (from, to, wire) = &msgs[i % msgs.len()];
                    match smtp::deliver(target, limit, from, to, wire).await {
                        Ok(_) => drop(ok.fetch_add(1, Ordering::Relaxed)),
                        Err(e) => errors.lock().unwrap().push(format!("message {i}: {e}")),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    let errors = errors.lock().unwrap().clone();
    let size = msgs.iter().map(|m| m.2.len()).sum::<usize>() / msgs.len();
    let summary = serde_json::json!({
        "count": count, "sessions": sessions, "sent": ok, "errors": errors.len(),
        "error_samples": errors.iter().take(3).collect::<Vec<_>>(),
        "secs": secs, "msgs_per_s": ok as f64 / secs, "avg_size": size,
    });
    println!("{summary}");
    if errors.is_empty() { Ok(()) } else { Err(format!("{} of {count} messages failed", errors.len())) }
}

fn message(i: usize) -> Msg {
    let mut rng = Rng::new(0xacce_0004 + i as u64);
    let from = format!("billing{i}@sender{}.test", i % 8);
    let to = format!("user{}@example.test", i % 16);
    let zip = zip_with_exe(&format!("invoice_{i}.exe"));
    let data = format!(
        "From: Billing <{from}>\r\nTo: <{to}>\r\nSubject: Invoice {i} for your order\r\n\
         Message-ID: <inv{i}@sender.test>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n--=_b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         {}--=_b\r\nContent-Type: application/zip; name=\"invoice_{i}.zip\"\r\n\
         Content-Disposition: attachment; filename=\"invoice_{i}.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         {}--=_b--\r\n",
        paragraphs(&mut rng, 9_000, false),
        base64_lines(&zip)
    );
    // Dot-stuffing (RFC 5321 §4.5.2) and the end of data.
    let mut wire = Vec::with_capacity(data.len() + 16);
    for line in data.as_bytes().split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            wire.push(b'.');
        }
        wire.extend_from_slice(line);
    }
    wire.extend_from_slice(b".\r\n");
    (from, to, wire)
}

/// A zip with a note and the smallest bytes that pass for a Windows
/// program (`MZ`, the PE header offset at 0x3C, `PE\0\0`, i386).
fn zip_with_exe(name: &str) -> Vec<u8> {
    let mut pe = vec![0u8; 0x200];
    pe[..2].copy_from_slice(b"MZ");
    pe[0x3C] = 0x40;
    pe[0x40..0x44].copy_from_slice(b"PE\0\0");
    pe[0x44..0x46].copy_from_slice(&[0x4C, 0x01]);
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (file, data) in [("readme.txt", &b"Open the invoice to see the details."[..]), (name, &pe[..])] {
        w.start_file(file, opts).expect("zip entry");
        w.write_all(data).expect("zip write");
    }
    w.finish().expect("zip finish").into_inner()
}

/// Holds every connection open, silent, until the time is up or the
/// process is stopped (the kernel then closes them all).
pub async fn tarpit(listen: SocketAddr, max_seconds: u64) -> Result<(), String> {
    let l = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("bind {listen}: {e}"))?;
    let mut held = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(max_seconds));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            a = l.accept() => if let Ok((s, _)) = a { held.push(s) },
            _ = &mut deadline => break,
        }
    }
    Ok(())
}
