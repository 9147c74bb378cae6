//! Building blocks of the benchmark corpus: a seeded generator, text,
//! an HTML newsletter with links, a PDF-like binary, a zip with a .docx,
//! and base64. Deterministic for a given seed.

use std::io::{Cursor, Write};
use zip::write::SimpleFileOptions;

/// splitmix64: small, fast, and the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "for",
    "is",
    "on",
    "that",
    "with",
    "as",
    "we",
    "this",
    "be",
    "at",
    "from",
    "by",
    "our",
    "will",
    "project",
    "team",
    "update",
    "meeting",
    "report",
    "customer",
    "delivery",
    "review",
    "budget",
    "schedule",
    "account",
    "order",
    "service",
    "support",
    "quarter",
    "results",
    "please",
    "thanks",
    "regards",
    "attached",
    "document",
    "question",
    "next",
    "week",
    "plan",
    "details",
    "price",
    "offer",
    "product",
    "new",
    "available",
    "today",
    "information",
    "request",
    "contract",
    "invoice",
    "payment",
    "shipping",
    "agenda",
    "proposal",
    "feedback",
    "release",
    "version",
    "changes",
    "issue",
    "solution",
    "market",
    "sales",
    "growth",
];

fn sentence(rng: &mut Rng) -> String {
    let n = 6 + rng.below(12);
    let mut s = String::new();
    for k in 0..n {
        let w = WORDS[rng.below(WORDS.len())];
        if k == 0 {
            let mut c = w.chars();
            s.extend(c.next().map(|f| f.to_ascii_uppercase()));
            s.push_str(c.as_str());
        } else {
            s.push(' ');
            s.push_str(w);
        }
    }
    s.push('.');
    s
}

/// Paragraphs of about `target` octets, wrapped at 72 columns, CRLF; with
/// `links`, an occasional documentation URL (what URI lists get to see).
pub fn paragraphs(rng: &mut Rng, target: usize, links: bool) -> String {
    let mut out = String::with_capacity(target + 200);
    while out.len() < target {
        let mut line = String::new();
        for _ in 0..3 + rng.below(5) {
            let mut s = sentence(rng);
            if links && rng.below(12) == 0 {
                s.push_str(&format!(" See https://docs.partner{}.test/kb/{}", rng.below(40), rng.below(10_000)));
            }
            for w in s.split(' ') {
                if line.len() + w.len() + 1 > 72 {
                    out.push_str(line.trim_end());
                    out.push_str("\r\n");
                    line.clear();
                }
                line.push_str(w);
                line.push(' ');
            }
        }
        out.push_str(line.trim_end());
        out.push_str("\r\n\r\n");
    }
    out
}

/// A table-layout newsletter of about `target` octets: product blocks with
/// an image, a shop link and a click-tracking link each.
pub fn html_newsletter(rng: &mut Rng, target: usize, i: usize) -> String {
    let mut out = String::with_capacity(target + 1000);
    out.push_str(
        "<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"><title>Newsletter</title>\r\n<style>\r\n\
         body{margin:0;padding:0;background:#f4f4f4;font-family:Arial,Helvetica,sans-serif}\r\n\
         .wrap{width:600px;margin:0 auto;background:#ffffff}\r\n.item h2{font-size:18px;color:#222}\r\n\
         .item p{font-size:14px;line-height:20px;color:#555}\r\n.btn{background:#e4572e;color:#fff;padding:8px 16px}\r\n\
         </style></head>\r\n<body><table class=\"wrap\" cellpadding=\"0\" cellspacing=\"0\">\r\n",
    );
    out.push_str("<tr><td><a href=\"https://shop.test/\"><img src=\"https://cdn.shop-static.test/logo.png\" alt=\"Shop\" width=\"200\"></a></td></tr>\r\n");
    let mut n = 0;
    while out.len() < target {
        let id = rng.below(100_000);
        out.push_str(&format!(
            "<tr><td class=\"item\">\r\n<a href=\"https://shop.test/p/{id}?utm_source=newsletter&amp;utm_campaign=w{i}\">\
             <img src=\"https://cdn.shop-static.test/img/{id}.jpg\" alt=\"Product {id}\" width=\"560\"></a>\r\n\
             <h2>{}</h2>\r\n<p>{}</p>\r\n<a class=\"btn\" href=\"https://click.mailer{}.test/c/{:x}\">Buy now</a>\r\n</td></tr>\r\n",
            sentence(rng),
            sentence(rng) + " " + &sentence(rng),
            rng.below(30),
            rng.next() & 0xffff_ffff,
        ));
        n += 1;
    }
    out.push_str(&format!(
        "<tr><td><p>You get this because you subscribed ({n} offers this week). \
         <a href=\"https://shop.test/unsubscribe?u={i}\">Unsubscribe</a> | \
         <a href=\"https://social{}.test/shop\">Follow us</a></p></td></tr>\r\n</table></body></html>\r\n",
        rng.below(5)
    ));
    out
}

/// A PDF's skeleton around `len` octets of compressed-looking stream data.
pub fn pdf_like(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
        2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n\
        3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>\nendobj\n"
        .to_vec();
    out.extend_from_slice(format!("4 0 obj\n<< /Length {len} /Filter /FlateDecode >>\nstream\n").as_bytes());
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.extend_from_slice(b"\nendstream\nendobj\nxref\n0 5\ntrailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n9\n%%EOF\n");
    out
}

/// A zip holding `report-N.docx` (a minimal OOXML document, no macros) and
/// `notes.txt`.
pub fn zip_with_docx(rng: &mut Rng, i: usize) -> Vec<u8> {
    let body = paragraphs(rng, 12_000, false);
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\r\n<w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{}</w:body></w:document>",
        body.split("\r\n\r\n").map(|p| format!("<w:p><w:r><w:t>{p}</w:t></w:r></w:p>")).collect::<String>()
    );
    let docx = zip_of(&[
        ("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
        ("_rels/.rels", RELS.as_bytes()),
        ("word/document.xml", doc.as_bytes()),
    ]);
    let mut noise = Vec::with_capacity(4096);
    while noise.len() < 4096 {
        noise.extend_from_slice(&rng.next().to_le_bytes());
    }
    let notes = paragraphs(rng, 2000, false);
    zip_of(&[(&format!("report-{i}.docx"), &docx), ("notes.txt", notes.as_bytes()), ("figures.bin", &noise)])
}

const CONTENT_TYPES: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"xml\" ContentType=\"application/xml\"/><Override PartName=\"/word/document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/></Types>";
const RELS: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"word/document.xml\"/></Relationships>";

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    // A fixed time stamp keeps the archive identical from run to run.
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for (name, data) in files {
        // In-memory writes of a few KB cannot fail short of running out of memory.
        w.start_file(*name, opts).expect("zip entry");
        w.write_all(data).expect("zip write");
    }
    w.finish().expect("zip finish").into_inner()
}

/// Base64 (RFC 2045 §6.8) in CRLF-ended lines of 76 characters.
pub fn base64_lines(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() * 4 / 3 + data.len() / 38 + 4);
    for (k, c) in data.chunks(3).enumerate() {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for j in 0..4 {
            out.push(if j <= c.len() { A[(n >> (18 - 6 * j) & 63) as usize] as char } else { '=' });
        }
        if k % 19 == 18 {
            out.push_str("\r\n");
        }
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out
}
