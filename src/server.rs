//! Wires the parts together: store -> queue -> SMTP listener and admin
//! listener, and shuts them down in order (stop accepting, drain sessions,
//! drain deliveries, flush the store).

use crate::admin::{self, AdminState};
use crate::cluster::gateway::Cluster;
use crate::cluster::store::ClusterStore;
use crate::config::Config;
use crate::inbound::{self, Shared};
use crate::pipeline::Pipeline;
use crate::quarantine::Quarantine;
use crate::queue::Queue;
use crate::queue::verify::Verifier;
use crate::store::{EmbeddedStore, Store};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// A running gateway.
pub struct Running {
    pub smtp_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    stop: watch::Sender<bool>,
    sessions_done: mpsc::Receiver<()>,
    queue: Queue,
    store: Arc<dyn Store>,
    grace: std::time::Duration,
}

type Opened = (Arc<dyn Store>, Option<Arc<Cluster>>);

/// The embedded store, or with `[cluster]` the storage cluster.
async fn open_store(cfg: &Config) -> Result<Opened, String> {
    let Some(c) = &cfg.cluster else {
        let store = EmbeddedStore::open(&cfg.storage.path)
            .map_err(|e| format!("storage.path {}: {e}", cfg.storage.path.display()))?;
        return Ok((Arc::new(store), None));
    };
    let name = c.name.clone().unwrap_or_else(|| format!("{}:{}", host_name(), cfg.smtp.listen.port()));
    let cluster = Cluster::new(c, name.clone()).await?;
    // The queue is loaded from the cluster, and SMTP must not open before
    // a write can be made durable.
    cluster.wait_for_quorum().await;
    tracing::info!(gateway = %name, nodes = ?c.nodes, replicas = c.replicas, write_quorum = c.write_quorum, "using the storage cluster");
    Ok((Arc::new(ClusterStore::start(cluster.clone())), Some(cluster)))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "gateway".into(), |h| h.trim().to_string())
}

/// Starts the gateway; returns once both listeners are bound.
pub async fn start(cfg: Config) -> Result<Running, String> {
    let cfg = Arc::new(cfg);
    let (store, cluster) = open_store(&cfg).await?;
    let dns = crate::dns::resolver(&cfg.dns.nameservers)?;
    let queue = Queue::start(cfg.clone(), store.clone(), dns).await.map_err(|e| format!("loading the queue: {e}"))?;
    let tls = crate::tls::server_config(&cfg)?;
    let pipeline = Arc::new(Pipeline::from_config(&cfg)?);
    pipeline.start();
    queue.set_pipeline(pipeline.clone());
    let quarantine = Quarantine::start(store.clone(), queue.clone(), pipeline.allowed().clone())
        .await
        .map_err(|e| format!("loading the quarantine: {e}"))?;
    let smtp = TcpListener::bind(cfg.smtp.listen).await.map_err(|e| format!("smtp.listen {}: {e}", cfg.smtp.listen))?;
    let admin =
        TcpListener::bind(cfg.admin.listen).await.map_err(|e| format!("admin.listen {}: {e}", cfg.admin.listen))?;
    let smtp_addr = smtp.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin.local_addr().map_err(|e| e.to_string())?;
    let (stop, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        queue: queue.clone(),
        tls,
        verifier: Verifier::default(),
        pipeline: pipeline.clone(),
        quarantine: quarantine.clone(),
        shutdown: stop_rx.clone(),
    });
    let (done_tx, sessions_done) = mpsc::channel(1);
    tokio::spawn(inbound::listen(smtp, shared, done_tx));
    let q = &cfg.quarantine;
    quarantine.spawn_sweep(q.sweep_interval, q.sweep_budget, stop_rx.clone());
    if cluster.is_some() {
        quarantine.spawn_allow_refresh(std::time::Duration::from_secs(30), stop_rx.clone());
    }
    crate::quarantine::digest::spawn(quarantine.clone(), queue.clone(), cfg.clone(), stop_rx.clone());
    let admin_state = Arc::new(AdminState {
        queue: queue.clone(),
        pipeline,
        quarantine,
        cfg: cfg.clone(),
        token: cfg.admin.token.clone(),
        shutdown: stop_rx,
        cluster,
    });
    tokio::spawn(admin::serve(admin, admin_state));
    tracing::info!(smtp = %smtp_addr, admin = %admin_addr, hostname = %cfg.smtp.hostname, "mxgate started");
    Ok(Running { smtp_addr, admin_addr, stop, sessions_done, queue, store, grace: cfg.smtp.shutdown_grace })
}

impl Running {
    /// Graceful shutdown: no new connections; sessions waiting for a command
    /// get 421; transactions in progress finish (within the grace period);
    /// deliveries in progress finish; the store is flushed.
    pub async fn shutdown(mut self) {
        tracing::info!("shutting down");
        let _ = self.stop.send(true);
        if tokio::time::timeout(self.grace, self.sessions_done.recv()).await.is_err() {
            tracing::warn!("sessions still open after the grace period; closing them");
        }
        self.queue.drain(self.grace).await;
        if let Err(e) = self.store.close().await {
            tracing::error!(error = %e, "flushing the store failed");
        }
        tracing::info!("stopped");
    }
}
