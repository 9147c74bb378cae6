//! The one thread that changes the embedded store. It applies every change
//! in batches: all bodies of a batch are synced with one fdatasync per
//! spool, the index batches are applied and flushed, then every waiter is
//! answered (group commit). A release is the exception: it reads a body and
//! writes two trees atomically, so it runs alone after the batch.

use super::qindex::QIndex;
use super::spool::Spool;
use super::{QStored, Record, Trees, index_err};
use crate::store::segment::Location;
use crate::store::{Actor, AllowEntry, AuditEntry, Changed, QRecord, QStatus, QueueEntry, ReleaseFn, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, RwLock, mpsc};
use tokio::sync::oneshot;

pub type Done<T> = oneshot::Sender<Result<T, StoreError>>;

pub enum Op {
    Enqueue { entry: QueueEntry, body: Vec<u8>, done: Done<()> },
    Update { entry: QueueEntry, done: Done<()> },
    Remove { id: String, done: Done<()> },
    Quarantine { rec: QRecord, body: Vec<u8>, done: Done<()> },
    Change { id: String, to: QStatus, actor: Actor, audit: AuditEntry, done: Done<Option<Changed>> },
    Release { id: String, actor: Actor, audit: AuditEntry, make: ReleaseFn, done: Done<Option<Changed>> },
    Audit { entry: AuditEntry, done: Done<()> },
    Allow { entry: AllowEntry, remove: bool, audit: AuditEntry, done: Done<()> },
    Meta { key: String, value: Vec<u8>, done: Done<()> },
}

enum Waiter {
    Unit(Done<()>, Result<(), StoreError>),
    Changed(Done<Option<Changed>>, Box<Result<Option<Changed>, StoreError>>),
}

pub struct Writer {
    pub rx: mpsc::Receiver<Op>,
    pub spool: Spool,
    pub qspool: Spool,
    pub trees: Trees,
    pub index: Arc<RwLock<QIndex>>,
}

/// What one batch writes, and what to undo or publish afterwards.
#[derive(Default)]
struct Batch {
    queue: sled::Batch,
    quarantine: sled::Batch,
    audit: sled::Batch,
    allow: sled::Batch,
    meta: sled::Batch,
    /// Queue ids this batch wrote (Some) or removed (None).
    staged: HashMap<String, Option<Location>>,
    qstaged: HashMap<String, QStored>,
    pushed: Vec<(String, Location)>,
    qpushed: Vec<(String, Location)>,
    /// Records to add to the search index once committed, and changed ones.
    publish: Vec<QRecord>,
    changed: Vec<QRecord>,
    /// Records to put back if the commit fails.
    restore: Vec<QStored>,
}

impl Writer {
    pub fn run(mut self) {
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
        let mut b = Batch::default();
        let mut waiters = Vec::with_capacity(ops.len());
        let mut releases = Vec::new();
        for op in ops {
            match op {
                Op::Release { id, actor, audit, make, done } => releases.push((id, actor, audit, make, done)),
                op => waiters.push(self.stage(&mut b, op)),
            }
        }
        let commit = self.commit(&mut b);
        // The search index learns of a change before its caller does, so a
        // search that follows an answered write always sees it.
        if commit.is_ok() {
            let mut ix = self.index.write().unwrap();
            for rec in &b.publish {
                ix.put(rec);
            }
            for rec in &b.changed {
                ix.changed(rec);
            }
        }
        for w in waiters {
            match w {
                Waiter::Unit(done, r) => drop(done.send(settle(&commit, r))),
                Waiter::Changed(done, r) => drop(done.send(settle(&commit, *r))),
            }
        }
        match commit {
            Ok(()) => {
                self.spool.committed();
                self.qspool.committed();
            }
            Err(_) => self.undo(b),
        }
        for (id, actor, audit, make, done) in releases {
            let _ = done.send(self.release(&id, actor, audit, make));
        }
    }

