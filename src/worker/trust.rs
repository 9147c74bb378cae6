//! Who a worker and a gateway trust. Every connection is TLS 1.3.
//!
//! - The gateway authenticates itself with `Authorization: Bearer <secret>`
//!   on every request, and/or a client certificate the worker's `ca`
//!   verifies (mutual TLS).
//! - The worker authenticates itself with a certificate the stage's `ca`
//!   verifies or, without `ca`, with the Ed25519 key derived from the
//!   secret: seed = HMAC-SHA256(secret, "mxgate worker key v1"). A man in
//!   the middle does not know the secret, so it cannot present that key,
//!   and never sees the bearer token.

use crate::tls::{load_certs, load_key, provider};
use ring::signature::KeyPair;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;

const LABEL: &[u8] = b"mxgate worker key v1";

/// The Ed25519 key pair derived from a secret, as PKCS#8 v2 (RFC 5958,
/// in the encoding ring writes), and its raw public key.
pub fn derived_key(secret: &str) -> (Vec<u8>, [u8; 32]) {
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()), LABEL);
    let seed = tag.as_ref();
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed).expect("32-byte seed");
    let public: [u8; 32] = pair.public_key().as_ref().try_into().expect("32-byte key");
    let mut der = vec![0x30, 0x53, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(seed);
    der.extend_from_slice(&[0xa1, 0x23, 0x03, 0x21, 0x00]);
    der.extend_from_slice(&public);
    (der, public)
}

/// A self-signed certificate for the derived key.
fn derived_cert(secret: &str) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let (der, _) = derived_key(secret);
    let pair = rcgen::KeyPair::try_from(der.as_slice()).map_err(|e| format!("derived worker key: {e}"))?;
    let params = rcgen::CertificateParams::new(vec!["mxgate-worker".to_string()]).map_err(|e| e.to_string())?;
    let cert = params.self_signed(&pair).map_err(|e| format!("derived worker certificate: {e}"))?;
    let key = PrivateKeyDer::try_from(der).map_err(|e| e.to_string())?;
    Ok((vec![cert.der().clone()], key))
}

/// The worker's side: `[worker] secret`, `cert`, `key`, `ca`.
pub struct ServerTrust<'a> {
    pub secret: Option<&'a str>,
    pub cert: Option<&'a PathBuf>,
    pub key: Option<&'a PathBuf>,
    pub ca: Option<&'a PathBuf>,
}

pub fn server_config(t: &ServerTrust<'_>) -> Result<Arc<ServerConfig>, String> {
    let (certs, key) = match (t.cert, t.key, t.secret) {
        (Some(c), Some(k), _) => (load_certs(c)?, load_key(k)?),
        (_, _, Some(s)) => derived_cert(s)?,
        _ => return Err("worker: set `secret`, or `cert` and `key`".into()),
    };
    let b = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?;
    let b = match t.ca {
        Some(ca) => {
            let roots = Arc::new(roots(ca, "worker.ca")?);
            let v = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| format!("worker.ca: {e}"))?;
            b.with_client_cert_verifier(v)
        }
        None => b.with_no_client_auth(),
    };
    let mut sc = b.with_single_cert(certs, key).map_err(|e| format!("worker.cert/worker.key: {e}"))?;
    sc.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(sc))
}

/// The gateway's side: a remote stage's `secret`, `ca`, `cert`, `key`.
pub struct ClientTrust<'a> {
    pub stage: &'a str,
    pub secret: Option<&'a str>,
    pub ca: Option<&'a PathBuf>,
    pub cert: Option<&'a PathBuf>,
    pub key: Option<&'a PathBuf>,
}

pub fn client_config(t: &ClientTrust<'_>) -> Result<Arc<ClientConfig>, String> {
    let key = |k: &str| format!("pipeline.stage `{}`: {k}", t.stage);
    let b = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?;
    let b = match (t.ca, t.secret) {
        (Some(ca), _) => b.with_root_certificates(roots(ca, &key("ca"))?),
        (None, Some(s)) => b.dangerous().with_custom_certificate_verifier(Arc::new(Pinned(derived_key(s).1))),
        (None, None) => return Err(key("remote stages need `secret` (or `ca` with `cert` and `key`)")),
    };
    let mut cc = match (t.cert, t.key) {
        (Some(c), Some(k)) => b.with_client_auth_cert(load_certs(c)?, load_key(k)?).map_err(|e| key(&e.to_string()))?,
        (None, None) => b.with_no_client_auth(),
        _ => return Err(key("`cert` and `key` go together")),
    };
    cc.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cc))
}

