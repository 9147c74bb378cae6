//! `query`: list/search and show latency over real HTTP, one request at a
//! time on one kept-alive connection (what a console or CLI user does),
//! after a warm-up. Each kind of search asks for values the seeded records
//! hold, chosen at random; `rare` asks for a subject word no record has,
//! so the gateway reads every row to prove the page empty (the worst case).

use crate::data::{self, RARE_WORD, SUBJECT_WORDS, SYMBOLS};
use crate::http::{Conn, enc};
use crate::parts::Rng;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Instant;

const KINDS: &[&str] =
    &["first", "recipient", "sender", "domain", "symbol", "held+subject", "rare-subject", "range", "deep-paging"];
const DEEP_PAGES: usize = 20;
const WARMUP: usize = 10;

struct Ctx {
    rng: Rng,
    oldest: u64,
    newest: u64,
    /// Ids seen in results, for `show`.
    ids: Vec<String>,
}

pub async fn run(admin: SocketAddr, token: &str, per_kind: usize) -> Result<(), String> {
    let mut c = Conn::new(admin, token);
    let newest = received(&mut c, "/api/v1/quarantine?limit=1&status=all").await?;
    let oldest = received(&mut c, "/api/v1/quarantine?limit=1&status=all&order=oldest").await?;
    let mut ctx = Ctx { rng: Rng::new(0x9e4e_0004), oldest, newest, ids: Vec::new() };
    println!("{:<14} {:>6} {:>9} {:>9} {:>9} {:>10}", "kind", "n", "p50 ms", "p99 ms", "max ms", "items/page");
    let (mut all, mut worst) = (Vec::new(), (0.0f64, ""));
    for kind in KINDS {
        let _ = timed(&mut c, &mut ctx, kind, WARMUP.min(per_kind)).await?;
        let (mut ms, items) = timed(&mut c, &mut ctx, kind, per_kind).await?;
        let p99 = line(kind, &mut ms, items);
        if p99 > worst.0 {
            worst = (p99, kind);
        }
        all.extend(ms);
    }
    let show = show(&mut c, &mut ctx, per_kind).await?;
    let overall = pct(&mut all, 0.99);
    println!(
        "all searches   {:>6} {:>9.2} {:>9.2} {:>9.2}",
        all.len(),
        pct(&mut all, 0.5),
        overall,
        pct(&mut all, 1.0)
    );
    println!(
        "quarantine search p99: {:.1} ms (target < 50 ms): worst kind, {}; over all {} searches {overall:.1} ms",
        worst.0,
        worst.1,
        all.len()
    );
    println!("quarantine show p99: {show:.1} ms (target < 20 ms)");
    Ok(())
}

/// Prints one kind's figures; returns its p99.
fn line(kind: &str, ms: &mut [f64], items: usize) -> f64 {
    let p99 = pct(ms, 0.99);
    let per_page = items as f64 / ms.len().max(1) as f64;
    println!("{kind:<14} {:>6} {:>9.2} {p99:>9.2} {:>9.2} {per_page:>10.1}", ms.len(), pct(ms, 0.5), pct(ms, 1.0));
    p99
}

/// `n` timed requests of one kind: their milliseconds and items returned.
async fn timed(c: &mut Conn, ctx: &mut Ctx, kind: &str, n: usize) -> Result<(Vec<f64>, usize), String> {
    let (mut ms, mut items) = (Vec::with_capacity(n), 0);
    while ms.len() < n {
        let mut path = search_path(ctx, kind);
        // Deep paging: one walk of up to DEEP_PAGES pages; the others: one page.
        for _ in 0..if kind == "deep-paging" { DEEP_PAGES } else { 1 } {
            let t = Instant::now();
            let r = c.get(&path).await?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            if r.status != 200 {
                return Err(format!("GET {path}: {} {}", r.status, String::from_utf8_lossy(&r.body)));
            }
            let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("GET {path}: {e}"))?;
            let page = v.as_array().ok_or(format!("GET {path}: not an array"))?;
            items += page.len();
            if kind == "range" {
                ctx.ids.extend(page.iter().filter_map(|r| r["id"].as_str().map(String::from)).take(5));
            }
            match r.next {
                Some(next) if ms.len() < n => path = format!("{}&cursor={}", base(&path), enc(&next)),
                _ => break,
            }
        }
    }
    Ok((ms, items))
}

fn base(path: &str) -> &str {
    path.split("&cursor=").next().unwrap_or(path)
}

fn search_path(ctx: &mut Ctx, kind: &str) -> String {
    let r = &mut ctx.rng;
    let q = match kind {
        "first" => String::new(),
        "recipient" => format!("recipient={}", enc(&data::recipient(r.below(data::RECIPIENTS)))),
        "sender" => format!("sender={}", enc(&data::sender(r.below(data::SENDERS)))),
        "domain" => format!("domain={}", enc(&data::domain(r.below(data::DOMAINS)))),
        "symbol" => match r.below(4) {
            0 => "symbol=ATTACHMENT_%2A".to_string(),
            _ => format!("symbol={}", SYMBOLS[r.below(SYMBOLS.len())].0),
        },
        "held+subject" => format!("status=held&subject={}", SUBJECT_WORDS[r.below(SUBJECT_WORDS.len())]),
        "rare-subject" => format!("subject={RARE_WORD}"),
        "range" => {
            let since = ctx.oldest + r.next() % (ctx.newest - ctx.oldest).max(1);
            format!("since={since}&until={}", since + 3_600 + r.next() % (3 * 86_400))
        }
        "deep-paging" => format!("domain={}", data::OWN[r.below(2)]),
        _ => unreachable!("unknown kind {kind}"),
    };
    format!("/api/v1/quarantine?limit=50&{q}")
}

/// `show` for random ids seen in the range searches.
async fn show(c: &mut Conn, ctx: &mut Ctx, n: usize) -> Result<f64, String> {
    if ctx.ids.is_empty() {
        return Err("no ids to show".into());
    }
    let mut ms = Vec::with_capacity(n);
    for i in 0..n + WARMUP {
        let id = ctx.ids[ctx.rng.below(ctx.ids.len())].clone();
        let t = Instant::now();
        let r = c.get(&format!("/api/v1/quarantine/{id}")).await?;
        if i >= WARMUP {
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        if r.status != 200 {
            return Err(format!("show {id}: {}", r.status));
        }
    }
    Ok(line("show", &mut ms, n))
}

/// The `received_at` of the one record a one-item page holds.
async fn received(c: &mut Conn, path: &str) -> Result<u64, String> {
    let r = c.get(path).await?;
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("GET {path}: {} {e}", r.status))?;
    v[0]["received_at"].as_u64().ok_or(format!("GET {path}: the quarantine is empty ({})", r.status))
}

/// Milliseconds at quantile `q` (nearest rank).
fn pct(ms: &mut [f64], q: f64) -> f64 {
    if ms.is_empty() {
        return 0.0;
    }
    ms.sort_by(f64::total_cmp);
    ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1]
}

/// `count`: every record the quarantine lists (any status), 500 a page.
pub async fn count(admin: SocketAddr, token: &str) -> Result<(), String> {
    let mut c = Conn::new(admin, token);
    let (mut n, mut path) = (0, "/api/v1/quarantine?limit=500&status=all".to_string());
    loop {
        let r = c.get(&path).await?;
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("GET {path}: {} {e}", r.status))?;
        n += v.as_array().map_or(0, Vec::len);
        match r.next {
            Some(next) => path = format!("/api/v1/quarantine?limit=500&status=all&cursor={}", enc(&next)),
            None => break,
        }
    }
    println!("{n}");
    Ok(())
}
