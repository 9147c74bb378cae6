//! The `spamassassin` adapter: the message as received goes to spamd with
//! the SPAMC/1.5 `SYMBOLS` command (spamd's PROTOCOL), which answers with the
//! score, the threshold and the names of the rules that hit. The score,
//! times the stage's `weight`, joins ours as `SA_SCORE`; a message spamd
//! calls spam also gets `SA_SPAM` with the stage's `spam_action`. A refusal
//! or an answer we cannot read is a stage error, so `on_error` applies.

use super::scanner_io::{Address, connect, read_bounded};
use crate::pipeline::{Action, Findings, Input, Stage, StageDef, StageError, Symbol};
use crate::store::BoxFut;
use tokio::io::AsyncWriteExt;

/// The rule names of one message; far more than any real answer.
const MAX_REPLY: usize = 64 * 1024;

pub struct SpamAssassin {
    addr: Address,
    weight: f64,
    spam_action: Action,
}

impl SpamAssassin {
    pub fn new(def: &StageDef) -> Result<SpamAssassin, String> {
        let addr = Address::from_def(def)?;
        if !def.weight.is_finite() {
            return Err(format!("pipeline.stage `{}`: `weight` must be a finite number", def.name));
        }
        Ok(SpamAssassin { addr, weight: def.weight, spam_action: def.spam_action })
    }

    async fn scan(&self, raw: &[u8]) -> Result<Findings, StageError> {
        let mut conn = connect(&self.addr, "spamd").await?;
        let sent = async {
            // spamd compares header names exactly: `Content-length`.
            let head = format!("SYMBOLS SPAMC/1.5\r\nContent-length: {}\r\n\r\n", raw.len());
            conn.write_all(head.as_bytes()).await?;
            conn.write_all(raw).await?;
            conn.flush().await?;
            // As spamc does: no more input, so spamd never waits for more.
            conn.shutdown().await
        };
        sent.await.map_err(|e| StageError(format!("sending the message to spamd at {}: {e}", self.addr)))?;
        let reply = read_bounded(&mut conn, MAX_REPLY, None, "spamd").await?;
        let answer = parse(&reply).map_err(|e| StageError(format!("spamd at {}: {e}", self.addr)))?;
        Ok(answer.symbols(self.weight, self.spam_action).into())
    }
}

impl Stage for SpamAssassin {
    fn name(&self) -> &'static str {
        "spamassassin"
    }

    fn check<'a>(&'a self, input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        Box::pin(self.scan(input.raw))
    }
}

/// What spamd said about one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub spam: bool,
    pub score: f64,
    pub threshold: f64,
    pub rules: Vec<String>,
}

impl Answer {
    pub fn symbols(&self, weight: f64, spam_action: Action) -> Vec<Symbol> {
        let mut why = format!("SpamAssassin score {:.1} (threshold {:.1})", self.score, self.threshold);
        if !self.rules.is_empty() {
            why = format!("{why}: {}", self.rules.join(", "));
        }
        let mut out = vec![Symbol::new("SA_SCORE", self.score * weight, why.clone())];
        if self.spam {
            out.push(Symbol::new("SA_SPAM", 0.0, why).with_action(spam_action));
        }
        out
    }
}

/// spamd's answer to `SYMBOLS`:
/// `SPAMD/1.1 0 EX_OK\r\nContent-length: n\r\nSpam: True ; 7.2 / 5.0\r\n\r\nRULE1,RULE2`.
/// A non-zero code is spamd's refusal (sysexits.h numbers, such as
/// 76 EX_PROTOCOL); the error quotes it.
pub fn parse(reply: &[u8]) -> Result<Answer, String> {
    let text = std::str::from_utf8(reply).map_err(|_| "the answer is not UTF-8".to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| malformed("no end of headers", text))?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let mut words = status.splitn(3, ' ');
    let (proto, code, msg) = (words.next(), words.next(), words.next().unwrap_or_default());
    if !proto.is_some_and(|p| p.starts_with("SPAMD/")) {
        return Err(malformed("no SPAMD status line", status));
    }
    match code.map(str::parse::<u32>) {
        Some(Ok(0)) => {}
        Some(Ok(n)) => return Err(format!("spamd refused the message: {n} {}", cut(msg))),
        _ => return Err(malformed("bad status code", status)),
    }
    let (mut spam, mut length) = (None, None);
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| malformed("bad header line", line))?;
        match name.trim().to_ascii_lowercase().as_str() {
            "spam" => spam = Some(spam_header(value.trim()).ok_or_else(|| malformed("bad Spam header", line))?),
            "content-length" => {
                length = Some(value.trim().parse::<usize>().map_err(|_| malformed("bad length", line))?)
            }
            _ => {}
        }
    }
    let (spam, score, threshold) = spam.ok_or_else(|| malformed("no Spam header", head))?;
    let body = match length {
        Some(n) => body.get(..n).ok_or_else(|| format!("the answer is cut short: {} of {n} bytes", body.len()))?,
        None => body,
    };
    let rules = body.split(',').map(str::trim).filter(|r| !r.is_empty()).map(String::from).collect();
    Ok(Answer { spam, score, threshold, rules })
}

