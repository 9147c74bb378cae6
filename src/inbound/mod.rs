//! The SMTP listener: accepts connections within the connection limits,
//! runs a session on each, and performs the STARTTLS move.

mod accept;
mod data;
mod ehlo;
mod mail;
mod misc;
mod rcpt;
mod received;
pub mod session;

use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::queue::Queue;
use crate::queue::verify::Verifier;
use crate::smtp::Reply;
use session::{End, Session, Stats};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// What every session shares; snapshotted at start.
pub struct Shared {
    pub cfg: Arc<Config>,
    pub queue: Queue,
    pub tls: Arc<rustls::ServerConfig>,
    pub verifier: Verifier,
    pub pipeline: Arc<Pipeline>,
    pub quarantine: crate::quarantine::Quarantine,
    pub shutdown: watch::Receiver<bool>,
}

/// Connection counts, in total and per client IP.
#[derive(Default)]
struct Limits {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    total: Mutex<usize>,
}

/// A held connection slot; dropping it frees the slot.
struct Slot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Limits {
    fn acquire(self: &Arc<Self>, ip: IpAddr, cfg: &Config) -> Result<Slot, Reply> {
        let mut total = self.total.lock().unwrap();
        if *total >= cfg.smtp.max_connections {
            return Err(Reply::new(421, "7.0", format!("{} Too many connections, try again later", cfg.smtp.hostname)));
        }
        let mut per_ip = self.per_ip.lock().unwrap();
        let n = per_ip.entry(ip).or_default();
        if *n >= cfg.smtp.max_connections_per_ip {
            return Err(Reply::new(
                421,
                "7.0",
                format!("{} Too many connections from your address", cfg.smtp.hostname),
            ));
        }
        *n += 1;
        *total += 1;
        Ok(Slot { limits: self.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut total = self.limits.total.lock().unwrap();
        *total -= 1;
        let mut per_ip = self.limits.per_ip.lock().unwrap();
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Resolves once shutdown was asked for.
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Accepts until shutdown. Each session holds a clone of `done`; when all
/// are dropped the caller knows the sessions have drained.
pub async fn listen(listener: TcpListener, shared: Arc<Shared>, done: mpsc::Sender<()>) {
    let limits = Arc::new(Limits::default());
    let mut shutdown = shared.shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        let slot = limits.acquire(peer.ip(), &shared.cfg);
        let (shared, done) = (shared.clone(), done.clone());
        tokio::spawn(async move {
            match slot {
                Ok(slot) => {
                    connection(stream, peer, shared).await;
                    drop(slot);
                }
                Err(reply) => refuse(stream, peer, reply).await,
            }
            drop(done);
        });
    }
}

async fn refuse(mut stream: TcpStream, peer: SocketAddr, reply: Reply) {
    tracing::info!(client = %peer, reply = %reply, "connection refused");
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(reply.to_wire().as_bytes())).await;
}

/// Runs one connection to its end and logs one line for it.
async fn connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let started = Instant::now();
    let _ = stream.set_nodelay(true);
    let mut session = Session::new(stream, shared.clone(), peer, false, Stats::default());
    session.reply(Reply::plain(220, format!("{} ESMTP mxgate", shared.cfg.smtp.hostname)));
    let (stats, end) = session.run().await;
    let (stats, reason, tls) = match end {
        End::Closed(reason) => (stats, reason, false),
        End::StartTls(tcp) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(shared.tls.clone());
            match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let session = Session::new(tls, shared.clone(), peer, true, stats);
                    let (stats, end) = session.run().await;
                    let reason = match end {
                        End::Closed(r) => r,
                        End::StartTls(_) => "STARTTLS twice",
                    };
                    (stats, reason, true)
                }
                Ok(Err(e)) => {
                    tracing::info!(client = %peer, error = %e, "TLS handshake failed");
                    (stats, "TLS handshake failed", false)
                }
                Err(_) => (stats, "TLS handshake timeout", false),
            }
        }
    };
    tracing::info!(
        client = %peer,
        tls,
        commands = stats.commands,
        accepted = stats.accepted,
        rejected = stats.rejected,
        errors = stats.errors,
        duration_ms = started.elapsed().as_millis() as u64,
        end = reason,
        "session closed"
    );
}
