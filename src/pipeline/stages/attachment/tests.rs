//! The scan over built files: archives, macros, disguises and limits,
//! then the stage over a parsed message.

use super::office::tests::build as ole;
use super::sniff::tests::tiny_pe;
use super::*;
use crate::pipeline::{Action, Facts, Symbol};
use std::io::{Cursor, Write};
use zip::write::SimpleFileOptions;
use zip::{AesMode, CompressionMethod, ZipWriter};

fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
}

fn zip_with(entries: &[(&str, &[u8])], opts: SimpleFileOptions) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    zip_with(entries, deflated())
}

fn scan_with(cfg: &AttachmentConfig, name: &str, declared: Option<&str>, bytes: &[u8]) -> Vec<Symbol> {
    let stage = Attachment::new(cfg).unwrap();
    let files = [Owned {
        path: name.into(),
        names: vec![name.into()],
        declared: declared.map(String::from),
        bytes: bytes.to_vec(),
    }];
    scan_all(&stage.rules, &files)
}

fn scan(name: &str, bytes: &[u8]) -> Vec<Symbol> {
    scan_with(&AttachmentConfig::default(), name, None, bytes)
}

fn names(s: &[Symbol]) -> Vec<&str> {
    s.iter().map(|s| s.name.as_str()).collect()
}

fn find<'s>(s: &'s [Symbol], name: &str) -> &'s Symbol {
    s.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no {name} in {s:?}"))
}

#[test]
fn an_executable_in_a_zip() {
    let s = scan("files.zip", &zip(&[("readme.txt", b"hello"), ("setup.exe", &tiny_pe())]));
    assert_eq!(names(&s), ["ATTACHMENT_BLOCKED_EXTENSION", "ATTACHMENT_EXECUTABLE"]);
    assert_eq!(find(&s, "ATTACHMENT_EXECUTABLE").reason, "files.zip > setup.exe: PE executable");
    assert!(s.iter().all(|s| s.action == Some(Action::Quarantine)));
}

#[test]
fn an_executable_at_the_bottom_of_nested_zips() {
    let inner = zip(&[("payload.exe", &tiny_pe())]);
    let middle = zip(&[("inner.zip", &inner)]);
    let outer = zip(&[("middle.zip", &middle)]);
    let s = scan("outer.zip", &outer);
    let exe = find(&s, "ATTACHMENT_EXECUTABLE");
    assert_eq!(exe.reason, "outer.zip > middle.zip > inner.zip > payload.exe: PE executable");
}

#[test]
fn nesting_past_the_depth_limit_is_not_clean() {
    let inner = zip(&[("note.txt", b"hi")]);
    let outer = zip(&[("inner.zip", &inner)]);
    let cfg = AttachmentConfig { max_archive_depth: 1, ..Default::default() };
    let s = scan_with(&cfg, "outer.zip", None, &outer);
    assert_eq!(names(&s), ["ATTACHMENT_ARCHIVE_TOO_DEEP"]);
    assert_eq!(s[0].action, Some(Action::Quarantine));
}

#[test]
fn too_many_members() {
    let many: Vec<(String, Vec<u8>)> = (0..20).map(|i| (format!("f{i}.txt"), vec![b'x'])).collect();
    let refs: Vec<(&str, &[u8])> = many.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    let cfg = AttachmentConfig { max_archive_members: 10, ..Default::default() };
    let s = scan_with(&cfg, "many.zip", None, &zip(&refs));
    assert_eq!(names(&s), ["ATTACHMENT_ARCHIVE_TOO_MANY_MEMBERS"]);
}

#[test]
fn a_bomb_is_stopped_by_the_ratio() {
    let zeros = vec![0u8; 8 << 20];
    let s = scan("bomb.zip", &zip(&[("zeros.bin", &zeros)]));
    let bomb = find(&s, "ATTACHMENT_ARCHIVE_BOMB");
    assert!(bomb.reason.contains("ratio"), "{}", bomb.reason);
    assert_eq!(bomb.action, Some(Action::Quarantine));
}

#[test]
fn a_bomb_is_stopped_by_the_byte_budget_across_members_and_levels() {
    let zeros = vec![0u8; 1 << 20];
    let inner = zip(&[("a.bin", &zeros), ("b.bin", &zeros)]);
    let outer = zip(&[("one.zip", &inner), ("two.zip", &inner), ("three.zip", &inner)]);
    let cfg = AttachmentConfig { max_compression_ratio: 0.0, max_archive_bytes: 5 << 20, ..Default::default() };
    let s = scan_with(&cfg, "nested.zip", None, &outer);
    let bomb = find(&s, "ATTACHMENT_ARCHIVE_BOMB");
    assert!(bomb.reason.contains("expand past 5242880 bytes"), "{}", bomb.reason);
    // Within budget, the same archive is clean.
    let cfg = AttachmentConfig { max_compression_ratio: 0.0, ..Default::default() };
    assert!(scan_with(&cfg, "nested.zip", None, &outer).is_empty());
}

