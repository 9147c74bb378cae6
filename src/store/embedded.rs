//! The embedded single-node store: a sled tree indexes queue records; bodies
//! live in fsynced spool segments. One writer thread applies every change in
//! batches: all bodies of a batch are synced with one fdatasync, then the
//! index batch is applied and flushed, then every waiter is answered. This is
//! the group commit that lets many sessions share one disk flush.

use super::segment::{self, Appender, Location, ReadFail, Readers};
use super::{BoxFut, QueueEntry, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Size past which an emptied current segment is replaced at once.
const EARLY_ROLL: u64 = 1024 * 1024;

type Done = oneshot::Sender<Result<(), StoreError>>;

enum Op {
    Enqueue { entry: QueueEntry, body: Vec<u8>, done: Done },
    Update { entry: QueueEntry, done: Done },
    Remove { id: String, done: Done },
}

#[derive(Serialize, Deserialize)]
struct Record {
    entry: QueueEntry,
    loc: Location,
}

pub struct EmbeddedStore {
    tx: std::sync::Mutex<Option<mpsc::Sender<Op>>>,
    tree: sled::Tree,
    db: sled::Db,
    readers: Arc<Readers>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn index_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Index(e.to_string())
}

impl EmbeddedStore {
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        let spool = path.join("spool");
        std::fs::create_dir_all(&spool)?;
        let db = sled::Config::new().path(path.join("index")).open().map_err(index_err)?;
        let tree = db.open_tree("queue").map_err(index_err)?;
        let mut live: HashMap<u64, usize> = HashMap::new();
        for kv in tree.iter() {
            let (_, v) = kv.map_err(index_err)?;
            let rec: Record = serde_json::from_slice(&v).map_err(index_err)?;
            *live.entry(rec.loc.segment).or_default() += 1;
        }
        let present = segment::existing(&spool)?;
        // Segments no record points at hold only finished or torn messages.
        for n in &present {
            if !live.contains_key(n) {
                std::fs::remove_file(segment::segment_path(&spool, *n))?;
            }
        }
        let next = present.last().map_or(1, |n| n + 1);
        let appender = Appender::create(&spool, next)?;
        let readers = Arc::new(Readers::new(&spool));
        if let Some(&newest) = present.last() {
            drop_torn(&tree, &readers, newest, &mut live)?;
            db.flush().map_err(index_err)?;
        }
        let (tx, rx) = mpsc::channel();
        let writer = Writer { rx, appender, tree: tree.clone(), db: db.clone(), live, readers: readers.clone() };
        let handle = std::thread::Builder::new().name("mxgate-store".into()).spawn(move || writer.run())?;
        Ok(EmbeddedStore {
            tx: std::sync::Mutex::new(Some(tx)),
            tree,
            db,
            readers,
            writer: std::sync::Mutex::new(Some(handle)),
        })
    }

    fn submit(&self, make: impl FnOnce(Done) -> Op) -> BoxFut<'_, Result<(), StoreError>> {
        let (done, wait) = oneshot::channel();
        let sent = match self.tx.lock().unwrap().as_ref() {
            Some(tx) => tx.send(make(done)).is_ok(),
            None => false,
        };
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            wait.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn record(&self, id: &str) -> Result<Option<Record>, StoreError> {
        match self.tree.get(id).map_err(index_err)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(index_err)?)),
            None => Ok(None),
        }
    }
}

