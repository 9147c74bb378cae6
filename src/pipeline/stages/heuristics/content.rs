//! HTML checks: HTML without a plain-text alternative, text hidden from the
//! reader (to fool content filters), and executable content (which mail
//! clients strip, so only someone hoping for a lax one sends it).
//!
//! One pass over the tokens keeps a bounded stack of open elements, each
//! with the visibility and colours it inherits, so hidden text is counted
//! where it is, not guessed from the style attributes alone.

use super::HeuristicsConfig;
use crate::pipeline::html::{Token, Tokenizer, decode_entities, is_void};
use crate::pipeline::{Findings, Symbol, message};
use mail_parser::Message;

/// Deepest element nesting tracked; deeper elements inherit their parent.
const MAX_DEPTH: usize = 512;
/// Open elements searched for the match of an end tag.
const END_SEARCH: usize = 64;
/// Colours this close (sum of channel differences) count as the same.
const SAME_COLOUR: u32 = 24;

type Rgb = (u8, u8, u8);
const WHITE: Rgb = (255, 255, 255);
const BLACK: Rgb = (0, 0, 0);

/// What an element passes on to its content.
#[derive(Clone, Copy)]
struct Style {
    hidden: bool,
    fg: Rgb,
    bg: Rgb,
}

/// What one HTML document holds.
#[derive(Default)]
struct Report {
    hidden_chars: usize,
    executable: Vec<String>,
}

pub fn check(msg: &Message<'_>, cfg: &HeuristicsConfig, out: &mut Findings) {
    let texts = message::texts(msg);
    let (html, plain) = (texts.iter().any(|t| t.0), texts.iter().any(|t| !t.0));
    if html && !plain {
        out.push(Symbol::new("HEUR_HTML_ONLY", 0.5, "HTML without a text/plain alternative"));
    }
    let mut total = Report::default();
    for (_, doc) in texts.iter().filter(|t| t.0) {
        let r = scan(crate::pipeline::message::head(doc, cfg.max_html_bytes));
        total.hidden_chars += r.hidden_chars;
        for e in r.executable {
            if !total.executable.contains(&e) {
                total.executable.push(e);
            }
        }
    }
    if total.hidden_chars >= cfg.invisible_text_min.max(1) {
        let why = format!("{} characters of HTML text are hidden from the reader", total.hidden_chars);
        out.push(Symbol::new("HEUR_INVISIBLE_TEXT", 2.0, why));
    }
    if !total.executable.is_empty() {
        let why = format!("HTML contains {}", total.executable.join(", "));
        out.push(Symbol::new("HEUR_HTML_EXECUTABLE", 2.5, why));
    }
}

fn scan(doc: &str) -> Report {
    let mut r = Report::default();
    let root = Style { hidden: false, fg: BLACK, bg: WHITE };
    let mut stack: Vec<(String, Style)> = Vec::new();
    for tok in Tokenizer::new(doc) {
        let cur = stack.last().map_or(root, |s| s.1);
        match &tok {
            Token::Start { name, attrs, self_closing } => {
                executable(name, attrs, &mut r.executable);
                if !is_void(name) && !self_closing && stack.len() < MAX_DEPTH {
                    stack.push((name.clone(), inherit(cur, attrs)));
                }
            }
            Token::End(name) => {
                // Only the innermost elements are searched, so stray end
                // tags cannot make the pass quadratic.
                let window = stack.len().saturating_sub(END_SEARCH);
                if let Some(i) = stack[window..].iter().rposition(|(n, _)| n == name) {
                    stack.truncate(window + i);
                }
            }
            Token::Text(t) if cur.hidden || close(cur.fg, cur.bg) => {
                r.hidden_chars += decode_entities(t).chars().filter(|c| visible_char(*c)).count();
            }
            _ => {}
        }
    }
    r
}

/// Characters that would show if the text were not hidden.
fn visible_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '\u{ad}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{34f}')
}

/// Scripts, plugins, frames, `on*` event handlers and `javascript:` /
/// `vbscript:` URLs; each kind named once.
fn executable(name: &str, attrs: &[(String, String)], found: &mut Vec<String>) {
    let mut add = |what: String| {
        if !found.contains(&what) && found.len() < 8 {
            found.push(what);
        }
    };
    if matches!(name, "script" | "iframe" | "frame" | "object" | "embed" | "applet") {
        add(format!("<{name}>"));
    }
    for (k, v) in attrs {
        if k.len() > 2 && k.starts_with("on") && k.bytes().all(|b| b.is_ascii_alphabetic()) {
            add(format!("{k}= handler"));
        }
        if !URL_ATTRS.contains(&k.as_str()) {
            continue;
        }
        let v: String = v.chars().filter(|c| !c.is_whitespace() && !c.is_control()).take(12).collect();
        let v = v.to_ascii_lowercase();
        if v.starts_with("javascript:") || v.starts_with("vbscript:") {
            add(format!("{} URL", &v[..v.find(':').unwrap_or(0) + 1]));
        }
    }
}

/// Attributes whose value is loaded or followed as a URL.
const URL_ATTRS: &[&str] = &["href", "src", "action", "formaction", "xlink:href", "background", "data", "poster"];

