//! The shared DNS resolver (hickory), configured from `[dns]`.

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use std::net::SocketAddr;

/// `ip` or `ip:port` (port 53 by default); IPv6 as `[::1]:53`.
pub fn parse_nameserver(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("`{s}` is not an IP address or ip:port"))
}

pub fn resolver(nameservers: &[String]) -> Result<TokioResolver, String> {
    let provider = TokioConnectionProvider::default();
    let mut builder = if nameservers.is_empty() {
        TokioResolver::builder(provider).map_err(|e| format!("reading the system resolver configuration: {e}"))?
    } else {
        let mut cfg = ResolverConfig::new();
        for ns in nameservers {
            let addr = parse_nameserver(ns)?;
            cfg.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
            cfg.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
        }
        TokioResolver::builder_with_config(cfg, provider)
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = std::time::Duration::from_secs(5);
    opts.attempts = 2;
    // hickory keeps 32 answers by default; link domains, DNSBL queries and
    // MX routes of a busy gateway cycle through far more, and every miss
    // is a network round trip (negative answers are cached too).
    opts.cache_size = 8192;
    Ok(builder.build())
}
