//! A storage node: `mxgate storage --config FILE`. It listens for gateways
//! and peers (`serve`), keeps records (`store`, `writer`), hands records it
//! kept for a down node back to it and compares records with its peers
//! (`repair`).

mod repair;
mod serve;
pub mod store;
mod tidy;
pub(crate) mod writer;

use super::client::Client;
use super::core::NodeId;
use super::tls::Security;
use crate::config::NodeConfig;
use crate::store::StoreError;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use store::NodeStore;
use tokio::net::TcpListener;

pub struct Node {
    pub name: String,
    pub nodes: Vec<String>,
    pub replicas: usize,
    pub me: NodeId,
    pub path: PathBuf,
    pub store: NodeStore,
    /// A client per peer (None at this node's own position).
    pub peers: Vec<Option<Client>>,
    catching_up: AtomicBool,
    min_free: u64,
    repair_interval: std::time::Duration,
    tidy_interval: std::time::Duration,
    tombstone_ttl: std::time::Duration,
}

impl Node {
    pub fn catching_up(&self) -> bool {
        self.catching_up.load(Ordering::Relaxed)
    }

    /// This node's and `peer`'s positions in the node list.
    pub fn pair(&self, peer: &str) -> Result<(NodeId, NodeId), StoreError> {
        let them = self.nodes.iter().position(|n| n == peer);
        them.map(|t| (self.me, t))
            .ok_or_else(|| StoreError::Index(format!("{peer} is not in this node's cluster.nodes")))
    }

    /// Refuses writes when the disk is nearly full, so the gateway writes
    /// elsewhere instead of this node failing half-way.
    fn room(&self) -> Result<(), StoreError> {
        match crate::store::disk_free(&self.path) {
            Some(free) if free < self.min_free => Err(StoreError::Io(std::io::Error::other(format!(
                "storage node {} has {free} octets free, below storage.min_free",
                self.name
            )))),
            _ => Ok(()),
        }
    }
}

pub struct Running {
    pub node: Arc<Node>,
    pub addr: std::net::SocketAddr,
}

/// Opens the store, listens, and starts repair.
pub async fn start(cfg: NodeConfig) -> Result<Running, String> {
    let name = cfg.node.name().to_string();
    let sec = Security::new(&cfg.cluster, &name)?;
    std::fs::create_dir_all(&cfg.storage.path).map_err(|e| format!("{}: {e}", cfg.storage.path.display()))?;
    let me = cfg.cluster.nodes.iter().position(|n| *n == name).ok_or("node.name is not in cluster.nodes")?;
    let layout = store::Layout { nodes: cfg.cluster.nodes.clone(), replicas: cfg.cluster.replicas, me };
    let store = NodeStore::open(&cfg.storage.path, layout)
        .map_err(|e| format!("opening {}: {e}", cfg.storage.path.display()))?;
    let peers = cfg
        .cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, a)| (i != me).then(|| Client::new(a.clone(), sec.clone())))
        .collect();
    let node = Arc::new(Node {
        name,
        nodes: cfg.cluster.nodes.clone(),
        replicas: cfg.cluster.replicas,
        me,
        path: cfg.storage.path.clone(),
        store,
        peers,
        catching_up: AtomicBool::new(true),
        min_free: cfg.storage.min_free,
        repair_interval: cfg.node.repair_interval,
        tidy_interval: cfg.node.repair_interval * 6,
        tombstone_ttl: cfg.node.tombstone_ttl,
    });
    let listener =
        TcpListener::bind(&cfg.node.listen).await.map_err(|e| format!("node.listen {}: {e}", cfg.node.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, node = %node.name, records = node.store.records(), "storage node listening");
    tokio::spawn(accept(node.clone(), listener, sec));
    tokio::spawn(repair::handoff_loop(node.clone()));
    tokio::spawn(repair::anti_entropy_loop(node.clone()));
    tokio::spawn(tidy::tidy_loop(node.clone()));
    Ok(Running { node, addr })
}

async fn accept(node: Arc<Node>, listener: TcpListener, sec: Security) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else { continue };
        let (node, sec) = (node.clone(), sec.clone());
        tokio::spawn(async move {
            match sec.accept(tcp).await {
                Ok(stream) => serve::connection(node, stream).await,
                Err(e) => tracing::warn!(%peer, error = %e, "refused a cluster connection"),
            }
        });
    }
}
