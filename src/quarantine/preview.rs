//! A held message, shown safely: header fields, the text, the HTML passed
//! through an allow-list of inert tags and attributes, and the attachments
//! by name. Nothing that runs (scripts, handlers, forms, frames, objects)
//! and nothing that loads (remote images, style URLs, links) survives: text
//! and attribute values are decoded and escaped again, images become a
//! placeholder unless they are inline `data:` pictures, and links show
//! their target instead of going there. The console also serves the HTML
//! under a Content-Security-Policy that forbids scripts and remote loads,
//! so a sanitiser bug alone cannot make the preview unsafe.

use crate::pipeline::html::{Token, Tokenizer, decode_entities, is_void};
use crate::pipeline::message::{self, head, is_attachment};
use mail_parser::{MimeHeaders, PartType};
use serde::Serialize;

/// Most octets of text or HTML shown.
const MAX_SHOWN: usize = 512 * 1024;

#[derive(Debug, Default, Serialize)]
pub struct Preview {
    /// Every header field, decoded to text.
    pub headers: Vec<(String, String)>,
    /// The plain text part, or the HTML's text when there is none.
    pub text: String,
    /// The HTML part, sanitised; `None` when the message has none.
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// Remote images left out of the HTML.
    pub blocked_images: usize,
}

#[derive(Debug, Serialize)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub size: usize,
}

pub fn build(raw: &[u8]) -> Preview {
    let Some(msg) = message::parse(raw) else {
        return Preview { text: String::from_utf8_lossy(head_bytes(raw)).into_owned(), ..Preview::default() };
    };
    let headers =
        msg.root_part().headers().iter().map(|h| (h.name.as_str().to_string(), clean(&header_text(raw, h)))).collect();
    let mut p = Preview { headers, ..Preview::default() };
    for leaf in message::leaves(&msg) {
        let part = leaf.part;
        match &part.body {
            PartType::Text(t) if !is_attachment(part) && p.text.is_empty() => p.text = head(t, MAX_SHOWN).to_string(),
            PartType::Html(h) if !is_attachment(part) && p.html.is_none() => {
                let (safe, blocked) = sanitize(head(h, MAX_SHOWN));
                p.html = Some(safe);
                p.blocked_images = blocked;
                if p.text.is_empty() {
                    p.text = html_text(head(h, MAX_SHOWN));
                }
            }
            PartType::Message(_) | PartType::Multipart(_) => {}
            _ if is_attachment(part) || !matches!(part.body, PartType::Text(_) | PartType::Html(_)) => {
                p.attachments.push(Attachment {
                    name: clean(part.attachment_name().unwrap_or("(unnamed)")),
                    content_type: part
                        .content_type()
                        .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
                        .unwrap_or_default(),
                    size: part.contents().len(),
                });
            }
            _ => {}
        }
    }
    p
}

fn head_bytes(raw: &[u8]) -> &[u8] {
    &raw[..raw.len().min(MAX_SHOWN)]
}

