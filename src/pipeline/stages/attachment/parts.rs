//! The file parts of a message, copied out with their names, declared type
//! and bytes so the scan can run on another thread. Walks
//! `message::leaves`, so parts of attached messages are included.
//!
//! The parser turns text parts into UTF-8, lossily; a program sent as
//! `text/plain` would lose the bytes that give it away. For text parts that
//! are attachments the bytes are decoded again from the raw part, the way
//! a mail client saves them.

use crate::pipeline::message::{is_attachment, leaves};
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Encoding, Message, MessagePart, MimeHeaders, PartType};

/// One attachment, owned.
pub struct Owned {
    pub path: String,
    pub names: Vec<String>,
    pub declared: Option<String>,
    pub bytes: Vec<u8>,
}

pub fn collect(msg: &Message<'_>) -> Vec<Owned> {
    let messages = owners(msg);
    let mut out = Vec::new();
    for (i, leaf) in leaves(msg).into_iter().enumerate() {
        let p = leaf.part;
        if !is_attachment(p) {
            continue;
        }
        let names = part_names(p);
        let declared = p.content_type().map(|c| match c.subtype() {
            Some(s) => format!("{}/{s}", c.ctype()).to_ascii_lowercase(),
            None => c.ctype().to_ascii_lowercase(),
        });
        let bytes = match &p.body {
            // An attached message's parts are leaves of their own; its
            // names are still checked.
            PartType::Message(_) => Vec::new(),
            PartType::Text(_) | PartType::Html(_) => raw_text(&messages, p),
            _ => p.contents().to_vec(),
        };
        let path = names.first().cloned().unwrap_or_else(|| format!("part {}", i + 1));
        out.push(Owned { path, names, declared, bytes });
    }
    out
}

/// The Content-Disposition filename and the Content-Type name: both,
/// because mail clients differ in which one they show and save.
fn part_names(p: &MessagePart<'_>) -> Vec<String> {
    let mut names = Vec::new();
    let disposition = p.content_disposition().and_then(|d| d.attribute("filename"));
    for n in [disposition, p.content_type().and_then(|c| c.attribute("name"))].into_iter().flatten() {
        if !n.is_empty() && !names.iter().any(|x| x == n) {
            names.push(n.to_string());
        }
    }
    names
}

/// The message and every attached message in it, iteratively, keyed by
/// the address range of their parts and sorted, so the message that holds
/// a part is found by binary search (hostile mail can attach thousands).
fn owners<'m, 'x>(msg: &'m Message<'x>) -> Vec<(usize, usize, &'m Message<'x>)> {
    let mut out = Vec::new();
    let mut stack = vec![msg];
    while let Some(m) = stack.pop() {
        let r = m.parts.as_ptr_range();
        out.push((r.start as usize, r.end as usize, m));
        for p in &m.parts {
            if let PartType::Message(inner) = &p.body {
                stack.push(inner);
            }
        }
    }
    out.sort_by_key(|o| o.0);
    out
}

/// A text part's bytes as sent: its raw body (offsets are relative to the
/// message that holds the part) without the transfer encoding. Falls back
/// to the parser's text when the raw body cannot be found or decoded.
fn raw_text(owners: &[(usize, usize, &Message<'_>)], p: &MessagePart<'_>) -> Vec<u8> {
    let at = std::ptr::from_ref(p) as usize;
    let i = owners.partition_point(|o| o.0 <= at);
    let owner = i.checked_sub(1).map(|i| owners[i]).filter(|o| at < o.1).map(|o| o.2);
    let raw = owner.and_then(|m| m.raw_message().get(p.offset_body as usize..p.offset_end as usize));
    let decoded = raw.and_then(|r| match p.encoding {
        Encoding::Base64 => base64_decode(r),
        Encoding::QuotedPrintable => quoted_printable_decode(r),
        Encoding::None => Some(r.to_vec()),
    });
    decoded.unwrap_or_else(|| p.contents().to_vec())
}
