//! The built-in stages, one file or directory each:
//!
//! - `auth`: SPF, DKIM, DMARC and ARC verification (mail-auth), one stage
//!   because DMARC needs the SPF and DKIM results.
//! - `dnsbl`: the client IP against DNS block and allow lists.
//! - `uribl`: domains of links in the text against URI block lists.
//! - `attachment`: file types, archives, macros.
//! - `phishing`: impersonation, lookalike domains, deceptive links.
//! - `heuristics`: structural signals in the headers and HTML.
//!
//! And the adapters for outside scanners, configured with `[[pipeline.stage]]`:
//! `clamav` (clamd INSTREAM), `rspamd` (HTTP /checkv2), `spamassassin`
//! (spamd's SPAMC protocol); `scanner_io` holds their socket code.

pub mod attachment;
pub mod auth;
pub mod clamav;
pub mod dnsbl;
pub mod heuristics;
pub mod phishing;
pub mod rspamd;
mod scanner_io;
pub mod spamassassin;
pub mod uribl;

use super::remote::RemoteStage;
use super::{ScanConfig, Stage, StageDef};
use crate::config::Config;
use std::sync::Arc;

/// Every built-in stage name, in the order they are listed by default.
pub const ALL: &[&str] = &["spf", "dkim", "dmarc", "arc", "dnsbl", "uribl", "attachment", "phishing", "heuristics"];

/// The built-in stages as they run, the four auth methods as one: the
/// names `[[pipeline.stage]]` and `[worker] stages` take.
pub const STAGES: &[&str] = &["auth", "dnsbl", "uribl", "attachment", "phishing", "heuristics"];

/// What the built-in stages need besides their own settings.
pub struct Env<'a> {
    pub scan: &'a ScanConfig,
    pub nameservers: &'a [String],
    /// Our host name: the SPF `%{r}` macro.
    pub hostname: &'a str,
    /// The organisation's domains, for the phishing stage.
    pub domains: &'a [String],
}

/// The name a built-in stage runs under: the four auth methods are one.
pub fn stage_of(method: &str) -> &str {
    match method {
        "spf" | "dkim" | "dmarc" | "arc" => "auth",
        other => other,
    }
}

/// A gateway's stages: built-ins in-process or on workers, then adapters
/// and custom remote stages, in `[[pipeline.stage]]` order.
pub fn build(cfg: &Config) -> Result<Vec<Arc<dyn Stage>>, String> {
    let env = Env {
        scan: &cfg.scan,
        nameservers: &cfg.dns.nameservers,
        hostname: &cfg.smtp.hostname,
        domains: &cfg.relay.domains,
    };
    let defs = &cfg.pipeline.stage;
    let def = |name: &str| defs.iter().find(|d| d.name == name);
    let mut out = Vec::new();
    for stage in builtin(&env, &|name| def(name).is_none_or(|d| !d.is_remote()))? {
        out.push(stage);
    }
    for d in defs {
        if d.is_remote() {
            out.push(Arc::new(RemoteStage::new(d, d.timeout.unwrap_or(cfg.scan.rule(&d.name).0))?) as Arc<dyn Stage>);
        } else if d.is_adapter() {
            out.push(adapter(d)?);
        }
    }
    Ok(out)
}

fn adapter(d: &StageDef) -> Result<Arc<dyn Stage>, String> {
    Ok(match d.name.as_str() {
        "clamav" => Arc::new(clamav::Clamav::new(d)?),
        "rspamd" => Arc::new(rspamd::Rspamd::new(d)?),
        "spamassassin" => Arc::new(spamassassin::SpamAssassin::new(d)?),
        other => return Err(format!("pipeline.stage `{other}`: not an adapter")),
    })
}

/// The built-in stages `scan.stages` enables and `keep` accepts (by stage
/// name: `auth` for the four methods).
pub fn builtin(env: &Env<'_>, keep: &dyn Fn(&str) -> bool) -> Result<Vec<Arc<dyn Stage>>, String> {
    let scan = env.scan;
    let on = |name: &str| scan.enabled(name) && keep(stage_of(name));
    let mut out: Vec<Arc<dyn Stage>> = Vec::new();
    let methods = auth::Methods { spf: on("spf"), dkim: on("dkim"), dmarc: on("dmarc"), arc: on("arc") };
    if methods.any() {
        out.push(Arc::new(auth::Auth::new(&scan.auth, methods, env.nameservers, env.hostname)?));
    }
    let needs_dns = on("dnsbl") || on("uribl");
    let resolver = if needs_dns { Some(crate::dns::resolver(env.nameservers)?) } else { None };
    if let (true, Some(r)) = (on("dnsbl"), &resolver) {
        out.push(Arc::new(dnsbl::Dnsbl::new(&scan.dnsbl, r.clone())?));
    }
    if let (true, Some(r)) = (on("uribl"), &resolver) {
        out.push(Arc::new(uribl::Uribl::new(&scan.uribl, r.clone())?));
    }
    if on("attachment") {
        out.push(Arc::new(attachment::Attachment::new(&scan.attachment)?));
    }
    if on("phishing") {
        out.push(Arc::new(phishing::Phishing::new(&scan.phishing, env.domains)?));
    }
    if on("heuristics") {
        out.push(Arc::new(heuristics::Heuristics::new(&scan.heuristics)?));
    }
    Ok(out)
}
