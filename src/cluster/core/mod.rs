//! The replication logic as pure code: no I/O, no clock, no randomness.
//! The async shell (`cluster::node`, `cluster::gateway`) feeds it events
//! (an ack, a failed request, a probe result, the time) and does what it
//! returns. That keeps the hard part testable with a simulated network
//! (`tests/cluster_sim.rs`).
//!
//! - [`placement`]: which nodes hold a key (rendezvous hashing).
//! - [`cell`]: a replicated record and the total order that merges copies.
//! - [`write`]: one quorum write with sloppy-quorum fallback and hints.
//! - [`health`]: failure detection and load-aware read choice.
//! - [`repair`]: anti-entropy digests and their comparison.

pub mod cell;
pub mod health;
pub mod placement;
pub mod repair;
pub mod write;

/// A node's position in `[cluster] nodes`; every party uses the same list.
pub type NodeId = usize;
