//! The worker protocol, version 1, without I/O: paths, the scan request's
//! body and the JSON documents. `docs/worker-protocol.md` is the reference
//! for other implementations; this file and that one change together.
//!
//! HTTP/1.1 over TLS 1.3. A scan is `POST /v1/scan/{stage}` whose body is
//! the session facts as one line of JSON, a line feed, then the message's
//! octets exactly as received: no base64, no JSON escaping of the message.

use crate::pipeline::{Facts, Findings};
use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;
pub const SCAN_PREFIX: &str = "/v1/scan/";
pub const HEALTH: &str = "/v1/health";
pub const LOAD: &str = "/v1/load";
pub const CONTENT_TYPE: &str = "application/vnd.mxgate.scan.v1";

/// `GET /v1/health`: 200 while the worker takes scans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub protocol: u32,
    pub stages: Vec<String>,
    pub version: String,
}

/// `GET /v1/load`: how busy the worker is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    pub in_flight: usize,
    pub max_in_flight: usize,
    pub served: u64,
    pub failed: u64,
    pub busy: u64,
}

/// The body of every non-200 answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// The request body: facts line, `\n`, message.
pub fn encode_scan(facts: &Facts, raw: &[u8]) -> Vec<u8> {
    // serde_json escapes control characters, so the facts stay on one line.
    let mut out = serde_json::to_vec(facts).expect("facts serialise");
    out.push(b'\n');
    out.extend_from_slice(raw);
    out
}

/// Splits a request body into the facts and the message.
pub fn decode_scan(body: &[u8]) -> Result<(Facts, &[u8]), String> {
    let nl = memchr::memchr(b'\n', body).ok_or("the body has no facts line (JSON, then a line feed)")?;
    let facts = serde_json::from_slice(&body[..nl]).map_err(|e| format!("the facts line is not valid: {e}"))?;
    Ok((facts, &body[nl + 1..]))
}

/// A 200 answer's body.
pub fn decode_findings(body: &[u8]) -> Result<Findings, String> {
    serde_json::from_slice(body).map_err(|e| format!("the worker's findings are not valid JSON: {e}"))
}

/// The stage a scan path names, if the path is one.
pub fn scan_stage(path: &str) -> Option<&str> {
    path.strip_prefix(SCAN_PREFIX).filter(|s| !s.is_empty() && !s.contains('/'))
}

/// The reason a worker gives for a non-200 answer, or the status alone.
pub fn error_text(status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => format!("{status}: {}", e.error),
        Err(_) => format!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_body_is_one_facts_line_then_the_raw_message() {
        let mut facts = Facts::test("a@x.test");
        facts.helo = "evil\nhelo".into();
        let raw = b"Subject: hi\r\n\r\n\x00\xff binary\n\r\n";
        let body = encode_scan(&facts, raw);
        let newlines = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
        assert_eq!(newlines(&body), newlines(raw) + 1, "only the separator and the message's own");
        assert!(body.ends_with(raw));
        let (back, msg) = decode_scan(&body).unwrap();
        assert_eq!((back.helo.as_str(), msg), ("evil\nhelo", &raw[..]));
        assert!(decode_scan(b"no newline").unwrap_err().contains("facts line"));
        assert!(decode_scan(b"{\"queue_id\":1}\nx").unwrap_err().contains("not valid"));
    }

    #[test]
    fn paths_and_errors() {
        assert_eq!(scan_stage("/v1/scan/attachment"), Some("attachment"));
        assert_eq!(scan_stage("/v1/scan/"), None);
        assert_eq!(scan_stage("/v1/scan/a/b"), None);
        assert_eq!(scan_stage("/v2/scan/a"), None);
        assert_eq!(error_text(503, br#"{"error":"busy"}"#), "503: busy");
        assert_eq!(error_text(502, b"Bad Gateway"), "502: Bad Gateway");
    }
}
