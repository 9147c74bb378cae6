//! The embedded single-node store: sled trees index queue records,
//! quarantine records, the audit log and the quarantine allow list; bodies
//! live in fsynced spool segments, one series for the queue and one for the
//! quarantine. One writer thread (`writer`) applies every change; reads go
//! straight to sled, the spools and the in-memory quarantine index.

pub(crate) mod qindex;
pub(crate) mod spool;
mod store;
mod text;
mod writer;

use super::segment::{Location, ReadFail, Readers};
use super::{BoxFut, QRecord, QueueEntry, StoreError};
use qindex::QIndex;
use serde::{Deserialize, Serialize};
use spool::Spool;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock, mpsc};
use tokio::sync::oneshot;
use writer::{Done, Op, Writer};

const SLED_CACHE: u64 = 256 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct Record {
    entry: QueueEntry,
    loc: Location,
}

/// A quarantine record and where its body is (`None` once dropped).
#[derive(Clone, Serialize, Deserialize)]
struct QStored {
    rec: QRecord,
    loc: Option<Location>,
}

#[derive(Clone)]
struct Trees {
    /// sled's data file, to fsync: sled's own flush does not reach past
    /// the disk's write cache.
    file: Arc<std::fs::File>,
    db: sled::Db,
    queue: sled::Tree,
    quarantine: sled::Tree,
    audit: sled::Tree,
    allow: sled::Tree,
    meta: sled::Tree,
}

pub struct EmbeddedStore {
    tx: std::sync::Mutex<Option<mpsc::Sender<Op>>>,
    trees: Trees,
    readers: Arc<Readers>,
    qreaders: Arc<Readers>,
    index: Arc<RwLock<QIndex>>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Opens sled. Its file lock outlives a closed store by a moment (its
/// flusher thread lets go last), so a reopen in the same process waits
/// for it, up to 5 s, instead of failing.
pub(crate) fn open_sled(dir: &Path) -> Result<sled::Db, StoreError> {
    let mut tries = 0;
    loop {
        match sled::Config::new().path(dir).cache_capacity(SLED_CACHE).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(index_err(e)),
        }
    }
}

impl Trees {
    fn sync_index(&self) -> Result<(), StoreError> {
        self.file.sync_data()?;
        Ok(())
    }
}

fn index_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Index(e.to_string())
}

fn qread(tree: &sled::Tree, id: &str) -> Result<Option<QStored>, StoreError> {
    match tree.get(id).map_err(index_err)? {
        Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(index_err)?)),
        None => Ok(None),
    }
}

impl EmbeddedStore {
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        // sled caches 1 GiB by default; the quarantine's search index is in
        // memory already, and queue records are small.
        let db = open_sled(&path.join("index"))?;
        let tree = |name: &str| db.open_tree(name).map_err(index_err);
        let trees = Trees {
            queue: tree("queue")?,
            quarantine: tree("quarantine")?,
            audit: tree("audit")?,
            allow: tree("allow")?,
            meta: tree("meta")?,
            file: Arc::new(std::fs::File::open(path.join("index").join("db"))?),
            db: db.clone(),
        };
        let spool = open_queue_spool(&trees, &path.join("spool"))?;
        let (qspool, index) = open_quarantine(&trees, &path.join("quarantine"))?;
        let (readers, qreaders) = (spool.readers.clone(), qspool.readers.clone());
        let index = Arc::new(RwLock::new(index));
        let (tx, rx) = mpsc::channel();
        let writer = Writer { rx, spool, qspool, trees: trees.clone(), index: index.clone() };
        let handle = std::thread::Builder::new().name("mxgate-store".into()).spawn(move || writer.run())?;
        Ok(EmbeddedStore {
            tx: std::sync::Mutex::new(Some(tx)),
            trees,
            readers,
            qreaders,
            index,
            writer: std::sync::Mutex::new(Some(handle)),
        })
    }

    fn send<T: Send + 'static>(&self, make: impl FnOnce(Done<T>) -> Op) -> BoxFut<'_, Result<T, StoreError>> {
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
        match self.trees.queue.get(id).map_err(index_err)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(index_err)?)),
            None => Ok(None),
        }
    }

    /// Number of records in the quarantine search index.
    pub fn quarantine_len(&self) -> usize {
        self.index.read().unwrap().len()
    }
}

