//! DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030): receiving message content.
//! Accepting it (trace header, pipeline, durable store, 250) is in accept.rs.

use super::session::{Envelope, Flow, Session, Txn};
use crate::io::ReadError;
use crate::smtp::Reply;
use crate::smtp::data::{DataLimits, DataReceiver};
use crate::smtp::reply::replies;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn limits(&self) -> DataLimits {
        let c = &self.shared.cfg.smtp;
        DataLimits { max_size: c.max_message_size, max_line: c.max_line_length, max_header: c.max_header_size }
    }

    pub async fn data(&mut self) -> Result<Flow, &'static str> {
        match &self.txn {
            Txn::Mail(env) if !env.rcpts.is_empty() => {}
            Txn::Mail(_) => return Ok(self.reply(Reply::new(554, "5.1", "No valid recipients"))),
            Txn::Bdat(..) => return Ok(self.reply(replies::bad_sequence("DATA not allowed after BDAT"))),
            Txn::Idle => return Ok(self.reply(replies::bad_sequence("Send MAIL FROM first"))),
        }
        // RFC 2920 §3.1: DATA ends a pipelined group; the client must wait
        // for 354 before sending content.
        if !self.buf.pending().is_empty() {
            self.reply(replies::improper_pipelining());
            return Err("improper pipelining");
        }
        self.reply(Reply::plain(354, "End data with <CR><LF>.<CR><LF>"));
        self.flush().await.map_err(|_| "write failed")?;
        let Txn::Mail(env) = std::mem::replace(&mut self.txn, Txn::Idle) else { unreachable!() };
        let mut rx = DataReceiver::data(self.limits());
        let mut content = Vec::with_capacity(self.initial_capacity(&env));
        self.receive(&mut rx, &mut content, None).await?;
        let reply = self.accept(env, content, rx.error()).await;
        Ok(self.reply(reply))
    }

    pub async fn bdat(&mut self, size: u64, last: bool) -> Result<Flow, &'static str> {
        let (env, mut st) = match std::mem::replace(&mut self.txn, Txn::Idle) {
            Txn::Mail(env) if !env.rcpts.is_empty() => {
                let cap = self.initial_capacity(&env);
                (env, Box::new((DataReceiver::bdat(self.limits()), Vec::with_capacity(cap))))
            }
            Txn::Bdat(env, st) => (env, st),
            other => {
                // The chunk is read even when it is refused, so the session
                // stays in step with the client (RFC 3030 §2).
                let mut sink =
                    DataReceiver::bdat(DataLimits { max_size: 0, max_line: usize::MAX, max_header: usize::MAX });
                self.receive(&mut sink, &mut Vec::new(), Some(size)).await?;
                let reply = match other {
                    Txn::Mail(_) => Reply::new(554, "5.1", "No valid recipients"),
                    _ => replies::bad_sequence("Send MAIL FROM first"),
                };
                return Ok(self.reply(reply));
            }
        };
        let (rx, content) = &mut *st;
        self.receive(rx, content, Some(size)).await?;
        if let Some(err) = rx.error() {
            // Refuse the transaction now; later chunks get 503.
            return Ok(self.reply(super::accept::refusal(err, &self.shared.cfg.smtp)));
        }
        if !last {
            self.txn = Txn::Bdat(env, st);
            return Ok(self.reply(Reply::new(250, "0.0", format!("{size} octets received"))));
        }
        rx.finish(content);
        let (content, error) = (std::mem::take(content), rx.error());
        let reply = self.accept(env, content, error).await;
        Ok(self.reply(reply))
    }

    fn initial_capacity(&self, env: &Envelope) -> usize {
        // The client's SIZE is a hint, not a promise: cap what it can make us
        // allocate before sending anything.
        env.params.size.unwrap_or(16 * 1024).min(self.shared.cfg.smtp.max_message_size as u64).min(1 << 20) as usize
            + 1024
    }

    /// Feeds content to `rx` until the end of DATA, or `exact` octets for
    /// BDAT, enforcing the data timeout and the minimum data rate.
    async fn receive(
        &mut self,
        rx: &mut DataReceiver,
        out: &mut Vec<u8>,
        exact: Option<u64>,
    ) -> Result<(), &'static str> {
        let started = Instant::now();
        let mut left = exact.unwrap_or(u64::MAX);
        let smtp = &self.shared.cfg.smtp;
        let (timeout, min_rate, grace) = (smtp.data_timeout, smtp.min_data_rate, smtp.min_data_rate_after);
        let hostname = smtp.hostname.clone();
        let mut taken: u64 = 0;
        loop {
            let pending = self.buf.pending();
            let n = pending.len().min(left.min(usize::MAX as u64) as usize);
            if n > 0 || exact == Some(0) {
                match rx.ingest(&pending[..n], out) {
                    Some(used) if exact.is_none() => {
                        self.buf.consume(used);
                        return Ok(());
                    }
                    _ => {
                        self.buf.consume(n);
                        left -= n as u64;
                        taken += n as u64;
                    }
                }
                if left == 0 {
                    return Ok(());
                }
            }
            let elapsed = started.elapsed();
            if elapsed > grace && (taken as f64 / elapsed.as_secs_f64()) < min_rate as f64 {
                self.reply(Reply::new(421, "4.2", format!("{hostname} Data rate too low, closing connection")));
                return Err("data rate too low");
            }
            match tokio::time::timeout(timeout, self.buf.fill(&mut self.io)).await {
                Ok(Ok(_)) => {}
                Ok(Err(ReadError::Eof)) => return Err("client closed during data"),
                Ok(Err(_)) => return Err("read error during data"),
                Err(_) => {
                    self.reply(replies::timeout(&hostname));
                    return Err("data timeout");
                }
            }
        }
    }
}
