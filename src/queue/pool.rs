//! Connections to next hops, reused across messages and bounded per server.

use super::client::{Client, Failure};
use super::route::Target;
use rustls::ClientConfig;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<(Client, Instant)>>>,
    limits: Mutex<HashMap<SocketAddr, Arc<Semaphore>>>,
    per_server: usize,
    keep_idle: Duration,
    helo: String,
    tls: Option<Arc<ClientConfig>>,
    require_tls: bool,
}

/// A connection checked out of the pool, with the right to use it.
pub struct Lease {
    pub client: Client,
    pub reused: bool,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub fn new(
        per_server: usize,
        keep_idle: Duration,
        helo: String,
        tls: Option<Arc<ClientConfig>>,
        require_tls: bool,
    ) -> Pool {
        Pool { idle: Mutex::default(), limits: Mutex::default(), per_server, keep_idle, helo, tls, require_tls }
    }

    pub async fn get(&self, target: &Target) -> Result<Lease, Failure> {
        let sem = self
            .limits
            .lock()
            .unwrap()
            .entry(target.addr)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_server)))
            .clone();
        let permit = sem.acquire_owned().await.expect("pool semaphores are never closed");
        if let Some(client) = self.take_idle(target.addr) {
            return Ok(Lease { client, reused: true, _permit: permit });
        }
        let client = self.connect_once(target).await?;
        Ok(Lease { client, reused: false, _permit: permit })
    }

    /// A connection outside the pool (recipient verification), with the
    /// same TLS policy as deliveries.
    pub async fn connect_once(&self, target: &Target) -> Result<Client, Failure> {
        Client::connect(target, &self.helo, self.tls.as_ref(), self.require_tls).await
    }

    /// A fresh connection in place of a reused one that failed.
    pub async fn reconnect(&self, lease: Lease) -> Result<Lease, Failure> {
        let client = self.connect_once(&lease.client.target).await?;
        Ok(Lease { client, reused: false, _permit: lease._permit })
    }

    pub fn put(&self, lease: Lease) {
        let mut idle = self.idle.lock().unwrap();
        idle.entry(lease.client.target.addr).or_default().push((lease.client, Instant::now()));
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<Client> {
        let mut idle = self.idle.lock().unwrap();
        let list = idle.get_mut(&addr)?;
        while let Some((client, since)) = list.pop() {
            if since.elapsed() < self.keep_idle {
                return Some(client);
            }
        }
        None
    }

    /// Closes connections idle for longer than the configured time.
    pub fn expire(&self) {
        let mut idle = self.idle.lock().unwrap();
        for list in idle.values_mut() {
            list.retain(|(_, since)| since.elapsed() < self.keep_idle);
        }
    }

    /// Says QUIT on every idle connection (shutdown).
    pub async fn close_all(&self) {
        let all: Vec<Client> = self.idle.lock().unwrap().drain().flat_map(|(_, v)| v).map(|(c, _)| c).collect();
        for c in all {
            let _ = tokio::time::timeout(Duration::from_secs(2), c.quit()).await;
        }
    }
}