/// `True ; 7.2 / 5.0` (`Yes`/`No` in older answers).
fn spam_header(v: &str) -> Option<(bool, f64, f64)> {
    let (verdict, scores) = v.split_once(';')?;
    let spam = match verdict.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" => true,
        "false" | "no" => false,
        _ => return None,
    };
    let (score, threshold) = scores.split_once('/')?;
    let score: f64 = score.trim().parse().ok().filter(|s: &f64| s.is_finite())?;
    let threshold: f64 = threshold.trim().parse().ok().filter(|s: &f64| s.is_finite())?;
    Some((spam, score, threshold))
}

fn malformed(what: &str, near: &str) -> String {
    format!("malformed answer ({what}): `{}`", cut(near))
}

fn cut(s: &str) -> &str {
    crate::pipeline::message::head(s, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spam_answers_score_and_carry_the_action() {
        let a = parse(b"SPAMD/1.1 0 EX_OK\r\nContent-length: 11\r\nSpam: True ; 7.2 / 5.0\r\n\r\nRULE1,RULE2").unwrap();
        assert_eq!(a, Answer { spam: true, score: 7.2, threshold: 5.0, rules: vec!["RULE1".into(), "RULE2".into()] });
        let s = a.symbols(0.5, Action::Reject);
        assert_eq!((s[0].name.as_str(), s[0].score, s[0].action), ("SA_SCORE", 3.6, None));
        assert_eq!(s[0].reason, "SpamAssassin score 7.2 (threshold 5.0): RULE1, RULE2");
        assert_eq!((s[1].name.as_str(), s[1].score, s[1].action), ("SA_SPAM", 0.0, Some(Action::Reject)));
    }

    #[test]
    fn ham_answers_score_only() {
        let a = parse(b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; -1.9 / 5.0\r\nContent-length: 0\r\n\r\n").unwrap();
        let s = a.symbols(1.0, Action::Quarantine);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].score, s[0].reason.as_str()), (-1.9, "SpamAssassin score -1.9 (threshold 5.0)"));
        // Content-length bounds the rule list; older answers end it with CRLF.
        let a = parse(b"SPAMD/1.1 0 EX_OK\r\nContent-length: 3\r\nSpam: No ; 0.0 / 5.0\r\n\r\nA,B\r\n").unwrap();
        assert_eq!((a.spam, a.rules), (false, vec!["A".to_string(), "B".to_string()]));
    }

    #[test]
    fn refusals_and_malformed_answers_are_errors() {
        let e = parse(b"SPAMD/1.0 76 Bad header line: x\r\n\r\n").unwrap_err();
        assert_eq!(e, "spamd refused the message: 76 Bad header line: x");
        for bad in [
            &b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n"[..],
            b"SPAMD/1.1 0 EX_OK\r\nSpam: Maybe ; 1 / 5\r\n\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; NaN / 5\r\n\r\n",
            b"SPAMD/1.1 x EX_OK\r\nSpam: True ; 1 / 5\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1 / 5\r\n",
            b"",
        ] {
            assert!(parse(bad).unwrap_err().starts_with("malformed answer"), "{:?}", String::from_utf8_lossy(bad));
        }
        let e = parse(b"SPAMD/1.1 0 EX_OK\r\nContent-length: 9\r\nSpam: True ; 1 / 5\r\n\r\nA,B").unwrap_err();
        assert_eq!(e, "the answer is cut short: 3 of 9 bytes");
    }

    #[test]
    fn configuration_errors_name_the_key() {
        let def: StageDef = serde_json::from_value(serde_json::json!({ "name": "spamassassin" })).unwrap();
        let e = SpamAssassin::new(&def).err().unwrap();
        assert_eq!(e, "pipeline.stage `spamassassin`: `address` is required (host:port or a Unix socket path)");
    }
}
