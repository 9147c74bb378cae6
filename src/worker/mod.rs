//! `mxgate worker`: serves built-in stages to gateways over the network.
//!
//! - `protocol`: the versioned wire format (`docs/worker-protocol.md`).
//! - `trust`: TLS 1.3, the bearer token, the key derived from the secret,
//!   mutual TLS.
//! - `serve`: the endpoints and the bound on scans in flight.
//!
//! The gateway's side is `pipeline::remote`.

pub mod protocol;
pub mod serve;
pub mod trust;

use crate::config::WorkerConfig;
use crate::pipeline::stages::{self, Env};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serve::{Handler, Served};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub struct Running {
    pub addr: SocketAddr,
    pub handler: Arc<Handler>,
    stop: watch::Sender<bool>,
}

impl Running {
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// Builds the stages, binds and serves until stopped.
pub async fn start(cfg: WorkerConfig) -> Result<Running, String> {
    let w = &cfg.worker;
    let env = Env { scan: &cfg.scan, nameservers: &cfg.dns.nameservers, hostname: &w.hostname, domains: &w.domains };
    let wanted = |name: &str| w.stages.as_ref().is_none_or(|s| s.iter().any(|x| x == name));
    let mut served = BTreeMap::new();
    for stage in stages::builtin(&env, &wanted)? {
        let timeout = cfg.scan.rule(stage.name()).0;
        served.insert(stage.name(), Served { stage, timeout });
    }
    if served.is_empty() {
        return Err("worker: no stage to serve (check `[worker] stages` against `[scan] stages`)".into());
    }
    let tls = trust::server_config(&trust::ServerTrust {
        secret: w.secret.as_deref(),
        cert: w.cert.as_ref(),
        key: w.key.as_ref(),
        ca: w.ca.as_ref(),
    })?;
    let listener = TcpListener::bind(w.listen).await.map_err(|e| format!("worker.listen {}: {e}", w.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let handler = Arc::new(Handler {
        stages: served,
        secret: w.secret.clone(),
        max_in_flight: w.max_in_flight,
        max_message_size: w.max_message_size,
        in_flight: Default::default(),
        served: Default::default(),
        failed: Default::default(),
        busy: Default::default(),
    });
    let (stop, rx) = watch::channel(false);
    let names: Vec<&str> = handler.stages.keys().copied().collect();
    tracing::info!(%addr, stages = %names.join(","), "worker listening");
    tokio::spawn(accept(listener, tokio_rustls::TlsAcceptor::from(tls), handler.clone(), rx));
    Ok(Running { addr, handler, stop })
}

async fn accept(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    h: Arc<Handler>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "worker accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = async { stop.wait_for(|s| *s).await.map(drop) } => return,
        };
        let _ = tcp.set_nodelay(true);
        let (tls, h) = (tls.clone(), h.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::warn!(%peer, error = %e, "refused a worker connection (TLS)"),
                Err(_) => return tracing::warn!(%peer, "refused a worker connection (TLS handshake timed out)"),
            };
            let svc = hyper::service::service_fn(move |req| h.clone().handle(req));
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!(%peer, error = %e, "worker connection ended");
            }
        });
    }
}
