//! One quorum write, as a state machine. The gateway sends a record to its
//! owners; an owner that is down is replaced by the next healthy node in
//! the key's preference order, which keeps the copy with a hint naming the
//! owner it stands in for (sloppy quorum, hinted handoff). The write
//! succeeds once `quorum` nodes have made it durable, and fails as soon as
//! that can no longer happen, so SMTP can answer 451 instead of 250.

use super::NodeId;

/// A request to send: the record to `to`, held for `hint_for` when `to`
/// stands in for a down owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Send {
    pub to: NodeId,
    pub hint_for: Option<NodeId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `quorum` durable copies: the 250 is safe.
    Durable,
    /// Not enough nodes could take it.
    Unavailable,
}

#[derive(Debug)]
pub struct Write {
    prefs: Vec<NodeId>,
    quorum: usize,
    /// Nodes asked so far (each at most once).
    used: Vec<NodeId>,
    pending: Vec<Send>,
    acked: usize,
    done: bool,
}

impl Write {
    /// Plans the write. `prefs` is the key's full preference order,
    /// `replicas` how many copies, `up` the current health view.
    pub fn start(
        prefs: Vec<NodeId>,
        replicas: usize,
        quorum: usize,
        up: impl Fn(NodeId) -> bool,
    ) -> (Write, Vec<Send>) {
        let mut w = Write { prefs, quorum, used: Vec::new(), pending: Vec::new(), acked: 0, done: false };
        let owners: Vec<NodeId> = w.prefs.iter().copied().take(replicas).collect();
        // Owners are never stand-ins for one another.
        w.used = owners.clone();
        let mut sends = Vec::new();
        for owner in owners {
            let send = if up(owner) { Some(Send { to: owner, hint_for: None }) } else { w.stand_in(owner, &up) };
            if let Some(s) = send {
                w.used.push(s.to);
                sends.push(s);
            }
        }
        w.pending = sends.clone();
        (w, sends)
    }

    /// The next healthy node past the owners, not yet used, for `owner`.
    fn stand_in(&self, owner: NodeId, up: &impl Fn(NodeId) -> bool) -> Option<Send> {
        let to = self.prefs.iter().copied().find(|n| !self.used.contains(n) && up(*n))?;
        Some(Send { to, hint_for: Some(owner) })
    }

    /// Whether the write is already decided (`Durable` or `Unavailable`).
    pub fn outcome(&self) -> Option<Outcome> {
        if self.acked >= self.quorum {
            Some(Outcome::Durable)
        } else if self.acked + self.pending.len() < self.quorum {
            Some(Outcome::Unavailable)
        } else {
            None
        }
    }

    /// An owner, or stand-in, made the write durable.
    pub fn ack(&mut self, node: NodeId) -> Option<Outcome> {
        if let Some(i) = self.pending.iter().position(|s| s.to == node) {
            self.pending.remove(i);
            self.acked += 1;
        }
        self.decide()
    }

    /// A request failed (connection refused, timeout, node error): try the
    /// next healthy node in its place.
    pub fn fail(&mut self, node: NodeId, up: impl Fn(NodeId) -> bool) -> (Vec<Send>, Option<Outcome>) {
        let Some(i) = self.pending.iter().position(|s| s.to == node) else { return (Vec::new(), self.decide()) };
        let failed = self.pending.remove(i);
        let owner = failed.hint_for.unwrap_or(failed.to);
        let mut sends = Vec::new();
        if let Some(s) = self.stand_in(owner, &|n| n != node && up(n)) {
            self.used.push(s.to);
            self.pending.push(s);
            sends.push(s);
        }
        (sends, self.decide())
    }

    fn decide(&mut self) -> Option<Outcome> {
        if self.done {
            return None;
        }
        let out = self.outcome();
        self.done = out.is_some();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_up_goes_to_the_owners() {
        let (mut w, sends) = Write::start(vec![2, 0, 1], 2, 2, |_| true);
        assert_eq!(sends, vec![Send { to: 2, hint_for: None }, Send { to: 0, hint_for: None }]);
        assert_eq!(w.ack(2), None);
        assert_eq!(w.ack(0), Some(Outcome::Durable));
        assert_eq!(w.ack(0), None, "decided once");
    }

    #[test]
    fn a_down_owner_is_replaced_with_a_hint() {
        let (_, sends) = Write::start(vec![2, 0, 1], 2, 2, |n| n != 0);
        assert_eq!(sends, vec![Send { to: 2, hint_for: None }, Send { to: 1, hint_for: Some(0) }]);
    }

    #[test]
    fn a_failure_mid_write_moves_to_the_next_node() {
        let (mut w, _) = Write::start(vec![2, 0, 1], 2, 2, |_| true);
        let (sends, out) = w.fail(0, |_| true);
        assert_eq!(sends, vec![Send { to: 1, hint_for: Some(0) }]);
        assert_eq!(out, None);
        assert_eq!(w.ack(2), None);
        assert_eq!(w.ack(1), Some(Outcome::Durable));
    }

    #[test]
    fn too_few_nodes_is_unavailable_at_once() {
        let (w, sends) = Write::start(vec![2, 0, 1], 2, 2, |n| n == 2);
        assert_eq!(sends.len(), 1);
        assert_eq!(w.outcome(), Some(Outcome::Unavailable));
        let (mut w, _) = Write::start(vec![2, 0, 1], 2, 2, |n| n != 1);
        assert_eq!(w.fail(2, |n| n != 1).1, Some(Outcome::Unavailable));
    }

    #[test]
    fn quorum_one_succeeds_with_one_copy() {
        let (mut w, _) = Write::start(vec![0, 1, 2], 2, 1, |_| true);
        assert_eq!(w.ack(1), Some(Outcome::Durable));
    }
}
