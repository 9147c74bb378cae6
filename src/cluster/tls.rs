//! Cluster transport security. Every connection is TLS 1.3; then both
//! sides prove they know `[cluster] secret` with an HMAC over keying
//! material exported from this very TLS session (RFC 5705 / RFC 8446
//! 7.5). A man in the middle holds two different sessions, so it can
//! neither reuse a proof nor learn the secret: the secret authenticates
//! the peer even with self-signed certificates. With `cert`, `key` and
//! `ca` set, certificates are verified both ways as well (mutual TLS).

use super::wire::VERSION;
use crate::config::Cluster;
use crate::tls::{accept_any, load_certs, load_key, provider, self_signed};
use ring::hmac;
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAGIC: &[u8; 4] = b"MXGC";
const LABEL: &[u8] = b"EXPORTER-mxgate-cluster";

#[derive(Clone)]
pub struct Security {
    key: hmac::Key,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

pub type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;
pub type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;

impl Security {
    pub fn new(c: &Cluster, name: &str) -> Result<Security, String> {
        let tls13 = &[&rustls::version::TLS13];
        let (certs, key) = match (&c.cert, &c.key) {
            (Some(cert), Some(key)) => (load_certs(cert)?, load_key(key)?),
            _ => self_signed(name.rsplit_once(':').map_or(name, |(h, _)| h))?,
        };
        let sb =
            ServerConfig::builder_with_provider(provider()).with_protocol_versions(tls13).map_err(|e| e.to_string())?;
        let cb =
            ClientConfig::builder_with_provider(provider()).with_protocol_versions(tls13).map_err(|e| e.to_string())?;
        let (server, client) = match &c.ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in load_certs(ca)? {
                    roots.add(cert).map_err(|e| format!("cluster.ca: {e}"))?;
                }
                let roots = Arc::new(roots);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                    .build()
                    .map_err(|e| format!("cluster.ca: {e}"))?;
                let server = sb.with_client_cert_verifier(verifier).with_single_cert(certs.clone(), key.clone_key());
                let client = cb.with_root_certificates(roots).with_client_auth_cert(certs, key);
                (server.map_err(|e| format!("cluster.cert: {e}"))?, client.map_err(|e| format!("cluster.cert: {e}"))?)
            }
            None => {
                let server = sb.with_no_client_auth().with_single_cert(certs, key).map_err(|e| e.to_string())?;
                (server, cb.dangerous().with_custom_certificate_verifier(accept_any()).with_no_client_auth())
            }
        };
        Ok(Security {
            key: hmac::Key::new(hmac::HMAC_SHA256, c.secret.as_bytes()),
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    fn proof(&self, role: &[u8], ekm: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(role);
        ctx.update(ekm);
        ctx.sign()
    }

    /// Connects to `addr` (host:port) and authenticates both ways.
    pub async fn connect(&self, addr: &str) -> Result<ClientStream, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_matches(['[', ']']);
        let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{addr}: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(self.client.clone());
        let mut tls = connector.connect(name, tcp).await.map_err(|e| format!("TLS with {addr}: {e}"))?;
        let ekm = export(tls.get_ref().1.export_keying_material([0u8; 32], LABEL, None))?;
        let mut hello = MAGIC.to_vec();
        hello.extend_from_slice(&VERSION.to_be_bytes());
        hello.extend_from_slice(self.proof(b"client", &ekm).as_ref());
        tls.write_all(&hello).await.map_err(|e| format!("{addr}: {e}"))?;
        let mut reply = [0u8; 4 + 2 + 1 + 32];
        tls.read_exact(&mut reply).await.map_err(|_| {
            format!(
                "{addr} closed the connection in the handshake: it refused our certificate or protocol (see its log)"
            )
        })?;
        let version = u16::from_be_bytes([reply[4], reply[5]]);
        match reply[6] {
            0 => {}
            2 => return Err(format!("{addr} speaks cluster protocol version {version}, this build {VERSION}")),
            _ => return Err(format!("{addr} refused our credentials (cluster.secret differs)")),
        }
        hmac::verify(&self.key, &[b"server".as_slice(), &ekm].concat(), &reply[7..])
            .map_err(|_| format!("{addr} did not prove it knows cluster.secret; refusing it"))?;
        Ok(tls)
    }

    /// Accepts a peer: TLS, then its proof, then ours. Errors say why, for
    /// the log.
    pub async fn accept(&self, tcp: TcpStream) -> Result<ServerStream, String> {
        let _ = tcp.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(self.server.clone());
        let mut tls = acceptor.accept(tcp).await.map_err(|e| format!("TLS: {e}"))?;
        let ekm = export(tls.get_ref().1.export_keying_material([0u8; 32], LABEL, None))?;
        let mut hello = [0u8; 4 + 2 + 32];
        tls.read_exact(&mut hello).await.map_err(|e| format!("handshake: {e}"))?;
        if &hello[..4] != MAGIC {
            return Err("not a cluster peer (bad magic)".into());
        }
        let version = u16::from_be_bytes([hello[4], hello[5]]);
        let ok = hmac::verify(&self.key, &[b"client".as_slice(), &ekm].concat(), &hello[6..]).is_ok();
        let status = if version != VERSION {
            2
        } else if ok {
            0
        } else {
            1
        };
        let mut reply = MAGIC.to_vec();
        reply.extend_from_slice(&VERSION.to_be_bytes());
        reply.push(status);
        reply.extend_from_slice(self.proof(b"server", &ekm).as_ref());
        if status != 0 {
            reply.truncate(7);
            reply.extend_from_slice(&[0u8; 32]);
        }
        tls.write_all(&reply).await.map_err(|e| format!("handshake: {e}"))?;
        match status {
            0 => Ok(tls),
            2 => Err(format!("peer speaks cluster protocol version {version}, this build {VERSION}")),
            _ => Err("peer presented a wrong cluster.secret".into()),
        }
    }
}

fn export<T>(r: Result<T, rustls::Error>) -> Result<T, String> {
    r.map_err(|e| format!("TLS keying material: {e}"))
}