    fn stage(&mut self, b: &mut Batch, op: Op) -> Waiter {
        match op {
            Op::Enqueue { entry, body, done } => {
                let loc = self.spool.push(&entry.id, &body);
                b.staged.insert(entry.id.clone(), Some(loc));
                b.pushed.push((entry.id.clone(), loc));
                put(&mut b.queue, entry, loc);
                Waiter::Unit(done, Ok(()))
            }
            Op::Update { entry, done } => {
                let r = self.locate(b, &entry.id).map(|loc| put(&mut b.queue, entry, loc));
                Waiter::Unit(done, r)
            }
            Op::Remove { id, done } => {
                let r = self.locate(b, &id).map(|loc| {
                    b.queue.remove(id.as_bytes());
                    self.spool.unref(loc);
                    b.staged.insert(id, None);
                });
                Waiter::Unit(done, r)
            }
            Op::Quarantine { rec, body, done } => {
                let loc = self.qspool.push(&rec.id, &body);
                b.qpushed.push((rec.id.clone(), loc));
                b.publish.push(rec.clone());
                qput(b, QStored { rec, loc: Some(loc) });
                Waiter::Unit(done, Ok(()))
            }
            Op::Change { id, to, actor, audit, done } => {
                Waiter::Changed(done, Box::new(self.change(b, &id, to, actor, audit)))
            }
            Op::Audit { entry, done } => {
                self.audit(b, &entry);
                Waiter::Unit(done, Ok(()))
            }
            Op::Allow { entry, remove, audit, done } => {
                let key = serde_json::to_vec(&entry).expect("allow entry serialises");
                match remove {
                    true => b.allow.remove(key),
                    false => b.allow.insert(key, &[][..]),
                }
                self.audit(b, &audit);
                Waiter::Unit(done, Ok(()))
            }
            Op::Meta { key, value, done } => {
                b.meta.insert(key.as_bytes(), value);
                Waiter::Unit(done, Ok(()))
            }
            Op::Release { done, .. } => {
                Waiter::Changed(done, Box::new(Err(StoreError::Index("release out of order".into()))))
            }
        }
    }

    fn change(
        &mut self,
        b: &mut Batch,
        id: &str,
        to: QStatus,
        actor: Actor,
        audit: AuditEntry,
    ) -> Result<Option<Changed>, StoreError> {
        let Some(old) = self.qlocate(b, id)? else { return Ok(None) };
        let Some(rec) = old.rec.changed_to(to, actor) else { return Ok(Some(Changed::Refused(old.rec))) };
        let mut new = old.clone();
        if !rec.has_body
            && let Some(loc) = new.loc.take()
        {
            self.qspool.unref(loc);
        }
        new.rec = rec;
        b.restore.push(old);
        b.changed.push(new.rec.clone());
        self.audit(b, &audit);
        let rec = new.rec.clone();
        qput(b, new);
        Ok(Some(Changed::Done(rec)))
    }

    fn audit(&self, b: &mut Batch, entry: &AuditEntry) {
        let seq = self.trees.db.generate_id().unwrap_or(0);
        b.audit.insert(&seq.to_be_bytes(), serde_json::to_vec(entry).expect("audit entry serialises"));
    }

    /// One durable point per batch. The spool bytes are written, then the
    /// index batches (sled syncs its log with sync_file_range, which does
    /// not flush the disk's write cache), then each spool's fdatasync, whose
    /// cache flush also makes the already written index durable. A crash
    /// before that sync can leave an index entry whose body is incomplete;
    /// no 250 was given for it, and the record's checksum marks it corrupt.
    fn commit(&mut self, b: &mut Batch) -> Result<(), StoreError> {
        self.spool.appender.write()?;
        self.qspool.appender.write()?;
        let t = &self.trees;
        for (tree, batch) in [
            (&t.queue, &mut b.queue),
            (&t.quarantine, &mut b.quarantine),
            (&t.audit, &mut b.audit),
            (&t.allow, &mut b.allow),
            (&t.meta, &mut b.meta),
        ] {
            tree.apply_batch(std::mem::take(batch)).map_err(index_err)?;
        }
        t.db.flush().map_err(index_err)?;
        let dirty = self.spool.appender.sync()? | self.qspool.appender.sync()?;
        if !dirty {
            // sled's flush is sync_file_range: no disk cache flush. A batch
            // without bodies (a delete, an expiry, an allow) gets one here.
            t.sync_index()?;
        }
        Ok(())
    }

    /// After a failed commit the waiters got an error, so what they wrote
    /// must not stay in the index (the client sends it again), and changed
    /// records go back to what they were.
    fn undo(&mut self, b: Batch) {
        for (id, _) in &b.pushed {
            let _ = self.trees.queue.remove(id.as_bytes());
        }
        for (id, _) in &b.qpushed {
            let _ = self.trees.quarantine.remove(id.as_bytes());
        }
        // Newest first, so a record changed twice ends at its first state.
        for old in b.restore.into_iter().rev() {
            let _ = self.trees.quarantine.insert(old.rec.id.as_bytes(), encode(&old));
        }
        let _ = self.trees.db.flush();
        self.spool.failed(&b.pushed.iter().map(|(_, l)| *l).collect::<Vec<_>>());
        self.qspool.failed(&b.qpushed.iter().map(|(_, l)| *l).collect::<Vec<_>>());
    }

