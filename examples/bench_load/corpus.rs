//! The benchmark's message mix, generated in memory from a fixed seed so
//! every run (and both gateways) sends the same octets, apart from the
//! DKIM signatures' `t=` timestamps.
//!
//! Per 20 messages: 7 plain text (~10 KB), 5 HTML newsletters (multipart/
//! alternative, 12-19 KB, ~30 links), 4 DKIM-signed notifications (text +
//! HTML, rsa-sha256, 9-11 KB), 2 with a PDF attachment (30-50 KB binary,
//! base64) and 2 with a zip holding a .docx, a text file and a small binary
//! (~15 KB, base64); 16.5 KB on average. 200 distinct
//! messages; the sender cycles through them. The sending domains and their
//! DNS records (SPF, DKIM key, DMARC) are here too, for the DNS stub.

use crate::parts::{Rng, base64_lines, html_newsletter, paragraphs, pdf_like, zip_with_docx};
use mail_auth::common::crypto::{RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use std::path::Path;

/// Distinct messages in the corpus.
pub const SIZE: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Text,
    Html,
    Signed,
    Pdf,
    Zip,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Html => "html",
            Kind::Signed => "dkim",
            Kind::Pdf => "pdf",
            Kind::Zip => "zip",
        }
    }
}

use Kind::{Html as H, Pdf as P, Signed as S, Text as T, Zip as Z};
/// The mix: 35% text, 25% HTML, 20% DKIM-signed, 10% PDF, 10% zip.
const PATTERN: [Kind; 20] = [T, H, T, S, P, T, H, S, T, Z, T, H, S, T, P, H, S, T, H, Z];

pub struct Msg {
    pub kind: Kind,
    pub mail_from: String,
    pub rcpt: String,
    /// The message, CRLF line ends, no final dot.
    pub data: Vec<u8>,
}

impl Msg {
    /// DATA as sent: dot-stuffed (RFC 5321 §4.5.2) and ended by ".".
    pub fn wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 16);
        for line in self.data.split_inclusive(|&b| b == b'\n') {
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
        }
        if !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }
}

/// A bench-only RSA-2048 key for `bench._domainkey.signed.test`; it signs
/// nothing outside this benchmark.
const DKIM_KEY: &str = include_str!("dkim-bench.pem");
const DKIM_PUBLIC: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA2KUWpccigGQupPyvTENj6K97Jx5zF7VBTj1vMbZ/cLM5r9JDsCQXkjNwxzWrRr0/cTCLsBXZH6d1yxRlrvCBQLFAgsZYCKcX9hH4zZGPYH0+R3rlJtUC+DckBCYd/cDdw62tlIRYZPf39xPNWONCYzCRgy/Va+ApKgy59CJAojhaplh5P/I6lSq731bWD5HAiRuJS1ZoBtW+ZeHRhP6ysohm+A4r4CCras5RdYpgeijXacud5ZYSez1hsVNsFTJ7ke8m1SFoThst1Duhcg+FR1kbgY8smECOMMOPmHrDCWZRUiBlWdTLlABeVwH3z39uqKKm1ct0MVvs2Vt3jN5u1wIDAQAB";

