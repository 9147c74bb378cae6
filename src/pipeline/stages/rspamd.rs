//! `rspamd`: the message and its envelope go to rspamd's normal worker
//! (`POST /checkv2`, rspamd's HTTP protocol); its symbols join ours as
//! `RSPAMD_<NAME>`, weighted, and its action becomes `RSPAMD_ACTION`.
//!
//! ```toml
//! [[pipeline.stage]]
//! name = "rspamd"
//! url = "http://127.0.0.1:11333"
//! password = "..."   # optional, sent as the Password header
//! weight = 1.0
//! spam_action = "quarantine"
//! ```

use super::super::{Action, Findings, Input, Stage, StageDef, StageError, Symbol, fmt_score};
use crate::store::BoxFut;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use serde::Deserialize;
use std::collections::BTreeMap;
use tokio::net::TcpStream;

/// rspamd's reply is a few KiB; anything near this is not rspamd.
const MAX_REPLY: usize = 1 << 20;
/// Options quoted per symbol, so one symbol cannot flood the reason.
const MAX_OPTIONS: usize = 5;

pub struct Rspamd {
    /// `host:port` to connect to.
    addr: String,
    /// The Host header (RFC 9112 section 3.2: required in HTTP/1.1).
    authority: String,
    /// `{path of url}/checkv2`.
    path: String,
    /// Marked sensitive so that it stays out of debug output.
    password: Option<HeaderValue>,
    weight: f64,
    spam_action: Action,
}

impl Rspamd {
    pub fn new(def: &StageDef) -> Result<Rspamd, String> {
        let url =
            def.url.as_deref().filter(|u| !u.trim().is_empty()).ok_or_else(|| {
                "pipeline.stage `rspamd`: `url` is required, such as http://127.0.0.1:11333".to_string()
            })?;
        let (authority, base) = split_url(url.trim())?;
        let addr = if has_port(authority) { authority.to_string() } else { format!("{authority}:80") };
        if !def.weight.is_finite() {
            return Err(format!("pipeline.stage `rspamd`: `weight` must be a number, not {}", def.weight));
        }
        Ok(Rspamd {
            addr,
            authority: authority.to_string(),
            path: format!("{}/checkv2", base.trim_end_matches('/')),
            password: def.password.as_deref().map(password).transpose()?,
            weight: def.weight,
            spam_action: def.spam_action,
        })
    }

    /// The request, with rspamd's envelope headers from the session facts.
    fn request(&self, input: &Input<'_>) -> Result<Request<Full<Bytes>>, StageError> {
        let f = input.facts;
        let mut b = Request::post(self.path.as_str())
            .header(HOST, self.authority.as_str())
            .header(CONTENT_TYPE, "message/rfc822");
        let mut add = |name: &'static str, value: &str| {
            // A value that cannot be a header (control characters) is left
            // out: rspamd then scores without it rather than not at all.
            if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                b = std::mem::take(&mut b).header(name, v);
            }
        };
        add("IP", &f.client_ip);
        add("Helo", &f.helo);
        // The null sender (RFC 5321 section 4.5.5) has no From header.
        if let Some(s) = f.sender.as_deref().filter(|s| !s.is_empty()) {
            add("From", s);
        }
        for r in &f.recipients {
            add("Rcpt", r);
        }
        add("Queue-Id", &f.queue_id);
        if let Some(p) = &self.password {
            b = b.header("Password", p.clone());
        }
        b.body(Full::new(Bytes::copy_from_slice(input.raw)))
            .map_err(|e| StageError(format!("rspamd: cannot build the request: {e}")))
    }

    /// One connection per message: status and body, the body bounded.
    async fn exchange(&self, req: Request<Full<Bytes>>) -> Result<(hyper::StatusCode, Bytes), StageError> {
        let at = |e: &dyn std::fmt::Display| StageError(format!("rspamd at {}: {e}", self.addr));
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| StageError(format!("cannot connect to rspamd at {}: {e}", self.addr)))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| at(&e))?;
        let exchange = async {
            let resp = sender.send_request(req).await.map_err(|e| at(&e))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_REPLY)
                .collect()
                .await
                .map_err(|e| at(&format!("reading the reply (at most {MAX_REPLY} bytes): {e}")))?;
            Ok((status, body.to_bytes()))
        };
        tokio::pin!(exchange, conn);
        // The connection future drives the socket; both live in this
        // future, so the stage's timeout drops them together.
        tokio::select! {
            r = &mut exchange => r,
            c = &mut conn => {
                c.map_err(|e| at(&e))?;
                exchange.await
            }
        }
    }
}

