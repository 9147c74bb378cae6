//! An SMTP client for tests that reads like a transcript:
//! `c.say("RCPT TO:<x@nowhere.test>", "550 5.7.1").await`.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Client {
    pub io: Box<dyn Io>,
    buf: Vec<u8>,
    pub greeting: String,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect to gateway");
        let mut c = Client { io: Box::new(tcp), buf: Vec::new(), greeting: String::new() };
        c.greeting = c.reply().await;
        c
    }

    /// A client over an already established stream.
    pub fn over(io: Box<dyn Io>) -> Client {
        Client { io, buf: Vec::new(), greeting: String::new() }
    }

    /// Sends a command and asserts the reply starts with `expect`.
    pub async fn say(&mut self, line: &str, expect: &str) -> String {
        self.send(&format!("{line}\r\n")).await;
        let r = self.reply().await;
        assert!(r.starts_with(expect), "{line:?}: expected {expect:?}, got {r:?}");
        r
    }

    /// Sends a command and returns the reply, "" if the connection broke.
    pub async fn say_soft(&mut self, line: &str) -> String {
        self.send_soft(&format!("{line}\r\n")).await;
        self.reply().await
    }

    /// Sends without panicking on a broken connection.
    pub async fn send_soft(&mut self, raw: &str) {
        let _ = self.io.write_all(raw.as_bytes()).await;
        let _ = self.io.flush().await;
    }

    pub async fn send(&mut self, raw: &str) {
        self.send_bytes(raw.as_bytes()).await;
    }

    pub async fn send_bytes(&mut self, raw: &[u8]) {
        self.io.write_all(raw).await.expect("write");
        self.io.flush().await.expect("flush");
    }

    /// Reads one complete (possibly multi-line) reply; "" when closed.
    pub async fn reply(&mut self) -> String {
        let mut out = String::new();
        loop {
            let line = match self.line().await {
                Some(l) => l,
                None => return out,
            };
            out.push_str(&line);
            out.push('\n');
            if line.as_bytes().get(3) != Some(&b'-') {
                return out;
            }
        }
    }

    /// Asserts the next reply starts with `expect`.
    pub async fn expect(&mut self, expect: &str) -> String {
        let r = self.reply().await;
        assert!(r.starts_with(expect), "expected {expect:?}, got {r:?}");
        r
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=p).collect();
                return Some(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(20), self.io.read(&mut chunk))
                .await
                .expect("reply within 20s")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// True when the server closed the connection (after any pending reply).
    pub async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        matches!(tokio::time::timeout(Duration::from_secs(20), self.io.read(&mut chunk)).await, Ok(Ok(0)) | Ok(Err(_)))
    }

    /// EHLO, MAIL and RCPT, each expected to succeed.
    pub async fn envelope(&mut self, from: &str, to: &[&str]) {
        self.say("EHLO client.test", "250").await;
        self.say(&format!("MAIL FROM:<{from}>"), "250").await;
        for t in to {
            self.say(&format!("RCPT TO:<{t}>"), "250").await;
        }
    }

    /// EHLO, MAIL, RCPT, DATA and content; returns the final reply.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], content: &str) -> String {
        self.envelope(from, to).await;
        self.say("DATA", "354").await;
        self.send(&format!("{content}.\r\n")).await;
        self.reply().await
    }

    /// Upgrades with STARTTLS, trusting any certificate.
    pub async fn starttls(mut self) -> Client {
        self.say("STARTTLS", "220").await;
        assert!(self.buf.is_empty());
        let cfg =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(mxgate::tls::accept_any())
                .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
        let name = rustls::pki_types::ServerName::try_from("mx.gateway.test").unwrap();
        let tls = connector.connect(name, self.io).await.expect("TLS handshake");
        Client { io: Box::new(tls), buf: Vec::new(), greeting: self.greeting }
    }
}
