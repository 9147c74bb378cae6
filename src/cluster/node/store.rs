//! A storage node's records: sled holds each key's winning cell (and where
//! its body is), bodies live in an fsynced spool, and quarantine records
//! are also kept in the in-memory search index the single-node store uses.
//! Reads go straight to sled; every change goes through the writer thread
//! (`node::writer`), which merges, group-commits and answers.

use super::writer::{Job, Writer};
use crate::cluster::codec::{Dec, Enc};
use crate::cluster::core::cell::{Applied, Cell, kind};
use crate::cluster::core::repair::{Digests, bucket};
use crate::cluster::wire::{Item, Release};
use crate::store::embedded::qindex::QIndex;
use crate::store::embedded::spool::Spool;
use crate::store::segment::{Location, Readers};
use crate::store::{QRecord, StoreError};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, mpsc};
use tokio::sync::oneshot;

/// A stored cell and the place of its body on this node, if it has it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub cell: Cell,
    pub loc: Option<Location>,
}

impl Stored {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.cell(&self.cell);
        match self.loc {
            Some(l) => e.u8(1).u64(l.segment).u64(l.offset).u64(l.len),
            None => e.u8(0),
        };
        e.0
    }

    pub fn decode(v: &[u8]) -> Result<Stored, StoreError> {
        let bad = |e: crate::cluster::codec::Malformed| StoreError::Index(e.to_string());
        let mut d = Dec(v);
        let cell = d.cell().map_err(bad)?;
        let loc = match d.u8().map_err(bad)? {
            1 => Some(Location {
                segment: d.u64().map_err(bad)?,
                offset: d.u64().map_err(bad)?,
                len: d.u64().map_err(bad)?,
            }),
            _ => None,
        };
        Ok(Stored { cell, loc })
    }
}

pub(super) fn index_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Index(e.to_string())
}

#[derive(Clone)]
pub struct Trees {
    pub cells: sled::Tree,
    /// `owner name, 0, key`: records held for a node that was down.
    pub hints: sled::Tree,
    pub db: sled::Db,
    pub file: Arc<std::fs::File>,
}

/// Where this node sits in the cluster: what its digests are about.
#[derive(Clone)]
pub struct Layout {
    pub nodes: Vec<String>,
    pub replicas: usize,
    pub me: usize,
}

impl Layout {
    /// Folds a change of `key` (old copy out, new copy in) into the
    /// digests of every peer that also owns it.
    pub fn fold(&self, digests: &mut [Digests], key: &[u8], old: Option<&Cell>, new: Option<&Cell>) {
        let fp = |c: Option<&Cell>| c.map_or(0, |c| c.fingerprint(key));
        let delta = fp(old) ^ fp(new);
        if delta == 0 {
            return;
        }
        let owners = crate::cluster::core::placement::owners(key, &self.nodes, self.replicas);
        if !owners.contains(&self.me) {
            return;
        }
        for p in owners.into_iter().filter(|p| *p != self.me) {
            digests[p].0[bucket(key)] ^= delta;
        }
    }
}

pub struct NodeStore {
    pub trees: Trees,
    /// Per peer: digests of the keys both own, kept current by the writer,
    /// so an anti-entropy round costs nothing when nothing differs.
    pub digests: Arc<std::sync::Mutex<Vec<Digests>>>,
    readers: Arc<Readers>,
    tx: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    pub index: Arc<RwLock<QIndex>>,
    /// Writes queued for the writer thread: the node's load figure.
    pub queued: Arc<AtomicU64>,
}

