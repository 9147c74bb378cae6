//! A gateway's view of the storage cluster: a client per node, a probe
//! loop feeding `core::health`, quorum writes driven by `core::write`, and
//! reads from the least-loaded caught-up copy.

use super::client::{CallError, Client};
use super::core::NodeId;
use super::core::cell::{Applied, Cell, Cond, newest};
use super::core::health::{Health, NodeHealth, Probe, State};
use super::core::placement::preference;
use super::core::write::{Outcome, Send, Write};
use super::tls::Security;
use super::wire::{CellItem, Item, Request, Response};
use crate::store::StoreError;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub name: String,
    pub nodes: Vec<String>,
    pub replicas: usize,
    pub quorum: usize,
    pub lease: Duration,
    timeout: Duration,
    clients: Vec<Client>,
    health: Mutex<Health>,
    started: Instant,
    clock: AtomicU64,
    /// Queued messages this gateway took over from a silent one.
    pub taken_over: AtomicU64,
    /// When this gateway's heartbeat was last stored (ms since start).
    last_beat: AtomicU64,
}

/// A write that could not reach `write_quorum` nodes: SMTP says 451.
fn unavailable(c: &Cluster) -> StoreError {
    let up = c.health.lock().unwrap().writable_count();
    StoreError::Io(std::io::Error::other(format!(
        "storage cluster unavailable: {up} of {} nodes reachable, write_quorum is {}",
        c.nodes.len(),
        c.quorum
    )))
}

fn node_err(e: CallError) -> StoreError {
    StoreError::Io(std::io::Error::other(e.to_string()))
}

