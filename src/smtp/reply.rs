//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 3463).
//!
//! A `Reply` carries the basic code, the enhanced code and the client-safe
//! text. The class digit of the enhanced code is always derived from the basic
//! code, so a reply can never say 4xx with a 5.x.x enhanced code.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code without its class digit, e.g. "7.1" for 5.7.1.
    pub enhanced: Option<&'static str>,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Self {
        Reply { code, enhanced: Some(enhanced), text: text.into() }
    }

    /// A reply without an enhanced code (greeting, EHLO, and 354 per RFC 2034 §3).
    pub fn plain(code: u16, text: impl Into<String>) -> Self {
        Reply { code, enhanced: None, text: text.into() }
    }

    /// Wire form: every line of `text` becomes one reply line, joined with
    /// "code-" continuation markers (RFC 5321 §4.2.1).
    pub fn to_wire(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 16);
        let lines: Vec<&str> = self.text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.push_str(&self.code.to_string());
            out.push(sep);
            if let Some(e) = self.enhanced {
                out.push_str(&format!("{}.{} ", self.code / 100, e));
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.enhanced {
            Some(e) => write!(f, "{} {}.{} {}", self.code, self.code / 100, e, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

/// The replies the server gives in more than one place.
pub mod replies {
    use super::Reply;

    pub fn ok() -> Reply {
        Reply::new(250, "0.0", "OK")
    }
    pub fn bad_sequence(text: &str) -> Reply {
        Reply::new(503, "5.1", text)
    }
    pub fn syntax(text: &str) -> Reply {
        Reply::new(501, "5.4", text)
    }
    pub fn unrecognized() -> Reply {
        Reply::new(500, "5.2", "Command not recognized")
    }
    pub fn line_too_long() -> Reply {
        Reply::new(500, "5.2", "Line too long")
    }
    pub fn shutting_down(hostname: &str) -> Reply {
        Reply::new(421, "3.2", format!("{hostname} Service shutting down, try again later"))
    }
    pub fn timeout(hostname: &str) -> Reply {
        Reply::new(421, "4.2", format!("{hostname} Timeout exceeded, closing connection"))
    }
    pub fn too_many_errors(hostname: &str) -> Reply {
        Reply::new(421, "7.0", format!("{hostname} Too many errors, closing connection"))
    }
    pub fn too_big() -> Reply {
        Reply::new(552, "3.4", "Message size exceeds fixed limit")
    }
    pub fn storage_failure() -> Reply {
        Reply::new(451, "3.0", "Local error in processing, try again later")
    }
    pub fn improper_pipelining() -> Reply {
        Reply::new(554, "5.0", "Improper use of SMTP command pipelining")
    }
    pub fn bare_newline() -> Reply {
        Reply::new(550, "5.2", "Message refused: bare CR or LF in content (RFC 5321 2.3.8)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_class_follows_basic_code() {
        assert_eq!(Reply::new(450, "7.1", "x").to_wire(), "450 4.7.1 x\r\n");
        assert_eq!(Reply::new(550, "7.1", "x").to_wire(), "550 5.7.1 x\r\n");
    }

    #[test]
    fn multiline_uses_continuations() {
        let r = Reply::plain(250, "mx.test\nPIPELINING\nSIZE 10");
        assert_eq!(r.to_wire(), "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
    }
}
