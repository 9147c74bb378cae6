//! Shared by the fuzz targets: a pipeline built from a real config, with
//! DNS answered NXDOMAIN by a responder in this process.

use mxgate::pipeline::{Facts, Pipeline, headers};
use std::sync::OnceLock;
use tokio::runtime::Runtime;

const CONFIG: &str = r#"
[smtp]
hostname = "mx.fuzz.test"
[relay]
domains = ["example.test"]
downstream = "127.0.0.1:9"
[dns]
nameservers = ["@DNS@"]
[scan]
@STAGES@
[scan.dnsbl]
check_private = true
[[scan.dnsbl.zones]]
zone = "bl.fuzz.test"
[[scan.uribl.zones]]
zone = "uribl.fuzz.test"
[scan.phishing]
executives = ["Jane Doe"]
"#;

/// Answers every DNS query with NXDOMAIN, at once.
fn nxdomain_responder() -> std::net::SocketAddr {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            buf[2] |= 0x80; // QR: a response
            buf[3] = (buf[3] & 0xf0) | 3; // RCODE 3: NXDOMAIN
            let _ = sock.send_to(&buf[..n], peer);
        }
    });
    addr
}

/// The runtime and pipeline, built once per process; `stages` is a TOML
/// line for `[scan]` (empty: every built-in stage).
fn state(stages: &str) -> &'static (Runtime, Pipeline) {
    static STATE: OnceLock<(Runtime, Pipeline)> = OnceLock::new();
    STATE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let dir = std::env::temp_dir().join(format!("mxgate-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mxgate.toml");
        std::fs::write(&path, CONFIG.replace("@DNS@", &nxdomain_responder().to_string()).replace("@STAGES@", stages)).unwrap();
        let cfg = mxgate::config::load(&path).unwrap();
        let pipeline = rt.block_on(async { Pipeline::from_config(&cfg) }).unwrap();
        (rt, pipeline)
    })
}

/// Scans `data`; nothing may panic, and the delivered copy must carry our
/// headers on top and keep the body.
pub fn check(stages: &str, data: &[u8]) {
    let (rt, pipeline) = state(stages);
    let facts = Facts {
        queue_id: "FUZZ".into(),
        client_ip: "192.0.2.1".into(),
        helo: "client.fuzz.test".into(),
        tls: false,
        sender: Some("a@sender.fuzz.test".into()),
        recipients: vec!["b@example.test".into()],
    };
    let decision = rt.block_on(pipeline.run(&facts, data));
    let out = headers::rewrite(data, "mx.fuzz.test", &decision, "[SPAM]");
    let (fields, _) = headers::split_fields(&out);
    assert!(fields.iter().take(2).any(|f| f.starts_with(b"Authentication-Results: mx.fuzz.test")));
    let (_, body_at) = headers::split_fields(data);
    assert!(out.ends_with(&data[body_at.min(data.len())..]));
}
