//! The `attachment` stage end to end: messages with built attachments go
//! in over SMTP; harmful ones are held in the quarantine with their verdict,
//! clean ones are delivered with the X-Mxgate headers.

mod common;

use common::mime::{tiny_pe, with_attachment, zip, zip_with};
use common::{Behaviour, Downstream, Gateway, quarantine_show, queue_id, queue_show};
use serde_json::Value;
use std::io::{Cursor, Write};
use zip::write::SimpleFileOptions;
use zip::{AesMode, CompressionMethod};

const SCAN: &str = "@rest\n[scan]\nstages = [\"attachment\"]\n";

/// An OLE compound file with the given storages and streams.
fn ole(storages: &[&str], streams: &[&str]) -> Vec<u8> {
    let mut cf = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    for s in storages {
        cf.create_storage(s).unwrap();
    }
    for s in streams {
        cf.create_stream(s).unwrap().write_all(b"Attribute VB_Name = \"ThisDocument\"").unwrap();
    }
    cf.flush().unwrap();
    cf.into_inner().into_inner()
}

/// Sends one message through a gateway running only the attachment stage
/// (plus `extra` config) and returns the final reply.
async fn send(extra: &str, content: &str) -> (Downstream, Gateway, String) {
    let down = Downstream::start(Behaviour::default()).await;
    let gw = Gateway::start(down.addr, &format!("{SCAN}{extra}")).await;
    let mut c = gw.client().await;
    let reply = c.send_mail("a@sender.test", &["b@example.test"], content).await;
    (down, gw, reply)
}

/// Asserts the message was accepted and quarantined (and not queued), and
/// returns its record, which carries the verdict's symbols.
async fn held(gw: &Gateway, reply: &str) -> Value {
    let id = queue_id(reply);
    let rec = quarantine_show(gw.admin, &id).await.expect("the message is in the quarantine");
    assert_eq!(rec["status"], "held", "{rec:#}");
    assert_eq!(rec["action"], "quarantine", "{rec:#}");
    assert!(queue_show(gw.admin, &id).await.is_none(), "a quarantined message must not be queued");
    rec
}

fn names(verdict: &Value) -> Vec<String> {
    verdict["symbols"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect()
}

fn reason<'v>(verdict: &'v Value, name: &str) -> &'v str {
    let sym = verdict["symbols"].as_array().unwrap().iter().find(|s| s["name"] == name);
    sym.unwrap_or_else(|| panic!("no {name} in {verdict:#}"))["reason"].as_str().unwrap()
}

#[tokio::test]
async fn a_zip_holding_an_exe_is_held() {
    let z = zip(&[("readme.txt", b"run me"), ("setup.exe", &tiny_pe())]);
    let (down, gw, reply) = send("", &with_attachment("zipexe", "files.zip", "application/zip", &z)).await;
    let v = held(&gw, &reply).await;
    assert_eq!(names(&v), ["ATTACHMENT_BLOCKED_EXTENSION", "ATTACHMENT_EXECUTABLE"]);
    assert_eq!(reason(&v, "ATTACHMENT_EXECUTABLE"), "files.zip > setup.exe: PE executable");
    assert_eq!(down.count(), 0);
}

#[tokio::test]
async fn an_exe_three_zips_deep_is_found() {
    let inner = zip(&[("payload.exe", &tiny_pe())]);
    let middle = zip(&[("inner.zip", &inner)]);
    let outer = zip(&[("middle.zip", &middle)]);
    let (_down, gw, reply) = send("", &with_attachment("nested", "outer.zip", "application/zip", &outer)).await;
    let v = held(&gw, &reply).await;
    assert_eq!(reason(&v, "ATTACHMENT_EXECUTABLE"), "outer.zip > middle.zip > inner.zip > payload.exe: PE executable");
}

/// Thirty copies of a zip that holds 10 MiB of zeros: 300 MiB inflated
/// from a few hundred KiB.
fn nested_bomb() -> Vec<u8> {
    let inner = zip(&[("zeros.bin", &vec![0u8; 10 << 20])]);
    let names: Vec<String> = (0..30).map(|i| format!("part{i}.zip")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), inner.as_slice())).collect();
    zip(&entries)
}

#[tokio::test]
async fn a_zip_bomb_is_held_by_the_compression_ratio() {
    let bomb = nested_bomb();
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let (_down, gw, reply) = send("", &with_attachment("bomb", "backup.zip", "application/zip", &bomb)).await;
    let v = held(&gw, &reply).await;
    assert_eq!(names(&v), ["ATTACHMENT_ARCHIVE_BOMB"]);
    let why = reason(&v, "ATTACHMENT_ARCHIVE_BOMB");
    assert!(why.starts_with("backup.zip > part0.zip > zeros.bin: expands"), "{why}");
    assert!(why.contains("200:1"), "{why}");
}

#[tokio::test]
async fn a_zip_bomb_is_held_by_the_byte_budget_when_the_ratio_is_off() {
    let cfg = "[scan.attachment]\nmax_compression_ratio = 0.0\nmax_archive_bytes = 52428800\n";
    let (_down, gw, reply) =
        send(cfg, &with_attachment("budget", "backup.zip", "application/zip", &nested_bomb())).await;
    let v = held(&gw, &reply).await;
    assert_eq!(names(&v), ["ATTACHMENT_ARCHIVE_BOMB"]);
    let why = reason(&v, "ATTACHMENT_ARCHIVE_BOMB");
    assert!(why.starts_with("backup.zip > part4.zip > zeros.bin: archives expand past 52428800 bytes"), "{why}");
}

