//! A small, tolerant HTML tokenizer for the scanning stages. Mail HTML is
//! often broken and sometimes hostile, so this never fails: it yields text,
//! start tags (with decoded attributes), end tags and raw script/style text,
//! in one linear pass with no recursion. Attribute counts are capped, so a
//! tag cannot make it allocate without bound.

use std::borrow::Cow;

/// Most attributes kept per tag; the rest are skipped.
const MAX_ATTRS: usize = 64;

/// One piece of an HTML document.
#[derive(Debug, Clone, PartialEq)]
pub enum Token<'a> {
    /// Character data between tags, entities still encoded.
    Text(&'a str),
    /// `<name attr=value ...>`; names are lowercased, values decoded.
    Start { name: String, attrs: Vec<(String, String)>, self_closing: bool },
    /// `</name>`, lowercased.
    End(String),
    /// The content of `<script>`, `<style>`, `<title>` or `<textarea>`.
    Raw(&'a str),
}

impl Token<'_> {
    /// The value of an attribute of a start tag.
    pub fn attr(&self, key: &str) -> Option<&str> {
        match self {
            Token::Start { attrs, .. } => attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

/// Elements with no end tag; they never open a scope.
pub fn is_void(name: &str) -> bool {
    matches!(
        name,
        "area"
            | "base"
            | "br"
            | "col"
            | "embed"
            | "hr"
            | "img"
            | "input"
            | "link"
            | "meta"
            | "source"
            | "track"
            | "wbr"
    )
}

pub struct Tokenizer<'a> {
    s: &'a str,
    pos: usize,
    /// Set after a start tag whose content is raw text.
    raw_until: Option<&'static str>,
}

impl<'a> Tokenizer<'a> {
    pub fn new(s: &'a str) -> Tokenizer<'a> {
        Tokenizer { s, pos: 0, raw_until: None }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    /// Raw text runs up to the matching end tag (or the end of input).
    fn raw(&mut self, end: &'static str) -> &'a str {
        let rest = self.rest();
        let n = find_ci(rest, end).unwrap_or(rest.len());
        self.pos += n;
        &rest[..n]
    }

    /// Skips `<!-- ... -->`, `<!...>` and `<?...>`.
    fn skip_markup(&mut self) {
        let rest = self.rest();
        let n = if let Some(comment) = rest.strip_prefix("<!--") {
            comment.find("-->").map_or(rest.len(), |i| i + 7)
        } else {
            rest.find('>').map_or(rest.len(), |i| i + 1)
        };
        self.pos += n;
    }

    /// Reads a tag starting at `<`; returns None when it is not one, in
    /// which case the `<` is text.
    fn tag(&mut self) -> Option<Token<'a>> {
        let rest = self.rest();
        let b = rest.as_bytes();
        let (closing, start) = if b.get(1) == Some(&b'/') { (true, 2) } else { (false, 1) };
        if !b.get(start).is_some_and(u8::is_ascii_alphabetic) {
            return None;
        }
        let name_len =
            rest[start..].find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/').unwrap_or(rest.len() - start);
        let name = rest[start..start + name_len].to_ascii_lowercase();
        let (attrs, self_closing, used) = attributes(&rest[start + name_len..]);
        self.pos += start + name_len + used;
        if closing {
            return Some(Token::End(name));
        }
        self.raw_until = match name.as_str() {
            "script" => Some("</script"),
            "style" => Some("</style"),
            "title" => Some("</title"),
            "textarea" => Some("</textarea"),
            _ => None,
        };
        Some(Token::Start { name, attrs, self_closing })
    }
}

impl<'a> Iterator for Tokenizer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            if let Some(t) = self.raw_until.take().map(|end| self.raw(end)).filter(|t| !t.is_empty()) {
                return Some(Token::Raw(t));
            }
            let rest = self.rest();
            if rest.is_empty() {
                return None;
            }
            if !rest.starts_with('<') {
                let n = rest.find('<').unwrap_or(rest.len());
                self.pos += n;
                return Some(Token::Text(&rest[..n]));
            }
            if rest.starts_with("<!") || rest.starts_with("<?") {
                self.skip_markup();
                continue;
            }
            if let Some(t) = self.tag() {
                return Some(t);
            }
            self.pos += 1;
            return Some(Token::Text(&rest[..1]));
        }
    }
}

