//! The quarantine's search index, in memory: one compact row per record,
//! sorted by (received time, id), with interned addresses, domains and
//! symbol names. A filtered page walks rows newest first and stops when the
//! page is full, so its cost is bounded by the rows it has to skip; with
//! interned ids and lowercase text that is a few nanoseconds per row, which
//! keeps a page over a million records within tens of milliseconds. Sled
//! holds the records themselves; the index is rebuilt from it at startup.

use super::text::{TextColumn, TextMatch};
use crate::store::{QFilter, QPage, QRecord, QStatus};
use std::collections::{BTreeSet, HashMap};

/// Text kept per row for substring search; longer subjects are cut.
const MAX_TEXT: usize = 200;

#[derive(Default)]
struct Interner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        let s = s.to_lowercase();
        if let Some(&id) = self.ids.get(s.as_str()) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.clone().into());
        self.ids.insert(s.into(), id);
        id
    }

    fn find(&self, s: &str) -> Option<u32> {
        self.ids.get(s.to_lowercase().as_str()).copied()
    }
}

struct Row {
    at: u64,
    expires: u64,
    id: Box<str>,
    status: QStatus,
    sender: u32,
    rcpts: Box<[u32]>,
    /// Domains of the sender and the recipients.
    domains: Box<[u32]>,
    symbols: Box<[u32]>,
    /// Offsets in `QIndex::text`.
    subject: u32,
    reason: u32,
}

#[derive(Default)]
pub struct QIndex {
    rows: Vec<Row>,
    addrs: Interner,
    domains: Interner,
    symbols: Interner,
    text: TextColumn,
    /// (expires_at, received_at, id) of records that still have a body.
    expiring: BTreeSet<(u64, u64, Box<str>)>,
    /// Received time of each id, to find its row.
    at: HashMap<Box<str>, u64>,
}

fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map_or("", |(_, d)| d)
}

fn cut(s: &str) -> String {
    let lower = s.to_lowercase();
    crate::pipeline::message::head(&lower, MAX_TEXT).to_string()
}

impl QIndex {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Adds or replaces the row for `rec`.
    pub fn put(&mut self, rec: &QRecord) {
        self.remove(&rec.id);
        let row = self.row(rec);
        let pos = self.rows.partition_point(|r| (r.at, &*r.id) < (row.at, &*row.id));
        self.rows.insert(pos, row);
    }

    /// Builds the index from every stored record at once: rows are sorted
    /// once at the end rather than inserted in order one by one.
    pub fn load(recs: impl Iterator<Item = QRecord>) -> QIndex {
        let mut ix = QIndex::default();
        for rec in recs {
            let row = ix.row(&rec);
            ix.rows.push(row);
        }
        ix.rows.sort_unstable_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        ix
    }

    /// The compact row for `rec`, registered in the lookup maps.
    fn row(&mut self, rec: &QRecord) -> Row {
        let sender = self.addrs.intern(rec.sender.as_deref().unwrap_or("<>"));
        let rcpts: Box<[u32]> = rec.recipients.iter().map(|r| self.addrs.intern(r)).collect();
        let mut domains: Vec<u32> = std::iter::once(rec.sender.as_deref().unwrap_or(""))
            .chain(rec.recipients.iter().map(String::as_str))
            .map(domain_of)
            .filter(|d| !d.is_empty())
            .map(|d| self.domains.intern(d))
            .collect();
        domains.sort_unstable();
        domains.dedup();
        let symbols = rec.symbols.iter().map(|s| self.symbols.intern(&s.name)).collect();
        if rec.has_body {
            self.expiring.insert((rec.expires_at, rec.received_at, rec.id.as_str().into()));
        }
        self.at.insert(rec.id.as_str().into(), rec.received_at);
        Row {
            at: rec.received_at,
            expires: rec.expires_at,
            id: rec.id.as_str().into(),
            status: rec.status,
            sender,
            rcpts,
            domains: domains.into(),
            symbols,
            subject: self.text.push(&cut(&rec.subject)),
            reason: self.text.push(&cut(&rec.reason)),
        }
    }

    fn position(&self, id: &str) -> Option<usize> {
        let at = *self.at.get(id)?;
        let pos = self.rows.partition_point(|r| (r.at, &*r.id) < (at, id));
        (self.rows.get(pos)?.id.as_ref() == id).then_some(pos)
    }

