//! `Store` for the embedded backend: reads here, writes through the writer.

use super::qindex::Scan;
use super::writer::Op;

/// Rows one search examines per hold of the index lock.
const SEARCH_CHUNK: usize = 32 * 1024;
use super::{EmbeddedStore, Record, index_err, now, qread, read_body};
use crate::store::{
    Actor, AllowEntry, AuditEntry, BoxFut, Changed, QFilter, QPage, QRecord, QResults, QStatus, QueueEntry, ReleaseFn,
    Store, StoreError,
};

impl Store for EmbeddedStore {
    fn enqueue(&self, entry: QueueEntry, body: Vec<u8>) -> BoxFut<'_, Result<(), StoreError>> {
        self.send(|done| Op::Enqueue { entry, body, done })
    }

    fn body(&self, id: &str) -> BoxFut<'_, Result<Vec<u8>, StoreError>> {
        let id = id.to_string();
        Box::pin(async move {
            let rec = self.record(&id)?.ok_or_else(|| StoreError::NotFound(id.clone()))?;
            read_body(self.readers.clone(), id, rec.loc).await
        })
    }

    fn get(&self, id: &str) -> BoxFut<'_, Result<Option<QueueEntry>, StoreError>> {
        now(self.record(id).map(|r| r.map(|r| r.entry)))
    }

    fn list(&self) -> BoxFut<'_, Result<Vec<QueueEntry>, StoreError>> {
        let r = self
            .trees
            .queue
            .iter()
            .values()
            .map(|v| {
                let v = v.map_err(index_err)?;
                serde_json::from_slice::<Record>(&v).map(|r| r.entry).map_err(index_err)
            })
            .collect();
        now(r)
    }

    fn update(&self, entry: QueueEntry) -> BoxFut<'_, Result<(), StoreError>> {
        self.send(|done| Op::Update { entry, done })
    }

    fn remove(&self, id: &str) -> BoxFut<'_, Result<(), StoreError>> {
        let id = id.to_string();
        self.send(|done| Op::Remove { id, done })
    }

    fn quarantine(&self, rec: QRecord, body: Vec<u8>) -> BoxFut<'_, Result<(), StoreError>> {
        self.send(|done| Op::Quarantine { rec, body, done })
    }

    fn q_get(&self, id: &str) -> BoxFut<'_, Result<Option<QRecord>, StoreError>> {
        now(qread(&self.trees.quarantine, id).map(|s| s.map(|s| s.rec)))
    }

    fn q_body(&self, id: &str) -> BoxFut<'_, Result<Vec<u8>, StoreError>> {
        let id = id.to_string();
        Box::pin(async move {
            let stored = qread(&self.trees.quarantine, &id)?;
            let loc = stored.and_then(|s| s.loc).ok_or_else(|| StoreError::NotFound(id.clone()))?;
            read_body(self.qreaders.clone(), id, loc).await
        })
    }

    fn q_search(&self, filter: QFilter, page: QPage) -> BoxFut<'_, Result<QResults, StoreError>> {
        let index = self.index.clone();
        let tree = self.trees.quarantine.clone();
        Box::pin(async move {
            // A page over a large index can take milliseconds of CPU: off
            // the async workers.
            let found = tokio::task::spawn_blocking(move || {
                let mut scan = Scan::default();
                while index.read().unwrap().search_chunk(&filter, &page, &mut scan, SEARCH_CHUNK) {}
                let (ids, next) = scan.finish(&page);
                let items = ids.iter().filter_map(|id| qread(&tree, id).transpose()).map(|r| r.map(|s| s.rec));
                items.collect::<Result<Vec<_>, _>>().map(|items| QResults { items, next })
            });
            found.await.map_err(|e| StoreError::Io(std::io::Error::other(e)))?
        })
    }

    fn q_change(
        &self,
        id: &str,
        to: QStatus,
        actor: Actor,
        audit: AuditEntry,
    ) -> BoxFut<'_, Result<Option<Changed>, StoreError>> {
        let id = id.to_string();
        self.send(|done| Op::Change { id, to, actor, audit, done })
    }

    fn q_release(
        &self,
        id: &str,
        actor: Actor,
        audit: AuditEntry,
        make: ReleaseFn,
    ) -> BoxFut<'_, Result<Option<Changed>, StoreError>> {
        let id = id.to_string();
        self.send(|done| Op::Release { id, actor, audit, make, done })
    }

    fn q_expire(&self, at: u64, budget: usize) -> BoxFut<'_, Result<usize, StoreError>> {
        let due = self.index.read().unwrap().due(at, budget);
        Box::pin(async move {
            let changes = due.iter().map(|id| {
                let actor = Actor { by: "system".into(), at };
                let audit = AuditEntry {
                    at,
                    by: "system".into(),
                    action: "expire".into(),
                    id: id.clone(),
                    detail: "retention ended".into(),
                };
                self.q_change(id, QStatus::Expired, actor, audit)
            });
            let mut n = 0;
            for r in futures_util::future::join_all(changes).await {
                if let Some(Changed::Done(_)) = r? {
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    fn audit(&self, entry: AuditEntry) -> BoxFut<'_, Result<(), StoreError>> {
        self.send(|done| Op::Audit { entry, done })
    }

    fn audit_list(&self, limit: usize) -> BoxFut<'_, Result<Vec<AuditEntry>, StoreError>> {
        let r = self
            .trees
            .audit
            .iter()
            .rev()
            .take(limit)
            .map(|kv| serde_json::from_slice(&kv.map_err(index_err)?.1).map_err(index_err))
            .collect();
        now(r)
    }

    fn allow_set(&self, entry: AllowEntry, remove: bool, audit: AuditEntry) -> BoxFut<'_, Result<(), StoreError>> {
        self.send(|done| Op::Allow { entry, remove, audit, done })
    }

    fn allow_list(&self) -> BoxFut<'_, Result<Vec<AllowEntry>, StoreError>> {
        let r = self
            .trees
            .allow
            .iter()
            .keys()
            .map(|k| serde_json::from_slice(&k.map_err(index_err)?).map_err(index_err))
            .collect();
        now(r)
    }

    fn meta_get(&self, key: &str) -> BoxFut<'_, Result<Option<Vec<u8>>, StoreError>> {
        now(self.trees.meta.get(key).map(|v| v.map(|v| v.to_vec())).map_err(index_err))
    }

    fn meta_put(&self, key: &str, value: Vec<u8>) -> BoxFut<'_, Result<(), StoreError>> {
        let key = key.to_string();
        self.send(|done| Op::Meta { key, value, done })
    }

    fn free_space(&self) -> Option<u64> {
        crate::store::disk_free(self.readers.dir())
    }

    fn close(&self) -> BoxFut<'_, Result<(), StoreError>> {
        // Dropping the sender ends the writer after it drained what was sent.
        self.tx.lock().unwrap().take();
        let handle = self.writer.lock().unwrap().take();
        let db = self.trees.db.clone();
        Box::pin(async move {
            if let Some(h) = handle {
                let _ = tokio::task::spawn_blocking(move || h.join()).await;
            }
            db.flush_async().await.map_err(index_err)?;
            Ok(())
        })
    }
}