/// The style an element gives its content: its parent's, changed by the
/// `hidden` attribute, `style`, and the legacy `color`/`bgcolor`.
fn inherit(mut s: Style, attrs: &[(String, String)]) -> Style {
    for (k, v) in attrs {
        match k.as_str() {
            "hidden" => s.hidden = true,
            "color" => s.fg = colour(v).unwrap_or(s.fg),
            "bgcolor" => s.bg = colour(v).unwrap_or(s.bg),
            "style" => declarations(&mut s, v),
            _ => {}
        }
    }
    s
}

fn declarations(s: &mut Style, css: &str) {
    for decl in css.split(';') {
        let Some((prop, val)) = decl.split_once(':') else { continue };
        let prop = prop.trim().to_ascii_lowercase();
        let val = val.trim().trim_end_matches("!important").trim().to_ascii_lowercase();
        match prop.as_str() {
            "display" if val == "none" => s.hidden = true,
            "visibility" if val == "hidden" || val == "collapse" => s.hidden = true,
            "font-size" | "opacity" if zero(&val) => s.hidden = true,
            "color" => s.fg = colour(&val).unwrap_or(s.fg),
            "background-color" => s.bg = colour(&val).unwrap_or(s.bg),
            "background" => s.bg = val.split_whitespace().find_map(colour).unwrap_or(s.bg),
            _ => {}
        }
    }
}

/// `0`, `0px`, `0.0em`, `0%`...
fn zero(v: &str) -> bool {
    let num = v.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
    num.parse::<f64>().is_ok_and(|n| n == 0.0)
}

fn close(a: Rgb, b: Rgb) -> bool {
    let d = |x: u8, y: u8| u32::from(x.abs_diff(y));
    d(a.0, b.0) + d(a.1, b.1) + d(a.2, b.2) <= SAME_COLOUR
}

/// `#rgb`, `#rrggbb`, `rgb(r, g, b)` and a few names.
fn colour(v: &str) -> Option<Rgb> {
    let v = v.trim().to_ascii_lowercase();
    if let Some(hex) = v.strip_prefix('#') {
        let n = u32::from_str_radix(hex, 16).ok()?;
        return match hex.len() {
            3 => Some((((n >> 8) & 15) as u8 * 17, ((n >> 4) & 15) as u8 * 17, (n & 15) as u8 * 17)),
            6 => Some(((n >> 16) as u8, (n >> 8) as u8, n as u8)),
            _ => None,
        };
    }
    if let Some(args) = v.strip_prefix("rgb(").or_else(|| v.strip_prefix("rgba(")) {
        let mut it = args.trim_end_matches(')').split(',').map(|p| p.trim().parse::<u8>().ok());
        return Some((it.next()??, it.next()??, it.next()??));
    }
    match v.as_str() {
        "white" => Some(WHITE),
        "black" => Some(BLACK),
        "red" => Some((255, 0, 0)),
        "blue" => Some((0, 0, 255)),
        "gray" | "grey" => Some((128, 128, 128)),
        "transparent" | "inherit" => None,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_text_is_counted() {
        let hidden = |doc: &str| scan(doc).hidden_chars;
        assert_eq!(hidden("<p>visible</p>"), 0);
        assert_eq!(hidden("<div style='display: none'>ab c</div>seen"), 3);
        assert_eq!(hidden("<span style=\"FONT-SIZE:0px\">abc</span><br>x"), 3);
        assert_eq!(hidden("<font color=#fff>abc</font>"), 3);
        assert_eq!(hidden("<td bgcolor=black><font color=white>abc</font></td>"), 0);
        assert_eq!(hidden("<div style='background:#000 url(x)'><p style='color:#ffffff'>abc</p></div>"), 0);
        assert_eq!(hidden("<div style='color:rgb(250,250,250)'>ab</div>cd"), 2);
        assert_eq!(hidden("<p hidden>ab</p><p style='opacity:0.5'>cd</p>"), 2);
        assert_eq!(hidden("<div style=display:none>&zwnj;&nbsp;&#8203;x"), 1);
    }

    #[test]
    fn executable_content_is_named() {
        let exe = |doc: &str| scan(doc).executable;
        assert_eq!(
            exe("<p onclick=x>a</p><a href=' JavaScript:alert(1)'>b</a><script>x</script>"),
            ["onclick= handler", "javascript: URL", "<script>"]
        );
        assert_eq!(exe("<iframe src=x></iframe><img src=x onerror=y>"), ["<iframe>", "onerror= handler"]);
        assert!(exe("<a href='https://x.test/on'>online</a><p data-on='javascript:'>").is_empty());
    }

    #[test]
    fn colours() {
        assert_eq!(colour("#FfF"), Some(WHITE));
        assert_eq!(colour("#102030"), Some((16, 32, 48)));
        assert_eq!(colour("rgb(1, 2, 3)"), Some((1, 2, 3)));
        assert_eq!(colour("rgb(1,2)"), None);
        assert_eq!(colour("#12"), None);
        assert_eq!(colour("#ééé"), None);
    }

    #[test]
    fn deep_and_broken_html_is_bounded() {
        let deep = "<div>".repeat(100_000) + "text";
        assert_eq!(scan(&deep).hidden_chars, 0);
        let _ = scan("<div style='display:none'<<<<>>>\u{0}<a href=\"");
        assert_eq!(crate::pipeline::message::head("aé", 2), "a");
    }
}
