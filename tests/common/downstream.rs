//! A recording downstream SMTP server: accepts what the gateway relays and
//! keeps every message, with configurable refusals and STARTTLS.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    /// ESMTP parameters of the MAIL command, as sent.
    pub mail_params: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
    pub tls: bool,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Answer 451 at the end of DATA this many times before accepting.
    pub tempfail_data: usize,
    /// Local parts answered 550 5.1.1 at RCPT.
    pub unknown_users: Vec<String>,
    /// Answer 554 at the end of DATA, always.
    pub reject_data: bool,
    /// Offer STARTTLS with a self-signed certificate...
    pub starttls: bool,
    /// ...or with this one: (certificate PEM, key PEM).
    pub cert: Option<(String, String)>,
}

pub struct Downstream {
    pub addr: SocketAddr,
    pub msgs: Arc<Mutex<Vec<Received>>>,
    pub connections: Arc<AtomicUsize>,
    pub behaviour: Arc<Mutex<Behaviour>>,
    task: JoinHandle<()>,
}

impl Downstream {
    pub async fn start(b: Behaviour) -> Downstream {
        Self::start_on("127.0.0.1:0".parse().unwrap(), b).await
    }

    pub async fn start_on(addr: SocketAddr, b: Behaviour) -> Downstream {
        let listener = TcpListener::bind(addr).await.expect("bind downstream");
        let addr = listener.local_addr().unwrap();
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let behaviour = Arc::new(Mutex::new(b));
        let (m, c, bh) = (msgs.clone(), connections.clone(), behaviour.clone());
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(Box::new(s), m.clone(), bh.clone(), false));
            }
        });
        Downstream { addr, msgs, connections, behaviour, task }
    }

    pub fn count(&self) -> usize {
        self.msgs.lock().unwrap().len()
    }

    pub fn messages(&self) -> Vec<Received> {
        self.msgs.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let ok = super::wait_until(secs, || self.count() >= n).await;
        assert!(ok, "downstream got {} of {n} messages within {secs}s", self.count());
        self.messages()
    }

    /// Stops listening (connections already open are not cut).
    pub fn stop(&self) {
        self.task.abort();
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

fn serve(
    s: Box<dyn Io>,
    msgs: Arc<Mutex<Vec<Received>>>,
    b: Arc<Mutex<Behaviour>>,
    tls: bool,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        let mut io = BufReader::new(s);
        if !tls {
            let _ = io.get_mut().write_all(b"220 downstream.test ESMTP\r\n").await;
        }
        let mut from = String::new();
        let mut mail_params = String::new();
        let mut rcpts = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let cmd = line.trim_end().to_string();
            let upper = cmd.to_ascii_uppercase();
            let behaviour = b.lock().unwrap().clone();
            let reply: String = if upper.starts_with("EHLO") {
                let tls_line = if behaviour.starttls && !tls { "250-STARTTLS\r\n" } else { "" };
                format!(
                    "250-downstream.test\r\n250-PIPELINING\r\n{tls_line}250-SMTPUTF8\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n"
                )
            } else if upper.starts_with("HELO") {
                "250 downstream.test\r\n".into()
            } else if upper == "STARTTLS" {
                let _ = io.get_mut().write_all(b"220 go ahead\r\n").await;
                let acceptor = tokio_rustls::TlsAcceptor::from(tls_config(behaviour.cert.as_ref()));
                let inner = io.into_inner();
                if let Ok(t) = acceptor.accept(inner).await {
                    serve(Box::new(t), msgs, b, true).await;
                }
                return;
            } else if upper.starts_with("MAIL FROM:") {
                from = addr_of(&cmd);
                mail_params = cmd.split_once('>').map_or("", |(_, p)| p).trim().to_string();
                rcpts.clear();
                "250 2.1.0 ok\r\n".into()
            } else if upper.starts_with("RCPT TO:") {
                let a = addr_of(&cmd);
                let local = a.split('@').next().unwrap_or("").to_string();
                if behaviour.unknown_users.contains(&local) {
                    "550 5.1.1 no such user\r\n".into()
                } else {
                    rcpts.push(a);
                    "250 2.1.5 ok\r\n".into()
                }
            } else if upper == "DATA" {
                if rcpts.is_empty() {
                    "554 5.5.1 no valid recipients\r\n".into()
                } else {
                    let _ = io.get_mut().write_all(b"354 go\r\n").await;
                    let Some(data) = read_data(&mut io).await else { return };
                    let mut bh = b.lock().unwrap();
                    if bh.reject_data {
                        "554 5.6.0 content refused\r\n".into()
                    } else if bh.tempfail_data > 0 {
                        bh.tempfail_data -= 1;
                        "451 4.3.0 try later\r\n".into()
                    } else {
                        msgs.lock().unwrap().push(Received {
                            from: from.clone(),
                            mail_params: mail_params.clone(),
                            rcpts: rcpts.clone(),
                            data,
                            tls,
                        });
                        "250 2.0.0 stored\r\n".into()
                    }
                }
            } else if upper == "RSET" || upper == "NOOP" {
                "250 2.0.0 ok\r\n".into()
            } else if upper == "QUIT" {
                let _ = io.get_mut().write_all(b"221 bye\r\n").await;
                return;
            } else {
                "500 5.5.2 what\r\n".into()
            };
            if io.get_mut().write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    })
}

/// Reads DATA content up to CRLF.CRLF and undoes dot-stuffing.
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(io: &mut R) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if io.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        if line == b".\r\n" {
            return Some(data);
        }
        let l = if line.starts_with(b".") { &line[1..] } else { &line[..] };
        data.extend_from_slice(l);
    }
}

fn addr_of(cmd: &str) -> String {
    let s = cmd.split_once(':').map_or("", |(_, r)| r).trim();
    let end = s.find('>').map_or(s.len(), |i| i + 1);
    s[..end].trim_matches(['<', '>']).to_string()
}

fn tls_config(pem: Option<&(String, String)>) -> Arc<rustls::ServerConfig> {
    let (certs, key) = match pem {
        Some((cert, key)) => (
            rustls_pemfile::certs(&mut cert.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap(),
            rustls_pemfile::private_key(&mut key.as_bytes()).unwrap().unwrap(),
        ),
        None => mxgate::tls::self_signed("downstream.test").unwrap(),
    };
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(cfg)
}
