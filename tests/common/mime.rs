//! Message builders shared by the tests: base64, a message with one
//! attachment, zips and the smallest Windows program.

use std::io::{Cursor, Write};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// Base64 (RFC 2045 §6.8) in lines of 76 characters, CRLF-terminated.
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut flat = String::with_capacity(data.len() / 3 * 4 + 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | ((b as u32) << (16 - 8 * i)));
        for i in 0..4 {
            let c = if i <= chunk.len() { ABC[((n >> (18 - 6 * i)) & 63) as usize] as char } else { '=' };
            flat.push(c);
        }
    }
    let mut out = String::with_capacity(flat.len() + flat.len() / 38);
    for line in flat.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push_str("\r\n");
    }
    out
}

/// A multipart/mixed message: a short text, then one base64 attachment.
pub fn with_attachment(subject: &str, filename: &str, ctype: &str, data: &[u8]) -> String {
    format!(
        "From: <a@sender.test>\r\nTo: <b@example.test>\r\nSubject: {subject}\r\nMessage-ID: <{subject}@sender.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n\
         --=_b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease see the attached file.\r\n\
         --=_b\r\nContent-Type: {ctype}; name=\"{filename}\"\r\nContent-Disposition: attachment; filename=\"{filename}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}--=_b--\r\n",
        base64(data)
    )
}

pub fn zip_with(entries: &[(&str, &[u8])], opts: SimpleFileOptions) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    zip_with(entries, SimpleFileOptions::default().compression_method(CompressionMethod::Deflated))
}

/// The smallest bytes that pass for a Windows program: `MZ`, the offset of
/// the PE header at 0x3C, then `PE\0\0` and an i386 machine type.
pub fn tiny_pe() -> Vec<u8> {
    let mut b = vec![0u8; 0x80];
    b[..2].copy_from_slice(b"MZ");
    b[0x3C] = 0x40;
    b[0x40..0x44].copy_from_slice(b"PE\0\0");
    b[0x44..0x46].copy_from_slice(&[0x4C, 0x01]);
    b
}

/// A message with a zip holding a Windows program: quarantined by default.
pub fn zip_with_exe(subject: &str) -> String {
    with_attachment(subject, "invoice.zip", "application/zip", &zip(&[("invoice.exe", &tiny_pe())]))
}
