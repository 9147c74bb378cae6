//! Recipient verification: before accepting RCPT, ask the next hop whether it
//! would take the address, so unknown users are refused during the session
//! instead of bounced later (no backscatter). Answers are cached with
//! separate positive and negative lifetimes.

use super::Ctx;
use super::route::{self, NextHop};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// The next hop refused the address permanently; its reply.
    Reject(String),
    /// The next hop could not be asked or answered 4xx.
    Unknown(String),
}

#[derive(Default)]
pub struct Verifier {
    cache: Mutex<HashMap<String, (Verdict, Instant)>>,
}

impl Verifier {
    pub async fn check(&self, ctx: &Ctx, address: &str) -> Verdict {
        let key = address.to_lowercase();
        if let Some((v, until)) = self.cache.lock().unwrap().get(&key)
            && *until > Instant::now()
        {
            return v.clone();
        }
        let v = probe(ctx, address).await;
        let ttl = match v {
            Verdict::Accept => ctx.cfg.relay.verify_positive_ttl,
            Verdict::Reject(_) => ctx.cfg.relay.verify_negative_ttl,
            Verdict::Unknown(_) => return v,
        };
        let mut cache = self.cache.lock().unwrap();
        if cache.len() > 100_000 {
            let now = Instant::now();
            cache.retain(|_, (_, until)| *until > now);
        }
        cache.insert(key, (v.clone(), Instant::now() + ttl));
        v
    }
}

async fn probe(ctx: &Ctx, address: &str) -> Verdict {
    let domain = address.rsplit_once('@').map_or("", |(_, d)| d).to_ascii_lowercase();
    let hop = NextHop::for_domain(&ctx.cfg.relay, &domain);
    let targets = match route::resolve(&hop, &domain, &ctx.dns).await {
        Ok(t) => t,
        Err(e) => return Verdict::Unknown(e.message),
    };
    let attempt = async {
        // The first server that answers decides, as for delivery.
        let mut last = String::from("no next hop");
        for target in &targets {
            let mut c = match ctx.pool.connect_once(target).await {
                Ok(c) => c,
                Err(f) => {
                    last = f.message;
                    continue;
                }
            };
            let mail = c.command("MAIL FROM:<>").await.map_err(|f| f.message)?;
            if !mail.ok() {
                return Err(format!("MAIL FROM: {mail}"));
            }
            let rcpt = c.command(&format!("RCPT TO:<{address}>")).await.map_err(|f| f.message)?;
            c.quit().await;
            return Ok(rcpt);
        }
        Err(last)
    };
    match tokio::time::timeout(Duration::from_secs(30), attempt).await {
        Ok(Ok(r)) if r.ok() => Verdict::Accept,
        Ok(Ok(r)) if r.permanent() => Verdict::Reject(r.to_string()),
        Ok(Ok(r)) => Verdict::Unknown(r.to_string()),
        Ok(Err(e)) => Verdict::Unknown(e),
        Err(_) => Verdict::Unknown("verification timed out".into()),
    }
}