#[test]
fn encrypted_members_are_flagged_and_their_names_still_checked() {
    let opts = deflated().with_aes_encryption(AesMode::Aes256, "secret");
    let s = scan("locked.zip", &zip_with(&[("invoice.exe", &tiny_pe())], opts));
    assert_eq!(names(&s), ["ATTACHMENT_BLOCKED_EXTENSION", "ATTACHMENT_ENCRYPTED_ARCHIVE"]);
    assert_eq!(find(&s, "ATTACHMENT_ENCRYPTED_ARCHIVE").reason, "locked.zip > invoice.exe: encrypted");
}

#[test]
fn ooxml_with_a_vba_project() {
    let vba = ole(&["/VBA"], &["/_VBA_PROJECT", "/VBA/dir"]);
    let docm =
        zip(&[("[Content_Types].xml", b"<Types/>"), ("word/document.xml", b"<w/>"), ("word/vbaProject.bin", &vba)]);
    let s = scan("report.docm", &docm);
    assert_eq!(names(&s), ["ATTACHMENT_MACRO_ENABLED", "ATTACHMENT_MACRO"]);
    assert!(find(&s, "ATTACHMENT_MACRO").reason.starts_with("report.docm > word/vbaProject.bin: VBA macros"));
}

#[test]
fn a_renamed_vba_part_is_found_through_the_content_types() {
    let types = br#"<Types><Default Extension="dat" ContentType="application/vnd.ms-office.vbaProject"/></Types>"#;
    let docx = zip(&[("[Content_Types].xml", types), ("word/stuff.dat", b"not even OLE")]);
    let s = scan("report.docx", &docx);
    assert_eq!(names(&s), ["ATTACHMENT_MACRO"]);
}

#[test]
fn ole_documents_with_and_without_macros() {
    let doc = ole(&["/Macros", "/Macros/VBA"], &["/WordDocument", "/Macros/VBA/dir"]);
    assert_eq!(names(&scan("letter.doc", &doc)), ["ATTACHMENT_MACRO"]);
    let plain = ole(&[], &["/WordDocument"]);
    assert!(scan("letter.doc", &plain).is_empty());
    let s = scan("letter.doc", &plain[..700]);
    assert_eq!(names(&s), ["ATTACHMENT_UNREADABLE_DOCUMENT"]);
    assert_eq!(s[0].action, None);
}

#[test]
fn a_program_named_pdf_is_disguised() {
    let s = scan_with(&AttachmentConfig::default(), "invoice.pdf", Some("application/pdf"), &tiny_pe());
    assert_eq!(names(&s), ["ATTACHMENT_DISGUISED_EXECUTABLE"]);
    assert_eq!(s[0].reason, "invoice.pdf: claims to be a .pdf file (application/pdf) but is a PE executable");
}

#[test]
fn an_honest_program_is_still_an_executable() {
    let cfg = AttachmentConfig { blocked_extensions: Vec::new(), ..Default::default() };
    let s = scan_with(&cfg, "tool.exe", Some("application/octet-stream"), &tiny_pe());
    assert_eq!(names(&s), ["ATTACHMENT_EXECUTABLE"]);
}

#[test]
fn double_extensions_and_blocked_types() {
    let s = scan_with(&AttachmentConfig::default(), "report.doc   .scr", Some("application/x-msdownload"), b"text");
    assert_eq!(names(&s), ["ATTACHMENT_BLOCKED_EXTENSION", "ATTACHMENT_DOUBLE_EXTENSION", "ATTACHMENT_BLOCKED_TYPE"]);
    assert_eq!(find(&s, "ATTACHMENT_DOUBLE_EXTENSION").reason, "report.doc   .scr: .scr hidden behind .doc");
}

#[test]
fn corrupt_and_fake_zips_are_unreadable() {
    let mut z = zip(&[("a.txt", b"hello hello hello")]);
    z.truncate(z.len() - 10);
    let s = scan("broken.zip", &z);
    assert_eq!(names(&s), ["ATTACHMENT_UNREADABLE_ARCHIVE"]);
    assert_eq!((s[0].score, s[0].action), (5.0, Some(Action::Quarantine)));
    assert_eq!(names(&scan("fake.zip", b"just text")), ["ATTACHMENT_UNREADABLE_ARCHIVE"]);
    assert_eq!(names(&scan("junk.bin", b"PK\x03\x04garbage")), ["ATTACHMENT_UNREADABLE_ARCHIVE"]);
}

/// A member in a compression method we cannot read (zstd, 93, here) still
/// has its name checked.
#[test]
fn an_undecompressable_member_is_still_judged_by_its_name() {
    let mut z = zip_with(&[("invoice.exe", b"MZ not really")], SimpleFileOptions::default());
    for (sig, at) in [(&b"PK\x03\x04"[..], 8), (&b"PK\x01\x02"[..], 10)] {
        let pos = z.windows(4).position(|w| w == sig).unwrap();
        z[pos + at..pos + at + 2].copy_from_slice(&93u16.to_le_bytes());
    }
    let s = scan("files.zip", &z);
    assert!(names(&s).contains(&"ATTACHMENT_UNREADABLE_ARCHIVE"), "{s:?}");
    assert!(names(&s).contains(&"ATTACHMENT_BLOCKED_EXTENSION"), "{s:?}");
}

