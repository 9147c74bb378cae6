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
    replicas: usize,
    quorum: usize,
    /// Owners only, never stand-ins: for conditional writes (a release),
    /// whose quorums must overlap so that two of them cannot both win.
    strict: bool,
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
        Self::plan(prefs, replicas, quorum, false, up)
    }

    /// Plans a write that only owners may take (no stand-ins, no hints):
    /// any two such writes that succeed share an owner when
    /// `2 * quorum > replicas`, and that owner takes only one of them.
    pub fn start_strict(
        prefs: Vec<NodeId>,
        replicas: usize,
        quorum: usize,
        up: impl Fn(NodeId) -> bool,
    ) -> (Write, Vec<Send>) {
        Self::plan(prefs, replicas, quorum, true, up)
    }

    fn plan(
        prefs: Vec<NodeId>,
        replicas: usize,
        quorum: usize,
        strict: bool,
        up: impl Fn(NodeId) -> bool,
    ) -> (Write, Vec<Send>) {
        let mut w =
            Write { prefs, replicas, quorum, strict, used: Vec::new(), pending: Vec::new(), acked: 0, done: false };
        let owners: Vec<NodeId> = w.prefs.iter().copied().take(replicas).collect();
        let mut sends = Vec::new();
        for owner in owners.iter().copied().filter(|o| up(*o)) {
            w.used.push(owner);
            sends.push(Send { to: owner, hint_for: None });
        }
        let down: Vec<NodeId> = owners.into_iter().filter(|o| !w.used.contains(o)).collect();
        for owner in down {
            if let Some(s) = w.stand_in(owner, &up) {
                w.used.push(s.to);
                sends.push(s);
            }
        }
        w.pending = sends.clone();
        (w, sends)
    }

    /// Who takes `owner`'s copy now: the owner itself when it is up and
    /// was not asked yet (it may have come back), else the next healthy
    /// node not asked yet, with a hint. Strict writes take no stand-ins.
    fn stand_in(&self, owner: NodeId, up: &impl Fn(NodeId) -> bool) -> Option<Send> {
        if !self.used.contains(&owner) && up(owner) {
            return Some(Send { to: owner, hint_for: None });
        }
        if self.strict {
            return None;
        }
        // Not another owner skipped as down, even if it is back: its own
        // slot is held by its stand-in, and one node must not count twice.
        let owners = &self.prefs[..self.replicas.min(self.prefs.len())];
        let to = self.prefs.iter().copied().find(|n| !self.used.contains(n) && !owners.contains(n) && up(*n))?;
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
    fn an_owner_back_in_the_view_takes_the_place_of_a_lost_stand_in() {
        let (mut w, sends) = Write::start(vec![0, 2, 1], 2, 2, |n| n != 0);
        assert_eq!(sends, vec![Send { to: 2, hint_for: None }, Send { to: 1, hint_for: Some(0) }]);
        let (sends, out) = w.fail(1, |n| n != 1);
        assert_eq!(sends, vec![Send { to: 0, hint_for: None }]);
        assert_eq!(out, None);
        assert_eq!(w.ack(2), None);
        assert_eq!(w.ack(0), Some(Outcome::Durable));
    }

    #[test]
    fn strict_writes_use_owners_only() {
        let (w, sends) = Write::start_strict(vec![0, 2, 1], 2, 2, |n| n != 0);
        assert_eq!(sends, vec![Send { to: 2, hint_for: None }]);
        assert_eq!(w.outcome(), Some(Outcome::Unavailable));
        let (mut w, _) = Write::start_strict(vec![0, 2, 1], 2, 2, |_| true);
        assert_eq!(w.fail(0, |n| n != 0), (Vec::new(), Some(Outcome::Unavailable)));
    }

    #[test]
    fn quorum_one_succeeds_with_one_copy() {
        let (mut w, _) = Write::start(vec![0, 1, 2], 2, 1, |_| true);
        assert_eq!(w.ack(1), Some(Outcome::Durable));
    }
}
