//! Allow and block lists: sender addresses, sender domains and client
//! networks, matched before any stage runs.

use std::net::IpAddr;

/// `ip` or `ip/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = ip.trim().parse().map_err(|_| format!("`{s}` is not an IP address or CIDR network"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.trim().parse::<u8>().ok().filter(|&p| p <= max).ok_or(format!("`{s}`: bad prefix length"))?,
        };
        Ok(Cidr { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => masked(u32::from(n).into(), u32::from(a).into(), self.prefix, 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => masked(u128::from(n), u128::from(a), self.prefix, 128),
            _ => false,
        }
    }
}

fn masked(n: u128, a: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (n >> shift) == (a >> shift)
}

/// A sender pattern: `user@domain` (the address), `domain` or `@domain`
/// (the domain and, for `domain`, its subdomains).
pub fn sender_matches(pattern: &str, sender: &str) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    let sender = sender.to_ascii_lowercase();
    let domain = sender.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    if let Some(d) = pattern.strip_prefix('@') {
        return domain == d;
    }
    if pattern.contains('@') {
        return sender == pattern;
    }
    domain == pattern || domain.ends_with(&format!(".{pattern}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let c = Cidr::parse("192.0.2.0/24").unwrap();
        assert!(c.contains("192.0.2.77".parse().unwrap()));
        assert!(!c.contains("192.0.3.1".parse().unwrap()));
        assert!(c.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains("2001:db8:1::5".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.1").unwrap().contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
    }

    #[test]
    fn senders() {
        assert!(sender_matches("boss@corp.test", "Boss@Corp.test"));
        assert!(!sender_matches("boss@corp.test", "other@corp.test"));
        assert!(sender_matches("corp.test", "x@mail.corp.test"));
        assert!(!sender_matches("@corp.test", "x@mail.corp.test"));
        assert!(sender_matches("@corp.test", "x@corp.test"));
        assert!(!sender_matches("corp.test", "x@evilcorp.test"));
    }
}