    fn remove(&mut self, id: &str) {
        if let Some(pos) = self.position(id) {
            let row = self.rows.remove(pos);
            self.at.remove(id);
            self.expiring.remove(&(row.expires, row.at, row.id));
        }
    }

    /// Updates a row after a status change; `has_body` false drops it from
    /// the expiry order.
    pub fn changed(&mut self, rec: &QRecord) {
        if let Some(pos) = self.position(&rec.id) {
            self.rows[pos].status = rec.status;
        }
        if !rec.has_body {
            self.expiring.remove(&(rec.expires_at, rec.received_at, rec.id.as_str().into()));
        }
    }

    /// Ids of records whose retention ended by `now`, oldest first.
    pub fn due(&self, now: u64, budget: usize) -> Vec<String> {
        self.expiring
            .iter()
            .take_while(|(exp, _, _)| *exp <= now)
            .take(budget)
            .map(|(_, _, id)| id.to_string())
            .collect()
    }

    /// The ids of one page and the cursor for the next, in one go.
    #[cfg(test)]
    pub fn search(&self, f: &QFilter, page: &QPage) -> (Vec<String>, Option<String>) {
        let mut scan = Scan::default();
        while self.search_chunk(f, page, &mut scan, usize::MAX) {}
        scan.finish(page)
    }

    /// Examines at most `budget` rows of a search, continuing where `scan`
    /// stopped; true while there is more to examine. The caller releases
    /// the index lock between chunks, so a search that skips a million rows
    /// never holds up the writer (and the SMTP 250s waiting on it) for
    /// longer than one chunk. Resuming by key stays right when rows were
    /// inserted in between.
    pub fn search_chunk(&self, f: &QFilter, page: &QPage, scan: &mut Scan, budget: usize) -> bool {
        let mut text = std::mem::take(&mut scan.text);
        let more = self.chunk(f, page, scan, &mut text, budget);
        scan.text = text;
        more
    }

    fn chunk(&self, f: &QFilter, page: &QPage, scan: &mut Scan, text: &mut TextFound, budget: usize) -> bool {
        let Some(m) = Matcher::new(self, f, text) else { return false };
        let lo = f.since.map_or(0, |s| self.rows.partition_point(|r| r.at < s));
        let hi = f.until.map_or(self.rows.len(), |u| self.rows.partition_point(|r| r.at < u));
        let (mut lo, mut hi) = (lo, hi.max(lo));
        if let Some((pos, exact)) = page.after.as_deref().and_then(|c| self.cursor(c)) {
            match page.oldest_first {
                true => lo = lo.max(pos + usize::from(exact)),
                false => hi = hi.min(pos),
            }
        }
        if let Some((at, id)) = &scan.last {
            let key = (*at, id.as_ref());
            match page.oldest_first {
                true => lo = lo.max(self.rows.partition_point(|r| (r.at, &*r.id) <= key)),
                false => hi = hi.min(self.rows.partition_point(|r| (r.at, &*r.id) < key)),
            }
        }
        let want = page.limit.max(1) + 1;
        let rows = &self.rows[lo..hi.max(lo)];
        let mut order: Box<dyn Iterator<Item = &Row>> = match page.oldest_first {
            true => Box::new(rows.iter()),
            false => Box::new(rows.iter().rev()),
        };
        let mut last = None;
        let mut full = false;
        for r in order.by_ref().take(budget) {
            last = Some(r);
            if m.matches(r) {
                scan.hits.push((r.at, r.id.to_string()));
                if scan.hits.len() >= want {
                    full = true;
                    break;
                }
            }
        }
        // Only the chunk's last row is remembered: a copy per row would
        // cost more than the row's test.
        if let Some(r) = last {
            scan.last = Some((r.at, r.id.clone()));
        }
        !full && order.next().is_some()
    }
    /// A cursor is `received_at:id` of the last row of the previous page;
    /// returns where that row is (or would be, if it is gone) and whether
    /// it is there.
    fn cursor(&self, c: &str) -> Option<(usize, bool)> {
        let (at, id) = c.split_once(':')?;
        let at: u64 = at.parse().ok()?;
        let pos = self.rows.partition_point(|r| (r.at, &*r.id) < (at, id));
        Some((pos, self.rows.get(pos).is_some_and(|r| &*r.id == id)))
    }
}

