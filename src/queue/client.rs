//! The outbound SMTP client used for delivery and recipient verification.
//! One `Client` is one connection; it can carry many transactions.

use super::route::Target;
use crate::io::{LineBuf, ReadError};
use crate::smtp::data::dot_stuff;
use rustls::ClientConfig;
use std::fmt;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A reply from the next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub text: String,
}

impl Response {
    pub fn ok(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn permanent(&self) -> bool {
        self.code >= 500
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// A failure of the connection or of the whole transaction.
#[derive(Debug, Clone)]
pub struct Failure {
    pub permanent: bool,
    pub message: String,
}

impl Failure {
    fn temp(message: impl Into<String>) -> Failure {
        Failure { permanent: false, message: message.into() }
    }
    fn from_response(stage: &str, r: &Response) -> Failure {
        Failure { permanent: r.permanent(), message: format!("{stage}: {r}") }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Extensions {
    pub pipelining: bool,
    pub starttls: bool,
    pub smtputf8: bool,
    pub eight_bit: bool,
    /// SIZE was advertised, with its limit when one was given (0 = none).
    pub size: Option<u64>,
}

pub struct Client {
    io: Box<dyn Io>,
    buf: LineBuf,
    pub ext: Extensions,
    pub tls: bool,
    pub target: Target,
}

/// What the MAIL command must declare about the content.
#[derive(Debug, Clone, Copy, Default)]
pub struct BodyKind {
    pub smtputf8: bool,
    pub eight_bit: bool,
}

/// What the next hop said for each recipient of one transaction.
pub type RcptResults = Vec<Result<Response, Response>>;

impl Client {
    /// Connects, reads the greeting, says EHLO and upgrades with STARTTLS
    /// when `tls` is given and the server offers it. `require_tls` refuses
    /// a server that does not.
    pub async fn connect(
        target: &Target,
        helo: &str,
        tls: Option<&Arc<ClientConfig>>,
        require_tls: bool,
    ) -> Result<Client, Failure> {
        let mut c = Self::open(target, helo).await?;
        match tls {
            Some(cfg) if c.ext.starttls => match c.starttls(cfg, helo).await {
                Ok(()) => {}
                Err(f) if require_tls => return Err(f),
                // Opportunistic TLS (RFC 7435): a failed upgrade falls back
                // to a fresh plaintext connection rather than deferring mail.
                Err(f) => {
                    tracing::info!(relay = %target.addr, error = %f.message, "STARTTLS failed; retrying without TLS");
                    c = Self::open(target, helo).await?;
                }
            },
            _ if require_tls => {
                return Err(Failure::temp(format!("{} does not offer STARTTLS, which is required", target.addr)));
            }
            _ => {}
        }
        Ok(c)
    }

    /// Connects, reads the greeting and says EHLO.
    async fn open(target: &Target, helo: &str) -> Result<Client, Failure> {
        let tcp = TcpStream::connect(target.addr)
            .await
            .map_err(|e| Failure::temp(format!("connect to {}: {e}", target.addr)))?;
        let _ = tcp.set_nodelay(true);
        let mut c = Client {
            io: Box::new(tcp),
            buf: LineBuf::new(),
            ext: Extensions::default(),
            tls: false,
            target: target.clone(),
        };
        let greeting = c.read_response().await?;
        if greeting.code != 220 {
            return Err(Failure::from_response("greeting", &greeting));
        }
        c.ehlo(helo).await?;
        Ok(c)
    }

    async fn ehlo(&mut self, helo: &str) -> Result<(), Failure> {
        let r = self.command(&format!("EHLO {helo}")).await?;
        if r.code != 250 {
            // RFC 5321 §3.2: fall back to HELO when EHLO is not understood.
            let r = self.command(&format!("HELO {helo}")).await?;
            if r.code != 250 {
                return Err(Failure::from_response("HELO", &r));
            }
            self.ext = Extensions::default();
            return Ok(());
        }
        let mut ext = Extensions::default();
        for line in r.text.lines().skip(1) {
            let mut words = line.split_ascii_whitespace();
            match words.next().map(|w| w.to_ascii_uppercase()).as_deref() {
                Some("PIPELINING") => ext.pipelining = true,
                Some("STARTTLS") => ext.starttls = true,
                Some("SMTPUTF8") => ext.smtputf8 = true,
                Some("8BITMIME") => ext.eight_bit = true,
                Some("SIZE") => ext.size = Some(words.next().and_then(|s| s.parse().ok()).unwrap_or(0)),
                _ => {}
            }
        }
        self.ext = ext;
        Ok(())
    }

    async fn starttls(&mut self, cfg: &Arc<ClientConfig>, helo: &str) -> Result<(), Failure> {
        let r = self.command("STARTTLS").await?;
        if r.code != 220 {
            return Err(Failure::from_response("STARTTLS", &r));
        }
        let name = crate::tls::server_name(&self.target.name).map_err(Failure::temp)?;
        let connector = tokio_rustls::TlsConnector::from(cfg.clone());
        let plain = std::mem::replace(&mut self.io, Box::new(tokio::io::empty()));
        let stream = connector
            .connect(name, plain)
            .await
            .map_err(|e| Failure::temp(format!("TLS handshake with {}: {e}", self.target.addr)))?;
        self.io = Box::new(stream);
        self.buf.clear();
        self.tls = true;
        // RFC 3207 §4.2: forget what was learned before TLS and ask again.
        self.ehlo(helo).await
    }

    pub async fn command(&mut self, line: &str) -> Result<Response, Failure> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.read_response().await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.io.write_all(bytes).await.map_err(|e| Failure::temp(format!("write: {e}")))?;
        self.io.flush().await.map_err(|e| Failure::temp(format!("write: {e}")))
    }

    pub async fn read_response(&mut self) -> Result<Response, Failure> {
        let mut text = String::new();
        loop {
            let line = match self.buf.read_line(&mut self.io, 4096).await {
                Ok(l) => l,
                Err(ReadError::Eof) => return Err(Failure::temp("connection closed by the next hop")),
                Err(ReadError::TooLong) => return Err(Failure::temp("reply line too long")),
                Err(ReadError::Io(e)) => return Err(Failure::temp(format!("read: {e}"))),
            };
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok()).filter(|c| (200..600).contains(c));
            let Some(code) = code else {
                return Err(Failure::temp(format!("malformed reply: {line:?}")));
            };
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(line.get(4..).unwrap_or(""));
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(Response { code, text });
            }
        }
    }

    /// One transaction. `Ok` carries each recipient's result; `Err` means
    /// the whole transaction failed and the connection should not be reused.
    pub async fn send(
        &mut self,
        from: &str,
        rcpts: &[String],
        body: &[u8],
        kind: BodyKind,
    ) -> Result<RcptResults, Failure> {
        let smtputf8 = kind.smtputf8;
        if smtputf8 && !self.ext.smtputf8 {
            // RFC 6531 §3.4: an SMTPUTF8 message cannot be downgraded here.
            return Err(Failure { permanent: true, message: "next hop does not support SMTPUTF8".into() });
        }
        if let Some(max) = self.ext.size
            && max > 0
            && body.len() as u64 > max
        {
            return Err(Failure { permanent: true, message: format!("message too big for next hop (limit {max})") });
        }
        // ESMTP parameters only where the server announced them (RFC 1870
        // §6, RFC 6152 §2). Eight-bit content to a server without 8BITMIME
        // is sent as is: nearly every server takes it, and downgrading
        // MIME is the sender's job.
        let mut mail = format!("MAIL FROM:<{from}>");
        if self.ext.size.is_some() {
            mail.push_str(&format!(" SIZE={}", body.len()));
        }
        if kind.eight_bit && self.ext.eight_bit {
            mail.push_str(" BODY=8BITMIME");
        }
        if smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        let mut cmds = vec![mail];
        cmds.extend(rcpts.iter().map(|r| format!("RCPT TO:<{r}>")));
        cmds.push("DATA".into());
        let replies = self.exchange(&cmds).await?;
        let (mail_r, rest) = replies.split_first().expect("one reply per command");
        let (data_r, rcpt_rs) = rest.split_last().expect("one reply per command");
        if !mail_r.ok() {
            self.reset().await;
            return Err(Failure::from_response("MAIL FROM", mail_r));
        }
        let mut results: RcptResults =
            rcpt_rs.iter().map(|r| if r.ok() { Ok(r.clone()) } else { Err(r.clone()) }).collect();
        if data_r.code == 354 && results.iter().all(|r| r.is_err()) {
            // RFC 2920 §3.1: with no recipient accepted, end DATA at once.
            self.write(b".\r\n").await?;
            self.read_response().await?;
            return Ok(results);
        }
        if data_r.code != 354 {
            self.reset().await;
            if results.iter().any(|r| r.is_ok()) {
                return Err(Failure::from_response("DATA", data_r));
            }
            return Ok(results);
        }
        self.write(&dot_stuff(body)).await?;
        let end = self.read_response().await?;
        for r in results.iter_mut().filter(|r| r.is_ok()) {
            *r = if end.ok() { Ok(end.clone()) } else { Err(end.clone()) };
        }
        Ok(results)
    }

    /// Sends commands pipelined when the server allows it (RFC 2920), and
    /// returns one reply per command.
    async fn exchange(&mut self, cmds: &[String]) -> Result<Vec<Response>, Failure> {
        let mut replies = Vec::with_capacity(cmds.len());
        if self.ext.pipelining {
            let batch: String = cmds.iter().map(|c| format!("{c}\r\n")).collect();
            self.write(batch.as_bytes()).await?;
            for _ in cmds {
                replies.push(self.read_response().await?);
            }
            return Ok(replies);
        }
        for (i, c) in cmds.iter().enumerate() {
            let r = self.command(c).await?;
            let stop = i == 0 && !r.ok();
            replies.push(r);
            if stop {
                // Without pipelining, nothing follows a refused MAIL; the
                // recipients and DATA get the same refusal.
                let copy = replies[0].clone();
                replies.resize(cmds.len(), copy);
                break;
            }
        }
        Ok(replies)
    }

    async fn reset(&mut self) {
        let _ = self.command("RSET").await;
    }

    pub async fn quit(mut self) {
        let _ = self.command("QUIT").await;
    }
}