#[test]
fn a_corrupt_member_does_not_hide_the_others() {
    // Noise does not compress, so a's data spans the bytes damaged below.
    let noise: Vec<u8> = (0u32..4000).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let mut z = zip(&[("a.txt", &noise), ("b.exe", &tiny_pe())]);
    // Damage a's deflate data (it starts after the 30-byte header and name).
    for b in &mut z[40..80] {
        *b ^= 0x55;
    }
    let s = scan("mixed.zip", &z);
    assert!(names(&s).contains(&"ATTACHMENT_UNREADABLE_ARCHIVE"), "{s:?}");
    assert!(names(&s).contains(&"ATTACHMENT_EXECUTABLE"), "{s:?}");
}

#[test]
fn clean_files_have_no_findings() {
    assert!(scan("paper.pdf", b"%PDF-1.4\n1 0 obj\n").is_empty());
    assert!(scan("notes.txt", b"hello").is_empty());
    assert!(scan("photos.zip", &zip(&[("a.txt", b"hi"), ("dir/b.csv", b"1,2")])).is_empty());
}

#[test]
fn other_archives_are_noted_as_unscanned() {
    let s = scan("x.rar", b"Rar!\x1a\x07\x01\x00rest");
    assert_eq!(names(&s), ["ATTACHMENT_UNSCANNED_ARCHIVE"]);
    assert_eq!(s[0].action, None);
}

#[test]
fn allowed_extensions_apply_to_attachments_only() {
    let cfg = AttachmentConfig { allowed_extensions: vec![".PDF".into(), "zip".into()], ..Default::default() };
    assert!(scan_with(&cfg, "a.pdf", None, b"%PDF-1.4").is_empty());
    assert!(scan_with(&cfg, "a.zip", None, &zip(&[("b.txt", b"x")])).is_empty());
    assert_eq!(names(&scan_with(&cfg, "a.txt", None, b"x")), ["ATTACHMENT_EXTENSION_NOT_ALLOWED"]);
}

#[test]
fn bad_limits_are_refused() {
    assert!(Attachment::new(&AttachmentConfig { max_archive_depth: 0, ..Default::default() }).is_err());
    assert!(Attachment::new(&AttachmentConfig { max_archive_depth: 33, ..Default::default() }).is_err());
    assert!(Attachment::new(&AttachmentConfig { max_compression_ratio: -1.0, ..Default::default() }).is_err());
}

fn facts() -> Facts {
    Facts::test("a@sender.test")
}

async fn check(raw: &str) -> Vec<Symbol> {
    let stage = Attachment::new(&AttachmentConfig::default()).unwrap();
    let msg = crate::pipeline::message::parse(raw.as_bytes());
    let facts = facts();
    let input = Input { facts: &facts, raw: raw.as_bytes(), message: msg.as_ref() };
    stage.check(&input).await.unwrap().symbols
}

#[tokio::test]
async fn parts_are_found_in_attached_messages_and_by_either_name() {
    let raw = "From: a@sender.test\r\nSubject: fwd\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
        --b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
        --b1\r\nContent-Type: message/rfc822\r\n\r\n\
        From: c@x.test\r\nSubject: inner\r\nContent-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n\
        --b2\r\nContent-Type: text/plain\r\n\r\nhi\r\n\
        --b2\r\nContent-Type: application/octet-stream; name=\"run.vbs\"\r\n\
        Content-Disposition: attachment; filename=\"notes.txt\"\r\n\r\nWScript.Echo 1\r\n\
        --b2--\r\n\
        --b1--\r\n";
    let s = check(raw).await;
    assert_eq!(names(&s), ["ATTACHMENT_BLOCKED_EXTENSION"]);
    assert_eq!(s[0].reason, "notes.txt: .vbs files are blocked");
}

#[tokio::test]
async fn a_plain_message_has_no_findings() {
    let raw = "From: a@sender.test\r\nSubject: hi\r\n\r\n#!/bin/sh is how scripts start\r\n";
    assert!(check(raw).await.is_empty());
}

fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (k, chunk) in data.chunks(3).enumerate() {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | ((b as u32) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ABC[((n >> (18 - 6 * i)) & 63) as usize] as char } else { '=' });
        }
        if k % 19 == 18 {
            out.push_str("\r\n");
        }
    }
    out
}

#[tokio::test]
async fn a_program_sent_as_text_keeps_its_bytes() {
    let macho = [0xCF, 0xFA, 0xED, 0xFE, 7, 0, 0, 1, 3, 0, 0, 0x80, 2, 0, 0, 0];
    let raw = format!(
        "From: a@sender.test\r\nSubject: t\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8; name=\"notes.txt\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        base64(&macho)
    );
    let s = check(&raw).await;
    assert_eq!(names(&s), ["ATTACHMENT_DISGUISED_EXECUTABLE"]);
    assert_eq!(s[0].reason, "notes.txt: claims to be a .txt file (text/plain) but is a Mach-O executable");
}