fn roots(path: &std::path::Path, key: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots.add(c).map_err(|e| format!("{key}: {e}"))?;
    }
    Ok(roots)
}

/// The name a worker's address gives for certificate checks.
pub fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_matches(['[', ']']);
    ServerName::try_from(host.to_string()).map_err(|e| format!("{addr}: {e}"))
}

/// Accepts exactly the certificate whose key is derived from the secret,
/// and checks the handshake signature with it.
#[derive(Debug)]
struct Pinned([u8; 32]);

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        cert: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The SubjectPublicKeyInfo of an Ed25519 key (RFC 8410 §4).
        let mut spki = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        spki.extend_from_slice(&self.0);
        match memchr::memmem::find(cert.as_ref(), &spki) {
            Some(_) => Ok(ServerCertVerified::assertion()),
            None => {
                Err(rustls::Error::General("the worker's key is not the one derived from the stage's secret".into()))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("workers speak TLS 1.3 only".into()))
    }

    /// The handshake must be signed by the pinned key itself: finding its
    /// bytes in the certificate is not enough, since anyone can copy a
    /// public key into a certificate of their own.
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        _: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if dss.scheme != SignatureScheme::ED25519 {
            return Err(rustls::Error::General("the worker did not sign with its Ed25519 key".into()));
        }
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &self.0)
            .verify(message, dss.signature())
            .map(|_| HandshakeSignatureValid::assertion())
            .map_err(|_| {
                rustls::Error::General("the worker's handshake is not signed by the key derived from the secret".into())
            })
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_key_depends_only_on_the_secret() {
        let (a, pa) = derived_key("0123456789abcdef");
        let (b, pb) = derived_key("0123456789abcdef");
        let (_, pc) = derived_key("0123456789abcdeX");
        assert_eq!((a, pa), (b, pb));
        assert_ne!(pa, pc);
        let (certs, _) = derived_cert("0123456789abcdef").unwrap();
        let v = Pinned(pa);
        let name = ServerName::try_from("w").unwrap();
        assert!(v.verify_server_cert(&certs[0], &[], &name, &[], UnixTime::now()).is_ok());
        assert!(Pinned(pc).verify_server_cert(&certs[0], &[], &name, &[], UnixTime::now()).is_err());
    }

    /// Connects with the pinned verifier to a server presenting `certs`
    /// signed with `key`.
    async fn handshake(secret: &str, certs: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> bool {
        let server = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let client = client_config(&ClientTrust { stage: "t", secret: Some(secret), ca: None, cert: None, key: None });
        let (a, b) = tokio::io::duplex(64 << 10);
        let accept = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        tokio::spawn(async move { accept.accept(b).await.map(drop) });
        let connect = tokio_rustls::TlsConnector::from(client.unwrap());
        connect.connect(ServerName::try_from("w").unwrap(), a).await.is_ok()
    }

    #[tokio::test]
    async fn only_the_holder_of_the_derived_key_passes() {
        let secret = "0123456789abcdef";
        let (certs, key) = derived_cert(secret).unwrap();
        assert!(handshake(secret, certs, key).await);
        // A key of one's own in a certificate that also carries the derived
        // public key's bytes (as an extension): the bytes are public, the
        // signature is not.
        let (_, public) = derived_key(secret);
        let mut spki = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        spki.extend_from_slice(&public);
        let mut params = rcgen::CertificateParams::new(vec!["w".to_string()]).unwrap();
        params.custom_extensions.push(rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], spki));
        let own = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = params.self_signed(&own).unwrap();
        assert!(memchr::memmem::find(cert.der(), &public).is_some(), "the forgery carries the key's bytes");
        let key = PrivateKeyDer::try_from(own.serialize_der()).unwrap();
        assert!(!handshake(secret, vec![cert.der().clone()], key).await, "a forged certificate must be refused");
    }
}
