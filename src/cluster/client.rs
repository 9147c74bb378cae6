//! A connection to one cluster node, shared by every task of a gateway (or
//! of a peer node): requests are tagged with ids and answered out of
//! order, so one slow request does not hold up the rest. A broken
//! connection fails everything outstanding at once and the next call
//! reconnects.

use super::tls::Security;
use super::wire::{Request, Response, pump, read_frame};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

struct Conn {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    dead: Arc<AtomicBool>,
}

pub struct Client {
    pub addr: String,
    sec: Security,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    next: AtomicU64,
    /// Requests sent and not yet answered.
    pub inflight: AtomicU64,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The node could not be reached or the connection broke.
    #[error("{0}")]
    Unreachable(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The node answered with an error.
    #[error("node error: {0}")]
    Node(String),
}

impl Client {
    pub fn new(addr: String, sec: Security) -> Client {
        Client { addr, sec, conn: tokio::sync::Mutex::new(None), next: AtomicU64::new(1), inflight: AtomicU64::new(0) }
    }

    async fn conn(&self) -> Result<Arc<Conn>, CallError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.dead.load(Ordering::Relaxed)) {
            return Ok(c.clone());
        }
        let stream = self.sec.connect(&self.addr).await.map_err(CallError::Unreachable)?;
        let (mut rd, wr) = tokio::io::split(stream);
        let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let pending: Pending = Arc::default();
        let dead = Arc::new(AtomicBool::new(false));
        let d = dead.clone();
        tokio::spawn(async move {
            pump(rx, wr).await;
            d.store(true, Ordering::Relaxed);
        });
        let (p2, d2) = (pending.clone(), dead.clone());
        tokio::spawn(async move {
            while let Ok(Some(frame)) = read_frame(&mut rd).await {
                let Ok((id, resp)) = Response::decode(&frame) else { break };
                if let Some(tx) = p2.lock().unwrap().remove(&id) {
                    let _ = tx.send(resp);
                }
            }
            d2.store(true, Ordering::Relaxed);
            // Dropping the senders fails every outstanding call.
            p2.lock().unwrap().clear();
        });
        let c = Arc::new(Conn { tx, pending, dead });
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Sends `req` and waits for its answer, at most `timeout` (connecting
    /// included).
    pub async fn call(&self, req: &Request, timeout: Duration) -> Result<Response, CallError> {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        let r = tokio::time::timeout(timeout, self.call_inner(req)).await;
        self.inflight.fetch_sub(1, Ordering::Relaxed);
        match r {
            Ok(Ok(Response::Error(e))) => Err(CallError::Node(e)),
            Ok(r) => r,
            Err(_) => {
                // A node that stops answering (cut network) gets a fresh
                // connection next time rather than a queue behind this one.
                if let Some(c) = self.conn.lock().await.take() {
                    c.dead.store(true, Ordering::Relaxed);
                }
                Err(CallError::Timeout(timeout))
            }
        }
    }

    async fn call_inner(&self, req: &Request) -> Result<Response, CallError> {
        let conn = self.conn().await?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().unwrap().insert(id, tx);
        if conn.dead.load(Ordering::Relaxed) || conn.tx.send(req.encode(id)).is_err() {
            conn.pending.lock().unwrap().remove(&id);
            return Err(CallError::Unreachable(format!("{}: connection closed", self.addr)));
        }
        rx.await.map_err(|_| CallError::Unreachable(format!("{}: connection lost", self.addr)))
    }
}
