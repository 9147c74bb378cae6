//! `dns`: the benchmark's DNS, UDP and TCP on one loopback port. It answers
//! the sending domains' TXT records (SPF, DKIM key, DMARC, from
//! `corpus::txt_records`) and says NXDOMAIN to every other name, which
//! makes DNS list lookups (`bl.bench.test`, `uribl.bench.test`) real
//! queries answered "not listed". Negative answers carry an SOA with a
//! 60 s minimum, as a real zone's would, so resolvers cache them
//! (RFC 2308 §5) as they would in production.

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// TTL of the published records and of negative answers.
const TTL: u32 = 60;

struct Zone {
    txt: HashMap<String, Vec<String>>,
    queries: AtomicU64,
    nxdomain: AtomicU64,
    /// Log every question to stderr.
    verbose: bool,
}

pub async fn serve(listen: SocketAddr, ready: Option<PathBuf>, max_seconds: u64, verbose: bool) -> Result<(), String> {
    let udp = UdpSocket::bind(listen).await.map_err(|e| format!("udp {listen}: {e}"))?;
    let tcp = TcpListener::bind(listen).await.map_err(|e| format!("tcp {listen}: {e}"))?;
    let mut txt: HashMap<String, Vec<String>> = HashMap::new();
    for (name, text) in crate::corpus::txt_records() {
        txt.entry(name).or_default().push(text);
    }
    let zone = Arc::new(Zone { txt, queries: AtomicU64::new(0), nxdomain: AtomicU64::new(0), verbose });
    if let Some(p) = ready {
        std::fs::write(&p, b"").map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let z = zone.clone();
    let udp_task = async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else { continue };
            if let Some(r) = z.answer(&buf[..n]) {
                let _ = udp.send_to(&r, peer).await;
            }
        }
    };
    let z = zone.clone();
    let tcp_task = async move {
        loop {
            if let Ok((c, _)) = tcp.accept().await {
                tokio::spawn(tcp_session(c, z.clone()));
            }
        }
    };
    tokio::select! {
        _ = udp_task => {}
        _ = tcp_task => {}
        _ = tokio::time::sleep(Duration::from_secs(max_seconds)) => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate() => {}
    }
    eprintln!(
        "bench_load dns: {} queries, {} NXDOMAIN",
        zone.queries.load(Ordering::Relaxed),
        zone.nxdomain.load(Ordering::Relaxed)
    );
    Ok(())
}

async fn terminate() {
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
    } else {
        std::future::pending::<()>().await;
    }
}

/// RFC 1035 §4.2.2: over TCP each message is preceded by its length.
async fn tcp_session(mut c: TcpStream, zone: Arc<Zone>) {
    let mut len = [0u8; 2];
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(30), c.read_exact(&mut len)).await {
        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
        if c.read_exact(&mut q).await.is_err() {
            return;
        }
        let Some(r) = zone.answer(&q) else { return };
        if c.write_all(&(r.len() as u16).to_be_bytes()).await.is_err() || c.write_all(&r).await.is_err() {
            return;
        }
    }
}

impl Zone {
    fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        let q = Message::from_vec(query).ok()?;
        self.queries.fetch_add(1, Ordering::Relaxed);
        let question = q.queries().first()?.clone();
        if self.verbose {
            eprintln!("query {} {}", question.name(), question.query_type());
        }
        let mut r = Message::new();
        r.set_id(q.id()).set_message_type(MessageType::Response).set_op_code(q.op_code());
        r.set_authoritative(true).set_recursion_desired(q.recursion_desired()).set_recursion_available(true);
        r.add_query(question.clone());
        let name = question.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
        match self.txt.get(&name) {
            // The name exists: its TXT records, or no data for other types.
            Some(texts) => {
                if question.query_type() == RecordType::TXT {
                    for t in texts {
                        let chunks =
                            t.as_bytes().chunks(255).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
                        r.add_answer(Record::from_rdata(question.name().clone(), TTL, RData::TXT(TXT::new(chunks))));
                    }
                } else {
                    r.add_name_server(soa());
                }
            }
            None => {
                self.nxdomain.fetch_add(1, Ordering::Relaxed);
                r.set_response_code(ResponseCode::NXDomain);
                r.add_name_server(soa());
            }
        }
        r.to_vec().ok()
    }
}

/// The SOA of the `test.` zone this server pretends to be authoritative for.
fn soa() -> Record {
    let n = |s: &str| Name::from_ascii(s).unwrap_or_else(|_| Name::root());
    let soa = SOA::new(n("ns.bench.test."), n("hostmaster.bench.test."), 1, 3600, 600, 86400, TTL);
    Record::from_rdata(n("test."), TTL, RData::SOA(soa))
}