impl Cluster {
    /// Connects, probes every node once, and keeps probing.
    pub async fn new(cfg: &crate::config::Cluster, name: String) -> Result<Arc<Cluster>, String> {
        let sec = Security::new(cfg, &name)?;
        let c = Arc::new(Cluster {
            name,
            nodes: cfg.nodes.clone(),
            replicas: cfg.replicas,
            quorum: cfg.write_quorum,
            lease: cfg.lease,
            timeout: cfg.timeout,
            clients: cfg.nodes.iter().map(|a| Client::new(a.clone(), sec.clone())).collect(),
            health: Mutex::new(Health::new(cfg.nodes.len(), cfg.timeout.as_millis() as u64)),
            started: Instant::now(),
            clock: AtomicU64::new(0),
            taken_over: AtomicU64::new(0),
            last_beat: AtomicU64::new(0),
        });
        futures_util::future::join_all((0..c.clients.len()).map(|n| c.probe(n))).await;
        tokio::spawn(c.clone().probe_loop(cfg.probe_interval));
        Ok(c)
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A version for a new write: wall-clock microseconds, strictly
    /// increasing within this gateway (a hybrid clock).
    pub fn version(&self) -> u64 {
        let wall =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        let mut last = self.clock.load(Ordering::Relaxed);
        loop {
            let v = wall.max(last + 1);
            match self.clock.compare_exchange(last, v, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return v,
                Err(now) => last = now,
            }
        }
    }

    /// Probes every node each interval, each on its own: a node that does
    /// not answer must not delay the others' probes (their answers would
    /// look stale, and healthy nodes be taken out with the dead one).
    async fn probe_loop(self: Arc<Self>, every: Duration) {
        for n in 0..self.clients.len() {
            let c = self.clone();
            tokio::spawn(async move {
                loop {
                    c.probe(n).await;
                    tokio::time::sleep(every).await;
                }
            });
        }
        loop {
            tokio::time::sleep(every / 2).await;
            self.health.lock().unwrap().tick(self.now_ms());
        }
    }

    async fn probe(&self, n: NodeId) {
        let t = Instant::now();
        let r = self.clients[n].call(&Request::Status, self.timeout).await;
        let mut h = self.health.lock().unwrap();
        match r {
            Ok(Response::Status(s)) => {
                let p = Probe {
                    rtt_ms: t.elapsed().as_millis() as u64,
                    load: s.load,
                    records: s.records,
                    catching_up: s.catching_up,
                };
                let was = h.writable(n);
                h.probe_ok(n, self.now_ms(), p);
                if !was {
                    tracing::info!(node = %self.nodes[n], "storage node in service");
                }
            }
            Ok(_) => h.failed(n, "unexpected answer to a probe"),
            Err(e) => {
                if h.writable(n) {
                    tracing::warn!(node = %self.nodes[n], error = %e, "storage node taken out of service");
                } else if h.nodes[n].state == State::Unknown {
                    tracing::warn!(node = %self.nodes[n], error = %e, "storage node not reachable");
                }
                h.failed(n, &e.to_string());
            }
        }
    }

    fn failed(&self, n: NodeId, e: &CallError) {
        if matches!(e, CallError::Unreachable(_) | CallError::Timeout(_)) {
            let mut h = self.health.lock().unwrap();
            if h.writable(n) {
                tracing::warn!(node = %self.nodes[n], error = %e, "storage node taken out of service");
            }
            h.failed(n, &e.to_string());
        }
    }

    /// A snapshot of every node's health, with requests outstanding.
    pub fn health(&self) -> Vec<NodeHealth> {
        let mut h = self.health.lock().unwrap().nodes.clone();
        for (n, c) in h.iter_mut().zip(&self.clients) {
            n.inflight = c.inflight.load(Ordering::Relaxed);
        }
        h
    }

    /// Records a stored heartbeat.
    pub fn beat(&self) {
        self.last_beat.store(self.now_ms().max(1), Ordering::Relaxed);
    }

    /// True while this gateway's lease is surely its own: its last
    /// heartbeat was stored less than half a lease ago.
    pub fn lease_fresh(&self) -> bool {
        let last = self.last_beat.load(Ordering::Relaxed);
        last > 0 && self.now_ms().saturating_sub(last) < self.lease.as_millis() as u64 / 2
    }

    /// Waits until `write_quorum` nodes answer, saying so every 5 s.
    pub async fn wait_for_quorum(&self) {
        let mut waited = 0u64;
        while self.writable_count() < self.quorum {
            if waited.is_multiple_of(50) {
                tracing::warn!(
                    writable = self.writable_count(),
                    write_quorum = self.quorum,
                    "waiting for storage nodes"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += 1;
        }
    }

    pub fn writable_count(&self) -> usize {
        self.health.lock().unwrap().writable_count()
    }

    /// Stores `cell` (and `body`) under `key` on `write_quorum` nodes.
    pub async fn put(
        &self,
        key: Vec<u8>,
        cell: Cell,
        cond: Cond,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<Applied>, StoreError> {
        let nodes = self.nodes.clone();
        self.write(&key.clone(), cond == Cond::Advance, move |s: Send| {
            let hint_for = s.hint_for.map(|o| nodes[o].clone());
            Request::Put(vec![Item { key: key.clone(), cell: cell.clone(), cond, hint_for, body: body.clone() }])
        })
        .await
    }

    /// Runs one quorum write of the requests `make` builds per target.
    /// Returns what each acknowledging node did.
    ///
    /// A `conditional` write (a status change that must happen once) goes
    /// to owners only, so any two of them meet on some owner
    /// (`Write::start_strict`), and the first owner answers before the
    /// others are asked: a write it refuses goes no further. Every gateway
    /// with the same view of the cluster asks the same node first, so that
    /// node serialises racing releases instead of each owner picking a
    /// different winner.
    pub async fn write(
        &self,
        key: &[u8],
        conditional: bool,
        make: impl Fn(Send) -> Request,
    ) -> Result<Vec<Applied>, StoreError> {
        let prefs = preference(key, &self.nodes);
        let (mut w, mut sends) = {
            let h = self.health.lock().unwrap();
            match conditional {
                true => Write::start_strict(prefs, self.replicas, self.quorum, |n| h.writable(n)),
                false => Write::start(prefs, self.replicas, self.quorum, |n| h.writable(n)),
            }
        };
        if w.outcome() == Some(Outcome::Unavailable) {
            return Err(unavailable(self));
        }
        let mut calls = FuturesUnordered::new();
        let call = |s: Send| {
            let req = make(s);
            async move { (s.to, self.clients[s.to].call(&req, self.timeout).await) }
        };
        let mut held = if conditional && sends.len() > 1 { sends.split_off(1) } else { Vec::new() };
        sends.into_iter().for_each(|s| calls.push(call(s)));
        let mut applied = Vec::new();
        while let Some((node, r)) = calls.next().await {
            if conditional && matches!(&r, Ok(Response::Applied(a)) if a.contains(&Applied::Refused)) {
                let Ok(Response::Applied(a)) = r else { unreachable!() };
                return Ok(a);
            }
            // The primary has answered: now the others.
            held.drain(..).for_each(|s| calls.push(call(s)));
            let outcome = match r {
                Ok(Response::Applied(a)) => {
                    applied.extend(a);
                    w.ack(node)
                }
                Ok(_) | Err(_) => {
                    if let Err(e) = &r {
                        self.failed(node, e);
                        tracing::debug!(node = %self.nodes[node], error = %e, "write failed; trying another node");
                    }
                    let (more, out) = {
                        let h = self.health.lock().unwrap();
                        w.fail(node, |n| h.writable(n))
                    };
                    more.into_iter().for_each(|s| calls.push(call(s)));
                    out
                }
            };
            match outcome {
                Some(Outcome::Durable) => return Ok(applied),
                Some(Outcome::Unavailable) => return Err(unavailable(self)),
                None => {}
            }
        }
        Err(unavailable(self))
    }

    /// Nodes to read `key` from: caught-up owners, least loaded first;
    /// then other caught-up nodes in preference order (stand-ins may hold
    /// what a down owner missed); last, nodes still catching up.
    fn read_order(&self, key: &[u8]) -> Vec<NodeId> {
        let prefs = preference(key, &self.nodes);
        let h = self.health.lock().unwrap();
        let mut order = h.read_order(&prefs[..self.replicas.min(prefs.len())]);
        order.extend(prefs.iter().skip(self.replicas).copied().filter(|n| h.readable(*n)));
        order.extend(prefs.iter().copied().filter(|n| h.writable(*n) && !h.readable(*n)));
        order
    }

    /// The record under `key` (and its body when asked), from the first
    /// node in read order that has it.
    pub async fn get(&self, key: &[u8], body: bool) -> Result<Option<(Cell, Option<Vec<u8>>)>, StoreError> {
        let order = self.read_order(key);
        if order.is_empty() {
            return Err(unavailable(self));
        }
        let mut last_err = None;
        for n in order {
            let req = Request::Get { keys: vec![key.to_vec()], bodies: body };
            match self.clients[n].call(&req, self.timeout).await {
                Ok(Response::Cells(mut c)) => match c.pop() {
                    // A copy without its body here (it arrived as a status
                    // change) sends us to the next node.
                    Some((_, Some(cell), b)) if !(body && cell.has_body && !cell.dead && b.is_none()) => {
                        return Ok(Some((cell, b)));
                    }
                    _ => {}
                },
                Ok(_) => {}
                Err(e) => {
                    self.failed(n, &e);
                    last_err = Some(node_err(e));
                }
            }
        }
        match last_err {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// Asks every node that answers; the merged newest copy per key.
    pub async fn gather(&self, req: Request) -> Result<Vec<(Vec<u8>, Cell)>, StoreError> {
        let targets: Vec<NodeId> = {
            let h = self.health.lock().unwrap();
            (0..self.nodes.len()).filter(|n| h.writable(*n)).collect()
        };
        if targets.len() < self.quorum.min(self.nodes.len()) {
            return Err(unavailable(self));
        }
        let calls = targets.iter().map(|n| self.clients[*n].call(&req, self.timeout));
        let mut merged: HashMap<Vec<u8>, Vec<Cell>> = HashMap::new();
        for (n, r) in targets.iter().zip(futures_util::future::join_all(calls).await) {
            match r {
                Ok(Response::Cells(cells)) => {
                    for (k, c, _) in cells.into_iter().filter_map(|(k, c, b): CellItem| Some((k, c?, b))) {
                        merged.entry(k).or_default().push(c);
                    }
                }
                Ok(_) => {}
                Err(e) => self.failed(*n, &e),
            }
        }
        Ok(merged.into_iter().filter_map(|(k, cs)| newest(&cs).cloned().map(|c| (k, c))).collect())
    }

    /// Every node's own status, asked now (for `mxgate cluster status`).
    pub async fn statuses(&self) -> Vec<Result<super::wire::NodeStatus, String>> {
        let calls = self.clients.iter().map(|c| c.call(&Request::Status, self.timeout));
        futures_util::future::join_all(calls)
            .await
            .into_iter()
            .map(|r| match r {
                Ok(Response::Status(s)) => Ok(s),
                Ok(_) => Err("unexpected answer".into()),
                Err(e) => Err(e.to_string()),
            })
            .collect()
    }
}