#[tokio::test]
async fn an_encrypted_zip_is_held() {
    let opts = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .with_aes_encryption(AesMode::Aes256, "infected");
    let z = zip_with(&[("statement.pdf", b"%PDF-1.4 not really")], opts);
    let (_down, gw, reply) = send("", &with_attachment("locked", "statement.zip", "application/zip", &z)).await;
    let v = held(&gw, &reply).await;
    assert_eq!(names(&v), ["ATTACHMENT_ENCRYPTED_ARCHIVE"]);
    assert_eq!(reason(&v, "ATTACHMENT_ENCRYPTED_ARCHIVE"), "statement.zip > statement.pdf: encrypted");
}

#[tokio::test]
async fn a_macro_enabled_docm_is_held() {
    let vba = ole(&["/VBA"], &["/_VBA_PROJECT", "/VBA/dir", "/VBA/ThisDocument"]);
    let docm = zip(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("word/document.xml", b"<w:document/>"),
        ("word/vbaProject.bin", &vba),
    ]);
    let ctype = "application/vnd.ms-word.document.macroEnabled.12";
    let (_down, gw, reply) = send("", &with_attachment("docm", "invoice.docm", ctype, &docm)).await;
    let v = held(&gw, &reply).await;
    assert_eq!(names(&v), ["ATTACHMENT_MACRO_ENABLED", "ATTACHMENT_MACRO"]);
    assert!(reason(&v, "ATTACHMENT_MACRO").starts_with("invoice.docm > word/vbaProject.bin: VBA macros"));
    assert!(reason(&v, "ATTACHMENT_MACRO_ENABLED").contains(".docm is a macro-enabled format"));
}

#[tokio::test]
async fn an_ole_doc_with_a_vba_storage_is_held() {
    let doc = ole(&["/Macros", "/Macros/VBA"], &["/WordDocument", "/1Table", "/Macros/VBA/dir"]);
    let (_down, gw, reply) = send("", &with_attachment("doc", "letter.doc", "application/msword", &doc)).await;
    let v = held(&gw, &reply).await;
    assert_eq!(names(&v), ["ATTACHMENT_MACRO"]);
    assert_eq!(reason(&v, "ATTACHMENT_MACRO"), "letter.doc: VBA macros (/Macros)");
}

#[tokio::test]
async fn a_program_renamed_pdf_is_held() {
    let (_down, gw, reply) = send("", &with_attachment("fakepdf", "invoice.pdf", "application/pdf", &tiny_pe())).await;
    let v = held(&gw, &reply).await;
    assert_eq!(names(&v), ["ATTACHMENT_DISGUISED_EXECUTABLE"]);
    assert_eq!(
        reason(&v, "ATTACHMENT_DISGUISED_EXECUTABLE"),
        "invoice.pdf: claims to be a .pdf file (application/pdf) but is a PE executable"
    );
}

#[tokio::test]
async fn a_double_extension_is_held() {
    let msg = with_attachment("double", "report.doc   .scr", "application/octet-stream", b"not even a program");
    let (_down, gw, reply) = send("", &msg).await;
    let v = held(&gw, &reply).await;
    assert_eq!(names(&v), ["ATTACHMENT_BLOCKED_EXTENSION", "ATTACHMENT_DOUBLE_EXTENSION"]);
}

#[tokio::test]
async fn a_clean_pdf_and_text_are_delivered_with_the_verdict_headers() {
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    let (down, _gw, reply) = send("", &with_attachment("clean", "paper.pdf", "application/pdf", pdf)).await;
    assert!(reply.starts_with("250"), "{reply}");
    let got = down.wait_for(1, 10).await;
    let text = got[0].text();
    assert!(text.contains("X-Mxgate-Verdict: deliver\r\n"), "{text}");
    assert!(text.contains("X-Mxgate-Score: 0.0\r\n"), "{text}");
    assert!(!text.contains("ATTACHMENT_"), "{text}");
    assert!(text.contains("Subject: clean\r\n"), "{text}");
}

#[tokio::test]
async fn a_corrupt_zip_is_held_unless_the_policy_says_otherwise() {
    let mut z = zip(&[("a.txt", b"hello hello hello hello")]);
    z.truncate(z.len() - 12);
    let (_down, gw, reply) = send("", &with_attachment("corrupt", "broken.zip", "application/zip", &z)).await;
    let v = held(&gw, &reply).await;
    assert!(names(&v).contains(&"ATTACHMENT_UNREADABLE_ARCHIVE".to_string()), "{v:#}");

    let cfg = "[policy.symbols.ATTACHMENT_UNREADABLE_ARCHIVE]\naction = \"deliver\"\n";
    let (down, _gw, reply) = send(cfg, &with_attachment("corrupt", "broken.zip", "application/zip", &z)).await;
    assert!(reply.starts_with("250"), "{reply}");
    let text = down.wait_for(1, 10).await[0].text();
    assert!(text.contains("X-Mxgate-Verdict: tag\r\n"), "{text}");
    assert!(text.contains("X-Mxgate-Symbols: ATTACHMENT_UNREADABLE_ARCHIVE(5.0)"), "{text}");
    assert!(text.contains("Subject: [SPAM] corrupt\r\n"), "{text}");
}

#[tokio::test]
async fn allow_listed_clients_still_get_attachment_verdicts() {
    let cfg = "[policy]\nallow_ips = [\"127.0.0.0/8\"]\n";
    let z = zip(&[("setup.exe", &tiny_pe())]);
    let (_down, gw, reply) = send(cfg, &with_attachment("allowed", "files.zip", "application/zip", &z)).await;
    let v = held(&gw, &reply).await;
    assert!(names(&v).contains(&"ATTACHMENT_EXECUTABLE".to_string()), "{v:#}");
}
