//! Signed, expiring one-click links. A link names an action, a message, the
//! recipient it was sent to and when it expires; the signature is
//! HMAC-SHA256 over those four, so the link itself is the authority and
//! nobody can alter one field (another message, a later expiry) without
//! the key. Verification is constant-time (`ring::hmac::verify`).

use crate::config::Digest as DigestCfg;
use crate::store::{Store, StoreError};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::BTreeMap;

/// Where the generated key is kept, so links survive restarts.
const SECRET_KEY: &str = "digest-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Release the message.
    Release,
    /// Release it and allow its sender for this recipient.
    Allow,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Release => "release",
            Action::Allow => "allow",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        [Action::Release, Action::Allow].into_iter().find(|a| a.as_str() == s)
    }
}

/// What a link asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub action: Action,
    pub id: String,
    /// The recipient (lowercase) whose digest carried the link.
    pub rcpt: String,
    /// Unix seconds after which the link no longer works.
    pub exp: u64,
}

/// Why a link was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    /// A field is missing or unreadable.
    Malformed(&'static str),
    /// The signature does not match: altered or forged.
    BadSignature,
    /// Authentic, but too late.
    Expired(Link),
}

#[derive(Clone)]
pub struct Signer {
    key: hmac::Key,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Signer {
        Signer { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    /// The configured secret, or the one kept in the store (made on first
    /// use: 32 random bytes).
    pub async fn load(store: &dyn Store, cfg: &DigestCfg) -> Result<Signer, StoreError> {
        if let Some(s) = cfg.secret.as_deref().filter(|s| !s.is_empty()) {
            return Ok(Signer::new(s.as_bytes()));
        }
        // One maker at a time, so two first uses cannot keep different keys.
        static MAKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one = MAKING.lock().await;
        if let Some(k) = store.meta_get(SECRET_KEY).await?.filter(|k| k.len() >= 32) {
            return Ok(Signer::new(&k));
        }
        let mut k = vec![0u8; 32];
        SystemRandom::new().fill(&mut k).map_err(|_| StoreError::Io(std::io::Error::other("no system randomness")))?;
        store.meta_put(SECRET_KEY, k.clone()).await?;
        Ok(Signer::new(&k))
    }

    /// The signature as lowercase hex.
    pub fn sign(&self, l: &Link) -> String {
        crate::form::hex_lower(hmac::sign(&self.key, signed_text(l).as_bytes()).as_ref())
    }

    /// `{base}/digest/{action}?id=..&rcpt=..&exp=..&sig=..`
    pub fn url(&self, base: &str, l: &Link) -> String {
        format!("{}/digest/{}?{}", base.trim_end_matches('/'), l.action.as_str(), self.query(l))
    }

    /// The query string (or form body) that carries a link.
    pub fn query(&self, l: &Link) -> String {
        format!("id={}&rcpt={}&exp={}&sig={}", encode(&l.id), encode(&l.rcpt), l.exp, self.sign(l))
    }

    /// Checks a link's fields as they arrived (query or form), signature
    /// first: an altered link is refused as such even when it has expired.
    pub fn check(&self, action: Action, p: &BTreeMap<String, String>, now: u64) -> Result<Link, Invalid> {
        let field = |k: &'static str| p.get(k).filter(|v| !v.is_empty()).ok_or(Invalid::Malformed(k));
        let exp = field("exp")?.parse().map_err(|_| Invalid::Malformed("exp"))?;
        let link = Link { action, id: field("id")?.clone(), rcpt: field("rcpt")?.clone(), exp };
        let sig = unhex(field("sig")?).ok_or(Invalid::BadSignature)?;
        hmac::verify(&self.key, signed_text(&link).as_bytes(), &sig).map_err(|_| Invalid::BadSignature)?;
        match now > link.exp {
            true => Err(Invalid::Expired(link)),
            false => Ok(link),
        }
    }
}

/// Fields joined by LF: none may contain one (ids are hex, addresses come
/// from SMTP commands), so the text is unambiguous.
fn signed_text(l: &Link) -> String {
    format!("{}\n{}\n{}\n{}", l.action.as_str(), l.id, l.rcpt, l.exp)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

pub use crate::form::encode;

/// An `application/x-www-form-urlencoded` body as a map; later duplicates win.
pub fn parse_form(body: &str) -> BTreeMap<String, String> {
    crate::form::Form::parse(body.as_bytes()).0.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link { action: Action::Release, id: "0001A2B3C4D5E6F".into(), rcpt: "b+x&y@example.test".into(), exp: 1000 }
    }

    fn params(s: &Signer, l: &Link) -> BTreeMap<String, String> {
        parse_form(&s.query(l))
    }

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let s = Signer::new(b"k");
        let p = params(&s, &link());
        assert_eq!(p["rcpt"], "b+x&y@example.test", "the query round-trips");
        assert_eq!(s.check(Action::Release, &p, 999), Ok(link()));
        assert_eq!(s.check(Action::Release, &p, 1000), Ok(link()));
        assert_eq!(s.check(Action::Release, &p, 1001), Err(Invalid::Expired(link())));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let s = Signer::new(b"k");
        let p = params(&s, &link());
        assert_eq!(s.check(Action::Allow, &p, 0), Err(Invalid::BadSignature), "another action");
        for (k, v) in [("id", "0001A2B3C4D5E60"), ("rcpt", "c@example.test"), ("exp", "99999"), ("sig", "00")] {
            let mut q = p.clone();
            q.insert(k.into(), v.into());
            assert_eq!(s.check(Action::Release, &q, 0), Err(Invalid::BadSignature), "{k} changed");
        }
        let mut q = p.clone();
        q.insert("sig".into(), "zz".repeat(32));
        assert_eq!(s.check(Action::Release, &q, 0), Err(Invalid::BadSignature), "not hex");
        assert_eq!(Signer::new(b"other").check(Action::Release, &p, 0), Err(Invalid::BadSignature), "another key");
        let mut q = p.clone();
        q.remove("rcpt");
        assert_eq!(s.check(Action::Release, &q, 0), Err(Invalid::Malformed("rcpt")));
    }

    #[test]
    fn urls_and_forms() {
        let s = Signer::new(b"k");
        let url = s.url("https://q.example.test/", &link());
        assert!(
            url.starts_with(
                "https://q.example.test/digest/release?id=0001A2B3C4D5E6F&rcpt=b%2Bx%26y%40example.test&exp=1000&sig="
            ),
            "{url}"
        );
        let f = parse_form("a=1+2&b=%41%zz&c");
        assert_eq!((f["a"].as_str(), f["b"].as_str(), f["c"].as_str()), ("1 2", "A%zz", ""));
    }
}
