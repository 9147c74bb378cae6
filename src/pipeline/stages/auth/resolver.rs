//! The resolver the auth stage verifies with. mail-auth speaks to its own
//! hickory version, so this builds that resolver from the same `[dns]`
//! nameservers as the rest of the gateway (the system configuration when
//! none are set), with a short per-query timeout so a slow zone turns into
//! a temperror instead of holding the message. hickory caches answers (and
//! NXDOMAIN) for their TTL, so repeated senders cost no lookups.

use mail_auth::MessageAuthenticator;
use mail_auth::hickory_resolver::TokioResolver;
use mail_auth::hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::net::runtime::TokioRuntimeProvider;
use std::time::Duration;

/// Attempts per query; with `timeout` this bounds one lookup.
const ATTEMPTS: usize = 2;

pub fn build(nameservers: &[String], timeout: Duration) -> Result<MessageAuthenticator, String> {
    let (config, mut opts) = if nameservers.is_empty() {
        mail_auth::hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| format!("reading the system resolver configuration: {e}"))?
    } else {
        (configured(nameservers)?, ResolverOpts::default())
    };
    opts.timeout = timeout;
    opts.attempts = ATTEMPTS;
    // The default keeps 32 answers: far fewer than the SPF, DKIM and DMARC
    // names a busy gateway asks for.
    opts.cache_size = 8192;
    let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(opts)
        .build()
        .map_err(|e| format!("building the DNS resolver: {e}"))?;
    Ok(MessageAuthenticator(resolver))
}

/// UDP with TCP fallback to each `ip[:port]`.
fn configured(nameservers: &[String]) -> Result<ResolverConfig, String> {
    let mut servers = Vec::with_capacity(nameservers.len());
    for ns in nameservers {
        let addr = crate::dns::parse_nameserver(ns)?;
        let mut udp = ConnectionConfig::udp();
        udp.port = addr.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = addr.port();
        servers.push(NameServerConfig::new(addr.ip(), true, vec![udp, tcp]));
    }
    Ok(ResolverConfig::from_name_servers(servers))
}
