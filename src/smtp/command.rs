//! SMTP command parsing without I/O (RFC 5321 §4.1.1, RFC 3030, RFC 3207).
//!
//! `Command::parse` takes one line without its CRLF and returns the command or
//! the reply to send for a malformed one.

use super::address::{Mailbox, parse_path};
use super::reply::{Reply, replies};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail { from: Option<Mailbox>, params: MailParams },
    Rcpt { to: Mailbox },
    Data,
    Bdat { size: u64, last: bool },
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Auth,
}

/// ESMTP parameters of MAIL FROM that this server understands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// SIZE=n (RFC 1870)
    pub size: Option<u64>,
    /// BODY=8BITMIME (RFC 6152); BODY=7BIT is the default.
    pub eight_bit: bool,
    /// SMTPUTF8 (RFC 6531)
    pub smtputf8: bool,
}

impl Command {
    pub fn parse(line: &str) -> Result<Command, Reply> {
        let (verb, arg) = match line.find(' ') {
            Some(i) => (&line[..i], line[i + 1..].trim()),
            None => (line, ""),
        };
        let no_arg = |c: Command| match arg.is_empty() {
            true => Ok(c),
            false => Err(replies::syntax("Syntax error, no parameters allowed")),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => helo_arg(arg).map(Command::Ehlo),
            "HELO" => helo_arg(arg).map(Command::Helo),
            "MAIL" => parse_mail(arg),
            "RCPT" => parse_rcpt(arg),
            "DATA" => no_arg(Command::Data),
            "BDAT" => parse_bdat(arg),
            "RSET" => no_arg(Command::Rset),
            // NOOP and HELP may carry an argument, which is ignored (RFC 5321 §4.1.1.9, §4.1.1.8).
            "NOOP" => Ok(Command::Noop),
            "HELP" => Ok(Command::Help),
            "QUIT" => no_arg(Command::Quit),
            "VRFY" if !arg.is_empty() => Ok(Command::Vrfy),
            "VRFY" => Err(replies::syntax("Syntax: VRFY <address>")),
            "EXPN" => Ok(Command::Expn),
            "STARTTLS" => no_arg(Command::StartTls),
            "AUTH" => Ok(Command::Auth),
            _ => Err(replies::unrecognized()),
        }
    }
}

fn helo_arg(arg: &str) -> Result<String, Reply> {
    // RFC 5321 §4.1.1.1: a domain or an address literal. Many real clients send
    // odd names, so anything printable without spaces is accepted and recorded.
    if arg.is_empty() || arg.contains(char::is_whitespace) || arg.chars().any(|c| c.is_control()) {
        return Err(replies::syntax("Syntax: EHLO hostname"));
    }
    Ok(arg.to_string())
}

/// Splits `FROM:<path> params` after the keyword; a space after the colon is
/// tolerated because many clients send it.
fn keyword_path<'a>(arg: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let end = rest.find('>')? + 1;
    Some((&rest[..end], rest[end..].trim()))
}

fn parse_mail(arg: &str) -> Result<Command, Reply> {
    let (path, rest) = keyword_path(arg, "FROM:").ok_or_else(|| replies::syntax("Syntax: MAIL FROM:<address>"))?;
    let from = parse_path(path).ok_or_else(|| Reply::new(501, "1.7", "Bad sender address syntax"))?;
    let mut params = MailParams::default();
    for p in rest.split_ascii_whitespace() {
        let (key, value) = p.split_once('=').unwrap_or((p, ""));
        match key.to_ascii_uppercase().as_str() {
            "SIZE" => {
                let n = value.parse().map_err(|_| replies::syntax("Bad SIZE parameter"))?;
                params.size = Some(n);
            }
            "BODY" => match value.to_ascii_uppercase().as_str() {
                "8BITMIME" => params.eight_bit = true,
                "7BIT" => {}
                _ => return Err(Reply::new(501, "5.4", "Unsupported BODY type")),
            },
            "SMTPUTF8" if value.is_empty() => params.smtputf8 = true,
            _ => return Err(Reply::new(555, "5.4", "Unsupported MAIL parameter")),
        }
    }
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(arg: &str) -> Result<Command, Reply> {
    let (path, rest) = keyword_path(arg, "TO:").ok_or_else(|| replies::syntax("Syntax: RCPT TO:<address>"))?;
    if !rest.is_empty() {
        return Err(Reply::new(555, "5.4", "Unsupported RCPT parameter"));
    }
    // RFC 5321 §4.5.1: <postmaster> without a domain must be accepted; it is
    // kept for the caller to qualify with the server's hostname.
    if path.eq_ignore_ascii_case("<postmaster>") {
        let to = Mailbox { local: "postmaster".into(), domain: String::new() };
        return Ok(Command::Rcpt { to });
    }
    match parse_path(path) {
        Some(Some(to)) => Ok(Command::Rcpt { to }),
        _ => Err(Reply::new(501, "1.3", "Bad recipient address syntax")),
    }
}

fn parse_bdat(arg: &str) -> Result<Command, Reply> {
    let mut parts = arg.split_ascii_whitespace();
    let size = parts.next().and_then(|s| s.parse().ok());
    let last = match parts.next() {
        None => false,
        Some(l) if l.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(replies::syntax("Syntax: BDAT size [LAST]")),
    };
    match (size, parts.next()) {
        (Some(size), None) => Ok(Command::Bdat { size, last }),
        _ => Err(replies::syntax("Syntax: BDAT size [LAST]")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(line: &str) -> u16 {
        match Command::parse(line) {
            Ok(_) => 0,
            Err(r) => r.code,
        }
    }

    #[test]
    fn table() {
        let ok: &[(&str, Command)] = &[
            ("EHLO client.test", Command::Ehlo("client.test".into())),
            ("helo [127.0.0.1]", Command::Helo("[127.0.0.1]".into())),
            ("DATA", Command::Data),
            ("BDAT 10 LAST", Command::Bdat { size: 10, last: true }),
            ("bdat 0", Command::Bdat { size: 0, last: false }),
            ("NOOP anything", Command::Noop),
            ("QUIT", Command::Quit),
            ("STARTTLS", Command::StartTls),
        ];
        for (line, want) in ok {
            assert_eq!(&Command::parse(line).unwrap(), want, "{line}");
        }
        let bad: &[(&str, u16)] = &[
            ("EHLO", 501),
            ("MAIL FROM:a@b.test", 501),
            ("MAIL FROM:<a@b.test> SIZE=x", 501),
            ("MAIL FROM:<a@b.test> FOO=1", 555),
            ("RCPT TO:<a>", 501),
            ("RCPT TO:<a@b.test> NOTIFY=NEVER", 555),
            ("BDAT x", 501),
            ("BDAT 1 MORE", 501),
            ("DATA now", 501),
            ("FROB", 500),
        ];
        for (line, want) in bad {
            assert_eq!(code(line), *want, "{line}");
        }
    }

    #[test]
    fn mail_params() {
        let c = Command::parse("MAIL FROM: <a@b.test> SIZE=100 BODY=8BITMIME SMTPUTF8").unwrap();
        let Command::Mail { from, params } = c else { panic!() };
        assert_eq!(from.unwrap().to_string(), "a@b.test");
        assert_eq!(params, MailParams { size: Some(100), eight_bit: true, smtputf8: true });
        assert_eq!(
            Command::parse("MAIL FROM:<>").unwrap(),
            Command::Mail { from: None, params: MailParams::default() }
        );
    }
}
