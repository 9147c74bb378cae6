//! The built-in stages, one file each:
//!
//! - `auth`: SPF, DKIM, DMARC and ARC verification (mail-auth), one stage
//!   because DMARC needs the SPF and DKIM results.
//! - `dnsbl`: the client IP against DNS block and allow lists.
//! - `uribl`: domains of links in the text against URI block lists.
//! - `attachment`: file types, archives, macros.
//! - `phishing`: impersonation, lookalike domains, deceptive links.
//! - `heuristics`: structural signals in the headers and HTML.

pub mod attachment;
pub mod auth;
pub mod dnsbl;
pub mod heuristics;
pub mod phishing;
pub mod uribl;

use super::Stage;
use crate::config::Config;
use std::sync::Arc;

/// Every built-in stage name, in the order they are listed by default.
pub const ALL: &[&str] = &["spf", "dkim", "dmarc", "arc", "dnsbl", "uribl", "attachment", "phishing", "heuristics"];

/// The stages `scan.stages` names.
pub fn build(cfg: &Config) -> Result<Vec<Arc<dyn Stage>>, String> {
    let scan = &cfg.scan;
    let mut out: Vec<Arc<dyn Stage>> = Vec::new();
    let methods = auth::Methods {
        spf: scan.enabled("spf"),
        dkim: scan.enabled("dkim"),
        dmarc: scan.enabled("dmarc"),
        arc: scan.enabled("arc"),
    };
    if methods.any() {
        out.push(Arc::new(auth::Auth::new(&scan.auth, methods, cfg)?));
    }
    let needs_dns = scan.enabled("dnsbl") || scan.enabled("uribl");
    let resolver = if needs_dns { Some(crate::dns::resolver(&cfg.dns.nameservers)?) } else { None };
    if let (true, Some(r)) = (scan.enabled("dnsbl"), &resolver) {
        out.push(Arc::new(dnsbl::Dnsbl::new(&scan.dnsbl, r.clone())?));
    }
    if let (true, Some(r)) = (scan.enabled("uribl"), &resolver) {
        out.push(Arc::new(uribl::Uribl::new(&scan.uribl, r.clone())?));
    }
    if scan.enabled("attachment") {
        out.push(Arc::new(attachment::Attachment::new(&scan.attachment)?));
    }
    if scan.enabled("phishing") {
        out.push(Arc::new(phishing::Phishing::new(&scan.phishing, &cfg.relay.domains)?));
    }
    if scan.enabled("heuristics") {
        out.push(Arc::new(heuristics::Heuristics::new(&scan.heuristics)?));
    }
    Ok(out)
}
