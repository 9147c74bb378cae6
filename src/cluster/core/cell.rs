//! A replicated record. Copies of the same key on different nodes merge
//! by one total order, so every node that has seen the same copies holds
//! the same winner whatever order they arrived in (a join-semilattice):
//!
//! 1. a tombstone beats everything: a removed queue entry never comes back;
//! 2. then the higher `rank`: the quarantine status lattice (held 0,
//!    released or expired 1, deleted 2), so no status moves backwards;
//! 3. then the newer version (a hybrid clock the writer sets);
//! 4. then owner and bytes, only to make ties deterministic.

use std::cmp::Ordering;

/// What kind of record a key holds: its first byte.
pub mod kind {
    pub const QUEUE: u8 = b'q';
    pub const QUARANTINE: u8 = b'z';
    pub const AUDIT: u8 = b'a';
    pub const ALLOW: u8 = b'l';
    pub const META: u8 = b'm';
    /// A gateway's heartbeat: the lease on the mail it queued.
    pub const GATEWAY: u8 = b'g';
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cell {
    pub ver: u64,
    pub rank: u8,
    pub dead: bool,
    /// The gateway that wrote this version (for queue entries: the one that
    /// delivers it).
    pub owner: String,
    /// True when the record has a message body beside it.
    pub has_body: bool,
    /// The record itself (JSON of a queue entry, quarantine record, ...).
    pub data: Vec<u8>,
}

impl Cell {
    fn order_key(&self) -> (bool, u8, u64, &str, &[u8]) {
        (self.dead, self.rank, self.ver, self.owner.as_str(), self.data.as_slice())
    }

    /// The merge order (see the module comment).
    pub fn cmp_merge(&self, other: &Cell) -> Ordering {
        self.order_key().cmp(&other.order_key())
    }

    /// True when `self` replaces `current` on merge.
    pub fn beats(&self, current: &Cell) -> bool {
        self.cmp_merge(current) == Ordering::Greater
    }

    /// A short fingerprint of this version, for anti-entropy digests.
    pub fn fingerprint(&self, key: &[u8]) -> u64 {
        let head = [u8::from(self.dead), self.rank, u8::from(self.has_body)];
        super::placement::hash(&[key, &self.ver.to_le_bytes(), &head, self.owner.as_bytes()])
    }
}

/// How a node takes a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// Merge: the winner of the two copies stays.
    Merge,
    /// Compare-and-set for status changes that must happen once (a
    /// release): applied only over a live copy of lower rank.
    Advance,
}

/// What a node did with a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The write is now the stored copy.
    Taken,
    /// The stored copy stays (it wins the merge, or equals the write).
    Kept,
    /// `Advance` on a missing, dead or already advanced copy.
    Refused,
}

/// Decides a write against the stored copy.
pub fn decide(current: Option<&Cell>, new: &Cell, cond: Cond) -> Applied {
    match (cond, current) {
        (Cond::Advance, None) => Applied::Refused,
        (Cond::Advance, Some(c)) if c.dead || c.rank >= new.rank => Applied::Refused,
        (_, None) => Applied::Taken,
        (_, Some(c)) if new.beats(c) => Applied::Taken,
        _ => Applied::Kept,
    }
}

/// Copies of one key from several nodes: the merge winner.
pub fn newest<'a>(copies: impl IntoIterator<Item = &'a Cell>) -> Option<&'a Cell> {
    copies.into_iter().max_by(|a, b| a.cmp_merge(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(ver: u64, rank: u8, dead: bool) -> Cell {
        Cell { ver, rank, dead, owner: "gw".into(), has_body: !dead, data: vec![rank] }
    }

    #[test]
    fn merge_is_order_independent() {
        let copies = [cell(5, 0, false), cell(3, 1, false), cell(9, 0, false), cell(1, 0, true), cell(7, 2, false)];
        let mut winners = std::collections::HashSet::new();
        for start in 0..copies.len() {
            let mut held: Option<Cell> = None;
            for i in 0..copies.len() {
                let c = &copies[(start + i) % copies.len()];
                if decide(held.as_ref(), c, Cond::Merge) == Applied::Taken {
                    held = Some(c.clone());
                }
            }
            winners.insert(held.unwrap());
        }
        assert_eq!(winners.len(), 1);
        assert!(winners.into_iter().next().unwrap().dead, "the tombstone wins");
    }

    #[test]
    fn advance_happens_once() {
        let held = cell(1, 0, false);
        let release_a = cell(2, 1, false);
        let release_b = cell(3, 1, false);
        assert_eq!(decide(Some(&held), &release_a, Cond::Advance), Applied::Taken);
        assert_eq!(decide(Some(&release_a), &release_b, Cond::Advance), Applied::Refused);
        assert_eq!(decide(None, &release_b, Cond::Advance), Applied::Refused);
        // A plain merge of a newer release still converges.
        assert_eq!(decide(Some(&release_a), &release_b, Cond::Merge), Applied::Taken);
        // Lower rank never replaces higher, however new.
        assert_eq!(decide(Some(&cell(1, 2, false)), &cell(99, 1, false), Cond::Merge), Applied::Kept);
    }
}
