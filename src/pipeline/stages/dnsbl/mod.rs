//! The `dnsbl` stage: the client address against DNS block and allow lists
//! (RFC 5782). The address is written backwards under each zone (IPv4 by
//! octet, IPv6 by nibble, §2.1 and §2.4) and looked up as an A record:
//! NXDOMAIN means not listed, an answer in 127.0.0.0/8 means listed, and the
//! answer says why. Lookups run concurrently through the shared caching
//! resolver, each bounded in time; a failed lookup is `DNSBL_UNAVAILABLE`,
//! never a stage error, so a dead list does not hold mail.
//!
//! - `list`: zone settings, lookups and answer handling, shared with `uribl`.

mod list;

pub use list::{Answer, Code, List, Zone, join, lookup, unavailable};

use crate::pipeline::{Action, Findings, Input, Stage, StageError};
use crate::store::BoxFut;
use hickory_resolver::TokioResolver;
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsblConfig {
    /// Lists to query, `[[scan.dnsbl.zones]]`; none by default, e.g.
    /// `zone = "zen.spamhaus.org"` or, as an allow list,
    /// `zone = "list.dnswl.org"` with `allow = true`.
    pub zones: Vec<Zone>,
    /// Also look up loopback, private and link-local client addresses;
    /// public lists cannot list them, so they are skipped by default.
    pub check_private: bool,
    /// Time one lookup may take before the list counts as unavailable.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for DnsblConfig {
    fn default() -> Self {
        DnsblConfig { zones: Vec::new(), check_private: false, timeout: Duration::from_secs(2) }
    }
}

pub struct Dnsbl {
    /// Each list, and whether it is an allow list (`DNSWL_*`).
    lists: Vec<(List, bool)>,
    check_private: bool,
    timeout: Duration,
    resolver: TokioResolver,
}

impl Dnsbl {
    pub fn new(cfg: &DnsblConfig, resolver: TokioResolver) -> Result<Dnsbl, String> {
        let mut lists = Vec::with_capacity(cfg.zones.len());
        for (i, z) in cfg.zones.iter().enumerate() {
            lists.push((List::new(z, &format!("scan.dnsbl.zones[{i}]"), Some(Action::Reject))?, z.allow));
        }
        if cfg.timeout.is_zero() {
            return Err("scan.dnsbl.timeout: must be longer than 0s".into());
        }
        Ok(Dnsbl { lists, check_private: cfg.check_private, timeout: cfg.timeout, resolver })
    }

    async fn run(&self, client_ip: &str) -> Findings {
        let mut out = Findings::default();
        let Ok(ip) = client_ip.parse::<IpAddr>() else { return out };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.lists.is_empty() || (!self.check_private && !is_public(ip)) {
            return out;
        }
        let reversed = reverse(ip);
        let answers = futures_util::future::join_all(
            self.lists.iter().map(|(l, _)| lookup(&self.resolver, format!("{reversed}.{}.", l.zone), self.timeout)),
        )
        .await;
        let mut failures = Vec::new();
        for ((list, allow), answer) in self.lists.iter().zip(answers) {
            let prefix = if *allow { "DNSWL" } else { "DNSBL" };
            match answer {
                Answer::NotListed => {}
                Answer::Failed(e) => failures.push(format!("{}: {e}", list.zone)),
                Answer::Listed(a) => {
                    let refused = List::refusals(&a);
                    if !refused.is_empty() {
                        failures.push(format!("{} answered {}, which is no listing", list.zone, join(&refused)));
                    }
                    for s in list.hits(prefix, &a, &format!("client {ip}")) {
                        out.push(s);
                    }
                }
            }
        }
        out.symbols.extend(unavailable("DNSBL_UNAVAILABLE", &failures));
        out
    }
}

impl Stage for Dnsbl {
    fn name(&self) -> &'static str {
        "dnsbl"
    }

    fn check<'a>(&'a self, input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        Box::pin(async move { Ok(self.run(&input.facts.client_ip).await) })
    }
}

/// Addresses a public list could hold: not loopback, private (RFC 1918,
/// RFC 4193), shared (RFC 6598), link-local or unspecified.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let shared = a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64;
            !(a.is_loopback() || a.is_private() || a.is_link_local() || a.is_unspecified() || shared)
        }
        IpAddr::V6(a) => {
            let seg = a.segments()[0];
            !(a.is_loopback() || a.is_unspecified() || (seg & 0xfe00) == 0xfc00 || (seg & 0xffc0) == 0xfe80)
        }
    }
}

/// RFC 5782 §2.1 and §2.4: octets (IPv4) or nibbles (IPv6), least
/// significant first.
fn reverse(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let n: Vec<String> =
                a.octets().iter().rev().flat_map(|b| [b & 0x0f, b >> 4]).map(|n| format!("{n:x}")).collect();
            n.join(".")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_reversed_by_octet_and_nibble() {
        assert_eq!(reverse("192.0.2.99".parse().unwrap()), "99.2.0.192");
        assert_eq!(
            reverse("2001:db8:1:2:3:4:567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2"
        );
        assert!(!is_public("127.0.0.1".parse().unwrap()));
        assert!(!is_public("10.1.2.3".parse().unwrap()));
        assert!(!is_public("100.64.0.1".parse().unwrap()));
        assert!(!is_public("fd00::1".parse().unwrap()));
        assert!(is_public("192.0.2.1".parse().unwrap()));
        assert!(is_public("2001:db8::1".parse().unwrap()));
    }
}
