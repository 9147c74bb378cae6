//! A minimal HTTP/1.1 client (RFC 9112) for timing the admin API: one
//! kept-alive connection, GET only, bodies framed by Content-Length (what
//! the API sends). No HTTP client crate is a dependency of mxgate, and this
//! is all the benchmark needs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);

pub struct Conn {
    addr: SocketAddr,
    token: String,
    s: Option<BufReader<TcpStream>>,
}

/// A response: status, the `x-next-cursor` header and the body.
pub struct Resp {
    pub status: u16,
    pub next: Option<String>,
    pub body: Vec<u8>,
}

impl Conn {
    pub fn new(addr: SocketAddr, token: &str) -> Conn {
        Conn { addr, token: token.to_string(), s: None }
    }

    /// GET `path`; reconnects once if the kept connection was closed.
    pub async fn get(&mut self, path: &str) -> Result<Resp, String> {
        match self.try_get(path).await {
            Ok(r) => Ok(r),
            Err(_) if self.s.is_none() => self.try_get(path).await,
            Err(e) => Err(e),
        }
    }

    async fn try_get(&mut self, path: &str) -> Result<Resp, String> {
        let r = timeout(LIMIT, self.exchange(path)).await.map_err(|_| format!("GET {path}: timed out"))?;
        if r.is_err() {
            self.s = None;
        }
        r
    }

    async fn exchange(&mut self, path: &str) -> Result<Resp, String> {
        if self.s.is_none() {
            let s = TcpStream::connect(self.addr).await.map_err(|e| format!("connect {}: {e}", self.addr))?;
            let _ = s.set_nodelay(true);
            self.s = Some(BufReader::with_capacity(64 * 1024, s));
        }
        let s = self.s.as_mut().expect("connected");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nAccept: application/json\r\n\r\n",
            self.addr, self.token
        );
        s.get_mut().write_all(req.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let (mut status, mut len, mut next, mut line) = (0u16, None, None, String::new());
        loop {
            line.clear();
            if s.read_line(&mut line).await.map_err(|e| format!("read: {e}"))? == 0 {
                self.s = None;
                return Err("connection closed".into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if status == 0 {
                status = l.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or(format!("bad status line {l}"))?;
            } else if let Some((k, v)) = l.split_once(':') {
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse::<usize>().ok(),
                    "x-next-cursor" => next = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let len = len.ok_or("response without content-length")?;
        let mut body = vec![0; len];
        s.read_exact(&mut body).await.map_err(|e| format!("read body: {e}"))?;
        Ok(Resp { status, next, body })
    }
}

pub use mxgate::form::encode as enc;

/// Polls /healthz every 10 ms; prints the seconds since `since`.
pub async fn ready(admin: SocketAddr, since: f64, limit: u64) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(limit);
    while Instant::now() < end {
        let mut c = Conn::new(admin, "");
        if let Ok(Ok(r)) = timeout(Duration::from_secs(2), c.get("/healthz")).await
            && r.status == 200
        {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            println!("{:.3}", now.as_secs_f64() - since);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!("{admin}/healthz did not answer 200 within {limit} s"))
}