impl NodeStore {
    pub fn open(path: &Path, layout: Layout) -> Result<NodeStore, StoreError> {
        let db = crate::store::embedded::open_sled(&path.join("index"))?;
        let trees = Trees {
            cells: db.open_tree("cells").map_err(index_err)?,
            hints: db.open_tree("hints").map_err(index_err)?,
            file: Arc::new(std::fs::File::open(path.join("index").join("db"))?),
            db,
        };
        let (live, index, mut digests) = scan(&trees, &layout)?;
        let (mut spool, last) = Spool::open(&path.join("spool"), live)?;
        if let Some(last) = last {
            drop_torn(&trees, &mut spool, last, &layout, &mut digests)?;
        }
        let digests = Arc::new(std::sync::Mutex::new(digests));
        let readers = spool.readers.clone();
        let index = Arc::new(RwLock::new(index));
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            rx,
            spool,
            trees: trees.clone(),
            index: index.clone(),
            queued: queued.clone(),
            layout,
            digests: digests.clone(),
        };
        std::thread::Builder::new().name("mxgate-node-store".into()).spawn(move || writer.run())?;
        Ok(NodeStore { trees, digests, readers, tx: std::sync::Mutex::new(Some(tx)), index, queued })
    }

    async fn send<T>(&self, job: Job, wait: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
        {
            let tx = self.tx.lock().unwrap();
            let tx = tx.as_ref().ok_or(StoreError::Closed)?;
            self.queued.fetch_add(1, Ordering::Relaxed);
            tx.send(job).map_err(|_| StoreError::Closed)?;
        }
        wait.await.map_err(|_| StoreError::Closed)?
    }

    /// Merges `items`; durable when this returns.
    pub async fn put(&self, items: Vec<Item>) -> Result<Vec<Applied>, StoreError> {
        let (done, wait) = oneshot::channel();
        self.send(Job::Put { items, done }, wait).await
    }

    /// The release: see `wire::Request::Release`.
    pub async fn release(&self, r: Release) -> Result<Applied, StoreError> {
        let (done, wait) = oneshot::channel();
        self.send(Job::Release { r, done }, wait).await
    }

    /// Forgets hints (and with `drop_copies` the local copies) of records
    /// handed to their owner, each given with the version that was sent: a
    /// record changed since keeps its hint and goes in the next handoff.
    pub async fn handed_off(
        &self,
        owner: String,
        keys: Vec<(Vec<u8>, Option<u64>)>,
        drop_copies: bool,
    ) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.send(Job::HandedOff { owner, keys, drop_copies, done }, wait).await
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Stored>, StoreError> {
        match self.trees.cells.get(key).map_err(index_err)? {
            Some(v) => Ok(Some(Stored::decode(&v)?)),
            None => Ok(None),
        }
    }

    /// The body of `key`, when this node has it.
    pub fn body(&self, key: &[u8], s: &Stored) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(loc) = s.loc.filter(|_| s.cell.has_body && !s.cell.dead) else { return Ok(None) };
        let id = String::from_utf8_lossy(key);
        self.readers.read(&id, loc).map(Some).map_err(|e| StoreError::Corrupt(id.into_owned(), format!("{e:?}")))
    }

    pub fn records(&self) -> u64 {
        self.trees.cells.len() as u64
    }

    /// Records held here for each node in `nodes` (those with any).
    pub fn hints(&self, nodes: &[String]) -> Vec<(String, u64)> {
        let count = |n: &String| self.trees.hints.scan_prefix(super::writer::hint_key(n, b"")).count() as u64;
        nodes.iter().map(|n| (n.clone(), count(n))).filter(|(_, c)| *c > 0).collect()
    }

    /// Stops the writer after what it has queued; waits for it to flush.
    pub async fn close(&self) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        let r = self.send(Job::Close { done }, wait).await;
        self.tx.lock().unwrap().take();
        r
    }
}

/// Records whose body is in the last segment of the previous run and does
/// not read back whole were being written when the node stopped: never
/// acknowledged, so they are dropped (their other copies stand).
fn drop_torn(
    trees: &Trees,
    spool: &mut Spool,
    last: u64,
    layout: &Layout,
    digests: &mut [Digests],
) -> Result<(), StoreError> {
    let mut torn = Vec::new();
    for kv in trees.cells.iter() {
        let (k, v) = kv.map_err(index_err)?;
        let s = Stored::decode(&v)?;
        if let Some(loc) = s.loc.filter(|l| l.segment == last)
            && spool.read(&String::from_utf8_lossy(&k), loc).is_err()
        {
            torn.push((k, s.cell, loc));
        }
    }
    for (k, cell, loc) in torn {
        tracing::warn!(key = %String::from_utf8_lossy(&k), "dropping a record whose body was cut short by a crash");
        trees.cells.remove(&k).map_err(index_err)?;
        spool.forget(loc);
        layout.fold(digests, &k, Some(&cell), None);
    }
    trees.db.flush().map_err(index_err)?;
    Ok(())
}

type Scanned = (HashMap<u64, usize>, QIndex, Vec<Digests>);

/// At start: live bodies per spool segment, the quarantine index and the
/// anti-entropy digests.
fn scan(trees: &Trees, layout: &Layout) -> Result<Scanned, StoreError> {
    let mut live: HashMap<u64, usize> = HashMap::new();
    let mut recs = Vec::new();
    let mut digests = vec![Digests::default(); layout.nodes.len()];
    for kv in trees.cells.iter() {
        let (k, v) = kv.map_err(index_err)?;
        let s = Stored::decode(&v)?;
        layout.fold(&mut digests, &k, None, Some(&s.cell));
        if let Some(loc) = s.loc {
            *live.entry(loc.segment).or_default() += 1;
        }
        if k.first() == Some(&kind::QUARANTINE) && !s.cell.dead {
            match serde_json::from_slice::<QRecord>(&s.cell.data) {
                Ok(r) => recs.push(r),
                Err(e) => {
                    tracing::warn!(key = %String::from_utf8_lossy(&k), error = %e, "unreadable quarantine record")
                }
            }
        }
    }
    Ok((live, QIndex::load(recs.into_iter()), digests))
}
