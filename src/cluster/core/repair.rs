//! Anti-entropy: two nodes compare what they both own, bucket by bucket,
//! and each pulls the copies that differ (merging makes pulling an older
//! copy harmless). A bucket's digest is the XOR of its keys'
//! fingerprints, so equal buckets cost 8 bytes to confirm.

use super::NodeId;
use super::cell::Cell;
use super::placement;
use std::collections::HashMap;

pub const BUCKETS: usize = 256;

pub fn bucket(key: &[u8]) -> usize {
    (placement::hash(&[b"bucket", key]) % BUCKETS as u64) as usize
}

/// True when both `a` and `b` own `key`: the keys a pair compares.
pub fn shared(key: &[u8], nodes: &[String], replicas: usize, a: NodeId, b: NodeId) -> bool {
    let owners = placement::owners(key, nodes, replicas);
    owners.contains(&a) && owners.contains(&b)
}

/// Per-bucket digests of the keys a node shares with a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests(pub Vec<u64>);

impl Default for Digests {
    fn default() -> Self {
        Digests(vec![0; BUCKETS])
    }
}

impl Digests {
    pub fn add(&mut self, key: &[u8], cell: &Cell) {
        self.0[bucket(key)] ^= cell.fingerprint(key);
    }

    /// Buckets whose digests differ.
    pub fn differing(&self, other: &Digests) -> Vec<usize> {
        (0..BUCKETS).filter(|b| self.0.get(*b) != other.0.get(*b)).collect()
    }
}

/// Keys a peer listed (with fingerprints) that this node lacks or holds
/// in another version: the ones to pull.
pub fn to_pull(mine: &HashMap<Vec<u8>, u64>, theirs: &[(Vec<u8>, u64)]) -> Vec<Vec<u8>> {
    theirs.iter().filter(|(k, fp)| mine.get(k) != Some(fp)).map(|(k, _)| k.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(ver: u64) -> Cell {
        Cell { ver, rank: 0, dead: false, owner: "gw".into(), has_body: true, data: Vec::new() }
    }

    #[test]
    fn digests_find_the_bucket_that_differs() {
        let (mut a, mut b) = (Digests::default(), Digests::default());
        for i in 0..1000 {
            let k = format!("q{i}");
            a.add(k.as_bytes(), &cell(1));
            if i != 500 {
                b.add(k.as_bytes(), &cell(1));
            }
        }
        assert_eq!(a.differing(&b), vec![bucket(b"q500")]);
        b.add(b"q500", &cell(1));
        assert!(a.differing(&b).is_empty());
    }

    #[test]
    fn pulls_missing_and_different_keys_only() {
        let mine: HashMap<Vec<u8>, u64> = [(b"a".to_vec(), 1), (b"b".to_vec(), 2)].into();
        let theirs = vec![(b"a".to_vec(), 1), (b"b".to_vec(), 3), (b"c".to_vec(), 4)];
        assert_eq!(to_pull(&mine, &theirs), vec![b"b".to_vec(), b"c".to_vec()]);
    }
}