/// A search in progress: the hits so far and the last row examined.
#[derive(Default)]
pub struct Scan {
    hits: Vec<(u64, String)>,
    last: Option<(u64, Box<str>)>,
    text: TextFound,
}

impl Scan {
    /// The page's ids and, when there is more, the cursor for the next page.
    pub fn finish(mut self, page: &QPage) -> (Vec<String>, Option<String>) {
        let want = page.limit.max(1);
        let next = (self.hits.len() > want).then(|| format!("{}:{}", self.hits[want - 1].0, self.hits[want - 1].1));
        self.hits.truncate(want);
        (self.hits.into_iter().map(|(_, id)| id).collect(), next)
    }
}

/// A filter resolved against the interners once per chunk; the text
/// matches (one memmem pass each) once per search, kept in the `Scan`.
struct Matcher<'a> {
    f: &'a QFilter,
    sender: Option<u32>,
    rcpt: Option<u32>,
    domain: Option<u32>,
    symbols: Option<Vec<u32>>,
    subject: Option<&'a TextMatch>,
    reason: Option<&'a TextMatch>,
    text: &'a TextColumn,
}

/// The text parts of a filter, found once.
#[derive(Default)]
pub struct TextFound {
    subject: Option<TextMatch>,
    reason: Option<TextMatch>,
    done: bool,
}

impl<'a> Matcher<'a> {
    /// `None` when a required value was never seen: nothing can match.
    fn new(ix: &'a QIndex, f: &'a QFilter, found: &'a mut TextFound) -> Option<Matcher<'a>> {
        let exact = |i: &Interner, v: &Option<String>| match v {
            Some(v) => i.find(v).map(Some),
            None => Some(None),
        };
        let symbols = match f.symbol.as_deref() {
            None => None,
            Some(s) => {
                let s = s.to_lowercase();
                let ids: Vec<u32> = match s.strip_suffix('*') {
                    Some(prefix) => (0..ix.symbols.names.len() as u32)
                        .filter(|&i| ix.symbols.names[i as usize].starts_with(prefix))
                        .collect(),
                    None => ix.symbols.find(&s).into_iter().collect(),
                };
                if ids.is_empty() {
                    return None;
                }
                Some(ids)
            }
        };
        if !found.done {
            found.subject = f.subject.as_ref().map(|t| ix.text.find(&t.to_lowercase()));
            found.reason = f.reason.as_ref().map(|t| ix.text.find(&t.to_lowercase()));
            found.done = true;
        }
        Some(Matcher {
            f,
            sender: exact(&ix.addrs, &f.sender)?,
            rcpt: exact(&ix.addrs, &f.recipient)?,
            domain: exact(&ix.domains, &f.domain)?,
            symbols,
            subject: found.subject.as_ref(),
            reason: found.reason.as_ref(),
            text: &ix.text,
        })
    }

    fn matches(&self, r: &Row) -> bool {
        self.f.status.is_none_or(|s| s == r.status)
            && self.sender.is_none_or(|s| s == r.sender)
            && self.rcpt.is_none_or(|s| r.rcpts.contains(&s))
            && self.domain.is_none_or(|d| r.domains.contains(&d))
            && self.symbols.as_ref().is_none_or(|want| r.symbols.iter().any(|s| want.contains(s)))
            && self.subject.is_none_or(|m| self.text.matches(m, r.subject))
            && self.reason.is_none_or(|m| self.text.matches(m, r.reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::sample_record;

    #[test]
    fn a_search_in_chunks_finds_what_one_pass_finds_even_with_inserts_between() {
        let mut ix = QIndex::load((0..50).map(|i| sample_record(&format!("r{i:02}"), 1000 + i)));
        for oldest_first in [false, true] {
            let page = QPage { limit: 7, after: None, oldest_first };
            let whole = ix.search(&QFilter::default(), &page);
            let mut scan = Scan::default();
            let mut n = 0;
            while ix.search_chunk(&QFilter::default(), &page, &mut scan, 1) {
                // Rows inserted elsewhere while the lock was released.
                ix.put(&sample_record(&format!("x{oldest_first}{n}"), 1020));
                n += 1;
            }
            assert_eq!(scan.finish(&page), whole, "oldest_first {oldest_first}");
        }
    }
}
