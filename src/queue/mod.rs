//! The delivery queue: a scheduler that hands due messages to delivery
//! tasks, retries with exponential backoff, expires old messages and sends
//! DSNs. Messages enter through `Queue::submit` right after they are stored.

mod after;
pub mod client;
mod deliver;
pub mod dsn;
pub mod pool;
pub mod route;
pub mod verify;

use crate::config::{Config, DownstreamTls};
use crate::store::{AfterScan, EntryState, QueueEntry, RcptStatus, Store, StoreError};
use hickory_resolver::TokioResolver;
use pool::Pool;
use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc};

/// What delivery needs, shared by every delivery task.
pub struct Ctx {
    pub cfg: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub dns: TokioResolver,
    pub pool: Pool,
}

#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Ctx,
    timers: Mutex<BTreeSet<(u64, String)>>,
    wake: Notify,
    ready: mpsc::UnboundedSender<String>,
    inflight: Mutex<HashSet<String>>,
    workers: Arc<Semaphore>,
    /// For the after-queue stages; set once the pipeline is built.
    pipeline: std::sync::OnceLock<Arc<crate::pipeline::Pipeline>>,
}

/// A fresh queue id: time-ordered, unique across restarts and gateways.
pub fn new_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    static NODE: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    let node = *NODE.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish() as u16
    });
    let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) & 0xfff;
    format!("{micros:013X}{seq:03X}{node:04X}")
}

impl Queue {
    /// Starts the scheduler and loads what the store already holds.
    pub async fn start(cfg: Arc<Config>, store: Arc<dyn Store>, dns: TokioResolver) -> Result<Queue, StoreError> {
        let tls = crate::tls::client_config(&cfg).map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
        let pool = Pool::new(
            cfg.queue.connections_per_route,
            cfg.queue.connection_idle,
            cfg.smtp.hostname.clone(),
            tls,
            cfg.relay.tls == DownstreamTls::Require,
        );
        let (ready, rx) = mpsc::unbounded_channel();
        let workers = Arc::new(Semaphore::new(cfg.queue.delivery_workers));
        let inner = Arc::new(Inner {
            ctx: Ctx { cfg, store, dns, pool },
            timers: Mutex::default(),
            wake: Notify::new(),
            ready,
            inflight: Mutex::default(),
            workers,
            pipeline: Default::default(),
        });
        let q = Queue { inner };
        for e in q.inner.ctx.store.list().await? {
            if e.state == EntryState::Queued {
                q.schedule(e.id, e.next_attempt);
            }
        }
        tokio::spawn(q.clone().dispatch(rx));
        tokio::spawn(q.clone().timer());
        tokio::spawn(q.clone().adopt());
        Ok(q)
    }

    /// The pipeline whose after-queue stages run before delivery.
    pub fn set_pipeline(&self, p: Arc<crate::pipeline::Pipeline>) {
        let _ = self.inner.pipeline.set(p);
    }

    pub fn ctx(&self) -> &Ctx {
        &self.inner.ctx
    }

    /// A message is due now.
    pub fn submit(&self, id: String) {
        let _ = self.inner.ready.send(id);
    }

    fn schedule(&self, id: String, at: u64) {
        if at <= crate::time::now() {
            return self.submit(id);
        }
        self.inner.timers.lock().unwrap().insert((at, id));
        self.inner.wake.notify_one();
    }

    /// Makes a message due now; false when there is no such message.
    pub async fn retry(&self, id: &str) -> Result<bool, StoreError> {
        let Some(mut e) = self.inner.ctx.store.get(id).await? else { return Ok(false) };
        e.next_attempt = crate::time::now();
        self.inner.ctx.store.update(e).await?;
        self.inner.timers.lock().unwrap().retain(|(_, i)| i != id);
        self.submit(id.to_string());
        Ok(true)
    }

    /// Removes a message without delivering it. False when there is none.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.timers.lock().unwrap().retain(|(_, i)| i != id);
        match self.inner.ctx.store.remove(id).await {
            Ok(()) => {
                tracing::info!(queue_id = %id, "deleted from the queue by an operator");
                Ok(true)
            }
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// True while a delivery attempt for `id` is running.
    pub fn is_delivering(&self, id: &str) -> bool {
        self.inner.inflight.lock().unwrap().contains(id)
    }

    /// Waits for running deliveries to end (shutdown), at most `grace`.
    /// Closing the worker semaphore stops the dispatcher: nothing new
    /// starts while the store is being closed; what was due stays queued.
    pub async fn drain(&self, grace: Duration) {
        let all = self.inner.ctx.cfg.queue.delivery_workers as u32;
        if tokio::time::timeout(grace, self.inner.workers.acquire_many(all)).await.is_err() {
            tracing::warn!("deliveries still running after the grace period");
        }
        self.inner.workers.close();
        self.inner.ctx.pool.close_all().await;
    }

    async fn timer(self) {
        loop {
            let next = self.inner.timers.lock().unwrap().first().map(|(at, _)| *at);
            let now = crate::time::now();
            match next {
                Some(at) if at <= now => {
                    let due = self.inner.timers.lock().unwrap().pop_first();
                    if let Some((_, id)) = due {
                        self.submit(id);
                    }
                }
                Some(at) => {
                    let wait = Duration::from_secs(at - now).min(Duration::from_secs(1));
                    let _ = tokio::time::timeout(wait, self.inner.wake.notified()).await;
                    self.inner.ctx.pool.expire();
                }
                None => {
                    let _ = tokio::time::timeout(Duration::from_secs(5), self.inner.wake.notified()).await;
                    self.inner.ctx.pool.expire();
                }
            }
        }
    }

    /// Schedules messages the store hands over from a silent gateway (a
    /// cluster's other gateways; nothing with one gateway).
    async fn adopt(self) {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            match self.inner.ctx.store.takeover().await {
                Ok(ids) => ids.into_iter().for_each(|id| self.submit(id)),
                Err(e) => tracing::debug!(error = %e, "takeover scan failed"),
            }
        }
    }

