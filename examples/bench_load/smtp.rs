//! One SMTP client session (RFC 5321): connect, EHLO, MAIL, RCPT, DATA,
//! QUIT, each step bounded by a timeout. A reply outside the expected class
//! is an error naming the step and the server's text.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::timeout;

pub struct Session {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    limit: Duration,
    line: String,
}

impl Session {
    /// Connects and reads the greeting.
    pub async fn open(target: SocketAddr, limit: Duration) -> Result<Session, String> {
        let s = timeout(limit, TcpStream::connect(target))
            .await
            .map_err(|_| "connect: timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        let _ = s.set_nodelay(true);
        let (r, w) = s.into_split();
        let mut s = Session { r: BufReader::with_capacity(4096, r), w, limit, line: String::new() };
        s.expect("greeting", 2).await?;
        Ok(s)
    }

    /// Reads one (possibly multi-line) reply; its code and text.
    async fn reply(&mut self) -> Result<(u16, String), String> {
        let mut text = String::new();
        loop {
            self.line.clear();
            let n = timeout(self.limit, self.r.read_line(&mut self.line))
                .await
                .map_err(|_| "reply timed out".to_string())?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("connection closed {}", text.trim_end()));
            }
            text.push_str(self.line.trim_end());
            // RFC 5321 §4.2.1: "xyz-" continues, "xyz " ends a reply.
            if self.line.as_bytes().get(3) != Some(&b'-') {
                let code = self.line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return Ok((code, text));
            }
            text.push_str(" | ");
        }
    }

    async fn expect(&mut self, step: &str, class: u16) -> Result<String, String> {
        let (code, text) = self.reply().await.map_err(|e| format!("{step}: {e}"))?;
        if code / 100 != class {
            return Err(format!("{step}: {text}"));
        }
        Ok(text)
    }

    async fn send(&mut self, data: &[u8]) -> Result<(), String> {
        timeout(self.limit, self.w.write_all(data))
            .await
            .map_err(|_| "write timed out".to_string())?
            .map_err(|e| format!("write: {e}"))
    }

    pub async fn command(&mut self, cmd: &str, class: u16) -> Result<String, String> {
        self.send(format!("{cmd}\r\n").as_bytes()).await?;
        let step = cmd.split([':', ' ']).next().unwrap_or(cmd).to_string();
        self.expect(&step, class).await
    }

    /// One message: MAIL, RCPT, DATA and the dot-stuffed content ending in
    /// ".\r\n"; the final reply's text.
    pub async fn mail(&mut self, from: &str, to: &str, wire: &[u8]) -> Result<String, String> {
        self.command(&format!("MAIL FROM:<{from}>"), 2).await?;
        self.command(&format!("RCPT TO:<{to}>"), 2).await?;
        self.command("DATA", 3).await?;
        self.send(wire).await?;
        self.expect("end of data", 2).await
    }

    /// QUIT; the 221 is read but a server that just closes is no error.
    pub async fn quit(mut self) {
        if self.send(b"QUIT\r\n").await.is_ok() {
            let _ = self.reply().await;
        }
    }
}

/// A whole session carrying one message.
pub async fn deliver(target: SocketAddr, limit: Duration, from: &str, to: &str, wire: &[u8]) -> Result<String, String> {
    let mut s = Session::open(target, limit).await?;
    s.command("EHLO client.bench.test", 2).await?;
    let r = s.mail(from, to, wire).await?;
    s.quit().await;
    Ok(r)
}
