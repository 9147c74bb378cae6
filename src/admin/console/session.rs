//! Console logins: sessions kept in memory (a restart logs everyone out,
//! which is acceptable for an operator console), each with its own CSRF
//! token and a one-shot flash message shown after a redirect.

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie that carries the session id.
pub const COOKIE: &str = "mxgate_console";

/// Most live sessions; past this the one closest to expiry is dropped, so a
/// flood of logins cannot grow memory without bound.
const MAX_SESSIONS: usize = 1000;

/// A message shown once, on the page a POST redirects to.
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

impl Flash {
    pub fn ok(text: impl Into<String>) -> Flash {
        Flash { ok: true, text: text.into() }
    }

    pub fn warn(text: impl Into<String>) -> Flash {
        Flash { ok: false, text: text.into() }
    }
}

struct Session {
    actor: &'static str,
    csrf: String,
    expires: Instant,
    flash: Option<Flash>,
}

/// The session a request carries, as handlers see it.
#[derive(Debug, Clone)]
pub struct Current {
    pub id: String,
    /// Who acts, for the audit log: `console:admin` or `console:token`.
    pub actor: &'static str,
    /// Every POST form must carry this in its `csrf` field.
    pub csrf: String,
}

pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    ttl: Duration,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions { map: Mutex::new(HashMap::new()), ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for `actor`; always a fresh id, so an id planted
    /// before the login is worth nothing after it.
    pub fn create(&self, actor: &'static str) -> Current {
        let (id, csrf) = (random_hex(), random_hex());
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        let session = Session { actor, csrf: csrf.clone(), expires: now + self.ttl, flash: None };
        map.insert(id.clone(), session);
        Current { id, actor, csrf }
    }

    /// The live session with this id; an expired one is forgotten.
    pub fn get(&self, id: &str) -> Option<Current> {
        let mut map = self.map.lock().unwrap();
        match map.get(id) {
            Some(s) if s.expires > Instant::now() => {
                Some(Current { id: id.to_string(), actor: s.actor, csrf: s.csrf.clone() })
            }
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        self.map.lock().unwrap().remove(id);
    }

    pub fn set_flash(&self, id: &str, flash: Flash) {
        if let Some(s) = self.map.lock().unwrap().get_mut(id) {
            s.flash = Some(flash);
        }
    }

    pub fn take_flash(&self, id: &str) -> Option<Flash> {
        self.map.lock().unwrap().get_mut(id).and_then(|s| s.flash.take())
    }
}

/// 32 random bytes from the system's CSPRNG, as 64 hex digits.
pub fn random_hex() -> String {
    let mut b = [0u8; 32];
    SystemRandom::new().fill(&mut b).expect("the system random source works");
    crate::form::hex_lower(&b)
}

/// Equality whose time depends neither on where the inputs differ nor on
/// the secret's length, for secrets (token, password, CSRF token): both
/// sides are hashed, then every byte of the digests is compared.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (x, y) = (digest(&SHA256, a), digest(&SHA256, b));
    x.as_ref().iter().zip(y.as_ref()).fold(0u8, |acc, (p, q)| acc | (p ^ q)) == 0
}

/// `Set-Cookie` for a new session. HttpOnly keeps it from scripts;
/// SameSite=Strict keeps other sites' pages from sending it (RFC 6265bis
/// §8.8). No `Secure`: the admin listener speaks plain HTTP (loopback, or
/// behind a TLS-terminating proxy).
pub fn set_cookie(id: &str, ttl: Duration) -> String {
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", ttl.as_secs())
}

pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_ids_are_fresh() {
        let s = Sessions::new(Duration::from_secs(60));
        let a = s.create("console:token");
        let b = s.create("console:token");
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 64);
        assert_eq!(s.get(&a.id).unwrap().csrf, a.csrf);
        s.remove(&a.id);
        assert!(s.get(&a.id).is_none());
        let brief = Sessions::new(Duration::ZERO);
        let gone = brief.create("console:admin");
        assert!(brief.get(&gone.id).is_none());
    }

    #[test]
    fn flash_is_shown_once() {
        let s = Sessions::new(Duration::from_secs(60));
        let c = s.create("console:admin");
        s.set_flash(&c.id, Flash::ok("Released"));
        assert_eq!(s.take_flash(&c.id).unwrap().text, "Released");
        assert!(s.take_flash(&c.id).is_none());
    }

    #[test]
    fn secrets_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