    async fn dispatch(self, mut rx: mpsc::UnboundedReceiver<String>) {
        while let Some(id) = rx.recv().await {
            let Ok(permit) = self.inner.workers.clone().acquire_owned().await else { break };
            if !self.inner.inflight.lock().unwrap().insert(id.clone()) {
                continue;
            }
            let q = self.clone();
            tokio::spawn(async move {
                q.process(&id).await;
                q.inner.inflight.lock().unwrap().remove(&id);
                drop(permit);
            });
        }
    }

    async fn process(&self, id: &str) {
        let ctx = &self.inner.ctx;
        let mut entry = match ctx.store.get(id).await {
            Ok(Some(e)) if e.state == EntryState::Queued => e,
            Ok(_) => return,
            Err(e) => {
                // A store that is briefly unreachable (a cluster losing its
                // quorum) is usually back within seconds.
                tracing::error!(queue_id = %id, error = %e, "cannot read queue entry; retrying in 5s");
                return self.schedule(id.to_string(), crate::time::now() + 5);
            }
        };
        // In a cluster another gateway may own this message: one deliverer
        // at a time (see cluster::lease).
        match ctx.store.claim(id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(queue_id = %id, error = %e, "cannot check the delivery claim; retrying in 5s");
                return self.schedule(id.to_string(), crate::time::now() + 5);
            }
        }
        entry.attempts += 1;
        let mut body = None;
        if entry.after_scan == AfterScan::Pending
            && let Some(p) = self.inner.pipeline.get()
        {
            match after::scan(ctx, p, &mut entry).await {
                // Read once for the scan, sent as it is.
                after::Next::Deliver(b) => body = Some(b),
                after::Next::Held => return,
                after::Next::Later(why) => {
                    tracing::warn!(queue_id = %id, reason = %why, "after-queue scan failed; will retry");
                    entry.last_error = Some(format!("after-queue scan: {why}"));
                    return self.finished(id, entry).await;
                }
            }
        }
        deliver::attempt(ctx, &mut entry, body).await;
        self.finished(id, entry).await
    }

    async fn finished(&self, id: &str, entry: QueueEntry) {
        if let Err(e) = self.finish(entry).await {
            // Try again later rather than leave the message without a next
            // attempt; recipients already delivered may be sent twice then.
            tracing::error!(queue_id = %id, error = %e, "cannot record delivery outcome; retrying in 60s");
            self.schedule(id.to_string(), crate::time::now() + 60);
        }
    }

    /// Records the outcome of an attempt: done (maybe with a DSN) or retry.
    async fn finish(&self, mut entry: QueueEntry) -> Result<(), StoreError> {
        let ctx = &self.inner.ctx;
        let now = crate::time::now();
        let pending = entry.pending().count();
        if pending > 0 && now.saturating_sub(entry.received_at) < ctx.cfg.queue.max_lifetime.as_secs() {
            let delay = backoff(&ctx.cfg, entry.attempts);
            entry.next_attempt = now + delay.as_secs();
            log_outcome(&entry, "deferred");
            let (id, at) = (entry.id.clone(), entry.next_attempt);
            match ctx.store.update(entry).await {
                Ok(()) => self.schedule(id, at),
                Err(StoreError::NotFound(_)) => {} // deleted meanwhile
                Err(e) => return Err(e),
            }
            return Ok(());
        }
        for r in entry.recipients.iter_mut().filter(|r| r.status == RcptStatus::Pending) {
            r.status = RcptStatus::Failed;
            let last = r.last_reply.take().unwrap_or_default();
            r.last_reply = Some(format!("{}; last error: {last}", dsn::EXPIRED));
        }
        let failed = entry.recipients.iter().any(|r| r.status == RcptStatus::Failed);
        log_outcome(&entry, if failed { "bounced" } else { "delivered" });
        if failed {
            self.bounce(&entry).await?;
        }
        match ctx.store.remove(&entry.id).await {
            Err(StoreError::NotFound(_)) => Ok(()),
            r => r,
        }
    }

    async fn bounce(&self, entry: &QueueEntry) -> Result<(), StoreError> {
        let ctx = &self.inner.ctx;
        let original = ctx.store.body(&entry.id).await.unwrap_or_default();
        let Some((dsn, body)) = dsn::build(entry, &original, &ctx.cfg.smtp.hostname, new_id()) else {
            tracing::info!(queue_id = %entry.id, "no DSN sent (null sender or DSN)");
            return Ok(());
        };
        let id = dsn.id.clone();
        ctx.store.enqueue(dsn, body).await?;
        tracing::info!(queue_id = %id, original = %entry.id, "DSN queued");
        self.submit(id);
        Ok(())
    }
}

/// retry_initial doubled per failed attempt, capped at retry_max.
fn backoff(cfg: &Config, attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(20);
    cfg.queue.retry_initial.saturating_mul(factor).min(cfg.queue.retry_max)
}

fn log_outcome(e: &QueueEntry, outcome: &str) {
    let rcpts: Vec<String> = e
        .recipients
        .iter()
        .map(|r| format!("{} {:?} {}", r.address, r.status, r.last_reply.as_deref().unwrap_or("")))
        .collect();
    tracing::info!(
        queue_id = %e.id,
        outcome,
        from = e.sender.as_deref().unwrap_or("<>"),
        attempts = e.attempts,
        recipients = ?rcpts,
        "message disposition"
    );
}
