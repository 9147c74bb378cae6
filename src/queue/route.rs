//! Next hops: which server receives mail for a domain, and its addresses.

use crate::config::Relay;
use hickory_resolver::TokioResolver;
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Look up the domain's MX records (RFC 5321 §5.1).
    Mx,
    /// A fixed host and port.
    Host { host: String, port: u16 },
}

impl NextHop {
    pub fn parse(s: &str) -> Result<NextHop, String> {
        if s.eq_ignore_ascii_case("mx") {
            return Ok(NextHop::Mx);
        }
        let bad = || format!("`{s}` is not \"mx\" or host:port");
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') => (h, p.parse::<u16>().map_err(|_| bad())?),
            _ => (s, 25),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad());
        }
        Ok(NextHop::Host { host: host.to_string(), port })
    }

    /// The hop for a recipient domain: a per-domain route, else the default
    /// downstream for accepted domains, else the outbound route (DSNs).
    pub fn for_domain(relay: &Relay, domain: &str) -> NextHop {
        let raw = match relay.routes.get(domain) {
            Some(r) => r,
            None if relay.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) => &relay.downstream,
            None => &relay.outbound,
        };
        NextHop::parse(raw).expect("routes are validated at load")
    }
}

/// One server to try: its address and the name its certificate should carry.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub name: String,
}

/// Why a hop gave no target to try.
#[derive(Debug)]
pub struct ResolveError {
    pub permanent: bool,
    pub message: String,
}

pub async fn resolve(hop: &NextHop, domain: &str, dns: &TokioResolver) -> Result<Vec<Target>, ResolveError> {
    match hop {
        NextHop::Host { host, port } => host_targets(host, *port, dns).await,
        NextHop::Mx => mx_targets(domain, dns).await,
    }
}

async fn host_targets(host: &str, port: u16, dns: &TokioResolver) -> Result<Vec<Target>, ResolveError> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![Target { addr: SocketAddr::new(ip, port), name: host.to_string() }]);
    }
    if host.eq_ignore_ascii_case("localhost") {
        let addr = SocketAddr::new([127, 0, 0, 1].into(), port);
        return Ok(vec![Target { addr, name: host.to_string() }]);
    }
    let ips = dns.lookup_ip(host).await.map_err(|e| temp(format!("cannot resolve {host}: {e}")))?;
    Ok(ips.iter().map(|ip| Target { addr: SocketAddr::new(ip, port), name: host.to_string() }).collect())
}

async fn mx_targets(domain: &str, dns: &TokioResolver) -> Result<Vec<Target>, ResolveError> {
    let mut hosts: Vec<(u16, String)> = match dns.mx_lookup(domain).await {
        Ok(mx) => mx.iter().map(|r| (r.preference(), r.exchange().to_utf8())).collect(),
        Err(e) if e.is_no_records_found() => Vec::new(),
        Err(e) => return Err(temp(format!("MX lookup for {domain} failed: {e}"))),
    };
    // RFC 7505: a single "." exchange means the domain accepts no mail.
    if hosts.len() == 1 && hosts[0].1.trim_end_matches('.').is_empty() {
        return Err(ResolveError { permanent: true, message: format!("{domain} publishes a null MX") });
    }
    // RFC 5321 §5.1: without MX records the domain itself is the implicit MX.
    if hosts.is_empty() {
        hosts.push((0, domain.to_string()));
    }
    hosts.sort();
    let mut out = Vec::new();
    for (_, host) in hosts {
        if let Ok(t) = host_targets(host.trim_end_matches('.'), 25, dns).await {
            out.extend(t);
        }
    }
    match out.is_empty() {
        true => Err(temp(format!("no address found for the mail servers of {domain}"))),
        false => Ok(out),
    }
}

fn temp(message: String) -> ResolveError {
    ResolveError { permanent: false, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!(NextHop::parse("MX"), Ok(NextHop::Mx));
        assert_eq!(NextHop::parse("h.test:2526"), Ok(NextHop::Host { host: "h.test".into(), port: 2526 }));
        assert_eq!(NextHop::parse("h.test"), Ok(NextHop::Host { host: "h.test".into(), port: 25 }));
        assert_eq!(NextHop::parse("[::1]:26"), Ok(NextHop::Host { host: "::1".into(), port: 26 }));
        assert!(NextHop::parse("h.test:x").is_err());
        assert!(NextHop::parse("").is_err());
    }
}
