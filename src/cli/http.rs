//! A minimal HTTP/1.1 client for the admin API (one request per connection).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

pub async fn request(base: &str, method: &str, path: &str, token: Option<&str>) -> Result<HttpResponse, String> {
    match tokio::time::timeout(std::time::Duration::from_secs(30), exchange(base, method, path, token)).await {
        Ok(r) => r,
        Err(_) => Err(format!("the admin listener at {base} did not answer within 30s")),
    }
}

async fn exchange(base: &str, method: &str, path: &str, token: Option<&str>) -> Result<HttpResponse, String> {
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    if base.starts_with("https://") {
        return Err("https admin URLs are not supported by this client".into());
    }
    let mut stream = TcpStream::connect(hostport)
        .await
        .map_err(|e| format!("cannot reach the admin listener at {hostport}: {e} (is `mxgate serve` running?)"))?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\n{auth}Content-Length: 0\r\nConnection: close\r\nAccept: application/json\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> Result<HttpResponse, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("malformed HTTP response")?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("malformed status line")?;
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding: chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Ok(HttpResponse { status, body })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
