//! HTTP/1.1 over TLS to one worker, with a small pool of idle
//! connections so a scan does not pay for a handshake.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;

/// Largest answer read from a worker: findings are small.
const MAX_ANSWER: usize = 4 << 20;
/// Idle connections kept per worker.
const MAX_IDLE: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No connection could be made (refused, TLS refused).
    Unreachable(String),
    /// The connection broke, or the answer was unreadable.
    Failed(String),
}

type Sender = SendRequest<Full<Bytes>>;

pub struct Conn {
    addr: String,
    name: ServerName<'static>,
    tls: Arc<ClientConfig>,
    auth: Option<String>,
    idle: Mutex<Vec<Sender>>,
}

impl Conn {
    pub fn new(addr: &str, tls: Arc<ClientConfig>, secret: Option<&str>) -> Result<Conn, String> {
        let name = crate::worker::trust::server_name(addr)?;
        let auth = secret.map(|s| format!("Bearer {s}"));
        Ok(Conn { addr: addr.to_string(), name, tls, auth, idle: Mutex::new(Vec::new()) })
    }

    async fn connect(&self) -> Result<Sender, CallError> {
        let unreachable = |e: String| CallError::Unreachable(e);
        let tcp =
            TcpStream::connect(&self.addr).await.map_err(|e| unreachable(format!("connect {}: {e}", self.addr)))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|e| unreachable(format!("TLS with {}: {e}", self.addr)))?;
        let (send, conn) =
            http1::handshake(TokioIo::new(tls)).await.map_err(|e| unreachable(format!("{}: {e}", self.addr)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    fn take_idle(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().expect("idle lock");
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    /// One request; `(status, body)`. A pooled connection the worker
    /// closed meanwhile is replaced once.
    pub async fn call(&self, method: Method, path: &str, body: Option<Bytes>) -> Result<(u16, Bytes), CallError> {
        if let Some(s) = self.take_idle() {
            match self.exchange(s, &method, path, body.clone()).await {
                Err(CallError::Failed(_)) => {}
                other => return other,
            }
        }
        let s = self.connect().await?;
        self.exchange(s, &method, path, body).await
    }

    async fn exchange(
        &self,
        mut s: Sender,
        method: &Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(u16, Bytes), CallError> {
        let failed = |e: String| CallError::Failed(format!("{}: {e}", self.addr));
        s.ready().await.map_err(|e| failed(e.to_string()))?;
        let mut req = Request::builder().method(method.clone()).uri(path).header("host", &self.addr);
        if let Some(a) = &self.auth {
            req = req.header("authorization", a);
        }
        if body.is_some() {
            req = req.header("content-type", crate::worker::protocol::CONTENT_TYPE);
        }
        let req = req.body(Full::new(body.unwrap_or_default())).map_err(|e| failed(e.to_string()))?;
        let resp = s.send_request(req).await.map_err(|e| failed(e.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| failed(format!("reading the answer: {e}")))?
            .to_bytes();
        let mut idle = self.idle.lock().expect("idle lock");
        if !s.is_closed() && idle.len() < MAX_IDLE {
            idle.push(s);
        }
        Ok((status, bytes))
    }
}
