//! MX routing against a real DNS server started by the test (UDP on
//! loopback), through the same resolver the gateway uses.

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, MX};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use mxgate::queue::route::{NextHop, resolve};
use std::net::SocketAddr;
use std::str::FromStr;

/// Answers from a fixed zone; NXDOMAIN for names it does not know.
async fn dns_server() -> SocketAddr {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else { return };
            let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
            let mut r = Message::new();
            r.set_id(q.id()).set_message_type(MessageType::Response).set_op_code(q.op_code());
            r.set_recursion_desired(q.recursion_desired()).set_recursion_available(true);
            r.add_queries(q.queries().to_vec());
            let query = &q.queries()[0];
            let (known, answers) = zone(&query.name().to_ascii(), query.query_type());
            r.add_answers(answers);
            r.set_response_code(if known { ResponseCode::NoError } else { ResponseCode::NXDomain });
            let _ = sock.send_to(&r.to_vec().unwrap(), peer).await;
        }
    });
    addr
}

fn zone(name: &str, t: RecordType) -> (bool, Vec<Record>) {
    let n = |s: &str| Name::from_str(s).unwrap();
    let mx = |pref, host: &str| Record::from_rdata(n(name), 60, RData::MX(MX::new(pref, n(host))));
    let a = |ip: [u8; 4]| Record::from_rdata(n(name), 60, RData::A(A::new(ip[0], ip[1], ip[2], ip[3])));
    match (name.trim_end_matches('.'), t) {
        ("multi.test", RecordType::MX) => (true, vec![mx(20, "b.multi.test."), mx(10, "a.multi.test.")]),
        ("a.multi.test", RecordType::A) => (true, vec![a([127, 0, 0, 2])]),
        ("b.multi.test", RecordType::A) => (true, vec![a([127, 0, 0, 3])]),
        ("nullmx.test", RecordType::MX) => (true, vec![mx(0, ".")]),
        ("plain.test", RecordType::A) => (true, vec![a([127, 0, 0, 4])]),
        ("plain.test" | "multi.test" | "a.multi.test" | "b.multi.test" | "nullmx.test", _) => (true, vec![]),
        _ => (false, vec![]),
    }
}

#[tokio::test]
async fn mx_records_in_preference_order() {
    let ns = dns_server().await;
    let dns = mxgate::dns::resolver(&[ns.to_string()]).unwrap();
    let targets = resolve(&NextHop::Mx, "multi.test", &dns).await.unwrap();
    let addrs: Vec<String> = targets.iter().map(|t| t.addr.to_string()).collect();
    assert_eq!(addrs, vec!["127.0.0.2:25", "127.0.0.3:25"]);
    assert_eq!(targets[0].name, "a.multi.test");
}

#[tokio::test]
async fn null_mx_is_a_permanent_failure_and_no_mx_means_the_domain_itself() {
    let ns = dns_server().await;
    let dns = mxgate::dns::resolver(&[ns.to_string()]).unwrap();
    let e = resolve(&NextHop::Mx, "nullmx.test", &dns).await.unwrap_err();
    assert!(e.permanent, "{}", e.message);
    // RFC 5321 §5.1: without MX records the A record is the implicit MX.
    let t = resolve(&NextHop::Mx, "plain.test", &dns).await.unwrap();
    assert_eq!(t[0].addr.to_string(), "127.0.0.4:25");
    // A name that does not exist is a temporary failure (retried), as DNS
    // trouble is more likely than a vanished domain.
    let e = resolve(&NextHop::Mx, "missing.test", &dns).await.unwrap_err();
    assert!(!e.permanent);
}

#[tokio::test]
async fn fixed_routes_resolve_host_names_through_the_configured_nameservers() {
    let ns = dns_server().await;
    let dns = mxgate::dns::resolver(&[ns.to_string()]).unwrap();
    let hop = NextHop::parse("b.multi.test:2526").unwrap();
    let t = resolve(&hop, "example.test", &dns).await.unwrap();
    assert_eq!(t[0].addr.to_string(), "127.0.0.3:2526");
}
