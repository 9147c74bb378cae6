//! Zip archives, opened recursively within the per-message budget: depth,
//! member count, decompressed bytes, and each member's compression ratio.
//! Sizes the archive declares are never trusted: every member is read
//! through a `take()` limit and counted as it streams, so a bomb costs at
//! most the budget however it is built (one huge member, many members, or
//! archives nested inside archives). Past a limit the scan stops and the
//! message gets a limit symbol, never a clean bill.

use super::names;
use super::office;
use super::scan::{File, Scanner};
use super::verdict::Kind;
use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use zip::ZipArchive;

/// Members smaller than this are not held to the compression ratio: tiny
/// files of repeated bytes compress absurdly well and harm nobody.
const RATIO_FLOOR: u64 = 1 << 20;

const CHUNK: usize = 64 << 10;

/// Why reading a member stopped early.
enum Stop {
    Unreadable(String),
    Bomb(String),
}

/// Opens the zip in `f` (sitting at depth `depth`) and scans its members
/// at `depth + 1`. The zip parser runs under `catch_unwind`: hostile input
/// must end up as a symbol, not a failed stage.
pub fn walk(sc: &mut Scanner<'_>, f: &File<'_>, depth: usize) {
    if sc.stopped {
        return;
    }
    if depth >= sc.rules.max_depth {
        let max = sc.rules.max_depth;
        return sc.hit(Kind::ArchiveTooDeep, format!("{}: archives nested deeper than {max} levels", f.path));
    }
    let r = catch_unwind(AssertUnwindSafe(|| members(sc, f, depth)));
    let why = match r {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(_) => "the zip parser failed".to_string(),
    };
    sc.hit(Kind::UnreadableArchive, format!("{}: {why}", f.path));
}

fn members(sc: &mut Scanner<'_>, f: &File<'_>, depth: usize) -> Result<(), String> {
    let mut zip = ZipArchive::new(Cursor::new(f.bytes)).map_err(|e| format!("not a readable zip ({e})"))?;
    for i in 0..zip.len() {
        if sc.stopped {
            break;
        }
        if sc.members >= sc.rules.max_members {
            let reason = format!("{}: more than {} archive members", f.path, sc.rules.max_members);
            sc.hit(Kind::ArchiveTooManyMembers, reason);
            sc.stopped = true;
            break;
        }
        sc.members += 1;
        let entry = zip.by_index_data(i).map_err(|e| format!("member {i} cannot be read ({e})"))?;
        let name = match entry.name() {
            Ok(n) => n.into_owned(),
            Err(_) => String::from_utf8_lossy(entry.name_raw()).into_owned(),
        };
        let (encrypted, is_dir, compressed) = (entry.encrypted(), entry.is_dir(), entry.compressed_size());
        if is_dir {
            continue;
        }
        let path = format!("{} > {name}", f.path);
        if encrypted {
            // Checked names still count: an encrypted zip holding
            // `invoice.exe` says enough without the password.
            sc.name(&path, &name, false);
            sc.hit(Kind::EncryptedArchive, format!("{path}: encrypted"));
            continue;
        }
        let data = match read_member(&mut zip, i, compressed, sc) {
            Ok(d) => d,
            Err(Stop::Unreadable(e)) => {
                // Its name still counts (an unsupported method must not hide
                // `invoice.exe`); the other members may still be readable.
                sc.name(&path, &name, false);
                sc.hit(Kind::UnreadableArchive, format!("{path}: cannot be decompressed ({e})"));
                continue;
            }
            Err(Stop::Bomb(why)) => {
                sc.hit(Kind::ArchiveBomb, format!("{path}: {why}"));
                sc.stopped = true;
                break;
            }
        };
        member(sc, File { path, names: vec![name], declared: None, bytes: &data }, depth + 1);
    }
    Ok(())
}

/// Scans one member; OOXML parts that declare or hold a VBA project are
/// macros even when the part is not named `vbaProject.bin`.
fn member(sc: &mut Scanner<'_>, m: File<'_>, depth: usize) {
    let name = m.names.first().map(|n| names::base(n).to_ascii_lowercase()).unwrap_or_default();
    let macros_before = sc.hits.iter().filter(|h| h.kind == Kind::Macro).count();
    sc.file(&m, depth);
    let found = sc.hits.iter().filter(|h| h.kind == Kind::Macro).count() > macros_before;
    if name == "[content_types].xml" && office::content_types_name_vba(m.bytes) {
        sc.hit(Kind::Macro, format!("{}: declares a VBA project part", m.path));
    } else if name == "vbaproject.bin" && !found {
        sc.hit(Kind::Macro, format!("{}: VBA project part", m.path));
    }
}

/// Reads member `i` in chunks, counting every byte against the budget and
/// the ratio, and never more than one byte past what the budget has left.
fn read_member<R: Read + std::io::Seek>(
    zip: &mut ZipArchive<R>,
    i: usize,
    compressed: u64,
    sc: &mut Scanner<'_>,
) -> Result<Vec<u8>, Stop> {
    let file = zip.by_index(i).map_err(|e| Stop::Unreadable(e.to_string()))?;
    let (max, ratio) = (sc.rules.max_bytes, sc.rules.max_ratio);
    let mut r = file.take(max.saturating_sub(sc.bytes).saturating_add(1));
    let mut out = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Stop::Unreadable(e.to_string())),
        };
        sc.bytes += n as u64;
        out.extend_from_slice(&buf[..n]);
        if sc.bytes > max {
            return Err(Stop::Bomb(format!("archives expand past {max} bytes")));
        }
        let len = out.len() as u64;
        if ratio > 0.0 && len > RATIO_FLOOR && len as f64 > ratio * compressed.max(1) as f64 {
            return Err(Stop::Bomb(format!("expands {len} bytes from {compressed}, past the {ratio}:1 ratio")));
        }
    }
}
