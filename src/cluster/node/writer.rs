//! The one thread that changes a node's records. It takes every queued
//! job, merges each write against the stored copy (`core::cell::decide`),
//! appends new bodies to the spool, then commits the batch: one fdatasync
//! of the spool, one sled batch per tree, one flush and fsync of sled's
//! file. Only then are the callers answered, so an answer means durable.

use super::store::{Stored, Trees, index_err};
use crate::cluster::core::cell::{Applied, Cell, Cond, decide, kind};
use crate::cluster::wire::{Item, Release};
use crate::store::embedded::qindex::QIndex;
use crate::store::embedded::spool::Spool;
use crate::store::segment::Location;
use crate::store::{QRecord, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, mpsc};
use tokio::sync::oneshot;

type Done<T> = oneshot::Sender<Result<T, StoreError>>;

pub enum Job {
    Put { items: Vec<Item>, done: Done<Vec<Applied>> },
    Release { r: Release, done: Done<Applied> },
    HandedOff { owner: String, keys: Vec<(Vec<u8>, Option<u64>)>, drop_copies: bool, done: Done<()> },
    Close { done: Done<()> },
}

pub struct Writer {
    pub rx: mpsc::Receiver<Job>,
    pub spool: Spool,
    pub trees: Trees,
    pub index: Arc<RwLock<QIndex>>,
    pub queued: Arc<AtomicU64>,
    pub layout: super::store::Layout,
    pub digests: Arc<std::sync::Mutex<Vec<crate::cluster::core::repair::Digests>>>,
}

enum Reply {
    Put(Done<Vec<Applied>>, Vec<Applied>),
    Release(Done<Applied>, Applied),
    Unit(Done<()>),
}

#[derive(Default)]
struct Batch {
    cells: sled::Batch,
    hints: sled::Batch,
    /// Cells as this batch leaves them (None: removed), for later jobs.
    staged: HashMap<Vec<u8>, Option<Stored>>,
    pushed: Vec<Location>,
    quarantine: Vec<(bool, QRecord)>,
    /// Changed keys with the copy before and after, for the digests.
    folds: Vec<(Vec<u8>, Option<Cell>, Option<Cell>)>,
}

impl Writer {
    pub fn run(mut self) {
        while let Ok(first) = self.rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < 2048 {
                match self.rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            let n = jobs.len() as u64;
            let stop = self.apply(jobs);
            self.queued.fetch_sub(n, Ordering::Relaxed);
            if stop {
                return;
            }
        }
    }

    /// Applies a batch; true when asked to close.
    fn apply(&mut self, jobs: Vec<Job>) -> bool {
        let mut b = Batch::default();
        let mut replies = Vec::with_capacity(jobs.len());
        let mut close = None;
        for job in jobs {
            match job {
                Job::Put { items, done } => match self.put(&mut b, items) {
                    Ok(a) => replies.push(Reply::Put(done, a)),
                    Err(e) => drop(done.send(Err(e))),
                },
                Job::Release { r, done } => match self.release(&mut b, r) {
                    Ok(a) => replies.push(Reply::Release(done, a)),
                    Err(e) => drop(done.send(Err(e))),
                },
                Job::HandedOff { owner, keys, drop_copies, done } => {
                    match self.handed_off(&mut b, &owner, keys, drop_copies) {
                        Ok(()) => replies.push(Reply::Unit(done)),
                        Err(e) => drop(done.send(Err(e))),
                    }
                }
                Job::Close { done } => close = Some(done),
            }
        }
        let result = self.commit(&mut b);
        for r in replies {
            match (&result, r) {
                (Ok(()), Reply::Put(d, a)) => drop(d.send(Ok(a))),
                (Ok(()), Reply::Release(d, a)) => drop(d.send(Ok(a))),
                (Ok(()), Reply::Unit(d)) => drop(d.send(Ok(()))),
                (Err(e), r) => answer_err(r, StoreError::Index(e.to_string())),
            }
        }
        if let Some(done) = close {
            let _ = done.send(self.trees.db.flush().map(|_| ()).map_err(index_err));
            return true;
        }
        false
    }

    fn current(&self, b: &Batch, key: &[u8]) -> Result<Option<Stored>, StoreError> {
        if let Some(s) = b.staged.get(key) {
            return Ok(s.clone());
        }
        match self.trees.cells.get(key).map_err(index_err)? {
            Some(v) => Ok(Some(Stored::decode(&v)?)),
            None => Ok(None),
        }
    }

    fn put(&mut self, b: &mut Batch, items: Vec<Item>) -> Result<Vec<Applied>, StoreError> {
        items.into_iter().map(|item| self.put_one(b, item)).collect()
    }

    fn put_one(&mut self, b: &mut Batch, item: Item) -> Result<Applied, StoreError> {
        let current = self.current(b, &item.key)?;
        if let Some(owner) = &item.hint_for {
            b.hints.insert(hint_key(owner, &item.key), vec![]);
        }
        let applied = decide(current.as_ref().map(|s| &s.cell), &item.cell, item.cond);
        if applied == Applied::Taken {
            self.store(b, item.key, item.cell, item.body, current);
        } else if let (Some(body), Some(cur)) = (item.body, current)
            && cur.loc.is_none()
            && cur.cell.has_body
            && !cur.cell.dead
        {
            // The winning copy lacked its body here (it came by a status
            // change first): keep the body that just arrived.
            self.store(b, item.key, cur.cell, Some(body), None);
        }
        Ok(applied)
    }

