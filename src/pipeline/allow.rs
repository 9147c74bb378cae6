//! Senders allowed from the quarantine ("release and allow sender"). The
//! entries live in the store; this is their in-memory copy, consulted for
//! every message. An entry is global (`*`) or for one recipient; a message
//! is allowed when every recipient is covered.

use crate::store::AllowEntry;
use std::collections::HashSet;
use std::sync::RwLock;

#[derive(Default)]
pub struct AllowSet {
    entries: RwLock<HashSet<AllowEntry>>,
}

impl AllowSet {
    pub fn replace(&self, all: Vec<AllowEntry>) {
        *self.entries.write().unwrap() = all.into_iter().collect();
    }

    pub fn set(&self, entry: AllowEntry, remove: bool) {
        let mut e = self.entries.write().unwrap();
        match remove {
            true => e.remove(&entry),
            false => e.insert(entry),
        };
    }

    /// True when `sender` (its address or its domain) is allowed for every
    /// one of `rcpts`.
    pub fn allows(&self, sender: &str, rcpts: &[String]) -> bool {
        let e = self.entries.read().unwrap();
        if e.is_empty() || rcpts.is_empty() {
            return false;
        }
        let sender = sender.to_lowercase();
        let domain = sender.rsplit_once('@').map_or("", |(_, d)| d).to_string();
        let has = |s: &str, scope: &str| e.contains(&AllowEntry { sender: s.into(), scope: scope.into() });
        let covers = |scope: &str| has(&sender, scope) || (!domain.is_empty() && has(&domain, scope));
        covers("*") || rcpts.iter().all(|r| covers(&r.to_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(s: &str, scope: &str) -> AllowEntry {
        AllowEntry { sender: s.into(), scope: scope.into() }
    }

    #[test]
    fn scoped_entries_cover_only_their_recipient() {
        let set = AllowSet::default();
        set.set(entry("a@partner.test", "b@example.test"), false);
        assert!(set.allows("A@Partner.test", &["b@example.test".into()]));
        assert!(!set.allows("a@partner.test", &["b@example.test".into(), "c@example.test".into()]));
        set.set(entry("partner.test", "*"), false);
        assert!(set.allows("z@partner.test", &["c@example.test".into()]));
        set.set(entry("partner.test", "*"), true);
        assert!(!set.allows("z@partner.test", &["c@example.test".into()]));
    }
}