/// Parses attributes up to and including `>`: `(attrs, self_closing,
/// bytes used)`. Quoted values may contain `>`.
fn attributes(s: &str) -> (Vec<(String, String)>, bool, usize) {
    let b = s.as_bytes();
    let mut attrs = Vec::new();
    let mut i = 0;
    let mut self_closing = false;
    while i < b.len() {
        match b[i] {
            b'>' => return (attrs, self_closing, i + 1),
            b'/' => self_closing = true,
            c if c.is_ascii_whitespace() => {}
            _ => {
                self_closing = false;
                let (k, v, used) = attribute(&s[i..]);
                if attrs.len() < MAX_ATTRS {
                    attrs.push((k, v));
                }
                i += used.max(1);
                continue;
            }
        }
        i += 1;
    }
    (attrs, self_closing, b.len())
}

/// One `name`, `name=value`, `name="value"` or `name='value'`.
fn attribute(s: &str) -> (String, String, usize) {
    let name_end = s.find(|c: char| c.is_ascii_whitespace() || matches!(c, '=' | '>' | '/')).unwrap_or(s.len());
    let name = s[..name_end].to_ascii_lowercase();
    let after = &s[name_end..];
    let ws = after.len() - after.trim_start().len();
    if !after[ws..].starts_with('=') {
        return (name, String::new(), name_end.max(1));
    }
    let vstart = name_end + ws + 1;
    let v = &s[vstart..];
    let lead = v.len() - v.trim_start().len();
    let v = &v[lead..];
    let (raw, used) = match v.chars().next() {
        Some(q @ ('"' | '\'')) => match v[1..].find(q) {
            Some(end) => (&v[1..1 + end], end + 2),
            None => (&v[1..], v.len()),
        },
        _ => {
            let end = v.find(|c: char| c.is_ascii_whitespace() || c == '>').unwrap_or(v.len());
            (&v[..end], end)
        }
    };
    (name, decode_entities(raw).into_owned(), vstart + lead + used)
}

/// Byte offset of `needle` (ASCII) in `hay`, ignoring ASCII case.
pub fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Decodes the common named entities and numeric references; anything else
/// is left as written.
pub fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end =
            rest[1..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '#')).map(|e| e + 1).unwrap_or(rest.len());
        let decoded = entity(&rest[1..end]);
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end..];
                rest = rest.strip_prefix(';').unwrap_or(rest);
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let n = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return Some(char::from_u32(n).unwrap_or('\u{fffd}'));
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "shy" => '\u{ad}',
        "zwnj" => '\u{200c}',
        "zwj" => '\u{200d}',
        "sol" => '/',
        "colon" => ':',
        "period" => '.',
        "commat" => '@',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(name: &str, attrs: &[(&str, &str)]) -> Token<'static> {
        let attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Token::Start { name: name.into(), attrs, self_closing: false }
    }

    #[test]
    fn tokenizes_tags_text_and_raw() {
        let toks: Vec<_> =
            Tokenizer::new("<!-- c --><A HREF='x>y' id=z>hi &amp; 1<2</a><script>if(a<b)</script>").collect();
        assert_eq!(
            toks,
            [
                start("a", &[("href", "x>y"), ("id", "z")]),
                Token::Text("hi &amp; 1"),
                Token::Text("<"),
                Token::Text("2"),
                Token::End("a".into()),
                start("script", &[]),
                Token::Raw("if(a<b)"),
                Token::End("script".into()),
            ]
        );
    }

    #[test]
    fn tolerates_broken_markup() {
        for s in ["<a href=\"never closed", "<", "</", "<a", "<<<>>>", "<a =x>", "&#xffffffff;", "<p/ /x>"] {
            let _ = Tokenizer::new(s).count();
            let _ = decode_entities(s);
        }
    }

    #[test]
    fn decodes_entities() {
        assert_eq!(decode_entities("a&amp;b &lt;&#65;&#x42;&nbsp;&bogus; &"), "a&b <AB\u{a0}&bogus; &");
    }
}