impl Store for EmbeddedStore {
    fn enqueue(&self, entry: QueueEntry, body: Vec<u8>) -> BoxFut<'_, Result<(), StoreError>> {
        self.submit(|done| Op::Enqueue { entry, body, done })
    }

    fn body(&self, id: &str) -> BoxFut<'_, Result<Vec<u8>, StoreError>> {
        let id = id.to_string();
        Box::pin(async move {
            let rec = self.record(&id)?.ok_or_else(|| StoreError::NotFound(id.clone()))?;
            let readers = self.readers.clone();
            let read = tokio::task::spawn_blocking(move || readers.read(&id, rec.loc).map_err(|e| (id, e)));
            match read.await {
                Ok(Ok(body)) => Ok(body),
                Ok(Err((id, ReadFail::Damaged(why)))) => Err(StoreError::Corrupt(id, why.into())),
                Ok(Err((_, ReadFail::Io(e)))) => Err(StoreError::Io(e)),
                Err(e) => Err(StoreError::Io(std::io::Error::other(e))),
            }
        })
    }

    fn get(&self, id: &str) -> BoxFut<'_, Result<Option<QueueEntry>, StoreError>> {
        let r = self.record(id).map(|r| r.map(|r| r.entry));
        Box::pin(async move { r })
    }

    fn list(&self) -> BoxFut<'_, Result<Vec<QueueEntry>, StoreError>> {
        let r = self
            .tree
            .iter()
            .values()
            .map(|v| {
                let v = v.map_err(index_err)?;
                serde_json::from_slice::<Record>(&v).map(|r| r.entry).map_err(index_err)
            })
            .collect();
        Box::pin(async move { r })
    }

    fn update(&self, entry: QueueEntry) -> BoxFut<'_, Result<(), StoreError>> {
        self.submit(|done| Op::Update { entry, done })
    }

    fn remove(&self, id: &str) -> BoxFut<'_, Result<(), StoreError>> {
        let id = id.to_string();
        self.submit(|done| Op::Remove { id, done })
    }

    fn free_space(&self) -> Option<u64> {
        let path = std::ffi::CString::new(self.readers.dir().as_os_str().as_encoded_bytes()).ok()?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is a valid C string and `st` a writable statvfs.
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
        (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
    }

    fn close(&self) -> BoxFut<'_, Result<(), StoreError>> {
        // Dropping the sender ends the writer after it drained what was sent.
        self.tx.lock().unwrap().take();
        let handle = self.writer.lock().unwrap().take();
        let db = self.db.clone();
        Box::pin(async move {
            if let Some(h) = handle {
                let _ = tokio::task::spawn_blocking(move || h.join()).await;
            }
            db.flush_async().await.map_err(index_err)?;
            Ok(())
        })
    }
}

struct Writer {
    rx: mpsc::Receiver<Op>,
    appender: Appender,
    tree: sled::Tree,
    db: sled::Db,
    live: HashMap<u64, usize>,
    readers: Arc<Readers>,
}

impl Writer {
    fn run(mut self) {
        while let Ok(first) = self.rx.recv() {
            let mut ops = vec![first];
            while ops.len() < 4096 {
                match self.rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            self.apply(ops);
        }
    }

    fn apply(&mut self, ops: Vec<Op>) {
        let mut batch = sled::Batch::default();
        // Locations of ids this batch wrote; None for ids it removed.
        let mut staged: HashMap<String, Option<Location>> = HashMap::new();
        let mut enqueued = Vec::new();
        let mut emptied = Vec::new();
        let mut waiters = Vec::with_capacity(ops.len());
        for op in ops {
            let (res, done) = match op {
                Op::Enqueue { entry, body, done } => {
                    let loc = self.appender.push(&entry.id, &body);
                    *self.live.entry(loc.segment).or_default() += 1;
                    staged.insert(entry.id.clone(), Some(loc));
                    enqueued.push((entry.id.clone(), loc));
                    put(&mut batch, entry, loc);
                    (Ok(()), done)
                }
                Op::Update { entry, done } => match self.locate(&staged, &entry.id) {
                    Ok(loc) => {
                        put(&mut batch, entry, loc);
                        (Ok(()), done)
                    }
                    Err(e) => (Err(e), done),
                },
                Op::Remove { id, done } => match self.locate(&staged, &id) {
                    Ok(loc) => {
                        batch.remove(id.as_bytes());
                        staged.insert(id, None);
                        let n = self.live.entry(loc.segment).or_default();
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            emptied.push(loc.segment);
                        }
                        (Ok(()), done)
                    }
                    Err(e) => (Err(e), done),
                },
            };
            waiters.push((res, done));
        }
        let commit = self.commit(batch);
        for (res, done) in waiters {
            let res = match (&commit, res) {
                (Err(StoreError::Io(e)), _) => Err(StoreError::Io(std::io::Error::new(e.kind(), e.to_string()))),
                (Err(e), _) => Err(StoreError::Index(e.to_string())),
                (Ok(()), r) => r,
            };
            let _ = done.send(res);
        }
        match commit {
            Ok(()) => self.drop_segments(emptied),
            Err(_) => self.undo(enqueued),
        }
    }

