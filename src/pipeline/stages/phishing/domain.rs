//! Domain helpers shared by the phishing and heuristics stages: the domain
//! of an address, the host of a URL, and an approximate organisational
//! domain. There is no public-suffix list here, so the organisational
//! domain is the last two labels, or three under the common two-level
//! country suffixes (`co.uk`, `com.au`, ...); good enough to tell whether
//! two hosts belong to the same sender, not for security boundaries.

/// Lowercased, without a trailing dot or surrounding brackets.
pub fn normalize(d: &str) -> String {
    d.trim().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase()
}

/// The domain of `local@domain`, normalized; None without an `@`.
pub fn of_address(addr: &str) -> Option<String> {
    let addr = addr.trim().trim_start_matches('<').trim_end_matches('>');
    let (_, d) = addr.rsplit_once('@')?;
    let d = normalize(d);
    (!d.is_empty()).then_some(d)
}

/// True when `d` is `parent` or a subdomain of it.
pub fn within(d: &str, parent: &str) -> bool {
    d == parent || d.strip_suffix(parent).is_some_and(|head| head.ends_with('.'))
}

/// True when `d` is within any of `parents`.
pub fn within_any(d: &str, parents: &[String]) -> bool {
    parents.iter().any(|p| within(d, p))
}

/// A host that is an IP literal rather than a name.
pub fn is_ip(host: &str) -> bool {
    host.contains(':') || host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// The organisational domain of `d` (see the module doc).
pub fn org(d: &str) -> &str {
    let labels: Vec<&str> = d.rsplitn(4, '.').collect();
    let keep = match labels.as_slice() {
        [tld, sld, _, ..] if tld.len() == 2 && SECOND_LEVEL.contains(sld) => 3,
        _ => 2,
    };
    if is_ip(d) || labels.len() <= keep {
        return d;
    }
    // The first `keep` labels of the reversed split are the org domain.
    let tail_len: usize = labels[..keep].iter().map(|l| l.len()).sum::<usize>() + keep - 1;
    &d[d.len() - tail_len..]
}

/// Second-level labels used as registries under country-code domains.
const SECOND_LEVEL: &[&str] = &["ac", "co", "com", "edu", "gov", "ne", "net", "or", "org", "go", "gob", "mil"];

/// Characters that may appear in a host name as written in mail, IDNs
/// included.
fn host_char(c: char) -> bool {
    c.is_alphanumeric() || c == '.' || c == '-' || c == '_'
}

/// The host of an absolute `http(s)://` or protocol-relative `//` URL,
/// userinfo and port removed (`https://bank.test@evil.test/` is
/// evil.test). None for other schemes and relative links.
pub fn url_host(url: &str) -> Option<String> {
    let url = url.trim();
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    // `https:\\host`, `https:/\host` and `https:host` all lead browsers to
    // `host` (WHATWG URL, special schemes); the slashes are trimmed below.
    let rest = if lower.starts_with("https:") {
        &url[6..]
    } else if lower.starts_with("http:") {
        &url[5..]
    } else {
        url.strip_prefix("//")?
    };
    let rest = rest.trim_start_matches(['/', '\\']);
    let authority = &rest[..rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    let host = normalize(host);
    (!host.is_empty() && host.contains('.')).then_some(host)
}

/// The host at the start of `s` if it is written as a URL (`http://`,
/// `https://`) or a `www.` name: what a reader takes for a link target.
pub fn shown_host(s: &str) -> Option<String> {
    let lower = s.get(..4).unwrap_or("").to_ascii_lowercase();
    if lower == "www." {
        let end = s.find(|c: char| !host_char(c)).unwrap_or(s.len());
        let host = normalize(&s[..end]);
        return (host.len() > 4 && host[4..].contains('.')).then_some(host);
    }
    if lower == "http" {
        return url_host(s);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_domains() {
        assert_eq!(org("a.b.example.test"), "example.test");
        assert_eq!(org("example.test"), "example.test");
        assert_eq!(org("test"), "test");
        assert_eq!(org("www.bank.co.uk"), "bank.co.uk");
        assert_eq!(org("bank.co.uk"), "bank.co.uk");
        assert_eq!(org("192.0.2.1"), "192.0.2.1");
    }

    #[test]
    fn hosts_of_urls() {
        assert_eq!(url_host("HTTPS://User@Evil.Test:8443/x?y").as_deref(), Some("evil.test"));
        assert_eq!(url_host("https://www.bank.test@evil.test/").as_deref(), Some("evil.test"));
        assert_eq!(url_host("//cdn.test/a").as_deref(), Some("cdn.test"));
        assert_eq!(url_host("mailto:a@b.test"), None);
        for odd in [r"https:\\evil.test/login", r"https:/\evil.test", "https:evil.test/x", "HTTP:\\\\evil.test"] {
            assert_eq!(url_host(odd).as_deref(), Some("evil.test"), "{odd}");
        }
        assert_eq!(url_host("/relative"), None);
        assert_eq!(shown_host("www.bank.test/login").as_deref(), Some("www.bank.test"));
        assert_eq!(shown_host("http://é.test").as_deref(), Some("é.test"));
        assert_eq!(shown_host("Click here"), None);
        assert_eq!(shown_host("www."), None);
    }

    #[test]
    fn within_domains() {
        assert!(within("mail.example.test", "example.test"));
        assert!(within("example.test", "example.test"));
        assert!(!within("badexample.test", "example.test"));
        assert_eq!(of_address("<Jane@Example.TEST>").as_deref(), Some("example.test"));
        assert_eq!(of_address("nobody"), None);
    }
}