impl Stage for Rspamd {
    fn name(&self) -> &'static str {
        "rspamd"
    }

    fn check<'a>(&'a self, input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        Box::pin(async move {
            let (status, body) = self.exchange(self.request(input)?).await?;
            if status != hyper::StatusCode::OK {
                return Err(StageError(format!("rspamd at {} answered {status}: {}", self.addr, excerpt(&body))));
            }
            findings(&body, self.weight, self.spam_action)
        })
    }
}

/// `http://host[:port][/path]` into authority and path; rspamd's normal
/// worker speaks plain HTTP only.
fn split_url(url: &str) -> Result<(&str, &str), String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(format!(
            "pipeline.stage `rspamd`: `url` {url}: https is not supported; \
             use http:// to rspamd on this host or a trusted network"
        ));
    }
    let rest = url.get(..7).filter(|s| s.eq_ignore_ascii_case("http://")).map(|_| &url[7..]).ok_or_else(|| {
        format!("pipeline.stage `rspamd`: `url` {url} must start with http://, such as http://127.0.0.1:11333")
    })?;
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("pipeline.stage `rspamd`: `url` {url} needs a host, such as http://127.0.0.1:11333"));
    }
    Ok((authority, path))
}

fn password(p: &str) -> Result<HeaderValue, String> {
    let mut v = HeaderValue::from_str(p).map_err(|_| {
        "pipeline.stage `rspamd`: `password` must be printable text (no control characters)".to_string()
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Whether `host:port` or `[v6]:port` names a port.
fn has_port(authority: &str) -> bool {
    match authority.rfind(']') {
        Some(i) => authority[i..].contains(':'),
        None => authority.contains(':'),
    }
}

/// The start of an error body, printable, for the error message.
fn excerpt(body: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(body).chars().take(200).collect();
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string()
}

#[derive(Deserialize)]
struct Reply {
    action: String,
    score: f64,
    required_score: f64,
    #[serde(default)]
    symbols: BTreeMap<String, ReplySymbol>,
}

#[derive(Deserialize)]
struct ReplySymbol {
    #[serde(default)]
    score: f64,
    #[serde(default)]
    options: Vec<String>,
}

/// rspamd's `/checkv2` JSON as our findings.
fn findings(body: &[u8], weight: f64, spam_action: Action) -> Result<Findings, StageError> {
    let reply: Reply = serde_json::from_slice(body)
        .map_err(|e| StageError(format!("rspamd answered something that is not its JSON reply ({e})")))?;
    let mut out = Findings::default();
    for (name, sym) in reply.symbols.iter().filter(|(_, s)| s.score != 0.0) {
        out.push(Symbol::new(format!("RSPAMD_{}", symbol_name(name)), sym.score * weight, reason(name, &sym.options)));
    }
    let why = format!(
        "rspamd: {} (score {} / required {})",
        reply.action,
        fmt_score(reply.score),
        fmt_score(reply.required_score)
    );
    let action = Symbol::new("RSPAMD_ACTION", 0.0, why);
    out.push(match map_action(&reply.action, spam_action) {
        Some(a) => action.with_action(a),
        None => action,
    });
    Ok(out)
}

/// rspamd's actions (its `actions` section) in our terms; `None` leaves
/// the decision to the scores.
fn map_action(action: &str, spam_action: Action) -> Option<Action> {
    match action {
        "reject" | "discard" => Some(spam_action),
        "quarantine" => Some(Action::Quarantine),
        "rewrite subject" | "add header" => Some(Action::Tag),
        "soft reject" => Some(Action::Tempfail),
        _ => None, // "no action", "greylist" (we do not greylist), custom ones
    }
}

fn symbol_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

fn reason(name: &str, options: &[String]) -> String {
    if options.is_empty() {
        return format!("rspamd {name}");
    }
    let mut quoted: Vec<String> = options.iter().take(MAX_OPTIONS).map(|o| o.chars().take(80).collect()).collect();
    if options.len() > MAX_OPTIONS {
        quoted.push(format!("and {} more", options.len() - MAX_OPTIONS));
    }
    format!("rspamd {name}: {}", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Facts;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn def(url: Option<&str>, extra: serde_json::Value) -> StageDef {
        let mut v = serde_json::json!({ "name": "rspamd", "url": url });
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    fn reply(action: &str, symbols: serde_json::Value) -> Vec<u8> {
        let v = serde_json::json!({ "is_skipped": false, "score": 7.25, "required_score": 15.0,
            "action": action, "symbols": symbols, "messages": {} });
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn urls_are_plain_http_with_optional_port_and_path() {
        let r = Rspamd::new(&def(Some("http://127.0.0.1:11333"), serde_json::json!({}))).unwrap();
        assert_eq!(
            (r.addr.as_str(), r.authority.as_str(), r.path.as_str()),
            ("127.0.0.1:11333", "127.0.0.1:11333", "/checkv2")
        );
        let r = Rspamd::new(&def(Some("HTTP://rspamd.example/scan/"), serde_json::json!({}))).unwrap();
        assert_eq!((r.addr.as_str(), r.path.as_str()), ("rspamd.example:80", "/scan/checkv2"));
        let r = Rspamd::new(&def(Some("http://[::1]"), serde_json::json!({}))).unwrap();
        assert_eq!(r.addr, "[::1]:80");
        let e = Rspamd::new(&def(None, serde_json::json!({}))).err().unwrap();
        assert_eq!(e, "pipeline.stage `rspamd`: `url` is required, such as http://127.0.0.1:11333");
        let e = Rspamd::new(&def(Some("https://127.0.0.1:11333"), serde_json::json!({}))).err().unwrap();
        assert!(e.contains("https is not supported"), "{e}");
        let e = Rspamd::new(&def(Some("http://h:1"), serde_json::json!({"password": "a\nb"}))).err().unwrap();
        assert!(e.contains("`password`"), "{e}");
        for bad in ["127.0.0.1:11333", "http://", "http:///checkv2", "http://user@host"] {
            let e = Rspamd::new(&def(Some(bad), serde_json::json!({}))).err().unwrap();
            assert!(e.contains("`url`") && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn the_envelope_travels_as_rspamd_headers() {
        let r = Rspamd::new(&def(Some("http://127.0.0.1:11333"), serde_json::json!({"password": "pw"}))).unwrap();
        let mut facts = Facts::test("a@sender.test");
        facts.recipients.push("c@example.test".into());
        let input = Input { facts: &facts, raw: b"Subject: x\r\n\r\nbody\r\n", message: None };
        let req = r.request(&input).unwrap();
        let h = req.headers();
        let all = |n: &str| h.get_all(n).iter().map(|v| v.to_str().unwrap()).collect::<Vec<_>>();
        assert_eq!(req.uri(), "/checkv2");
        assert_eq!(all("host"), ["127.0.0.1:11333"]);
        assert_eq!(all("ip"), ["192.0.2.1"]);
        assert_eq!(all("helo"), ["client.test"]);
        assert_eq!(all("from"), ["a@sender.test"]);
        assert_eq!(all("rcpt"), ["b@example.test", "c@example.test"]);
        assert_eq!(all("queue-id"), ["Q"]);
        assert_eq!(all("password"), ["pw"]);
        // The null sender sends no From; no password, no Password.
        facts.sender = None;
        facts.helo = "bad\r\nX-Injected: 1".into();
        let r = Rspamd::new(&def(Some("http://127.0.0.1:11333"), serde_json::json!({}))).unwrap();
        let input = Input { facts: &facts, raw: b"", message: None };
        let req = r.request(&input).unwrap();
        for absent in ["from", "password", "helo", "x-injected"] {
            assert!(req.headers().get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn symbols_are_weighted_and_named_and_the_action_mapped() {
        let body = reply(
            "add header",
            serde_json::json!({
                "R_SPF_FAIL": {"name": "R_SPF_FAIL", "score": 1.0, "options": ["-all"]},
                "ARC_NA": {"name": "ARC_NA", "score": 0.0},
                "bayes-spam.x": {"name": "bayes-spam.x", "score": -2.0},
                "MANY": {"name": "MANY", "score": 0.5, "options": ["1", "2", "3", "4", "5", "6", "7"]},
            }),
        );
        let f = findings(&body, 2.0, Action::Quarantine).unwrap();
        let got: Vec<(&str, f64, &str, Option<Action>)> =
            f.symbols.iter().map(|s| (s.name.as_str(), s.score, s.reason.as_str(), s.action)).collect();
        assert_eq!(
            got,
            [
                ("RSPAMD_MANY", 1.0, "rspamd MANY: 1, 2, 3, 4, 5, and 2 more", None),
                ("RSPAMD_R_SPF_FAIL", 2.0, "rspamd R_SPF_FAIL: -all", None),
                ("RSPAMD_BAYES_SPAM_X", -4.0, "rspamd bayes-spam.x", None),
                ("RSPAMD_ACTION", 0.0, "rspamd: add header (score 7.2 / required 15.0)", Some(Action::Tag)),
            ]
        );
    }

    #[test]
    fn every_rspamd_action_has_a_meaning() {
        let cases = [
            ("reject", Some(Action::Reject)),
            ("rewrite subject", Some(Action::Tag)),
            ("add header", Some(Action::Tag)),
            ("soft reject", Some(Action::Tempfail)),
            ("greylist", None),
            ("no action", None),
        ];
        for (name, want) in cases {
            let f = findings(&reply(name, serde_json::json!({})), 1.0, Action::Reject).unwrap();
            assert_eq!(f.symbols.len(), 1, "{name}");
            assert_eq!((f.symbols[0].name.as_str(), f.symbols[0].action), ("RSPAMD_ACTION", want), "{name}");
        }
        let f = findings(&reply("reject", serde_json::json!({})), 1.0, Action::Quarantine).unwrap();
        assert_eq!(f.symbols[0].action, Some(Action::Quarantine));
    }

    #[test]
    fn replies_that_are_not_rspamd_json_are_errors() {
        for bad in [&b"<html>502 Bad Gateway</html>"[..], b"{}", b"{\"action\": 3}", b""] {
            let e = findings(bad, 1.0, Action::Quarantine).unwrap_err();
            assert!(e.0.contains("not its JSON reply"), "{e}");
        }
    }

    /// A daemon that answers every request with `response` (a fault that
    /// real rspamd does not produce on demand).
    async fn answering(response: Vec<u8>) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 65536];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(&response).await;
        });
        url
    }

    async fn scan(url: &str) -> Result<Findings, StageError> {
        let r = Rspamd::new(&def(Some(url), serde_json::json!({}))).unwrap();
        let facts = Facts::test("a@sender.test");
        let input = Input { facts: &facts, raw: b"Subject: x\r\n\r\nx\r\n", message: None };
        r.check(&input).await
    }

    #[tokio::test]
    async fn status_size_and_connection_faults_are_stage_errors() {
        let json = reply("no action", serde_json::json!({}));
        let mut ok = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", json.len()).into_bytes();
        ok.extend_from_slice(&json);
        assert_eq!(scan(&answering(ok).await).await.unwrap().symbols[0].name, "RSPAMD_ACTION");
        let e = scan(&answering(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops".to_vec()).await)
            .await
            .unwrap_err();
        assert!(e.0.contains("answered 500 Internal Server Error: oops"), "{e}");
        let mut huge = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_REPLY + 1).into_bytes();
        huge.resize(huge.len() + MAX_REPLY + 1, b' ');
        let e = scan(&answering(huge).await).await.unwrap_err();
        assert!(e.0.contains("length limit exceeded"), "{e}");
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let e = scan(&format!("http://{closed}")).await.unwrap_err();
        assert!(e.0.starts_with(&format!("cannot connect to rspamd at {closed}")), "{e}");
    }
}