    /// One durable point per batch. The spool bytes are written, then the
    /// index batch (sled syncs its log with sync_file_range, which does not
    /// flush the disk's write cache), then the spool's fdatasync, whose cache
    /// flush also makes the already written index durable. A crash before
    /// that sync can leave an index entry whose body is incomplete; no 250
    /// was given for it, and the record's checksum marks it corrupt.
    fn commit(&mut self, batch: sled::Batch) -> Result<(), StoreError> {
        self.appender.write()?;
        self.tree.apply_batch(batch).map_err(index_err)?;
        self.db.flush().map_err(index_err)?;
        self.appender.sync()?;
        Ok(())
    }

    /// After a failed commit the waiters got an error, so their messages
    /// must not stay in the index (the client will send them again), and
    /// the segment's tail is unknown: continue in a new one.
    fn undo(&mut self, enqueued: Vec<(String, Location)>) {
        for (id, loc) in enqueued {
            let _ = self.tree.remove(id.as_bytes());
            if let Some(n) = self.live.get_mut(&loc.segment) {
                *n = n.saturating_sub(1);
            }
        }
        let _ = self.db.flush();
        let old = self.appender.number;
        match self.appender.replace() {
            Ok(()) if self.live.get(&old).copied().unwrap_or(0) == 0 => self.remove_segment(old),
            Ok(()) => {}
            Err(e) => tracing::error!(error = %e, "cannot start a new spool segment"),
        }
    }

    fn locate(&self, staged: &HashMap<String, Option<Location>>, id: &str) -> Result<Location, StoreError> {
        match staged.get(id) {
            Some(Some(loc)) => return Ok(*loc),
            Some(None) => return Err(StoreError::NotFound(id.to_string())),
            None => {}
        }
        match self.tree.get(id).map_err(index_err)? {
            Some(v) => Ok(serde_json::from_slice::<Record>(&v).map_err(index_err)?.loc),
            None => Err(StoreError::NotFound(id.to_string())),
        }
    }

    fn drop_segments(&mut self, emptied: Vec<u64>) {
        if let Ok(Some(closed)) = self.appender.roll_if_full()
            && self.live.get(&closed).copied().unwrap_or(0) == 0
        {
            self.remove_segment(closed);
        }
        for n in emptied {
            if n != self.appender.number && self.live.get(&n) == Some(&0) {
                self.remove_segment(n);
            }
        }
        // A current segment whose messages are all done is given up early,
        // so its space comes back without waiting for it to fill (this is
        // what frees a full disk once the queue drains).
        let current = self.appender.number;
        if self.appender.len() > EARLY_ROLL && self.live.get(&current).copied().unwrap_or(0) == 0 {
            match self.appender.replace() {
                Ok(()) => self.remove_segment(current),
                Err(e) => tracing::warn!(error = %e, "cannot start a new spool segment"),
            }
        }
    }

    fn remove_segment(&mut self, n: u64) {
        self.live.remove(&n);
        self.readers.forget(n);
        let path = segment::segment_path(self.readers_dir(), n);
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(segment = n, error = %e, "could not remove an emptied spool segment");
        }
    }

    fn readers_dir(&self) -> &Path {
        self.readers.dir()
    }
}

/// A crash can stop the writer after the index was written but before the
/// spool sync of its batch; such records were never acknowledged. They can
/// only be in the newest segment of the previous run: checked and dropped.
fn drop_torn(
    tree: &sled::Tree,
    readers: &Readers,
    newest: u64,
    live: &mut HashMap<u64, usize>,
) -> Result<(), StoreError> {
    for kv in tree.iter() {
        let (k, v) = kv.map_err(index_err)?;
        let rec: Record = serde_json::from_slice(&v).map_err(index_err)?;
        if rec.loc.segment != newest {
            continue;
        }
        if let Err(ReadFail::Damaged(why)) = readers.read(&rec.entry.id, rec.loc) {
            tracing::warn!(queue_id = %rec.entry.id, why, "dropping a record torn by a crash (it was never acknowledged)");
            tree.remove(k).map_err(index_err)?;
            if let Some(n) = live.get_mut(&newest) {
                *n = n.saturating_sub(1);
            }
        }
    }
    Ok(())
}

fn put(batch: &mut sled::Batch, entry: QueueEntry, loc: Location) {
    let key = entry.id.clone();
    let rec = Record { entry, loc };
    batch.insert(key.as_bytes(), serde_json::to_vec(&rec).expect("record serialises"));
}
