//! The `attachment` stage: what a message carries as files. Each part that
//! is a file (named, disposed as an attachment, or binary, inline binary
//! parts and attached messages included) is judged by its names and
//! declared type and by what its bytes really are; zip archives are opened
//! recursively within a per-message budget, and Office files are searched
//! for VBA macros.
//!
//! - `names`: extensions, double extensions, bidi tricks, macro formats.
//! - `sniff`: the type the bytes show (programs, containers, `infer`).
//! - `archive`: zip members under the depth, count, byte and ratio limits.
//! - `office`: VBA in OLE files and OOXML, MSI packages.
//! - `parts`: the file parts of a message, with their names and bytes.
//! - `scan`: the walk over one message's files.
//! - `verdict`: the `ATTACHMENT_*` symbols and their defaults.
//!
//! The scan is CPU work over up to the whole message and whatever the
//! archives inflate to, so it runs on the blocking pool rather than on the
//! session's task; the budgets bound it, and the stage timeout bounds how
//! long the session waits for it.

mod archive;
mod names;
mod office;
mod parts;
mod scan;
mod sniff;
mod verdict;

use crate::pipeline::{Findings, Input, Stage, StageError};
use crate::store::BoxFut;
use parts::{Owned, collect};
use scan::{File, Rules, Scanner};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentConfig {
    /// Extensions (without the dot, any case) that are quarantined wherever
    /// they appear: attachments and archive members at any depth.
    pub blocked_extensions: Vec<String>,
    /// When not empty, attachments whose extension is not listed get
    /// ATTACHMENT_EXTENSION_NOT_ALLOWED. Archive members are not held to
    /// it (an allowed `.docx` is itself a zip of `.xml` parts).
    pub allowed_extensions: Vec<String>,
    /// Declared MIME types (Content-Type without parameters) treated like
    /// blocked extensions.
    pub blocked_types: Vec<String>,
    /// Deepest archive nesting opened: 1 opens an attached zip but not a
    /// zip inside it. At most 32.
    pub max_archive_depth: usize,
    /// Most archive members looked at per message, all archives together.
    pub max_archive_members: usize,
    /// Most bytes decompressed per message, all archives together.
    pub max_archive_bytes: u64,
    /// Largest decompressed-to-compressed ratio of one archive member,
    /// applied once the member passes 1 MiB; 0 turns the check off.
    pub max_compression_ratio: f64,
}

impl Default for AttachmentConfig {
    fn default() -> Self {
        let blocked = [
            "exe", "scr", "com", "pif", "bat", "cmd", "js", "jse", "vbs", "vbe", "wsf", "wsh", "wsc", "hta", "ps1",
            "psm1", "msi", "msp", "lnk", "jar", "cpl", "dll", "reg", "scf", "inf", "chm", "appx", "msix", "iso", "img",
            "vhd", "vhdx",
        ];
        AttachmentConfig {
            blocked_extensions: blocked.iter().map(|s| s.to_string()).collect(),
            allowed_extensions: Vec::new(),
            blocked_types: [
                "application/x-msdownload",
                "application/x-msdos-program",
                "application/x-dosexec",
                "application/hta",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            max_archive_depth: 5,
            max_archive_members: 1000,
            max_archive_bytes: 100 << 20,
            max_compression_ratio: 200.0,
        }
    }
}

/// Guards the recursion: each level holds a decompressed member.
const DEPTH_CAP: usize = 32;

pub struct Attachment {
    rules: Arc<Rules>,
}

impl Attachment {
    pub fn new(cfg: &AttachmentConfig) -> Result<Attachment, String> {
        if cfg.max_archive_depth == 0 || cfg.max_archive_depth > DEPTH_CAP {
            return Err(format!("scan.attachment.max_archive_depth must be 1 to {DEPTH_CAP}"));
        }
        if cfg.max_archive_bytes == 0 || cfg.max_archive_members == 0 {
            return Err("scan.attachment.max_archive_bytes and max_archive_members must be above 0".into());
        }
        if !(cfg.max_compression_ratio >= 0.0 && cfg.max_compression_ratio.is_finite()) {
            return Err("scan.attachment.max_compression_ratio must be 0 (off) or positive".into());
        }
        let exts = |v: &[String]| v.iter().map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase()).collect();
        let rules = Rules {
            blocked_extensions: exts(&cfg.blocked_extensions),
            allowed_extensions: exts(&cfg.allowed_extensions),
            blocked_types: cfg.blocked_types.iter().map(|t| t.trim().to_ascii_lowercase()).collect(),
            max_depth: cfg.max_archive_depth,
            max_members: cfg.max_archive_members,
            max_bytes: cfg.max_archive_bytes,
            max_ratio: cfg.max_compression_ratio,
        };
        Ok(Attachment { rules: Arc::new(rules) })
    }
}

impl Stage for Attachment {
    fn name(&self) -> &'static str {
        "attachment"
    }

    fn check<'a>(&'a self, input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        let files = input.message.map(collect).unwrap_or_default();
        let rules = self.rules.clone();
        Box::pin(async move {
            if files.is_empty() {
                return Ok(Findings::default());
            }
            let symbols = tokio::task::spawn_blocking(move || scan_all(&rules, &files))
                .await
                .map_err(|e| StageError(format!("attachment scan failed: {e}")))?;
            Ok(Findings::from(symbols))
        })
    }
}

fn scan_all(rules: &Rules, files: &[Owned]) -> Vec<crate::pipeline::Symbol> {
    let mut sc = Scanner::new(rules);
    for o in files {
        let f = File { path: o.path.clone(), names: o.names.clone(), declared: o.declared.clone(), bytes: &o.bytes };
        sc.file(&f, 0);
    }
    verdict::to_symbols(&sc.hits)
}

#[cfg(test)]
mod tests;
