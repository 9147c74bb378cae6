//! `[cluster]` (gateways and storage nodes) and the storage node's own
//! config file (`mxgate storage --config FILE`).

use super::{Log, Storage};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Every storage node as host:port, in the same order for every
    /// gateway and node: the order decides where records live.
    pub nodes: Vec<String>,
    /// Copies of every record.
    #[serde(default = "two")]
    pub replicas: usize,
    /// Durable copies before a write (and the SMTP 250) succeeds.
    #[serde(default = "two")]
    pub write_quorum: usize,
    /// Shared key every gateway and node proves it knows (at least 16
    /// characters); peers without it are refused.
    pub secret: String,
    /// This gateway's name, unique in the cluster and stable across
    /// restarts: it marks the mail this gateway delivers. Default: the
    /// host name and SMTP port.
    #[serde(default)]
    pub name: Option<String>,
    /// How often each node is probed.
    #[serde(default = "probe_interval", with = "humantime_serde")]
    pub probe_interval: Duration,
    /// A node that does not answer within this is taken out of service.
    #[serde(default = "timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// A gateway silent for this long has its queued mail taken over by
    /// the others.
    #[serde(default = "lease", with = "humantime_serde")]
    pub lease: Duration,
    /// Mutual TLS (optional, on top of the secret): PEM files of this
    /// party's certificate and key and of the CA that signed every peer's.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

fn two() -> usize {
    2
}
fn probe_interval() -> Duration {
    Duration::from_millis(500)
}
fn timeout() -> Duration {
    Duration::from_secs(1)
}
fn lease() -> Duration {
    Duration::from_secs(15)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Address:port this node listens on.
    pub listen: String,
    /// This node's entry in `[cluster] nodes` (default: `listen`).
    #[serde(default)]
    pub name: Option<String>,
    /// How often this node compares its records with each peer.
    #[serde(default = "repair_interval", with = "humantime_serde")]
    pub repair_interval: Duration,
    /// Removed queue entries are remembered (as tombstones) this long, so
    /// a copy that missed the removal cannot bring the message back. A
    /// node away longer than this must be wiped before it rejoins.
    #[serde(default = "tombstone_ttl", with = "humantime_serde")]
    pub tombstone_ttl: Duration,
}

fn tombstone_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn repair_interval() -> Duration {
    Duration::from_secs(10)
}

impl Node {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.listen)
    }
}

/// A storage node's configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub node: Node,
    #[serde(default)]
    pub storage: Storage,
    pub cluster: Cluster,
    #[serde(default)]
    pub log: Log,
}

pub type Invalid = (&'static str, String);

/// Checks shared by gateways and nodes.
pub fn validate(c: &Cluster) -> Result<(), Invalid> {
    if c.nodes.is_empty() {
        return Err(("cluster.nodes", "must list at least one storage node".into()));
    }
    for n in &c.nodes {
        if !n.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) {
            return Err(("cluster.nodes", format!("`{n}` is not host:port")));
        }
    }
    let mut sorted = c.nodes.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != c.nodes.len() {
        return Err(("cluster.nodes", "lists a node twice".into()));
    }
    if c.replicas == 0 || c.replicas > c.nodes.len() {
        return Err(("cluster.replicas", format!("must be between 1 and the number of nodes ({})", c.nodes.len())));
    }
    if c.write_quorum == 0 || c.write_quorum > c.replicas {
        return Err(("cluster.write_quorum", format!("must be between 1 and replicas ({})", c.replicas)));
    }
    if c.secret.chars().count() < 16 {
        return Err(("cluster.secret", "must be at least 16 characters".into()));
    }
    if c.timeout.is_zero() || c.probe_interval.is_zero() || c.lease.is_zero() {
        return Err(("cluster.timeout", "timeout, probe_interval and lease must be longer than 0s".into()));
    }
    let tls = [c.cert.is_some(), c.key.is_some(), c.ca.is_some()];
    if tls.contains(&true) && tls.contains(&false) {
        return Err(("cluster.cert", "mutual TLS needs all of cert, key and ca".into()));
    }
    Ok(())
}

pub fn validate_node(c: &NodeConfig) -> Result<(), Invalid> {
    validate(&c.cluster)?;
    if c.node.repair_interval.is_zero() || c.node.tombstone_ttl.is_zero() {
        return Err(("node.repair_interval", "repair_interval and tombstone_ttl must be longer than 0s".into()));
    }
    if !c.cluster.nodes.iter().any(|n| n == c.node.name()) {
        return Err((
            "node.name",
            format!("`{}` is not in cluster.nodes (set node.name to this node's entry)", c.node.name()),
        ));
    }
    Ok(())
}
