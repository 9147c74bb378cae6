//! Spool segments: append-only files holding message bodies. Many bodies are
//! appended and made durable with one fdatasync (group commit). A record is
//! `magic, id length, id, body length, crc32, body`. The checksum tells a
//! record torn by a crash (see `EmbeddedStore::open`) from a whole one.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const MAGIC: &[u8; 4] = b"MXG1";
/// A segment is closed for appends past this size.
pub const SEGMENT_SIZE: u64 = 64 * 1024 * 1024;

/// Where a body lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
}

pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:010}.seg"))
}

/// Numbers of the segment files present in `dir`.
pub fn existing(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The segment being appended to; owned by the writer thread.
pub struct Appender {
    dir: PathBuf,
    pub number: u64,
    file: File,
    len: u64,
    buf: Vec<u8>,
    unsynced: bool,
}

impl Appender {
    pub fn create(dir: &Path, number: u64) -> io::Result<Appender> {
        let file = OpenOptions::new().create_new(true).append(true).open(segment_path(dir, number))?;
        // The new directory entry must survive a crash too.
        File::open(dir)?.sync_all()?;
        Ok(Appender { dir: dir.to_owned(), number, file, len: 0, buf: Vec::new(), unsynced: false })
    }

    /// Buffers one record; `write` and `sync` take it to the file and the disk.
    pub fn push(&mut self, id: &str, body: &[u8]) -> Location {
        self.buf.extend_from_slice(MAGIC);
        self.buf.extend_from_slice(&(id.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(id.as_bytes());
        self.buf.extend_from_slice(&(body.len() as u64).to_le_bytes());
        self.buf.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        let offset = self.len + self.buf.len() as u64;
        self.buf.extend_from_slice(body);
        Location { segment: self.number, offset, len: body.len() as u64 }
    }

    /// Writes the buffered records to the file (not yet durable).
    /// On failure (disk full) the buffered records are dropped, and the
    /// length is taken from the file, so later offsets stay right even when
    /// part of the failed write landed.
    pub fn write(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all(&self.buf);
        self.unsynced = true;
        let n = self.buf.len() as u64;
        self.buf.clear();
        if self.buf.capacity() > 4 * 1024 * 1024 {
            self.buf.shrink_to(1024 * 1024);
        }
        match written {
            Ok(()) => {
                self.len += n;
                Ok(())
            }
            Err(e) => {
                self.len = self.file.metadata().map_or(self.len + n, |m| m.len());
                Err(e)
            }
        }
    }

    /// Makes everything written so far durable; true when it had to sync.
    pub fn sync(&mut self) -> io::Result<bool> {
        self.write()?;
        if !self.unsynced {
            return Ok(false);
        }
        self.file.sync_data()?;
        self.unsynced = false;
        Ok(true)
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Abandons this segment after a failed write or sync (its tail is in
    /// an unknown state) and continues in a new one.
    pub fn replace(&mut self) -> io::Result<()> {
        *self = Appender::create(&self.dir, self.number + 1)?;
        Ok(())
    }

    /// Starts the next segment once this one is full; returns the closed one.
    pub fn roll_if_full(&mut self) -> io::Result<Option<u64>> {
        if self.len < SEGMENT_SIZE {
            return Ok(None);
        }
        let next = Appender::create(&self.dir, self.number + 1)?;
        let old = std::mem::replace(self, next);
        Ok(Some(old.number))
    }
}

#[derive(Debug)]
pub enum ReadFail {
    Io(io::Error),
    Damaged(&'static str),
}

/// Read side: open segment files shared by readers.
#[derive(Default)]
pub struct Readers {
    dir: PathBuf,
    open: Mutex<HashMap<u64, Arc<File>>>,
}

impl Readers {
    pub fn new(dir: &Path) -> Readers {
        Readers { dir: dir.to_owned(), open: Mutex::default() }
    }

    /// The body at `loc`. I/O trouble is `Io` (worth retrying); bytes that
    /// are there but wrong, or missing at the end of the file, are `Damaged`.
    pub fn read(&self, id: &str, loc: Location) -> Result<Vec<u8>, ReadFail> {
        let file = self.file(loc.segment).map_err(ReadFail::Io)?;
        let head = 4 + 2 + id.len() + 8 + 4;
        let start = loc.offset.checked_sub(head as u64).ok_or(ReadFail::Damaged("bad offset"))?;
        let mut buf = vec![0u8; head + loc.len as usize];
        match file.read_exact_at(&mut buf, start) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(ReadFail::Damaged("record cut short")),
            Err(e) => return Err(ReadFail::Io(e)),
        }
        let (hdr, body) = buf.split_at(head);
        if &hdr[..4] != MAGIC || &hdr[6..6 + id.len()] != id.as_bytes() {
            return Err(ReadFail::Damaged("record header does not match the index"));
        }
        let crc = u32::from_le_bytes(hdr[head - 4..].try_into().unwrap());
        if crc32fast::hash(body) != crc {
            return Err(ReadFail::Damaged("checksum mismatch"));
        }
        Ok(body.to_vec())
    }

    fn file(&self, n: u64) -> io::Result<Arc<File>> {
        let mut open = self.open.lock().unwrap();
        if let Some(f) = open.get(&n) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(segment_path(&self.dir, n))?);
        open.insert(n, f.clone());
        Ok(f)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn forget(&self, n: u64) {
        self.open.lock().unwrap().remove(&n);
    }
}