    fn locate(&self, b: &Batch, id: &str) -> Result<Location, StoreError> {
        match b.staged.get(id) {
            Some(Some(loc)) => return Ok(*loc),
            Some(None) => return Err(StoreError::NotFound(id.to_string())),
            None => {}
        }
        match self.trees.queue.get(id).map_err(index_err)? {
            Some(v) => Ok(serde_json::from_slice::<Record>(&v).map_err(index_err)?.loc),
            None => Err(StoreError::NotFound(id.to_string())),
        }
    }

    fn qlocate(&self, b: &Batch, id: &str) -> Result<Option<QStored>, StoreError> {
        if let Some(s) = b.qstaged.get(id) {
            return Ok(Some(s.clone()));
        }
        super::qread(&self.trees.quarantine, id)
    }

    /// Held -> released and queued, atomically. The queued copy's bytes are
    /// synced before the index names them, so a crash leaves either the
    /// held record (release again) or both changes, never one without the
    /// other: delivery happens once.
    fn release(
        &mut self,
        id: &str,
        actor: Actor,
        audit: AuditEntry,
        make: ReleaseFn,
    ) -> Result<Option<Changed>, StoreError> {
        use sled::Transactional;
        let Some(old) = super::qread(&self.trees.quarantine, id)? else { return Ok(None) };
        let (QStatus::Held, Some(qloc)) = (old.rec.status, old.loc) else {
            return Ok(Some(Changed::Refused(old.rec)));
        };
        let body = self.qspool.read(id, qloc).map_err(|e| StoreError::Corrupt(id.into(), format!("{e:?}")))?;
        let (entry, mut full) = make(&old.rec);
        full.extend_from_slice(&body);
        drop(body);
        let mut entry = entry;
        entry.size = full.len() as u64;
        let loc = self.spool.push(&entry.id, &full);
        if let Err(e) = self.spool.appender.sync() {
            self.spool.failed(&[loc]);
            return Err(e.into());
        }
        let mut new = old;
        new.rec.status = QStatus::Released;
        new.rec.changed = Some(actor);
        let qid = entry.id.clone();
        let record = serde_json::to_vec(&Record { entry, loc }).expect("record serialises");
        let seq = self.trees.db.generate_id().map_err(index_err)?;
        let audit = serde_json::to_vec(&audit).expect("audit entry serialises");
        let t = &self.trees;
        let committed = (&t.queue, &t.quarantine, &t.audit)
            .transaction(|(q, qr, a)| {
                q.insert(qid.as_bytes(), record.as_slice())?;
                qr.insert(id.as_bytes(), encode(&new))?;
                a.insert(&seq.to_be_bytes(), audit.as_slice())?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| StoreError::Index(format!("{e:?}")));
        if let Err(e) = committed {
            self.spool.failed(&[loc]);
            return Err(e);
        }
        t.db.flush().map_err(index_err)?;
        // The release is acknowledged only once the index is on the disk,
        // past its write cache: otherwise a power cut could bring back
        // `held` for a message that is already queued and delivered.
        t.sync_index()?;
        self.index.write().unwrap().changed(&new.rec);
        Ok(Some(Changed::Done(new.rec)))
    }
}

fn settle<T>(commit: &Result<(), StoreError>, r: Result<T, StoreError>) -> Result<T, StoreError> {
    match commit {
        Err(StoreError::Io(e)) => Err(StoreError::Io(std::io::Error::new(e.kind(), e.to_string()))),
        Err(e) => Err(StoreError::Index(e.to_string())),
        Ok(()) => r,
    }
}

fn put(batch: &mut sled::Batch, entry: QueueEntry, loc: Location) {
    let key = entry.id.clone();
    let rec = Record { entry, loc };
    batch.insert(key.as_bytes(), serde_json::to_vec(&rec).expect("record serialises"));
}

fn qput(b: &mut Batch, s: QStored) {
    b.quarantine.insert(s.rec.id.as_bytes(), encode(&s));
    b.qstaged.insert(s.rec.id.clone(), s);
}

pub fn encode(s: &QStored) -> Vec<u8> {
    serde_json::to_vec(s).expect("quarantine record serialises")
}
