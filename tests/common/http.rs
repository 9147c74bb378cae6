//! A small HTTP/1.1 client for the admin listener: one request per
//! connection, `Connection: close`, chunked bodies decoded.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request; `token` becomes a bearer token.
pub async fn call(admin: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Resp {
    let mut extra = Vec::new();
    if let Some(t) = token {
        extra.push(("Authorization".to_string(), format!("Bearer {t}")));
    }
    if body.is_some() {
        extra.push(("Content-Type".to_string(), "application/json".to_string()));
    }
    request(admin, method, path, &extra, body.unwrap_or("").as_bytes()).await
}

pub async fn request(admin: SocketAddr, method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Resp {
    let mut s = tokio::net::TcpStream::connect(admin).await.expect("admin listener reachable");
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {admin}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    parse(&raw)
}

fn parse(raw: &[u8]) -> Resp {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")) {
        body = mxgate::cli::http::dechunk(&body);
    }
    Resp { status, headers, body }
}
