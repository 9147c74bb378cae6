//! Failure detection and read choice, from what the shell observes: probe
//! answers (with the node's reported load), request failures and the time
//! in milliseconds. A node is down after one failed request or when no
//! probe has answered for `timeout`; a connection refused by a killed
//! process is seen at once, a cut network within `timeout`.

use super::NodeId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not heard from yet.
    Unknown,
    Up,
    /// Answering, but still catching up: takes writes, serves no reads.
    CatchingUp,
    Down,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeHealth {
    pub state: State,
    /// Milliseconds of the last answer.
    pub last_ok: Option<u64>,
    /// Round trip of probes, smoothed (milliseconds).
    pub rtt_ms: f64,
    /// Requests this gateway has outstanding on the node.
    pub inflight: u64,
    /// The node's own load figure (requests in its write queue).
    pub load: u64,
    pub records: u64,
    pub last_error: Option<String>,
}

impl Default for NodeHealth {
    fn default() -> Self {
        NodeHealth {
            state: State::Unknown,
            last_ok: None,
            rtt_ms: 0.0,
            inflight: 0,
            load: 0,
            records: 0,
            last_error: None,
        }
    }
}

/// What a probe learned.
#[derive(Debug, Clone, Copy, Default)]
pub struct Probe {
    pub rtt_ms: u64,
    pub load: u64,
    pub records: u64,
    pub catching_up: bool,
}

#[derive(Debug, Clone)]
pub struct Health {
    pub nodes: Vec<NodeHealth>,
    timeout_ms: u64,
}

impl Health {
    pub fn new(n: usize, timeout_ms: u64) -> Health {
        Health { nodes: vec![NodeHealth::default(); n], timeout_ms }
    }

    pub fn probe_ok(&mut self, node: NodeId, now: u64, p: Probe) {
        let h = &mut self.nodes[node];
        h.rtt_ms = if h.last_ok.is_none() { p.rtt_ms as f64 } else { h.rtt_ms * 0.8 + p.rtt_ms as f64 * 0.2 };
        h.last_ok = Some(now);
        h.load = p.load;
        h.records = p.records;
        h.state = if p.catching_up { State::CatchingUp } else { State::Up };
        h.last_error = None;
    }

    /// A request or probe failed: the node is out until a probe answers.
    pub fn failed(&mut self, node: NodeId, why: &str) {
        let h = &mut self.nodes[node];
        h.state = State::Down;
        h.last_error = Some(why.to_string());
    }

    /// Marks nodes silent for longer than the timeout as down.
    pub fn tick(&mut self, now: u64) {
        for h in &mut self.nodes {
            let silent = h.last_ok.is_none_or(|t| now.saturating_sub(t) > self.timeout_ms);
            if silent && h.state != State::Unknown {
                h.state = State::Down;
                h.last_error.get_or_insert_with(|| "no answer to probes".into());
            }
        }
    }

    /// Takes writes.
    pub fn writable(&self, node: NodeId) -> bool {
        matches!(self.nodes[node].state, State::Up | State::CatchingUp)
    }

    /// Serves reads: up and caught up.
    pub fn readable(&self, node: NodeId) -> bool {
        self.nodes[node].state == State::Up
    }

    pub fn writable_count(&self) -> usize {
        (0..self.nodes.len()).filter(|n| self.writable(*n)).count()
    }

    /// Of `candidates`, the readable ones, least loaded first: requests
    /// outstanding from here plus the node's own queue, then round trip.
    pub fn read_order(&self, candidates: &[NodeId]) -> Vec<NodeId> {
        let mut c: Vec<NodeId> = candidates.iter().copied().filter(|n| self.readable(*n)).collect();
        c.sort_by(|a, b| {
            let (ha, hb) = (&self.nodes[*a], &self.nodes[*b]);
            (ha.inflight + ha.load).cmp(&(hb.inflight + hb.load)).then(ha.rtt_ms.total_cmp(&hb.rtt_ms))
        });
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_failure_take_a_node_out() {
        let mut h = Health::new(3, 1000);
        for n in 0..3 {
            h.probe_ok(n, 0, Probe::default());
        }
        h.failed(1, "connection refused");
        h.tick(500);
        assert_eq!((h.writable(0), h.writable(1), h.writable(2)), (true, false, true));
        h.probe_ok(0, 900, Probe::default());
        h.tick(1500);
        assert!(h.writable(0) && !h.writable(2), "2 was silent for 1.5 s");
        assert_eq!(h.writable_count(), 1);
    }

    #[test]
    fn reads_prefer_the_least_loaded_caught_up_node() {
        let mut h = Health::new(3, 1000);
        h.probe_ok(0, 0, Probe { load: 50, ..Probe::default() });
        h.probe_ok(1, 0, Probe { load: 5, ..Probe::default() });
        h.probe_ok(2, 0, Probe { load: 0, catching_up: true, ..Probe::default() });
        assert_eq!(h.read_order(&[0, 1, 2]), vec![1, 0]);
        assert!(h.writable(2) && !h.readable(2));
    }
}
