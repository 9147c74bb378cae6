//! The `Store` a gateway uses with `[cluster]`: every record is a cell
//! (`core::cell`) written to `write_quorum` nodes. Queue entries carry the
//! gateway that delivers them (`Cell::owner`); a gateway's heartbeat cell
//! is its lease on them (`takeover`).

use super::core::cell::{Applied, Cell, Cond, kind};
use super::gateway::Cluster;
use super::wire::{Release, Request};
use crate::store::{
    Actor, AllowEntry, AuditEntry, BoxFut, Changed, QFilter, QPage, QRecord, QResults, QStatus, QueueEntry, ReleaseFn,
    Store, StoreError,
};
use std::sync::Arc;

pub struct ClusterStore {
    pub cluster: Arc<Cluster>,
    /// Queued messages this gateway wrote or claimed itself and still
    /// holds: their claim needs no read before each delivery attempt.
    pub(super) mine: std::sync::Mutex<std::collections::HashSet<String>>,
}

pub(crate) fn key(kind: u8, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(kind);
    k.extend_from_slice(id.as_bytes());
    k
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialise")
}

fn parse<T: serde::de::DeserializeOwned>(c: &Cell) -> Result<T, StoreError> {
    serde_json::from_slice(&c.data).map_err(|e| StoreError::Index(format!("unreadable record: {e}")))
}

/// The quarantine lattice as a rank: a change is kept only over a lower
/// rank, so no status ever moves back (see `core::cell`).
pub fn rank(r: &QRecord) -> u8 {
    match (r.status, r.has_body) {
        (QStatus::Held, _) => 0,
        (QStatus::Released, true) => 1,
        (QStatus::Released, false) | (QStatus::Expired, _) => 2,
        (QStatus::Deleted, _) => 3,
    }
}

impl ClusterStore {
    fn cell(&self, rank: u8, has_body: bool, data: Vec<u8>) -> Cell {
        Cell { ver: self.cluster.version(), rank, dead: false, owner: self.cluster.name.clone(), has_body, data }
    }

    async fn live(&self, key: &[u8], body: bool) -> Result<Option<(Cell, Option<Vec<u8>>)>, StoreError> {
        Ok(self.cluster.get(key, body).await?.filter(|(c, _)| !c.dead))
    }

    async fn record(&self, id: &str) -> Result<Option<QRecord>, StoreError> {
        match self.live(&key(kind::QUARANTINE, id), false).await? {
            Some((c, _)) => Ok(Some(parse(&c)?)),
            None => Ok(None),
        }
    }

    /// A status change that must not go backwards: applied by the owners
    /// only over a lower rank. Done when every acknowledging owner took it.
    async fn advance(&self, rec: &QRecord) -> Result<bool, StoreError> {
        let cell = self.cell(rank(rec), rec.has_body, json(rec));
        let applied = self.cluster.put(key(kind::QUARANTINE, &rec.id), cell, Cond::Advance, None).await?;
        Ok(applied.iter().all(|a| *a == Applied::Taken))
    }

    async fn scan(&self, prefix: u8, limit: u32, reverse: bool) -> Result<Vec<(Vec<u8>, Cell)>, StoreError> {
        let req = Request::Scan { prefix: vec![prefix], after: Vec::new(), limit, reverse };
        let mut cells = self.cluster.gather(req).await?;
        cells.retain(|(_, c)| !c.dead);
        Ok(cells)
    }

    async fn change(
        &self,
        id: String,
        to: QStatus,
        actor: Actor,
        audit: AuditEntry,
    ) -> Result<Option<Changed>, StoreError> {
        let Some(old) = self.record(&id).await? else { return Ok(None) };
        let Some(new) = old.changed_to(to, actor) else { return Ok(Some(Changed::Refused(old))) };
        if !self.advance(&new).await? {
            let now = self.record(&id).await?.unwrap_or(old);
            return Ok(Some(Changed::Refused(now)));
        }
        self.audit_entry(audit).await?;
        Ok(Some(Changed::Done(new)))
    }