    /// Makes `cell` the stored copy, with `body` or the body it had.
    fn store(&mut self, b: &mut Batch, key: Vec<u8>, cell: Cell, body: Option<Vec<u8>>, old: Option<Stored>) {
        let old_loc = old.as_ref().and_then(|s| s.loc);
        let loc = match body {
            Some(body) if cell.has_body && !cell.dead => {
                let loc = self.spool.push(&String::from_utf8_lossy(&key), &body);
                b.pushed.push(loc);
                old_loc.into_iter().for_each(|l| self.spool.unref(l));
                Some(loc)
            }
            _ if cell.has_body && !cell.dead => old_loc,
            _ => {
                old_loc.into_iter().for_each(|l| self.spool.unref(l));
                None
            }
        };
        if key.first() == Some(&kind::QUARANTINE)
            && let Ok(rec) = serde_json::from_slice::<QRecord>(&cell.data)
        {
            b.quarantine.push((old.is_none(), rec));
        }
        b.folds.push((key.clone(), old.map(|s| s.cell), Some(cell.clone())));
        let stored = Stored { cell, loc };
        b.cells.insert(key.clone(), stored.encode());
        b.staged.insert(key, Some(stored));
    }

    fn release(&mut self, b: &mut Batch, r: Release) -> Result<Applied, StoreError> {
        let current = self.current(b, &r.qkey)?;
        let applied = decide(current.as_ref().map(|s| &s.cell), &r.qcell, r.cond);
        if applied != Applied::Taken && r.cond == Cond::Advance {
            return Ok(Applied::Refused);
        }
        if let Some(owner) = &r.hint_for {
            b.hints.insert(hint_key(owner, &r.qkey), vec![]);
            b.hints.insert(hint_key(owner, &r.key), vec![]);
        }
        if applied == Applied::Taken {
            self.store(b, r.qkey, r.qcell, None, current);
        }
        let queued = self.current(b, &r.key)?;
        if decide(queued.as_ref().map(|s| &s.cell), &r.entry, Cond::Merge) == Applied::Taken {
            self.store(b, r.key, r.entry, Some(r.body), queued);
        }
        Ok(applied)
    }

    fn handed_off(
        &mut self,
        b: &mut Batch,
        owner: &str,
        keys: Vec<(Vec<u8>, Option<u64>)>,
        drop_copies: bool,
    ) -> Result<(), StoreError> {
        for (key, sent) in keys {
            let cur = self.current(b, &key)?;
            if cur.as_ref().map(|s| s.cell.ver) != sent {
                continue;
            }
            b.hints.remove(hint_key(owner, &key));
            if drop_copies {
                if let Some(loc) = cur.as_ref().and_then(|s| s.loc) {
                    self.spool.unref(loc);
                }
                b.folds.push((key.clone(), cur.map(|s| s.cell), None));
                b.cells.remove(key.clone());
                b.staged.insert(key, None);
            }
        }
        Ok(())
    }

    fn commit(&mut self, b: &mut Batch) -> Result<(), StoreError> {
        // One disk cache flush per batch, as in the embedded store: the
        // spool bytes and sled's log are written first (sled flushes with
        // sync_file_range, which leaves them in the disk's cache), then the
        // spool's fdatasync flushes the cache for both. A crash before it
        // can leave a record whose body is torn; it was never acknowledged,
        // and `NodeStore::open` drops it (see `drop_torn`).
        let r = self.spool.appender.write().map_err(StoreError::Io).and_then(|()| {
            self.trees.cells.apply_batch(std::mem::take(&mut b.cells)).map_err(index_err)?;
            self.trees.hints.apply_batch(std::mem::take(&mut b.hints)).map_err(index_err)?;
            self.trees.db.flush().map_err(index_err)?;
            if !self.spool.appender.sync()? {
                // Nothing new in the spool (a status change, a tombstone).
                self.trees.file.sync_data()?;
            }
            Ok(())
        });
        match &r {
            Ok(()) => {
                self.spool.committed();
                let mut d = self.digests.lock().unwrap();
                for (key, old, new) in b.folds.drain(..) {
                    self.layout.fold(&mut d, &key, old.as_ref(), new.as_ref());
                }
                drop(d);
                let mut ix = self.index.write().unwrap();
                for (new, rec) in b.quarantine.drain(..) {
                    if new { ix.put(&rec) } else { ix.changed(&rec) }
                }
            }
            Err(_) => self.spool.failed(&b.pushed),
        }
        r
    }
}

pub fn hint_key(owner: &str, key: &[u8]) -> Vec<u8> {
    let mut k = owner.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(key);
    k
}

fn answer_err(r: Reply, e: StoreError) {
    match r {
        Reply::Put(d, _) => drop(d.send(Err(e))),
        Reply::Release(d, _) => drop(d.send(Err(e))),
        Reply::Unit(d) => drop(d.send(Err(e))),
    }
}