/// The TXT records the DNS stub publishes: every sending domain may send
/// from 127.0.0.1; signed.test has a DKIM key and a reject policy.
pub fn txt_records() -> Vec<(String, String)> {
    let spf = "v=spf1 ip4:127.0.0.1 -all";
    [
        ("sender.test", spf.to_string()),
        ("shop.test", spf.to_string()),
        ("signed.test", spf.to_string()),
        ("bench._domainkey.signed.test", format!("v=DKIM1; k=rsa; p={DKIM_PUBLIC}")),
        ("_dmarc.sender.test", "v=DMARC1; p=quarantine".to_string()),
        ("_dmarc.shop.test", "v=DMARC1; p=none".to_string()),
        ("_dmarc.signed.test", "v=DMARC1; p=reject".to_string()),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect()
}

/// The whole corpus, in sending order.
pub fn build() -> Result<Vec<Msg>, String> {
    let der = rustls_pemfile::private_key(&mut DKIM_KEY.as_bytes())
        .map_err(|e| format!("DKIM key: {e}"))?
        .ok_or("DKIM key: no key in the PEM")?;
    let key = RsaKey::<Sha256>::from_key_der(der).map_err(|e| format!("DKIM key: {e}"))?;
    let signer = DkimSigner::from_key(key).domain("signed.test").selector("bench").headers([
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
    ]);
    let mut out = Vec::with_capacity(SIZE);
    for i in 0..SIZE {
        let kind = PATTERN[i % PATTERN.len()];
        let mut rng = Rng::new(0x6d78_6761_7465 ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut m = message(kind, i, &mut rng);
        if kind == Kind::Signed {
            let sig = signer.sign(&m.data).map_err(|e| format!("DKIM signing: {e}"))?;
            let mut signed = sig.to_header().into_bytes();
            signed.extend_from_slice(&m.data);
            m.data = signed;
        }
        out.push(m);
    }
    Ok(out)
}

fn headers(from: &str, to: &str, subject: &str, i: usize, ctype: &str) -> String {
    format!(
        "From: {from}\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: Thu, 26 Nov 2026 {:02}:{:02}:{:02} +0000\r\n\
         Message-ID: <bench.{i}@{}>\r\nMIME-Version: 1.0\r\nContent-Type: {ctype}\r\n",
        8 + i / 3600 % 10,
        i / 60 % 60,
        i % 60,
        from.rsplit('@').next().unwrap_or("sender.test").trim_end_matches('>'),
    )
}

fn message(kind: Kind, i: usize, rng: &mut Rng) -> Msg {
    let rcpt = format!("user{}@example.test", i % 50);
    let (mail_from, data) = match kind {
        Kind::Text => {
            let h = headers(
                "\"Alice Martin\" <alice@sender.test>",
                &rcpt,
                "Quarterly planning notes",
                i,
                "text/plain; charset=utf-8",
            );
            let len = 9000 + rng.below(2000);
            let body = paragraphs(rng, len, true);
            ("alice@sender.test".to_string(), format!("{h}Content-Transfer-Encoding: 7bit\r\n\r\n{body}"))
        }
        Kind::Html => {
            let b = format!("nl-{i}");
            let mut h = headers(
                "\"Shop Weekly\" <news@shop.test>",
                &rcpt,
                "This week's picks for you",
                i,
                &format!("multipart/alternative; boundary=\"{b}\""),
            );
            h.push_str(&format!("List-Unsubscribe: <https://shop.test/unsubscribe?u={i}>\r\n"));
            let text = paragraphs(rng, 2000, false);
            let len = 9000 + rng.below(7000);
            let html = html_newsletter(rng, len, i);
            (format!("bounce-{i}@shop.test"), alternative(&h, &b, &text, &html))
        }
        Kind::Signed => {
            let b = format!("sig-{i}");
            let h = headers(
                "\"Billing\" <notify@signed.test>",
                &rcpt,
                "Your statement is ready",
                i,
                &format!("multipart/alternative; boundary=\"{b}\""),
            );
            let (tlen, hlen) = (3000 + rng.below(1000), 4000 + rng.below(1500));
            let text = paragraphs(rng, tlen, false);
            let html = html_newsletter(rng, hlen, i);
            ("notify@signed.test".to_string(), alternative(&h, &b, &text, &html))
        }
        Kind::Pdf => {
            let len = 30_000 + rng.below(20_000);
            let pdf = pdf_like(rng, len);
            attachment(i, &rcpt, "Invoice attached", "application/pdf", &format!("invoice-{i}.pdf"), &pdf, rng)
        }
        Kind::Zip => {
            let zip = zip_with_docx(rng, i);
            attachment(i, &rcpt, "Documents for review", "application/zip", &format!("documents-{i}.zip"), &zip, rng)
        }
    };
    Msg { kind, mail_from, rcpt, data: data.into_bytes() }
}

fn alternative(h: &str, b: &str, text: &str, html: &str) -> String {
    format!(
        "{h}\r\nThis is a multi-part message in MIME format.\r\n\r\n--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 7bit\r\n\r\n{text}\r\n--{b}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Transfer-Encoding: 7bit\r\n\r\n{html}\r\n--{b}--\r\n"
    )
}

fn attachment(
    i: usize,
    rcpt: &str,
    subject: &str,
    ctype: &str,
    name: &str,
    bytes: &[u8],
    rng: &mut Rng,
) -> (String, String) {
    let b = format!("att-{i}");
    let h = headers("\"Bob Stone\" <bob@sender.test>", rcpt, subject, i, &format!("multipart/mixed; boundary=\"{b}\""));
    let text = paragraphs(rng, 800, false);
    let data = format!(
        "{h}\r\n--{b}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{text}\r\n\
         --{b}\r\nContent-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}--{b}--\r\n",
        base64_lines(bytes)
    );
    ("bob@sender.test".to_string(), data)
}

/// `corpus --dir`: one `NNN-kind.eml` per message, for inspection.
pub fn write_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (i, m) in build()?.iter().enumerate() {
        let p = dir.join(format!("{i:03}-{}.eml", m.kind.name()));
        std::fs::write(&p, &m.data).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    println!("{} messages in {}", SIZE, dir.display());
    Ok(())
}
