//! Lowercased text of every index row (subjects, reasons) in one
//! contiguous buffer, so a substring search is one memmem pass over memory
//! instead of a million pointer chases: a word no subject contains is
//! ruled out across a million rows in a few milliseconds.

use std::collections::HashSet;

/// A search stops collecting hits past this many and checks each row
/// instead: a word that common fills a page within the first rows.
const MAX_HITS: usize = 20_000;

#[derive(Default)]
pub struct TextColumn {
    /// Entries, each ended by a NUL.
    arena: Vec<u8>,
}

/// Which entries contain a needle.
pub enum TextMatch {
    /// The start offsets of every entry that contains it.
    Hits(HashSet<u32>),
    /// Too many to list: check each row.
    Each(String),
}

impl TextColumn {
    /// Stores an entry (NULs removed); its offset.
    pub fn push(&mut self, s: &str) -> u32 {
        let off = self.arena.len() as u32;
        self.arena.extend(s.bytes().filter(|&b| b != 0));
        self.arena.push(0);
        off
    }

    pub fn get(&self, off: u32) -> &str {
        let tail = &self.arena[off as usize..];
        let end = memchr::memchr(0, tail).unwrap_or(tail.len());
        std::str::from_utf8(&tail[..end]).unwrap_or("")
    }

    /// Finds `needle` (already lowercase) in every entry at once.
    pub fn find(&self, needle: &str) -> TextMatch {
        let needle: String = needle.chars().filter(|&c| c != '\0').collect();
        let mut hits = HashSet::new();
        for pos in memchr::memmem::find_iter(&self.arena, needle.as_bytes()) {
            let start = memchr::memrchr(0, &self.arena[..pos]).map_or(0, |p| p + 1);
            hits.insert(start as u32);
            if hits.len() > MAX_HITS {
                return TextMatch::Each(needle);
            }
        }
        TextMatch::Hits(hits)
    }

    /// True when the entry at `off` contains what `m` looks for.
    pub fn matches(&self, m: &TextMatch, off: u32) -> bool {
        match m {
            TextMatch::Hits(h) => h.contains(&off),
            TextMatch::Each(needle) => self.get(off).contains(needle.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_name_their_entries() {
        let mut c = TextColumn::default();
        let a = c.push("quarterly report");
        let b = c.push("holiday photos");
        let d = c.push("report\0card");
        assert_eq!(c.get(d), "reportcard");
        let TextMatch::Hits(h) = c.find("report") else { panic!() };
        assert_eq!(h, HashSet::from([a, d]));
        assert!(c.matches(&c.find("photo"), b) && !c.matches(&c.find("photo"), a));
        assert!(matches!(c.find("xyz"), TextMatch::Hits(h) if h.is_empty()));
        assert!(!c.matches(&c.find("y r"), b), "no match across entries");
    }
}