    async fn release(
        &self,
        id: String,
        actor: Actor,
        audit: AuditEntry,
        make: ReleaseFn,
    ) -> Result<Option<Changed>, StoreError> {
        let qkey = key(kind::QUARANTINE, &id);
        let Some((cell, held)) = self.live(&qkey, true).await? else { return Ok(None) };
        let old: QRecord = parse(&cell)?;
        let (QStatus::Held, Some(held)) = (old.status, held) else { return Ok(Some(Changed::Refused(old))) };
        let mut new = old.clone();
        new.status = QStatus::Released;
        new.changed = Some(actor);
        let (mut entry, mut body) = make(&new);
        body.extend_from_slice(&held);
        entry.size = body.len() as u64;
        let qcell = self.cell(rank(&new), true, json(&new));
        let ecell = self.cell(0, true, json(&entry));
        let nodes = self.cluster.nodes.clone();
        let make = |s: super::core::write::Send| {
            Request::Release(Release {
                qkey: qkey.clone(),
                qcell: qcell.clone(),
                cond: Cond::Advance,
                hint_for: s.hint_for.map(|o| nodes[o].clone()),
                key: key(kind::QUEUE, &entry.id),
                entry: ecell.clone(),
                body: body.clone(),
            })
        };
        let applied = self.cluster.write(&qkey, true, make).await?;
        if !applied.iter().all(|a| *a == Applied::Taken) {
            let now = self.record(&id).await?.unwrap_or(old);
            return Ok(Some(Changed::Refused(now)));
        }
        self.audit_entry(audit).await?;
        Ok(Some(Changed::Done(new)))
    }

    /// A write that failed may still have reached some nodes; the sender
    /// was told 451 and will send again, so that copy must not be
    /// delivered (or listed) later. A tombstone goes wherever it can.
    async fn undo(&self, k: Vec<u8>, e: StoreError) -> StoreError {
        let cell = Cell { dead: true, ..self.cell(u8::MAX, false, Vec::new()) };
        if let Err(again) = self.cluster.put(k.clone(), cell, Cond::Merge, None).await {
            tracing::warn!(key = %String::from_utf8_lossy(&k), error = %again, "could not withdraw a partial write");
        }
        e
    }

    async fn audit_entry(&self, entry: AuditEntry) -> Result<(), StoreError> {
        // Time first, so a reverse scan lists the newest first.
        let id = format!("{:020}{}", self.cluster.version(), self.cluster.name);
        let cell = self.cell(0, false, json(&entry));
        self.cluster.put(key(kind::AUDIT, &id), cell, Cond::Merge, None).await.map(|_| ())
    }

    async fn search(&self, filter: QFilter, page: QPage) -> Result<QResults, StoreError> {
        // One more than a page from each node tells whether a next page exists.
        let ask = QPage { limit: page.limit.max(1) + 1, ..page.clone() };
        let q = serde_json::to_vec(&(&filter, &ask)).expect("search serialises");
        let cells = self.cluster.gather(Request::Search(q)).await?;
        let mut recs: Vec<QRecord> = cells.iter().filter_map(|(_, c)| parse::<QRecord>(c).ok()).collect();
        // A node that missed a status change may list a record the filter
        // no longer matches; the merged copy decides.
        recs.retain(|r| filter.status.is_none_or(|s| s == r.status));
        recs.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
        if !page.oldest_first {
            recs.reverse();
        }
        let want = page.limit.max(1);
        let next = (recs.len() > want).then(|| format!("{}:{}", recs[want - 1].received_at, recs[want - 1].id));
        recs.truncate(want);
        Ok(QResults { items: recs, next })
    }
}

