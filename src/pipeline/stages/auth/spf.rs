//! SPF (RFC 7208): is the client allowed to send for the MAIL FROM domain?
//! For the null sender the HELO name is the identity (§2.4), so bounces are
//! still checked. A DNS failure or a check that runs out of time is a
//! `temperror`, never a stage error.

use super::text::method_result;
use crate::pipeline::{Facts, Findings, Symbol};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{MessageAuthenticator, SpfOutput, SpfResult};
use std::net::IpAddr;
use std::time::Duration;

/// The SPF verdict and the identity it is about.
pub struct Spf {
    pub output: SpfOutput,
    /// The MAIL FROM address, or `None` when the HELO name was checked.
    mailfrom: Option<String>,
    helo: String,
    ip: Option<IpAddr>,
}

impl Spf {
    /// The domain that was checked: the RFC5321.MailFrom domain DMARC aligns.
    pub fn domain(&self) -> &str {
        self.output.domain()
    }
}

pub async fn verify(dns: &MessageAuthenticator, facts: &Facts, ip: Option<IpAddr>, host: &str, limit: Duration) -> Spf {
    let helo = facts.helo.trim().to_string();
    let mailfrom = facts.sender.clone().filter(|s| !s.is_empty());
    let domain = match &mailfrom {
        Some(s) => s.rsplit_once('@').map_or(helo.as_str(), |(_, d)| d),
        None => helo.as_str(),
    }
    .to_ascii_lowercase();
    let mut spf = Spf { output: SpfOutput::new(domain.clone()), mailfrom: mailfrom.clone(), helo: helo.clone(), ip };
    let Some(ip) = ip else { return spf };
    let params = match &mailfrom {
        Some(sender) => SpfParameters::verify_mail_from(ip, &helo, host, sender),
        // RFC 7208 §2.4: a null reverse-path is checked as postmaster@HELO.
        None => SpfParameters::verify_ehlo(ip, &helo, host),
    };
    spf.output = match tokio::time::timeout(limit, dns.verify_spf(params)).await {
        Ok(out) => out,
        // RFC 7208 §4.6.4 bounds the lookups; our clock bounds their time.
        Err(_) => SpfOutput::new(domain).with_result(SpfResult::TempError),
    };
    spf
}

pub fn report(spf: &Spf, out: &mut Findings) {
    let domain = spf.domain();
    let ip = spf.ip.map_or_else(|| "the client".to_string(), |ip| ip.to_string());
    let who = spf.mailfrom.as_deref().map_or_else(|| format!("HELO {}", spf.helo), |s| s.to_string());
    let (name, score, word, reason) = match spf.output.result() {
        SpfResult::Pass => {
            ("SPF_PASS", -0.2, "pass", format!("{domain} designates {ip} as a permitted sender for {who}"))
        }
        SpfResult::Fail => ("SPF_FAIL", 1.5, "fail", format!("{domain} does not designate {ip} as a sender for {who}")),
        SpfResult::SoftFail => {
            ("SPF_SOFTFAIL", 0.5, "softfail", format!("{domain} says {ip} is probably not a sender for {who}"))
        }
        SpfResult::Neutral => ("SPF_NEUTRAL", 0.0, "neutral", format!("{domain} makes no assertion about {ip}")),
        SpfResult::None => ("SPF_NONE", 0.0, "none", format!("no SPF record for {}", printable(domain))),
        SpfResult::TempError => ("SPF_TEMPERROR", 0.0, "temperror", format!("DNS error checking SPF for {domain}")),
        SpfResult::PermError => ("SPF_PERMERROR", 0.5, "permerror", format!("the SPF record of {domain} is unusable")),
    };
    out.push(Symbol::new(name, score, reason));
    let ar = match &spf.mailfrom {
        Some(sender) => method_result("spf", word, "", &[("smtp.mailfrom", sender)]),
        None => method_result("spf", word, "", &[("smtp.helo", &spf.helo)]),
    };
    out.auth_results.push(ar);
}

fn printable(domain: &str) -> &str {
    if domain.is_empty() { "an empty domain" } else { domain }
}
