//! A real DNS server for tests: UDP and TCP on one loopback port, answering
//! from records the test adds (TXT for SPF, DKIM and DMARC, A for DNS
//! lists, MX). Unknown names get NXDOMAIN.

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, MX, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Zone = HashMap<String, Vec<RData>>;

#[derive(Clone)]
pub struct DnsServer {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<AtomicUsize>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsServer {
    pub async fn start() -> DnsServer {
        let (udp, tcp) = loop {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            if let Ok(tcp) = tokio::net::TcpListener::bind(udp.local_addr().unwrap()).await {
                break (udp, tcp);
            }
        };
        let s = DnsServer { addr: udp.local_addr().unwrap(), zone: Default::default(), queries: Default::default() };
        let me = s.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else { return };
                if let Some(r) = me.answer(&buf[..n]) {
                    let _ = udp.send_to(&r, peer).await;
                }
            }
        });
        let me = s.clone();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = tcp.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    while c.read_exact(&mut len).await.is_ok() {
                        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                        if c.read_exact(&mut q).await.is_err() {
                            return;
                        }
                        let Some(r) = me.answer(&q) else { return };
                        let _ = c.write_all(&(r.len() as u16).to_be_bytes()).await;
                        let _ = c.write_all(&r).await;
                    }
                });
            }
        });
        s
    }

    /// `[dns]` pointing at this server, for a gateway config.
    pub fn config(&self) -> String {
        format!("[dns]\nnameservers = [\"{}\"]\n", self.addr)
    }

    pub fn add(&self, name: &str, data: RData) {
        self.zone.lock().unwrap().entry(key(name)).or_default().push(data);
    }

    /// A TXT record; long texts are split into 255-octet strings.
    pub fn txt(&self, name: &str, text: &str) {
        let chunks: Vec<String> =
            text.as_bytes().chunks(255).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        self.add(name, RData::TXT(TXT::new(chunks)));
    }

    pub fn a(&self, name: &str, ip: Ipv4Addr) {
        self.add(name, RData::A(A(ip)));
    }

    pub fn aaaa(&self, name: &str, ip: Ipv6Addr) {
        self.add(name, RData::AAAA(AAAA(ip)));
    }

    pub fn mx(&self, name: &str, pref: u16, host: &str) {
        self.add(name, RData::MX(MX::new(pref, Name::from_str(host).unwrap())));
    }

    /// Queries answered so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }

    fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        let q = Message::from_vec(query).ok()?;
        self.queries.fetch_add(1, Ordering::Relaxed);
        let mut r = Message::new();
        r.set_id(q.id()).set_message_type(MessageType::Response).set_op_code(q.op_code());
        r.set_recursion_desired(q.recursion_desired()).set_recursion_available(true);
        r.add_queries(q.queries().to_vec());
        let question = q.queries().first()?;
        let zone = self.zone.lock().unwrap();
        match zone.get(&key(&question.name().to_ascii())) {
            None => {
                r.set_response_code(ResponseCode::NXDomain);
            }
            Some(data) => {
                let t = question.query_type();
                let answers = data
                    .iter()
                    .filter(|d| d.record_type() == t || t == RecordType::ANY)
                    .map(|d| Record::from_rdata(question.name().clone(), 60, d.clone()));
                r.add_answers(answers);
            }
        }
        r.to_vec().ok()
    }
}
