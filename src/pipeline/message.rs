//! The message as the stages see it: parsed once with mail-parser, then
//! measured against the parser limits. A message past a limit is never
//! treated as clean; it gets a `MIME_*` symbol whose default action is
//! quarantine.

use super::finding::{Action, Symbol};
use mail_parser::{Message, MessageParser, MessagePart, PartType};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Deepest nesting of multiparts and attached messages.
    pub max_depth: usize,
    /// Most MIME parts, counted across attached messages.
    pub max_parts: usize,
    /// Most decoded octets across all parts.
    pub max_decoded_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: 20, max_parts: 1000, max_decoded_size: 100 << 20 }
    }
}

pub fn parse(raw: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(raw)
}

/// One part that holds content (not a multipart container), and how deep
/// it sits: 0 is the top-level body.
pub struct Leaf<'m, 'x> {
    pub part: &'m MessagePart<'x>,
    pub depth: usize,
}

/// Every content part, attached messages included, in document order.
/// Iterative, so hostile nesting cannot exhaust the stack.
pub fn leaves<'m, 'x>(msg: &'m Message<'x>) -> Vec<Leaf<'m, 'x>> {
    let mut out = Vec::new();
    let mut stack: Vec<(&'m Message<'x>, u32, usize)> = vec![(msg, 0, 0)];
    while let Some((m, idx, depth)) = stack.pop() {
        let Some(part) = m.parts.get(idx as usize) else { continue };
        match &part.body {
            PartType::Multipart(children) => {
                stack.extend(children.iter().rev().filter(|&&c| c > idx).map(|&c| (m, c, depth + 1)));
            }
            PartType::Message(inner) => {
                out.push(Leaf { part, depth });
                stack.push((inner, 0, depth + 1));
            }
            _ => out.push(Leaf { part, depth }),
        }
    }
    out
}

/// Decoded text of the text/plain and text/html parts, attached messages
/// included: `(is_html, text)`.
pub fn texts<'m>(msg: &'m Message<'_>) -> Vec<(bool, &'m str)> {
    leaves(msg)
        .into_iter()
        .filter_map(|l| match &l.part.body {
            PartType::Text(t) if !is_attachment(l.part) => Some((false, t.as_ref())),
            PartType::Html(t) if !is_attachment(l.part) => Some((true, t.as_ref())),
            _ => None,
        })
        .collect()
}

/// Octets of one text or HTML part the link-reading stages look at; the
/// rest of a huge part is not read, which bounds their CPU time.
pub const MAX_TEXT_SCAN: usize = 4 << 20;

/// At most `max` octets of `text`, cut at a character boundary.
pub fn head(text: &str, max: usize) -> &str {
    let end = (0..=text.len().min(max)).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    &text[..end]
}

/// A part the sender meant as a file rather than as the message text.
pub fn is_attachment(p: &MessagePart<'_>) -> bool {
    use mail_parser::MimeHeaders;
    p.attachment_name().is_some()
        || p.content_disposition().is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"))
        || matches!(p.body, PartType::Binary(_) | PartType::InlineBinary(_) | PartType::Message(_))
}

/// The `MIME_*` symbols for a message that could not be read or is past a
/// limit.
pub fn limit_symbols(msg: Option<&Message<'_>>, limits: &Limits) -> Vec<Symbol> {
    let Some(msg) = msg else {
        return vec![
            Symbol::new("MIME_UNPARSEABLE", 0.0, "the message could not be parsed as MIME")
                .with_action(Action::Quarantine),
        ];
    };
    let leaves = leaves(msg);
    let mut out = Vec::new();
    let depth = leaves.iter().map(|l| l.depth).max().unwrap_or(0);
    if depth > limits.max_depth {
        out.push(limit("MIME_TOO_DEEP", format!("MIME nesting depth {depth} exceeds {}", limits.max_depth)));
    }
    let parts = count_parts(msg);
    if parts > limits.max_parts {
        out.push(limit("MIME_TOO_MANY_PARTS", format!("{parts} MIME parts exceed {}", limits.max_parts)));
    }
    let decoded: u64 = leaves.iter().map(|l| decoded_len(l.part)).sum();
    if decoded > limits.max_decoded_size {
        out.push(limit("MIME_DECODED_TOO_BIG", format!("{decoded} decoded octets exceed {}", limits.max_decoded_size)));
    }
    out.extend(ambiguity_symbols(msg));
    let broken = leaves.iter().filter(|l| l.part.is_encoding_problem).count();
    if broken > 0 {
        out.push(Symbol::new("MIME_BAD_ENCODING", 1.0, format!("{broken} part(s) could not be decoded cleanly")));
    }
    out
}

/// Headers that readers may resolve differently: a duplicated From,
/// Sender or content header in any part (mail-parser keeps the last copy,
/// some mail clients show the first; RFC 5322 §3.6 allows one From), and a
/// From whose mailboxes span several domains (DMARC cannot be evaluated,
/// RFC 7489 §6.6.1). Both are quarantined by default.
fn ambiguity_symbols(msg: &Message<'_>) -> Vec<Symbol> {
    use mail_parser::HeaderName as H;
    const SINGLE: [H<'static>; 5] =
        [H::From, H::Sender, H::ContentType, H::ContentTransferEncoding, H::ContentDisposition];
    let mut out = Vec::new();
    let mut dup: Vec<String> = Vec::new();
    let mut stack = vec![msg];
    while let Some(m) = stack.pop() {
        for part in &m.parts {
            for name in &SINGLE {
                if part.headers.iter().filter(|h| &h.name == name).count() > 1 && !dup.contains(&name.to_string()) {
                    dup.push(name.to_string());
                }
            }
            if let PartType::Message(inner) = &part.body {
                stack.push(inner);
            }
        }
    }
    if !dup.is_empty() {
        out.push(limit("MIME_DUPLICATE_HEADER", format!("header(s) given more than once: {}", dup.join(", "))));
    }
    let mut domains: Vec<String> = msg
        .from()
        .into_iter()
        .flat_map(|a| a.iter())
        .filter_map(|a| a.address.as_deref())
        .map(|a| a.rsplit_once('@').map_or(a, |(_, d)| d).to_ascii_lowercase())
        .collect();
    domains.dedup();
    domains.sort();
    domains.dedup();
    if domains.len() > 1 {
        out.push(limit("MIME_MULTIPLE_FROM_DOMAINS", format!("From names several domains: {}", domains.join(", "))));
    }
    out
}

fn limit(name: &str, reason: String) -> Symbol {
    Symbol::new(name, 0.0, reason).with_action(Action::Quarantine)
}

fn count_parts(msg: &Message<'_>) -> usize {
    let mut n = 0;
    let mut stack = vec![msg];
    while let Some(m) = stack.pop() {
        n += m.parts.len();
        stack.extend(m.parts.iter().filter_map(|p| match &p.body {
            PartType::Message(inner) => Some(inner),
            _ => None,
        }));
    }
    n
}

fn decoded_len(p: &MessagePart<'_>) -> u64 {
    match &p.body {
        PartType::Text(t) | PartType::Html(t) => t.len() as u64,
        PartType::Binary(b) | PartType::InlineBinary(b) => b.len() as u64,
        PartType::Message(_) | PartType::Multipart(_) => 0,
    }
}
