//! The `clamav` adapter: the message as received goes to clamd with the
//! INSTREAM command (clamd(8)), and clamd parses the MIME structure itself.
//! A virus quarantines (`CLAMAV_VIRUS`, one per name). A message clamd could
//! not scan whole, because it is over our `max_size` or over one of clamd's
//! own limits, is never taken as clean: it gets `CLAMAV_LIMIT` with the
//! stage's `on_limit` action. Anything else clamd cannot do is a stage
//! error, so the stage's `on_error` applies.

use super::scanner_io::{Address, connect, read_bounded};
use crate::pipeline::{Action, Findings, Input, Stage, StageDef, StageError, Symbol};
use crate::store::BoxFut;
use tokio::io::AsyncWriteExt;

/// clamd answers with one short line per result.
const MAX_REPLY: usize = 4096;
/// Bytes per INSTREAM chunk; clamd only bounds the total (StreamMaxLength).
const CHUNK: usize = 64 * 1024;

pub struct Clamav {
    addr: Address,
    max_size: u64,
    on_limit: Action,
}

impl Clamav {
    pub fn new(def: &StageDef) -> Result<Clamav, String> {
        let addr = Address::from_def(def)?;
        if def.max_size == 0 {
            return Err(format!("pipeline.stage `{}`: `max_size` must be more than 0 bytes", def.name));
        }
        Ok(Clamav { addr, max_size: def.max_size, on_limit: def.on_limit })
    }

    async fn scan(&self, raw: &[u8]) -> Result<Findings, StageError> {
        if raw.len() as u64 > self.max_size {
            let why = format!("the message is {} bytes, over max_size {}: not sent to clamd", raw.len(), self.max_size);
            return Ok(vec![Symbol::new("CLAMAV_LIMIT", 0.0, why).with_action(self.on_limit)].into());
        }
        let mut conn = connect(&self.addr, "clamd").await?;
        // clamd answers an over-long stream early and closes (clamd(8),
        // INSTREAM), so a failed write may still leave an answer to read.
        // The answer ends at `\0`: reading on could meet the reset that
        // clamd's close of our unread chunks causes, and lose the answer.
        let sent = send_stream(&mut conn, raw).await;
        let reply = read_bounded(&mut conn, MAX_REPLY, Some(0), "clamd").await;
        let reply = match (sent, reply) {
            (_, Ok(r)) if !r.is_empty() => r,
            (Err(e), _) => return Err(StageError(format!("sending the message to clamd at {}: {e}", self.addr))),
            (Ok(()), Err(e)) => return Err(e),
            (Ok(()), Ok(_)) => return Err(StageError(format!("clamd at {} closed without an answer", self.addr))),
        };
        symbols(&reply, self.on_limit).map(Findings::from).map_err(StageError)
    }
}

/// `zINSTREAM\0`, then `<u32 length, big-endian><data>` chunks and a
/// zero-length chunk to end the stream (clamd(8), INSTREAM).
async fn send_stream<W: AsyncWriteExt + Unpin>(w: &mut W, raw: &[u8]) -> std::io::Result<()> {
    w.write_all(b"zINSTREAM\0").await?;
    for chunk in raw.chunks(CHUNK) {
        w.write_all(&(chunk.len() as u32).to_be_bytes()).await?;
        w.write_all(chunk).await?;
    }
    w.write_all(&0u32.to_be_bytes()).await?;
    w.flush().await
}

impl Stage for Clamav {
    fn name(&self) -> &'static str {
        "clamav"
    }

    fn check<'a>(&'a self, input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        Box::pin(self.scan(input.raw))
    }
}

/// clamd's answer to INSTREAM as symbols. With the `z` prefix each result is
/// `stream: OK`, `stream: <name> FOUND` or `<text> ERROR`, ended by `\0`.
/// An error names what clamd said.
pub fn symbols(reply: &[u8], on_limit: Action) -> Result<Vec<Symbol>, String> {
    let text = String::from_utf8_lossy(reply);
    let lines: Vec<&str> = text.split(['\0', '\n']).map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        return Err("clamd sent an empty answer".into());
    }
    let mut out = Vec::new();
    for line in lines {
        if line.contains("size limit exceeded") {
            let why = "clamd refused the message: larger than its StreamMaxLength";
            out.push(Symbol::new("CLAMAV_LIMIT", 0.0, why).with_action(on_limit));
        } else if line.ends_with("ERROR") {
            return Err(format!("clamd could not scan the message: {}", quote(line)));
        } else if let Some(name) = line.strip_prefix("stream:").and_then(|r| r.trim().strip_suffix(" FOUND")) {
            out.push(found(name.trim(), on_limit));
        } else if line.strip_prefix("stream:").is_none_or(|r| r.trim() != "OK") {
            return Err(format!("clamd sent an answer it does not document: {}", quote(line)));
        }
    }
    Ok(out)
}