impl Store for ClusterStore {
    fn enqueue(&self, entry: QueueEntry, body: Vec<u8>) -> BoxFut<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let (k, cell) = (key(kind::QUEUE, &entry.id), self.cell(0, true, json(&entry)));
            match self.cluster.put(k.clone(), cell, Cond::Merge, Some(body)).await {
                Ok(_) => {
                    self.mine.lock().unwrap().insert(entry.id);
                    Ok(())
                }
                Err(e) => Err(self.undo(k, e).await),
            }
        })
    }

    fn body(&self, id: &str) -> BoxFut<'_, Result<Vec<u8>, StoreError>> {
        let id = id.to_string();
        Box::pin(async move {
            match self.live(&key(kind::QUEUE, &id), true).await? {
                Some((_, Some(b))) => Ok(b),
                _ => Err(StoreError::NotFound(id)),
            }
        })
    }

    fn get(&self, id: &str) -> BoxFut<'_, Result<Option<QueueEntry>, StoreError>> {
        let id = id.to_string();
        Box::pin(async move {
            match self.live(&key(kind::QUEUE, &id), false).await? {
                Some((c, _)) => Ok(Some(parse(&c)?)),
                None => Ok(None),
            }
        })
    }

    fn list(&self) -> BoxFut<'_, Result<Vec<QueueEntry>, StoreError>> {
        Box::pin(async move {
            let cells = self.scan(kind::QUEUE, u32::MAX, false).await?;
            cells.iter().map(|(_, c)| parse(c)).collect()
        })
    }

    fn update(&self, entry: QueueEntry) -> BoxFut<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let k = key(kind::QUEUE, &entry.id);
            if self.live(&k, false).await?.is_none() {
                return Err(StoreError::NotFound(entry.id));
            }
            let cell = self.cell(0, true, json(&entry));
            self.cluster.put(k, cell, Cond::Merge, None).await.map(|_| ())
        })
    }

    fn remove(&self, id: &str) -> BoxFut<'_, Result<(), StoreError>> {
        let id = id.to_string();
        Box::pin(async move {
            let k = key(kind::QUEUE, &id);
            if self.live(&k, false).await?.is_none() {
                return Err(StoreError::NotFound(id));
            }
            // A tombstone: it beats every copy, so the entry never returns.
            self.mine.lock().unwrap().remove(&id);
            let cell = Cell { dead: true, ..self.cell(0, false, Vec::new()) };
            self.cluster.put(k, cell, Cond::Merge, None).await.map(|_| ())
        })
    }

    fn quarantine(&self, rec: QRecord, body: Vec<u8>) -> BoxFut<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let (k, cell) = (key(kind::QUARANTINE, &rec.id), self.cell(rank(&rec), true, json(&rec)));
            match self.cluster.put(k.clone(), cell, Cond::Merge, Some(body)).await {
                Ok(_) => Ok(()),
                Err(e) => Err(self.undo(k, e).await),
            }
        })
    }

    fn q_get(&self, id: &str) -> BoxFut<'_, Result<Option<QRecord>, StoreError>> {
        let id = id.to_string();
        Box::pin(async move { self.record(&id).await })
    }

    fn q_body(&self, id: &str) -> BoxFut<'_, Result<Vec<u8>, StoreError>> {
        let id = id.to_string();
        Box::pin(async move {
            match self.live(&key(kind::QUARANTINE, &id), true).await? {
                Some((c, Some(b))) if c.has_body => Ok(b),
                _ => Err(StoreError::NotFound(id)),
            }
        })
    }

    fn q_search(&self, filter: QFilter, page: QPage) -> BoxFut<'_, Result<QResults, StoreError>> {
        Box::pin(self.search(filter, page))
    }

    fn q_change(
        &self,
        id: &str,
        to: QStatus,
        actor: Actor,
        audit: AuditEntry,
    ) -> BoxFut<'_, Result<Option<Changed>, StoreError>> {
        Box::pin(self.change(id.to_string(), to, actor, audit))
    }

    fn q_release(
        &self,
        id: &str,
        actor: Actor,
        audit: AuditEntry,
        make: ReleaseFn,
    ) -> BoxFut<'_, Result<Option<Changed>, StoreError>> {
        Box::pin(self.release(id.to_string(), actor, audit, make))
    }

    fn q_expire(&self, now: u64, budget: usize) -> BoxFut<'_, Result<usize, StoreError>> {
        Box::pin(async move {
            let due = self.cluster.gather(Request::Due { now, budget: budget as u32 }).await?;
            // Each node lists its oldest `budget`; the merged oldest are due.
            let mut recs: Vec<QRecord> = due.iter().filter_map(|(_, c)| parse::<QRecord>(c).ok()).collect();
            recs.retain(|r| r.has_body && r.expires_at <= now);
            recs.sort_by(|a, b| (a.expires_at, a.received_at, &a.id).cmp(&(b.expires_at, b.received_at, &b.id)));
            recs.truncate(budget);
            let mut n = 0;
            for rec in recs {
                let actor = Actor { by: "system".into(), at: now };
                let detail = "retention ended".into();
                let audit =
                    AuditEntry { at: now, by: "system".into(), action: "expire".into(), id: rec.id.clone(), detail };
                if let Some(Changed::Done(_)) = self.change(rec.id, QStatus::Expired, actor, audit).await? {
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    fn audit(&self, entry: AuditEntry) -> BoxFut<'_, Result<(), StoreError>> {
        Box::pin(self.audit_entry(entry))
    }

    fn audit_list(&self, limit: usize) -> BoxFut<'_, Result<Vec<AuditEntry>, StoreError>> {
        Box::pin(async move {
            let mut cells = self.scan(kind::AUDIT, limit as u32, true).await?;
            cells.sort_by(|a, b| b.0.cmp(&a.0));
            cells.truncate(limit);
            cells.iter().map(|(_, c)| parse(c)).collect()
        })
    }

    fn allow_set(&self, entry: AllowEntry, remove: bool, audit: AuditEntry) -> BoxFut<'_, Result<(), StoreError>> {
        Box::pin(async move {
            // Added and removed entries are versions of one cell (the last
            // change wins), so an entry can be added again after removal.
            let k = key(kind::ALLOW, &format!("{}\0{}", entry.sender, entry.scope));
            let data = if remove { Vec::new() } else { json(&entry) };
            self.cluster.put(k, self.cell(0, false, data), Cond::Merge, None).await?;
            self.audit_entry(audit).await
        })
    }

    fn allow_list(&self) -> BoxFut<'_, Result<Vec<AllowEntry>, StoreError>> {
        Box::pin(async move {
            let cells = self.scan(kind::ALLOW, u32::MAX, false).await?;
            let mut out: Vec<AllowEntry> =
                cells.iter().filter(|(_, c)| !c.data.is_empty()).filter_map(|(_, c)| parse(c).ok()).collect();
            out.sort();
            Ok(out)
        })
    }

    fn meta_get(&self, name: &str) -> BoxFut<'_, Result<Option<Vec<u8>>, StoreError>> {
        let k = key(kind::META, name);
        Box::pin(async move { Ok(self.live(&k, false).await?.map(|(c, _)| c.data)) })
    }

    fn meta_put(&self, name: &str, value: Vec<u8>) -> BoxFut<'_, Result<(), StoreError>> {
        let k = key(kind::META, name);
        Box::pin(async move { self.cluster.put(k, self.cell(0, false, value), Cond::Merge, None).await.map(|_| ()) })
    }

    fn claim(&self, id: &str) -> BoxFut<'_, Result<bool, StoreError>> {
        let id = id.to_string();
        Box::pin(self.claim_entry(id))
    }

    fn takeover(&self) -> BoxFut<'_, Result<Vec<String>, StoreError>> {
        Box::pin(self.take_over())
    }

    fn close(&self) -> BoxFut<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}
