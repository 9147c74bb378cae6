//! What a file is, judged by its bytes rather than by what it is called:
//! our own checks for programs (PE, ELF, Mach-O, Java classes, scripts,
//! shortcuts), zip and OLE containers, then `infer` for everything else.

/// The type the bytes show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// Something that runs when opened; the label says what.
    Executable(&'static str),
    /// A zip container (plain zip, OOXML, JAR, ...).
    Zip,
    /// An OLE compound file (legacy Office, MSI, MSG).
    Ole,
    /// An archive format we do not open; the label names it.
    OtherArchive(&'static str),
    /// Anything else `infer` recognises, by extension label.
    Other(&'static str),
    Unknown,
}

/// `infer` only needs a file's head; ISO 9660 puts its marker at 32 KiB.
const HEAD: usize = 64 << 10;

pub fn sniff(b: &[u8]) -> Sniffed {
    if let Some(what) = executable(b) {
        return Sniffed::Executable(what);
    }
    if b.starts_with(b"PK\x03\x04") || b.starts_with(b"PK\x05\x06") || b.starts_with(b"PK\x07\x08") {
        return Sniffed::Zip;
    }
    if b.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Sniffed::Ole;
    }
    let Some(t) = infer::get(&b[..b.len().min(HEAD)]) else { return Sniffed::Unknown };
    let ext = t.extension();
    const ARCHIVES: &[&str] =
        &["rar", "7z", "gz", "bz2", "bz3", "xz", "tar", "cab", "Z", "lz", "zst", "lz4", "cpio", "ar"];
    match ARCHIVES.iter().find(|a| **a == ext) {
        Some(a) => Sniffed::OtherArchive(a),
        None => Sniffed::Other(ext),
    }
}

/// A label for bytes that run, or `None`.
pub fn executable(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"MZ") {
        return pe(b);
    }
    if b.starts_with(b"\x7fELF") {
        return Some("ELF executable");
    }
    if b.len() >= 8 {
        let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if matches!(magic, 0xFEED_FACE | 0xFEED_FACF | 0xCEFA_EDFE | 0xCFFA_EDFE) {
            return Some("Mach-O executable");
        }
        if magic == 0xCAFE_BABE {
            // Fat Mach-O and Java classes share this magic: a fat header
            // counts a handful of architectures, a class file's next field
            // is its version (45 and up).
            let next = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            return Some(if next < 32 { "Mach-O universal binary" } else { "Java class file" });
        }
    }
    if b.starts_with(b"#!/") || b.starts_with(b"#! /") {
        return Some("script (#!)");
    }
    if b.starts_with(&[0x4C, 0, 0, 0, 0x01, 0x14, 0x02, 0x00]) {
        return Some("Windows shortcut (LNK)");
    }
    None
}

/// `MZ`, then the PE header at the offset stored at 0x3C. A bare `MZ`
/// header is a DOS program, which Windows still runs.
fn pe(b: &[u8]) -> Option<&'static str> {
    if b.len() < 0x40 {
        return None;
    }
    let off = u32::from_le_bytes([b[0x3C], b[0x3D], b[0x3E], b[0x3F]]) as usize;
    let Some(sig) = off.checked_add(4).and_then(|end| b.get(off..end)) else { return Some("DOS executable (MZ)") };
    if sig != b"PE\0\0" {
        return Some("DOS executable (MZ)");
    }
    // COFF Characteristics (PE/COFF spec 3.3): IMAGE_FILE_DLL is 0x2000.
    let dll = off.checked_add(22).and_then(|p| b.get(p..)).and_then(|c| c.get(1)).is_some_and(|c| c & 0x20 != 0);
    Some(if dll { "PE DLL" } else { "PE executable" })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// The smallest bytes that pass for a PE program.
    pub fn tiny_pe() -> Vec<u8> {
        let mut b = vec![0u8; 0x80];
        b[..2].copy_from_slice(b"MZ");
        b[0x3C] = 0x40;
        b[0x40..0x44].copy_from_slice(b"PE\0\0");
        b[0x44..0x46].copy_from_slice(&[0x4C, 0x01]);
        b
    }

    #[test]
    fn programs() {
        assert_eq!(sniff(&tiny_pe()), Sniffed::Executable("PE executable"));
        let mut dll = tiny_pe();
        dll[0x57] = 0x21;
        assert_eq!(executable(&dll), Some("PE DLL"));
        let mut dos = tiny_pe();
        dos[0x3C] = 0xF0;
        assert_eq!(executable(&dos), Some("DOS executable (MZ)"));
        assert_eq!(executable(b"\x7fELF\x02\x01\x01\0"), Some("ELF executable"));
        assert_eq!(executable(&[0xCF, 0xFA, 0xED, 0xFE, 7, 0, 0, 1]), Some("Mach-O executable"));
        assert_eq!(executable(&[0xCA, 0xFE, 0xBA, 0xBE, 0, 0, 0, 2]), Some("Mach-O universal binary"));
        assert_eq!(executable(&[0xCA, 0xFE, 0xBA, 0xBE, 0, 0, 0, 52]), Some("Java class file"));
        assert_eq!(executable(b"#!/bin/sh\nrm -rf ~\n"), Some("script (#!)"));
    }

    #[test]
    fn short_or_odd_headers_do_not_panic() {
        assert_eq!(executable(b"MZ"), None);
        let mut b = tiny_pe();
        b[0x3C..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(executable(&b), Some("DOS executable (MZ)"));
        b[0x3C..0x40].copy_from_slice(&0x7Cu32.to_le_bytes());
        assert_eq!(executable(&b), Some("DOS executable (MZ)"));
        assert_eq!(sniff(b""), Sniffed::Unknown);
    }

    #[test]
    fn containers_and_documents() {
        assert_eq!(sniff(b"PK\x03\x04rest"), Sniffed::Zip);
        assert_eq!(sniff(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0]), Sniffed::Ole);
        assert_eq!(sniff(b"%PDF-1.7\n"), Sniffed::Other("pdf"));
        assert_eq!(sniff(b"Rar!\x1a\x07\x01\x00"), Sniffed::OtherArchive("rar"));
        assert_eq!(sniff(b"hello"), Sniffed::Unknown);
    }
}