/// clamd reports its own scan limits (with AlertExceedsMax) as detections
/// named `Heuristics.Limits.Exceeded.*`: the rest was not scanned.
fn found(name: &str, on_limit: Action) -> Symbol {
    if name.starts_with("Heuristics.Limits.Exceeded") {
        Symbol::new("CLAMAV_LIMIT", 0.0, format!("clamd could not scan the whole message: {name}"))
            .with_action(on_limit)
    } else {
        Symbol::new("CLAMAV_VIRUS", 0.0, format!("clamd found {name}")).with_action(Action::Quarantine)
    }
}

fn quote(line: &str) -> String {
    let cut = crate::pipeline::message::head(line, 200);
    format!("`{cut}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(r: &Result<Vec<Symbol>, String>) -> Vec<(&str, Option<Action>)> {
        r.as_ref().unwrap().iter().map(|s| (s.name.as_str(), s.action)).collect()
    }

    #[test]
    fn clean_and_infected_answers() {
        assert_eq!(symbols(b"stream: OK\0", Action::Quarantine), Ok(vec![]));
        let r = symbols(b"stream: Eicar-Test-Signature FOUND\0", Action::Quarantine);
        assert_eq!(names(&r), [("CLAMAV_VIRUS", Some(Action::Quarantine))]);
        assert_eq!(r.unwrap()[0].reason, "clamd found Eicar-Test-Signature");
        // Several results in one answer give a symbol each.
        let r = symbols(b"stream: A.B FOUND\0stream: C.D FOUND\0", Action::Quarantine);
        let reasons: Vec<String> = r.unwrap().into_iter().map(|s| s.reason).collect();
        assert_eq!(reasons, ["clamd found A.B", "clamd found C.D"]);
    }

    #[test]
    fn limits_are_never_clean() {
        let r = symbols(b"stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0", Action::Reject);
        assert_eq!(names(&r), [("CLAMAV_LIMIT", Some(Action::Reject))]);
        let r = symbols(b"INSTREAM size limit exceeded. ERROR\0", Action::Quarantine);
        assert_eq!(names(&r), [("CLAMAV_LIMIT", Some(Action::Quarantine))]);
    }

    #[test]
    fn errors_and_unknown_answers_fail_the_stage() {
        let e = symbols(b"stream: Can't allocate memory ERROR\0", Action::Quarantine).unwrap_err();
        assert_eq!(e, "clamd could not scan the message: `stream: Can't allocate memory ERROR`");
        assert!(symbols(b"UNKNOWN COMMAND\0", Action::Quarantine).unwrap_err().contains("UNKNOWN COMMAND"));
        assert!(symbols(b"stream: \0", Action::Quarantine).is_err());
        assert!(symbols(b"OK\0", Action::Quarantine).is_err());
        assert_eq!(symbols(b"\0", Action::Quarantine), Err("clamd sent an empty answer".into()));
    }

    fn def(v: serde_json::Value) -> StageDef {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn configuration_errors_name_the_key() {
        let e = Clamav::new(&def(serde_json::json!({ "name": "clamav" }))).err().unwrap();
        assert_eq!(e, "pipeline.stage `clamav`: `address` is required (host:port or a Unix socket path)");
        let e = Clamav::new(&def(serde_json::json!({ "name": "clamav", "address": "/c", "max_size": 0 }))).err();
        assert!(e.unwrap().contains("`max_size`"));
    }

    /// Over `max_size` nothing is sent: the address here has no listener.
    #[tokio::test]
    async fn oversized_messages_are_not_sent() {
        let d = def(serde_json::json!({ "name": "clamav", "address": "/nonexistent/clamd.sock", "max_size": 10,
            "on_limit": "reject" }));
        let c = Clamav::new(&d).unwrap();
        let f = c.scan(&[b'x'; 11]).await.unwrap();
        assert_eq!((f.symbols[0].name.as_str(), f.symbols[0].action), ("CLAMAV_LIMIT", Some(Action::Reject)));
        let e = c.scan(&[b'x'; 10]).await.unwrap_err();
        assert!(e.0.starts_with("cannot connect to clamd at /nonexistent/clamd.sock: "), "{e}");
    }
}