/// The field's value as text: decoded where mail-parser decoded it, else raw.
fn header_text(raw: &[u8], h: &mail_parser::Header<'_>) -> String {
    match h.value.as_text() {
        Some(t) => t.to_string(),
        None => String::from_utf8_lossy(raw.get(h.offset_start as usize..h.offset_end as usize).unwrap_or(b""))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Tags kept (without their attributes unless listed below).
const TAGS: &[&str] = &[
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "caption",
    "center",
    "code",
    "col",
    "colgroup",
    "dd",
    "div",
    "dl",
    "dt",
    "em",
    "font",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "small",
    "span",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
];
const ATTRS: &[&str] = &[
    "align",
    "valign",
    "width",
    "height",
    "colspan",
    "rowspan",
    "border",
    "cellpadding",
    "cellspacing",
    "bgcolor",
    "color",
    "face",
    "size",
    "alt",
    "title",
    "dir",
    "lang",
    "style",
];

/// The HTML with only inert tags and attributes, and how many remote
/// images it left out.
pub fn sanitize(html: &str) -> (String, usize) {
    let mut out = String::with_capacity(html.len().min(MAX_SHOWN));
    let mut blocked = 0;
    for tok in Tokenizer::new(html) {
        match tok {
            Token::Text(t) => out.push_str(&escape(&decode_entities(t))),
            Token::Raw(_) => {}
            Token::End(name) if TAGS.contains(&name.as_str()) && !is_void(&name) => {
                out.push_str(&format!("</{name}>"));
            }
            Token::End(_) => {}
            Token::Start { name, attrs, .. } if name == "img" => out.push_str(&image(&attrs, &mut blocked)),
            Token::Start { name, attrs, .. } if TAGS.contains(&name.as_str()) => {
                out.push('<');
                out.push_str(&name);
                for (k, v) in attrs.iter().filter(|(k, v)| ATTRS.contains(&k.as_str()) && safe_value(k, v)) {
                    out.push_str(&format!(" {k}=\"{}\"", escape(v)));
                }
                if name == "a"
                    && let Some(href) = attrs.iter().find(|(k, _)| k == "href")
                {
                    // The target is shown, not followed.
                    out.push_str(&format!(" title=\"{}\" class=\"mxgate-link\"", escape(&href.1)));
                }
                out.push('>');
            }
            Token::Start { .. } => {}
        }
    }
    (out, blocked)
}

/// Inline `data:` pictures stay (they load nothing); anything else becomes
/// a placeholder naming where it would have come from.
fn image(attrs: &[(String, String)], blocked: &mut usize) -> String {
    let src = attrs.iter().find(|(k, _)| k == "src").map_or("", |(_, v)| v.trim());
    let lower = src.to_ascii_lowercase();
    if lower.starts_with("data:image/") && !lower.starts_with("data:image/svg") {
        return format!("<img src=\"{}\" alt=\"\">", escape(src));
    }
    if lower.starts_with("cid:") {
        return "<span class=\"mxgate-img\">[inline image]</span>".into();
    }
    *blocked += 1;
    let host = src.split("//").nth(1).and_then(|r| r.split('/').next()).unwrap_or("");
    format!("<span class=\"mxgate-img\">[remote image blocked: {}]</span>", escape(head(host, 100)))
}

/// Style values that could fetch or run something are dropped whole.
fn safe_value(key: &str, value: &str) -> bool {
    if key != "style" {
        return true;
    }
    let v: String = value.to_ascii_lowercase().chars().filter(|c| !c.is_whitespace()).collect();
    !["url(", "image(", "src(", "expression", "@import", "behavior", "javascript:", "\\", "image-set", "-moz-binding"]
        .iter()
        .any(|bad| v.contains(bad))
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The readable text of an HTML part.
fn html_text(html: &str) -> String {
    let mut out = String::new();
    for tok in Tokenizer::new(html) {
        match tok {
            Token::Text(t) => out.push_str(&decode_entities(t)),
            Token::Start { name, .. } if matches!(name.as_str(), "br" | "p" | "div" | "tr" | "li") => out.push('\n'),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_handlers_and_remote_loads_are_removed() {
        let (s, blocked) = sanitize(
            "<p onclick=\"x()\" style=\"color:red\">Hi &amp; <b>bye</b></p><script>alert(1)</script>\
             <img src=\"https://track.test/p.gif\"><a href=\"javascript:alert(1)\">go</a>\
             <iframe src=\"https://x.test\"></iframe><div style=\"background:url(https://x.test/a)\">t</div>\
             <svg onload=alert(1)><text>s</text></svg><img src=x onerror=alert(1)>",
        );
        assert!(
            !s.contains("<script")
                && !s.contains("alert(1)<")
                && !s.contains("onclick")
                && !s.contains("onerror")
                && !s.contains("onload")
        );
        assert!(!s.contains("iframe") && !s.contains("url(") && !s.contains("href") && !s.contains("<svg"));
        assert!(s.contains("<p style=\"color:red\">Hi &amp; <b>bye</b></p>"), "{s}");
        assert!(s.contains("[remote image blocked: track.test]"));
        assert!(s.contains("title=\"javascript:alert(1)\""));
        assert_eq!(blocked, 2);
    }

    #[test]
    fn attribute_values_cannot_break_out() {
        let (s, _) = sanitize("<td title='a\"><script>x</script>'>q</td><p>&lt;script&gt;</p>");
        assert!(!s.contains("<script"), "{s}");
        assert!(s.contains("&lt;script&gt;"));
    }

    #[test]
    fn preview_lists_parts() {
        let raw = b"From: a@x.test\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>Hello</p><script>x</script>\r\n\
--b\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename=a.zip\r\n\r\nPK\r\n--b--\r\n";
        let p = build(raw);
        assert!(p.headers.iter().any(|(k, v)| k == "Subject" && v == "caf\u{e9}"));
        assert_eq!(p.html.as_deref().map(str::trim), Some("<p>Hello</p>"));
        assert_eq!(p.text.trim(), "Hello");
        assert_eq!(p.attachments[0].name, "a.zip");
    }
}
