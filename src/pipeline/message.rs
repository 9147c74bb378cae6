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
    let broken = leaves.iter().filter(|l| l.part.is_encoding_problem).count();
    if broken > 0 {
        out.push(Symbol::new("MIME_BAD_ENCODING", 1.0, format!("{broken} part(s) could not be decoded cleanly")));
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
