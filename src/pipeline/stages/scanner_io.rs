//! The socket side of the outside-scanner adapters (`clamav`,
//! `spamassassin`): where the daemon listens (`host:port` or a Unix socket
//! path), one connection per message, and replies read with a size bound so
//! a misbehaving daemon cannot make us buffer without end.

use crate::pipeline::{StageDef, StageError};
use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// A daemon's listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `host:port`, resolved at each connect so a restarted daemon on a new
    /// address is found again.
    Tcp(String),
    Unix(PathBuf),
}

impl Address {
    /// `address` from the stage's table: a path when it starts with `/`,
    /// otherwise `host:port`.
    pub fn from_def(def: &StageDef) -> Result<Address, String> {
        let key = format!("pipeline.stage `{}`: `address`", def.name);
        let Some(a) = def.address.as_deref().map(str::trim).filter(|a| !a.is_empty()) else {
            return Err(format!("{key} is required (host:port or a Unix socket path)"));
        };
        if a.starts_with('/') {
            return Ok(Address::Unix(PathBuf::from(a)));
        }
        match a.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                Ok(Address::Tcp(a.to_string()))
            }
            _ => Err(format!("{key} `{a}` is neither host:port nor an absolute Unix socket path")),
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Tcp(a) => f.write_str(a),
            Address::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A connected stream to either kind of socket.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// Connects to the daemon; `what` names it in the error (`clamd`, `spamd`).
pub async fn connect(addr: &Address, what: &str) -> Result<Box<dyn Conn>, StageError> {
    // A scanner's host that vanished (a killed container) drops the SYN
    // instead of refusing it; each message would then wait the whole stage
    // timeout. A scanner next door answers a connect in milliseconds.
    let connecting = async {
        Ok::<Box<dyn Conn>, std::io::Error>(match addr {
            Address::Tcp(a) => Box::new(TcpStream::connect(a.as_str()).await?),
            Address::Unix(p) => Box::new(UnixStream::connect(p).await?),
        })
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(r) => r.map_err(|e| refused(what, addr, e)),
        Err(_) => Err(StageError(format!("cannot connect to {what} at {addr}: no answer within {CONNECT_TIMEOUT:?}"))),
    }
}

/// How long a connect to a scanner may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn refused(what: &str, addr: &Address, e: std::io::Error) -> StageError {
    StageError(format!("cannot connect to {what} at {addr}: {e}"))
}

/// Reads until `end` (included in the result) or end of stream, at most
/// `max` bytes: past that the reply is not one the daemon should send.
pub async fn read_bounded<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
    end: Option<u8>,
    what: &str,
) -> Result<Vec<u8>, StageError> {
    let mut out = Vec::with_capacity(max.min(4096));
    let mut buf = [0u8; 4096];
    loop {
        let n = r.read(&mut buf).await.map_err(|e| StageError(format!("reading {what}'s reply: {e}")))?;
        if n == 0 {
            return Ok(out);
        }
        let chunk = &buf[..n];
        let (chunk, done) = match end.and_then(|e| memchr::memchr(e, chunk)) {
            Some(i) => (&chunk[..=i], true),
            None => (chunk, false),
        };
        if out.len() + chunk.len() > max {
            return Err(StageError(format!("{what}'s reply is longer than {max} bytes")));
        }
        out.extend_from_slice(chunk);
        if done {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(address: Option<&str>) -> StageDef {
        serde_json::from_value(serde_json::json!({ "name": "clamav", "address": address })).unwrap()
    }

    #[test]
    fn addresses_are_host_port_or_absolute_paths() {
        assert_eq!(Address::from_def(&def(Some("127.0.0.1:3310"))), Ok(Address::Tcp("127.0.0.1:3310".into())));
        assert_eq!(Address::from_def(&def(Some("[::1]:783"))), Ok(Address::Tcp("[::1]:783".into())));
        assert_eq!(Address::from_def(&def(Some("/run/clamd.ctl"))), Ok(Address::Unix("/run/clamd.ctl".into())));
        let e = Address::from_def(&def(None)).unwrap_err();
        assert_eq!(e, "pipeline.stage `clamav`: `address` is required (host:port or a Unix socket path)");
        for bad in ["clamd.ctl", "localhost", "host:0", ":3310", "host:99999"] {
            let e = Address::from_def(&def(Some(bad))).unwrap_err();
            assert!(e.contains(bad) && e.contains("`address`"), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn reads_stop_at_the_terminator_or_the_bound() {
        let mut r: &[u8] = b"stream: OK\0trailing";
        assert_eq!(read_bounded(&mut r, 64, Some(0), "clamd").await.unwrap(), b"stream: OK\0");
        let mut r: &[u8] = b"no terminator";
        assert_eq!(read_bounded(&mut r, 64, Some(0), "clamd").await.unwrap(), b"no terminator");
        let mut r: &[u8] = &[b'x'; 100];
        let e = read_bounded(&mut r, 64, None, "spamd").await.unwrap_err();
        assert_eq!(e.0, "spamd's reply is longer than 64 bytes");
    }
}
