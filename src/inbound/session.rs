//! One SMTP session over any stream. The session is generic over its stream
//! so STARTTLS is a move: `run` hands the plain stream back, the caller does
//! the handshake and starts a new session over TLS (RFC 3207 §4.2: all
//! knowledge from before TLS is discarded).

use super::Shared;
use crate::io::{LineBuf, ReadError};
use crate::smtp::data::DataReceiver;
use crate::smtp::reply::replies;
use crate::smtp::{Command, MailParams, Mailbox, Reply};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Connection facts, kept across transactions.
#[derive(Debug, Default)]
pub struct Conn {
    pub helo: Option<String>,
    pub esmtp: bool,
    pub tls: bool,
}

/// The envelope of the transaction in progress.
#[derive(Debug)]
pub struct Envelope {
    pub from: Option<Mailbox>,
    pub params: MailParams,
    pub rcpts: Vec<Mailbox>,
}

/// Transaction state: RSET, EHLO and STARTTLS reset it with one assignment.
pub enum Txn {
    Idle,
    Mail(Envelope),
    /// Between BDAT chunks (RFC 3030 §2).
    Bdat(Envelope, Box<(DataReceiver, Vec<u8>)>),
}

/// Counters for the session's log line; they survive STARTTLS.
#[derive(Debug, Default)]
pub struct Stats {
    pub commands: u32,
    pub errors: u32,
    pub accepted: u32,
    pub rejected: u32,
}

/// What the dispatcher wants next.
pub enum Flow {
    Continue,
    Close,
    StartTls,
}

/// How a session ended.
pub enum End<S> {
    /// The client asked for TLS; here is the stream, with nothing buffered.
    StartTls(S),
    Closed(&'static str),
}

pub struct Session<S> {
    pub io: S,
    pub buf: LineBuf,
    pub out: Vec<u8>,
    pub shared: Arc<Shared>,
    pub peer: SocketAddr,
    pub conn: Conn,
    pub txn: Txn,
    pub stats: Stats,
    pub started: Instant,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub fn new(io: S, shared: Arc<Shared>, peer: SocketAddr, tls: bool, stats: Stats) -> Self {
        Session {
            io,
            buf: LineBuf::new(),
            out: Vec::new(),
            shared,
            peer,
            conn: Conn { tls, ..Conn::default() },
            txn: Txn::Idle,
            stats,
            started: Instant::now(),
        }
    }

    pub async fn run(mut self) -> (Stats, End<S>) {
        let end = self.serve().await;
        let _ = self.flush().await;
        let end = match end {
            Ok(()) => End::StartTls(self.io),
            Err(reason) => {
                let _ = self.io.shutdown().await;
                End::Closed(reason)
            }
        };
        (self.stats, end)
    }

    /// Ok(()) means STARTTLS was accepted; Err carries why the session ended.
    async fn serve(&mut self) -> Result<(), &'static str> {
        loop {
            let flow = match self.next_command().await? {
                Some(line) => {
                    self.stats.commands += 1;
                    match Command::parse(&line) {
                        Ok(cmd) => self.dispatch(cmd).await?,
                        Err(reply) => self.reply(reply),
                    }
                }
                None => Flow::Continue, // too long; already answered
            };
            if self.stats.errors >= self.shared.cfg.smtp.max_errors {
                self.reply(replies::too_many_errors(&self.shared.cfg.smtp.hostname));
                return Err("too many errors");
            }
            match flow {
                Flow::Continue => {}
                Flow::Close => return Err("closed"),
                Flow::StartTls => return Ok(()),
            }
        }
    }

    async fn dispatch(&mut self, cmd: Command) -> Result<Flow, &'static str> {
        // RFC 2920 §3.1: without EHLO the client may not pipeline.
        if !self.conn.esmtp && self.conn.helo.is_some() && !self.buf.pending().is_empty() {
            self.reply(replies::improper_pipelining());
            return Err("improper pipelining");
        }
        Ok(match cmd {
            Command::Ehlo(h) => self.ehlo(h, true),
            Command::Helo(h) => self.ehlo(h, false),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to } => self.rcpt(to).await,
            Command::Data => self.data().await?,
            Command::Bdat { size, last } => self.bdat(size, last).await?,
            Command::StartTls => self.starttls(),
            other => self.simple(other),
        })
    }

    /// Queues a reply; replies are flushed when the client waits for them,
    /// so a pipelined batch gets its replies in one write (RFC 2920 §3.2).
    pub fn reply(&mut self, r: Reply) -> Flow {
        // 452 for recipients past the limit is expected of a pipelining
        // client with a long list (RFC 5321 §4.5.3.1.10), not misbehaviour.
        if r.code >= 400 && r.code != 452 {
            self.stats.errors += 1;
        }
        self.out.extend_from_slice(r.to_wire().as_bytes());
        Flow::Continue
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.io.write_all(&self.out).await?;
            self.io.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// The next command line; None when it was too long (already answered).
    async fn next_command(&mut self) -> Result<Option<String>, &'static str> {
        if !self.buf.pending().contains(&b'\n') {
            self.flush().await.map_err(|_| "write failed")?;
        }
        let cfg = &self.shared.cfg.smtp;
        let mut shutdown = self.shared.shutdown.clone();
        let read = tokio::time::timeout(cfg.command_timeout, self.buf.read_line(&mut self.io, cfg.max_command_line));
        // Shutdown first: a command already buffered gets 421, not service.
        let line = tokio::select! {
            biased;
            _ = super::stopped(&mut shutdown) => {
                self.reply(replies::shutting_down(&self.shared.cfg.smtp.hostname));
                return Err("shutdown");
            }
            r = read => r,
        };
        match line {
            Ok(Ok(l)) => Ok(Some(l)),
            Ok(Err(ReadError::TooLong)) => {
                self.reply(replies::line_too_long());
                Ok(None)
            }
            Ok(Err(ReadError::Eof)) => Err("client closed"),
            Ok(Err(ReadError::Io(_))) => Err("read error"),
            Err(_) => {
                self.reply(replies::timeout(&self.shared.cfg.smtp.hostname));
                Err("timeout")
            }
        }
    }
}
