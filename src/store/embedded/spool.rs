//! A series of spool segments with a count of live bodies per segment, so
//! emptied segments are deleted. The queue and the quarantine each have
//! one: quarantined bodies live for weeks and must not pin the segments of
//! mail that was delivered in seconds.

use crate::store::segment::{self, Appender, Location, ReadFail, Readers};
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Size past which an emptied current segment is replaced at once.
const EARLY_ROLL: u64 = 1024 * 1024;

pub struct Spool {
    pub appender: Appender,
    pub readers: Arc<Readers>,
    live: HashMap<u64, usize>,
    /// Bodies the batch being built stops referencing; counted once it commits.
    unrefs: Vec<Location>,
}

impl Spool {
    /// Opens the spool in `dir`, where `live` counts the bodies the index
    /// points at per segment; segments nothing points at are deleted.
    /// Returns the spool and the newest segment of the previous run.
    pub fn open(dir: &Path, live: HashMap<u64, usize>) -> io::Result<(Spool, Option<u64>)> {
        std::fs::create_dir_all(dir)?;
        let present = segment::existing(dir)?;
        // Segments no record points at hold only finished or torn messages.
        for n in &present {
            if !live.contains_key(n) {
                std::fs::remove_file(segment::segment_path(dir, *n))?;
            }
        }
        let next = present.last().map_or(1, |n| n + 1);
        let appender = Appender::create(dir, next)?;
        let readers = Arc::new(Readers::new(dir));
        Ok((Spool { appender, readers, live, unrefs: Vec::new() }, present.last().copied()))
    }

    pub fn push(&mut self, id: &str, body: &[u8]) -> Location {
        let loc = self.appender.push(id, body);
        *self.live.entry(loc.segment).or_default() += 1;
        loc
    }

    /// A body is no longer referenced once the batch commits.
    pub fn unref(&mut self, loc: Location) {
        self.unrefs.push(loc);
    }

    /// Forgets a torn record found at startup.
    pub fn forget(&mut self, loc: Location) {
        if let Some(n) = self.live.get_mut(&loc.segment) {
            *n = n.saturating_sub(1);
        }
    }

    pub fn read(&self, id: &str, loc: Location) -> Result<Vec<u8>, ReadFail> {
        self.readers.read(id, loc)
    }

    /// After a successful commit: deletes segments that emptied, rolls a
    /// full one, and gives up an emptied current segment early so its space
    /// comes back without waiting for it to fill (this frees a full disk
    /// once the queue drains).
    pub fn committed(&mut self) {
        let mut emptied = Vec::new();
        for loc in std::mem::take(&mut self.unrefs) {
            let n = self.live.entry(loc.segment).or_default();
            *n = n.saturating_sub(1);
            if *n == 0 {
                emptied.push(loc.segment);
            }
        }
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
        let current = self.appender.number;
        if self.appender.len() > EARLY_ROLL && self.live.get(&current).copied().unwrap_or(0) == 0 {
            match self.appender.replace() {
                Ok(()) => self.remove_segment(current),
                Err(e) => tracing::warn!(error = %e, "cannot start a new spool segment"),
            }
        }
    }

    /// After a failed commit: the bodies pushed in it are not referenced,
    /// and the segment's tail is unknown, so writing continues in a new one.
    pub fn failed(&mut self, pushed: &[Location]) {
        self.unrefs.clear();
        for loc in pushed {
            self.forget(*loc);
        }
        let old = self.appender.number;
        match self.appender.replace() {
            Ok(()) if self.live.get(&old).copied().unwrap_or(0) == 0 => self.remove_segment(old),
            Ok(()) => {}
            Err(e) => tracing::error!(error = %e, "cannot start a new spool segment"),
        }
    }

    fn remove_segment(&mut self, n: u64) {
        self.live.remove(&n);
        self.readers.forget(n);
        let path = segment::segment_path(self.readers.dir(), n);
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(segment = n, error = %e, "could not remove an emptied spool segment");
        }
    }
}
