//! Rendezvous (highest random weight) hashing: every key ranks every node
//! by a hash of (node, key); the first `replicas` nodes are its owners and
//! the rest, in order, stand in for owners that are down. Adding or
//! removing a node moves only the keys it wins or held, and every party
//! computes the same order from the same node list without coordination.

use super::NodeId;

/// FNV-1a, then a 64-bit finaliser (splitmix): stable across builds and
/// platforms, unlike `std`'s hasher, which matters because every gateway
/// and node must agree.
pub fn hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Every node, best first, for `key`. The key's first octet (its kind) is
/// not hashed: a message's queue entry and quarantine record share an id
/// and so live on the same nodes, which a release (one atomic change of
/// both on each node) needs.
pub fn preference(key: &[u8], nodes: &[String]) -> Vec<NodeId> {
    let id = key.get(1..).unwrap_or_default();
    let mut ranked: Vec<(u64, NodeId)> =
        nodes.iter().enumerate().map(|(i, n)| (hash(&[n.as_bytes(), id]), i)).collect();
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.into_iter().map(|(_, i)| i).collect()
}

/// The nodes that should hold `key` when all are up.
pub fn owners(key: &[u8], nodes: &[String], replicas: usize) -> Vec<NodeId> {
    let mut p = preference(key, nodes);
    p.truncate(replicas);
    p
}

/// True when `node` is one of `key`'s owners.
pub fn owns(key: &[u8], nodes: &[String], replicas: usize, node: NodeId) -> bool {
    owners(key, nodes, replicas).contains(&node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:7400")).collect()
    }

    #[test]
    fn spreads_keys_evenly_enough() {
        let ns = nodes(3);
        let mut first = [0usize; 3];
        for i in 0..30_000 {
            first[preference(format!("q{i}").as_bytes(), &ns)[0]] += 1;
        }
        for c in first {
            assert!((8_000..12_000).contains(&c), "{first:?}");
        }
    }

    #[test]
    fn adding_a_node_moves_only_keys_it_wins() {
        let (three, four) = (nodes(3), nodes(4));
        for i in 0..5_000 {
            let k = format!("q{i}");
            let before = owners(k.as_bytes(), &three, 2);
            let after = owners(k.as_bytes(), &four, 2);
            // Each key keeps every old owner unless the new node displaced it.
            let kept = before.iter().filter(|n| after.contains(n)).count();
            assert!(kept == 2 || after.contains(&3), "{k}: {before:?} -> {after:?}");
        }
    }
}
