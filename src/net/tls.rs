//! TLS 1.3 for peer connections, with the ring provider only. No certificate
//! authority: each side presents its self-signed certificate and the other accepts it
//! only when the hash of its public key is a peer id it trusts — the server asks its
//! trust store ([`Gate`]); a client accepts only the exact id it dialled. Handshake
//! signatures are checked with rustls's own verification (the certificate's key
//! signed this handshake), so holding a certificate without its key proves nothing.
//!
//! This module never accepts a certificate whose id it was not told to accept, and
//! never logs: a refusal is the error the handshake fails with, and the gate's to
//! record.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::identity::{Identity, peer_id_of};
use super::peer_id::PeerId;

/// The application protocol of jhack peers.
pub const ALPN: &[u8] = b"jhack/1";

/// The name clients ask for (certificates are pinned by key, not by name).
pub const SERVER_NAME: &str = "jhack";

/// Decides whether a peer id may connect; `Err` carries why not, for the handshake
/// error and the log.
pub type Gate = Arc<dyn Fn(&PeerId) -> Result<(), String> + Send + Sync>;

/// A TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
#[error("TLS setup: {0}")]
pub struct TlsError(String);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side: our certificate, and client certificates required and gated.
pub fn server_config(me: &Identity, gate: Gate) -> Result<quinn::ServerConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(ClientGate {
        gate,
        algs: provider.signature_verification_algorithms,
    });
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![me.cert.clone()], me.private_key())
        .map_err(|e| TlsError(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsError(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    cfg.transport_config(super::transport::config());
    Ok(cfg)
}

/// The client side for dialling `expected`: our certificate, and the server's
/// accepted only when it is `expected`'s.
pub fn client_config(me: &Identity, expected: PeerId) -> Result<quinn::ClientConfig, TlsError> {
    client_config_reporting(me, expected).map(|(cfg, _)| cfg)
}

/// Where a client configuration leaves why it refused the server's certificate: the
/// handshake error only carries rustls's rendering of it, wrapped in its own words.
pub(crate) type RefusalSlot = Arc<Mutex<Option<String>>>;

/// [`client_config`], and the slot its refusal (if any) is written to.
pub(crate) fn client_config_reporting(
    me: &Identity,
    expected: PeerId,
) -> Result<(quinn::ClientConfig, RefusalSlot), TlsError> {
    let provider = provider();
    let refusal = RefusalSlot::default();
    let verifier = Arc::new(ExpectedServer {
        expected,
        algs: provider.signature_verification_algorithms,
        refusal: refusal.clone(),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![me.cert.clone()], me.private_key())
        .map_err(|e| TlsError(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TlsError(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(quic));
    cfg.transport_config(super::transport::config());
    Ok((cfg, refusal))
}

/// The peer id of a connection's other side (from its verified certificate).
pub fn remote_id(conn: &quinn::Connection) -> Option<PeerId> {
    let any = conn.peer_identity()?;
    let certs = any.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().and_then(peer_id_of)
}

fn cert_id(cert: &CertificateDer<'_>) -> Result<PeerId, rustls::Error> {
    peer_id_of(cert)
        .ok_or_else(|| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))
}

fn refused(message: String) -> rustls::Error {
    // An application-visible reason; the peer sees a certificate alert.
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(Refusal(message)),
    )))
}

/// Why a certificate was refused, as the handshake error's text.
#[derive(Debug)]
struct Refusal(String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// The handshake-signature methods both verifiers share: TLS 1.3 only, checked by
/// rustls against the certificate's key with the provider's algorithms (`self.algs`).
macro_rules! signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            tls13_only()
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algs.supported_schemes()
        }
    };
}

fn tls13_only() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::PeerIncompatible(
        rustls::PeerIncompatible::Tls12NotOffered,
    ))
}

struct ClientGate {
    gate: Gate,
    algs: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for ClientGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientGate")
    }
}

impl ClientCertVerifier for ClientGate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let id = cert_id(end_entity)?;
        (self.gate)(&id).map_err(refused)?;
        Ok(ClientCertVerified::assertion())
    }

    signature_checks!();
}

#[derive(Debug)]
struct ExpectedServer {
    expected: PeerId,
    algs: WebPkiSupportedAlgorithms,
    refusal: RefusalSlot,
}

impl ServerCertVerifier for ExpectedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let id = cert_id(end_entity)?;
        if id != self.expected {
            let why = format!(
                "it presented the key of {id}, not of the trusted {}",
                self.expected
            );
            *crate::guard::lock(&self.refusal) = Some(why.clone());
            return Err(refused(why));
        }
        Ok(ServerCertVerified::assertion())
    }

    signature_checks!();
}
