//! TLS configurations: the server side for inbound STARTTLS (RFC 3207) and
//! the client side for delivery to next hops.

use crate::config::{Config, DownstreamTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.2 and 1.3 only: rustls implements nothing older.
pub fn server_config(cfg: &Config) -> Result<Arc<ServerConfig>, String> {
    let (certs, key) = match &cfg.tls {
        Some(t) => (load_certs(&t.cert)?, load_key(&t.key)?),
        None => {
            tracing::warn!(
                hostname = %cfg.smtp.hostname,
                "no [tls] certificate configured: STARTTLS uses a self-signed certificate generated at start"
            );
            self_signed(&cfg.smtp.hostname)?
        }
    };
    let sc = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls.cert/tls.key: {e}"))?;
    Ok(Arc::new(sc))
}

pub fn self_signed(hostname: &str) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let ck = rcgen::generate_simple_self_signed(vec![hostname.to_string()]).map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::try_from(ck.key_pair.serialize_der()).map_err(|e| e.to_string())?;
    Ok((vec![ck.cert.der().clone()], key))
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut data.as_slice()).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err(format!("{}: no PEM certificate found", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

pub(crate) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match rustls_pemfile::private_key(&mut data.as_slice()) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(format!("{}: no PEM private key found", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The client configuration for next hops, or None when TLS is off.
pub fn client_config(cfg: &Config) -> Result<Option<Arc<ClientConfig>>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match cfg.relay.tls {
        DownstreamTls::None => return Ok(None),
        // Opportunistic TLS protects against passive listeners only; an
        // unverified certificate is accepted (RFC 7435 §1.3).
        DownstreamTls::Opportunistic => {
            builder.dangerous().with_custom_certificate_verifier(accept_any()).with_no_client_auth()
        }
        DownstreamTls::Require => {
            let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            if let Some(ca) = &cfg.relay.tls_ca {
                for c in load_certs(ca)? {
                    roots.add(c).map_err(|e| format!("relay.tls_ca: {e}"))?;
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Some(Arc::new(config)))
}

pub fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_string()).map_err(|e| format!("{name}: {e}"))
}

/// A verifier that accepts any certificate but still checks the handshake
/// signatures: for opportunistic TLS (and test clients).
pub fn accept_any() -> Arc<dyn ServerCertVerifier> {
    Arc::new(AcceptAny(provider()))
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
