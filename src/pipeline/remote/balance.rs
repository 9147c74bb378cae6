//! Which worker gets a scan, and when a worker is out of service: pure
//! rules, no I/O and no clock, so they are tested on their own.

/// Consecutive failed requests or probes that take a worker out.
pub const FAILURES_TO_EJECT: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Takes scans.
    Up,
    /// Out of service until a health probe succeeds.
    Down,
}

/// What one endpoint knows about its worker.
#[derive(Debug, Clone)]
pub struct Health {
    pub state: State,
    pub failures: u32,
    pub last_error: Option<String>,
}

impl Default for Health {
    /// A configured worker is trusted until it fails: the first messages
    /// after a start need not wait for a probe.
    fn default() -> Health {
        Health { state: State::Up, failures: 0, last_error: None }
    }
}

/// How a request or probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection: the worker is gone, out at once.
    Unreachable,
    /// Timed out, broken answer, or the stage failed on the worker.
    Failed,
}

impl Health {
    pub fn succeeded(&mut self) {
        self.state = State::Up;
        self.failures = 0;
        self.last_error = None;
    }

    /// Records a failure; true when it took the worker out just now.
    pub fn failed(&mut self, how: Failure, error: String) -> bool {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error);
        let out = how == Failure::Unreachable || self.failures >= FAILURES_TO_EJECT;
        let was_up = self.state == State::Up;
        if out {
            self.state = State::Down;
        }
        out && was_up
    }
}

/// One endpoint as the picker sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub up: bool,
    pub outstanding: usize,
}

/// Least outstanding requests among the workers that are up, not full
/// and not `exclude` (the one that just failed); ties go to the earliest
/// after `start`, which the caller rotates so equal workers share work.
pub fn pick(c: &[Candidate], max_in_flight: usize, exclude: Option<usize>, start: usize) -> Option<usize> {
    let n = c.len();
    (0..n)
        .map(|k| (start + k) % n.max(1))
        .filter(|&i| Some(i) != exclude && c[i].up && c[i].outstanding < max_in_flight)
        .min_by_key(|&i| c[i].outstanding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(up: bool, outstanding: usize) -> Candidate {
        Candidate { up, outstanding }
    }

    #[test]
    fn least_outstanding_among_the_healthy_and_not_full() {
        let cs = [c(true, 3), c(true, 1), c(false, 0), c(true, 2)];
        assert_eq!(pick(&cs, 10, None, 0), Some(1));
        assert_eq!(pick(&cs, 10, Some(1), 0), Some(3), "the failed one is not asked again");
        assert_eq!(pick(&cs, 2, None, 0), Some(1));
        assert_eq!(pick(&cs, 1, None, 0), None, "all full or down: the stage's on_error applies");
        assert_eq!(pick(&[c(false, 0)], 5, None, 0), None);
        assert_eq!(pick(&[], 5, None, 0), None);
    }

    #[test]
    fn ties_rotate_with_the_start() {
        let cs = [c(true, 0), c(true, 0), c(true, 0)];
        let picks: Vec<_> = (0..3).map(|s| pick(&cs, 5, None, s).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2]);
    }

    #[test]
    fn unreachable_ejects_at_once_and_failures_after_three() {
        let mut h = Health::default();
        assert!(h.failed(Failure::Unreachable, "refused".into()));
        assert_eq!(h.state, State::Down);
        assert!(!h.failed(Failure::Unreachable, "refused".into()), "already out");
        h.succeeded();
        assert_eq!((h.state, h.failures), (State::Up, 0));
        assert!(!h.failed(Failure::Failed, "slow".into()));
        assert!(!h.failed(Failure::Failed, "slow".into()));
        assert!(h.failed(Failure::Failed, "slow".into()));
        assert_eq!(h.last_error.as_deref(), Some("slow"));
    }
}