/// Counts live bodies per segment and drops records torn by a crash.
fn open_queue_spool(t: &Trees, dir: &Path) -> Result<Spool, StoreError> {
    let mut live: HashMap<u64, usize> = HashMap::new();
    let mut locs = Vec::new();
    for kv in t.queue.iter() {
        let (_, v) = kv.map_err(index_err)?;
        let rec: Record = serde_json::from_slice(&v).map_err(index_err)?;
        *live.entry(rec.loc.segment).or_default() += 1;
        locs.push((rec.entry.id, rec.loc));
    }
    let (mut spool, newest) = Spool::open(dir, live)?;
    for (id, loc) in locs.into_iter().filter(|(_, l)| Some(l.segment) == newest) {
        if torn(&spool, &id, loc) {
            t.queue.remove(id.as_bytes()).map_err(index_err)?;
            spool.forget(loc);
        }
    }
    t.db.flush().map_err(index_err)?;
    Ok(spool)
}

/// The quarantine spool and its search index, rebuilt from sled in two
/// streaming passes (a million records must not all sit in memory twice):
/// one counts bodies per segment, one builds the index.
fn open_quarantine(t: &Trees, dir: &Path) -> Result<(Spool, QIndex), StoreError> {
    #[derive(Deserialize)]
    struct LocOnly {
        loc: Option<Location>,
    }
    let mut live: HashMap<u64, usize> = HashMap::new();
    for kv in t.quarantine.iter() {
        let (_, v) = kv.map_err(index_err)?;
        if let Some(loc) = serde_json::from_slice::<LocOnly>(&v).map_err(index_err)?.loc {
            *live.entry(loc.segment).or_default() += 1;
        }
    }
    let (mut spool, newest) = Spool::open(dir, live)?;
    let mut torn_ids = Vec::new();
    let mut failure = None;
    let records = t.quarantine.iter().values().map_while(|v| {
        let parsed = v.map_err(index_err).and_then(|v| serde_json::from_slice::<QStored>(&v).map_err(index_err));
        match parsed {
            Ok(s) => Some(s),
            Err(e) => {
                failure = Some(e);
                None
            }
        }
    });
    let kept = records.filter_map(|s| match s.loc.filter(|l| Some(l.segment) == newest) {
        Some(loc) if torn(&spool, &s.rec.id, loc) => {
            torn_ids.push((s.rec.id, loc));
            None
        }
        _ => Some(s.rec),
    });
    let index = QIndex::load(kept);
    if let Some(e) = failure {
        return Err(e);
    }
    for (id, loc) in torn_ids {
        t.quarantine.remove(id.as_bytes()).map_err(index_err)?;
        spool.forget(loc);
    }
    t.db.flush().map_err(index_err)?;
    Ok((spool, index))
}

/// A crash can stop the writer after the index was written but before the
/// spool sync of its batch; such records were never acknowledged. They can
/// only be in the newest segment of the previous run.
fn torn(spool: &Spool, id: &str, loc: Location) -> bool {
    match spool.read(id, loc) {
        Err(ReadFail::Damaged(why)) => {
            tracing::warn!(id, why, "dropping a record torn by a crash (it was never acknowledged)");
            true
        }
        _ => false,
    }
}

async fn read_body(readers: Arc<Readers>, id: String, loc: Location) -> Result<Vec<u8>, StoreError> {
    let read = tokio::task::spawn_blocking(move || readers.read(&id, loc).map_err(|e| (id, e)));
    match read.await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err((id, ReadFail::Damaged(why)))) => Err(StoreError::Corrupt(id, why.into())),
        Ok(Err((_, ReadFail::Io(e)))) => Err(StoreError::Io(e)),
        Err(e) => Err(StoreError::Io(std::io::Error::other(e))),
    }
}

fn now<T>(r: T) -> BoxFut<'static, T>
where
    T: Send + 'static,
{
    Box::pin(async move { r })
}
