//! A minimal HTTP/1.1 client for the admin API (one request per connection).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct HttpResponse {
    pub status: u16,
    /// The status line and header fields.
    pub head: String,
    pub body: String,
    /// The body as sent (for downloads that are not UTF-8).
    pub bytes: Vec<u8>,
}

impl HttpResponse {
    /// A header field's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

pub async fn request(base: &str, method: &str, path: &str, token: Option<&str>) -> Result<HttpResponse, String> {
    send(base, method, path, token, None).await
}

/// A request with an optional JSON body. It names the local user in
/// `X-Mxgate-Actor`, so the audit log says who acted.
pub async fn send(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> Result<HttpResponse, String> {
    match tokio::time::timeout(std::time::Duration::from_secs(60), exchange(base, method, path, token, json)).await {
        Ok(r) => r,
        Err(_) => Err(format!("the admin listener at {base} did not answer within 60s")),
    }
}

async fn exchange(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&str>,
) -> Result<HttpResponse, String> {
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    if base.starts_with("https://") {
        return Err("https admin URLs are not supported by this client".into());
    }
    let mut stream = TcpStream::connect(hostport)
        .await
        .map_err(|e| format!("cannot reach the admin listener at {hostport}: {e} (is `mxgate serve` running?)"))?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let user: String = std::env::var("USER").unwrap_or_default().chars().filter(char::is_ascii_alphanumeric).collect();
    let actor = if user.is_empty() { "cli".to_string() } else { format!("cli:{user}") };
    let body = json.unwrap_or("");
    let kind = if json.is_some() { "Content-Type: application/json\r\n" } else { "" };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\n{auth}X-Mxgate-Actor: {actor}\r\n{kind}Content-Length: {}\r\nConnection: close\r\nAccept: application/json\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = &raw[split + 4..];
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("malformed status line")?;
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding: chunked"));
    let bytes = if chunked { dechunk(rest) } else { rest.to_vec() };
    let body = String::from_utf8_lossy(&bytes).into_owned();
    Ok(HttpResponse { status, head, body, bytes })
}

/// Joins a chunked body (RFC 9112 §7.1); stops at the last chunk or at
/// anything malformed.
pub fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]);
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
    }
    out
}
