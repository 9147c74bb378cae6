//! The cluster engine: storage nodes (`mxgate storage`) hold queue and
//! quarantine records with `replicas` copies each; gateways (`mxgate serve`
//! with `[cluster]`) write every record to `write_quorum` nodes before the
//! 250 and read from the least-loaded caught-up copy.
//!
//! ```text
//! gateway: ClusterStore (impl Store) -> Cluster (health probes, quorum writes)
//!            -> client::Conn --TLS, wire protocol--> node::serve
//! node:    node::serve -> node::store (sled + fsynced spool, group commit)
//!            node::repair: hinted handoff + anti-entropy with peers
//! core:    placement, cell merge, write quorum, health, repair digests (pure)
//! ```

pub mod client;
pub mod codec;
pub mod core;
pub mod gateway;
pub mod lease;
pub mod node;
pub mod store;
pub mod tls;
pub mod wire;
