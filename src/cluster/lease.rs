//! Delivery claims across gateways. Every queued message's cell names the
//! gateway that delivers it (`Cell::owner`); every gateway writes a
//! heartbeat cell every third of `[cluster] lease`, and that heartbeat is
//! its lease on all the mail it owns. When a gateway's heartbeat is older
//! than the lease, any other gateway may claim its messages by writing
//! itself as owner; the merge order (newest version wins) settles two
//! claimants, and the loser sees the winner when it checks the claim
//! again just before delivering. A gateway that dies mid-delivery has its
//! message delivered again by the next owner: at least once, with the
//! duplicates counted in `taken_over`.

use super::core::cell::{Cond, kind};
use super::store::{ClusterStore, key};
use crate::store::StoreError;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl ClusterStore {
    pub fn start(cluster: Arc<super::gateway::Cluster>) -> ClusterStore {
        tokio::spawn(heartbeat(cluster.clone()));
        ClusterStore { cluster, mine: Default::default() }
    }

    /// True when `owner`'s heartbeat is younger than the lease.
    async fn alive(&self, owner: &str) -> Result<bool, StoreError> {
        let Some((beat, _)) = self.cluster.get(&key(kind::GATEWAY, owner), false).await? else { return Ok(false) };
        let age = self.cluster.version().saturating_sub(beat.ver);
        Ok(age < self.cluster.lease.as_micros() as u64)
    }

    /// Takes message `id` for this gateway; the cell as written.
    async fn take(&self, id: &str, mut cell: super::core::cell::Cell) -> Result<(), StoreError> {
        cell.owner = self.cluster.name.clone();
        cell.ver = self.cluster.version();
        self.cluster.put(key(kind::QUEUE, id), cell, Cond::Merge, None).await?;
        self.cluster.taken_over.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(super) async fn claim_entry(&self, id: String) -> Result<bool, StoreError> {
        // Written or claimed here, and this gateway's lease is kept alive
        // by its heartbeat: nobody else may take it.
        if self.cluster.lease_fresh() && self.mine.lock().unwrap().contains(&id) {
            return Ok(true);
        }
        let k = key(kind::QUEUE, &id);
        let Some((cell, _)) = self.cluster.get(&k, false).await? else { return Ok(false) };
        if cell.dead {
            return Ok(false);
        }
        if cell.owner == self.cluster.name {
            self.mine.lock().unwrap().insert(id);
            return Ok(true);
        }
        if self.alive(&cell.owner).await? {
            return Ok(false);
        }
        let from = cell.owner.clone();
        self.take(&id, cell).await?;
        // Another gateway may have claimed it at the same moment: the
        // merged copy names the one winner.
        let now = self.cluster.get(&k, false).await?;
        let won = now.is_some_and(|(c, _)| !c.dead && c.owner == self.cluster.name);
        if won {
            tracing::warn!(queue_id = %id, from = %from, "took over a message from a silent gateway");
            self.mine.lock().unwrap().insert(id);
        }
        Ok(won)
    }

    pub(super) async fn take_over(&self) -> Result<Vec<String>, StoreError> {
        let req = super::wire::Request::Scan {
            prefix: vec![kind::QUEUE],
            after: Vec::new(),
            limit: u32::MAX,
            reverse: false,
        };
        let cells = self.cluster.gather(req).await?;
        let mut alive: HashMap<String, bool> = HashMap::new();
        let mut taken = Vec::new();
        for (k, cell) in cells {
            if cell.dead || cell.owner == self.cluster.name {
                continue;
            }
            let owner_alive = match alive.get(&cell.owner) {
                Some(a) => *a,
                None => {
                    let a = self.alive(&cell.owner).await?;
                    alive.insert(cell.owner.clone(), a);
                    a
                }
            };
            if !owner_alive {
                let id = String::from_utf8_lossy(&k[1..]).into_owned();
                tracing::warn!(queue_id = %id, from = %cell.owner, "taking over a message from a silent gateway");
                self.take(&id, cell).await?;
                taken.push(id);
            }
        }
        Ok(taken)
    }
}

async fn heartbeat(cluster: Arc<super::gateway::Cluster>) {
    let every = (cluster.lease / 3).max(Duration::from_millis(200));
    loop {
        let cell = super::core::cell::Cell {
            ver: cluster.version(),
            rank: 0,
            dead: false,
            owner: cluster.name.clone(),
            has_body: false,
            data: Vec::new(),
        };
        match cluster.put(key(kind::GATEWAY, &cluster.name), cell, Cond::Merge, None).await {
            Ok(_) => cluster.beat(),
            Err(e) => tracing::warn!(error = %e, "cannot renew this gateway's lease"),
        }
        tokio::time::sleep(every).await;
    }
}
