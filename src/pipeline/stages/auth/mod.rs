//! The `auth` stage: SPF, DKIM, ARC and DMARC with mail-auth, as one stage
//! because DMARC needs the SPF and DKIM results of the same message.
//!
//! SPF, DKIM and ARC run concurrently, then DMARC. Each phase is bounded by
//! `[scan.auth] timeout` and every query by `dns_timeout`, so a slow or
//! dead DNS zone yields `temperror` results (and `*_TEMPERROR` symbols)
//! rather than a stage error. Besides symbols the stage reports one RFC 8601
//! method result per check for the Authentication-Results header.
//!
//! - `spf`, `dkim`, `arc`, `dmarc`: one method each, verify and report.
//! - `resolver`: mail-auth's own hickory resolver, built from `[dns]`.
//! - `text`: quoting for the method results.

mod arc;
mod dkim;
mod dmarc;
mod resolver;
mod spf;
mod text;

use crate::pipeline::headers::split_fields;
use crate::pipeline::{Findings, Input, Stage, StageError};
use crate::store::BoxFut;
use mail_auth::{AuthenticatedMessage, MessageAuthenticator};
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Time one DNS query may take (it is tried twice); a query that still
    /// gets no answer makes the check that needed it a temperror.
    #[serde(with = "humantime_serde")]
    pub dns_timeout: Duration,
    /// Time SPF, DKIM and ARC together may take, and then DMARC again;
    /// whatever is unfinished is a temperror. Keep twice this below
    /// `[scan] timeout`, or the whole stage times out first.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Most DKIM-Signature and ARC-Message-Signature fields verified; a
    /// message with more gets `DKIM_TOO_MANY_SIGNATURES` and neither DKIM
    /// nor ARC is checked.
    pub max_signatures: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { dns_timeout: Duration::from_secs(2), timeout: Duration::from_secs(4), max_signatures: 16 }
    }
}

/// Which methods run; the stage list names them separately.
#[derive(Debug, Clone, Copy)]
pub struct Methods {
    pub spf: bool,
    pub dkim: bool,
    pub dmarc: bool,
    pub arc: bool,
}

impl Methods {
    pub fn any(&self) -> bool {
        self.spf || self.dkim || self.dmarc || self.arc
    }
}

pub struct Auth {
    methods: Methods,
    dns: MessageAuthenticator,
    /// Our hostname, the `%{r}` of SPF macros.
    hostname: String,
    cfg: AuthConfig,
}

impl Auth {
    pub fn new(cfg: &AuthConfig, methods: Methods, nameservers: &[String], hostname: &str) -> Result<Auth, String> {
        if cfg.dns_timeout.is_zero() || cfg.timeout.is_zero() {
            return Err("scan.auth: dns_timeout and timeout must be longer than 0s".into());
        }
        let dns = resolver::build(nameservers, cfg.dns_timeout)?;
        Ok(Auth { methods, dns, hostname: hostname.to_string(), cfg: cfg.clone() })
    }

    async fn run(&self, input: &Input<'_>) -> Findings {
        let m = self.methods;
        let limit = self.cfg.timeout;
        let mut out = Findings::default();
        let signatures = count_signatures(input.raw);
        let crowded = signatures > self.cfg.max_signatures;
        // Not strict: signatures with l= are verified so they can be reported
        // for what they cover (strict parsing would only call them neutral).
        // A crowded message is parsed strictly, which bounds the body hashes.
        let msg = AuthenticatedMessage::parse_with_opts(input.raw, None, crowded).unwrap_or_default();
        let ip = client_ip(&input.facts.client_ip);
        let checks_dkim = (m.dkim || m.dmarc) && !crowded;
        let (spf, dkim, arc) = tokio::join!(
            async {
                if m.spf { Some(spf::verify(&self.dns, input.facts, ip, &self.hostname, limit).await) } else { None }
            },
            async { if checks_dkim { dkim::verify(&self.dns, &msg, limit).await } else { Some(Vec::new()) } },
            async { if m.arc && !crowded { Some(arc::verify(&self.dns, &msg, limit).await) } else { None } },
        );
        let body = dkim::BodyLength::new(&msg);
        if let Some(spf) = &spf {
            spf::report(spf, &mut out);
        }
        if m.dkim && crowded {
            dkim::report_crowded(signatures, self.cfg.max_signatures, &mut out);
        } else if m.dkim {
            dkim::report(&body, dkim.as_deref(), &mut out);
        }
        if let Some(arc) = &arc {
            arc::report(arc.as_ref(), &mut out);
        }
        if m.dmarc {
            let trusted = dkim::for_dmarc(&body, dkim.as_deref().unwrap_or_default());
            let spf_out = spf.map(|s| s.output).unwrap_or_default();
            let result = dmarc::verify(&self.dns, &msg, &trusted, spf_out.domain(), &spf_out, limit).await;
            dmarc::report(result.as_ref(), &mut out);
        }
        out
    }
}

impl Stage for Auth {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn check<'a>(&'a self, input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        Box::pin(async move { Ok(self.run(input).await) })
    }
}

/// The client address, IPv4-mapped IPv6 unwrapped so `ip4:` terms match.
fn client_ip(s: &str) -> Option<IpAddr> {
    let ip: IpAddr = s.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

/// DKIM-Signature and ARC-Message-Signature fields in the header.
fn count_signatures(raw: &[u8]) -> usize {
    let (fields, _) = split_fields(raw);
    fields
        .iter()
        .filter(|f| {
            let name = f.split(|&b| b == b':').next().unwrap_or_default().trim_ascii();
            name.eq_ignore_ascii_case(b"dkim-signature") || name.eq_ignore_ascii_case(b"arc-message-signature")
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_counted_in_the_header_only() {
        let raw = b"Received: x\r\nDKIM-Signature: a\r\n b\r\ndkim-signature : c\r\nARC-Message-Signature: d\r\n\r\n\
DKIM-Signature: in the body\r\n";
        assert_eq!(count_signatures(raw), 3);
        assert_eq!(client_ip("::ffff:127.0.0.1"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(client_ip("::1"), Some("::1".parse().unwrap()));
    }
}
