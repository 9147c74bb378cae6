//! Small HTTP pieces the console needs: the session cookie and the
//! same-origin check for POSTs. Form bodies are `crate::form`.

pub use crate::form::{Form, encode};
use axum::http::HeaderMap;

/// The value of cookie `name` from the `Cookie` header fields (RFC 6265 §5.4).
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
}

/// False when the request says it comes from another origin: `Origin`
/// (or, without it, `Referer`) must name the host the request was sent to.
/// A request naming neither passes; the CSRF token and the SameSite cookie
/// still guard it. `Origin: null` says nothing: browsers send it for every
/// POST from a page with `Referrer-Policy: no-referrer` (Fetch §3.2.5,
/// "serializing a request origin"), which the console's own pages are.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get("host").and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| v.trim() != "null");
    let from = text("origin").or_else(|| text("referer")).map(str::to_ascii_lowercase);
    let Some(from) = from else { return true };
    let Some(rest) = from.strip_prefix("http://").or_else(|| from.strip_prefix("https://")) else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    host.is_some_and(|h| h == authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn forms_decode() {
        let f = Form::parse(b"a=1+2&id=x%2Fy&id=z&flag&bad=%zz%4");
        assert_eq!(f.get("a"), Some("1 2"));
        assert_eq!(f.all("id"), vec!["x/y", "z"]);
        assert_eq!(f.get("flag"), Some(""));
        assert_eq!(f.get("bad"), Some("%zz%4"));
        assert_eq!(encode("a b&c=é"), "a%20b%26c%3D%C3%A9");
    }

    #[test]
    fn cookies_are_found() {
        let h = headers(&[("cookie", "x=1; mxgate_console=abc ; y=2")]);
        assert_eq!(cookie(&h, "mxgate_console").as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "z"), None);
    }

    #[test]
    fn origins_must_match_the_host() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8025"), ("origin", "http://127.0.0.1:8025")])));
        assert!(same_origin(&headers(&[("host", "a.test"), ("referer", "https://a.test/console/")])));
        assert!(same_origin(&headers(&[("host", "a.test")])));
        assert!(!same_origin(&headers(&[("host", "a.test"), ("origin", "http://evil.test")])));
        assert!(same_origin(&headers(&[("host", "a.test"), ("origin", "null")])));
        assert!(!same_origin(&headers(&[("host", "a.test"), ("origin", "null"), ("referer", "http://b.test/")])));
        assert!(!same_origin(&headers(&[("host", "a.test"), ("referer", "http://a.test.evil.test/")])));
        assert!(!same_origin(&headers(&[("origin", "http://a.test")])));
    }
}
