//! The hub's TLS settings and its current certificate.
//!
//! [`Tls`] is made once, by [`Hub::with_config`](crate::Hub::with_config),
//! and shared by the accept loop, the connection threads and every
//! [`Handle`](crate::Handle). [`Certificates`] answers each new handshake
//! with the certificate it holds now; a reload swaps it under a lock taken
//! for the length of a pointer copy, so handshakes under way, and sessions
//! already open, are not disturbed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig, ServerConnection};

use super::TlsError;
use super::session::Session;

/// The one application protocol spoken over TLS: HTTP/1.1 (the WebSocket
/// upgrade and the HTTP API).
const ALPN: &[u8] = b"http/1.1";

/// A hub's TLS: the rustls settings and the certificate they serve.
pub(crate) struct Tls {
    config: Arc<ServerConfig>,
    certificates: Arc<Certificates>,
    /// What a connection the hub has no room for gets instead of a 503 (which
    /// would need a handshake): a TLS `close_notify` alert, made once.
    refusal: Vec<u8>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("certificates", &self.certificates)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// The TLS of a certificate chain and its key (`Config::tls_cert` and
    /// `tls_key`): `None` without both.
    ///
    /// # Errors
    ///
    /// When the certificate or key cannot be read or used.
    pub(crate) fn new(
        cert: Option<&PathBuf>,
        key: Option<&PathBuf>,
    ) -> Result<Option<Arc<Tls>>, TlsError> {
        let (Some(cert), Some(key)) = (cert, key) else {
            return Ok(None);
        };
        let provider = Arc::new(ring_provider());
        let certificates = Arc::new(Certificates {
            current: RwLock::new(Arc::new(load(cert, key, &provider)?)),
            cert: cert.clone(),
            key: key.clone(),
            provider: Arc::clone(&provider),
        });
        let invalid = |err: rustls::Error| TlsError::Invalid {
            path: cert.clone(),
            reason: err.to_string(),
        };
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(invalid)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&certificates) as Arc<dyn ResolvesServerCert>);
        server.alpn_protocols = vec![ALPN.to_vec()];
        let server = Arc::new(server);
        let mut refusal = Vec::new();
        let mut conn = ServerConnection::new(Arc::clone(&server)).map_err(invalid)?;
        conn.send_close_notify();
        while conn.write_tls(&mut refusal).unwrap_or(0) > 0 {}
        Ok(Some(Arc::new(Tls {
            config: server,
            certificates,
            refusal,
        })))
    }

    /// A session for a new connection, before its handshake.
    ///
    /// # Errors
    ///
    /// Only if rustls cannot start one (it does not fail with these settings).
    pub(crate) fn session(&self) -> Result<Session, rustls::Error> {
        ServerConnection::new(Arc::clone(&self.config)).map(Session::new)
    }

    /// The bytes that tell a TLS client the hub has no room for it.
    pub(crate) fn refusal(&self) -> &[u8] {
        &self.refusal
    }

    /// Reads the certificate and key files again; new handshakes get them.
    /// On failure the current certificate stays.
    ///
    /// # Errors
    ///
    /// Why the files cannot be used.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        self.certificates.reload()
    }
}

/// The certificate new handshakes get, and where it comes from.
pub(crate) struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    fn reload(&self) -> Result<(), TlsError> {
        match load(&self.cert, &self.key, &self.provider) {
            Ok(loaded) => {
                let chain = loaded.cert.len();
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
                log::info!(
                    "TLS certificate reloaded from {} ({chain} in the chain): new connections get it",
                    self.cert.display()
                );
                Ok(())
            }
            Err(err) => {
                log::error!("TLS certificate not reloaded, the current one stays: {err}");
                Err(err)
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

/// rustls's `ring` provider: the project's one crypto library for TLS and
/// signatures alike (no C toolchain to build, unlike aws-lc-rs). rustls
/// marks it deprecated for lacking the post-quantum hybrid key exchange
/// (X25519MLKEM768), which it offers only with aws-lc-rs; clients agree on
/// X25519 or a NIST curve instead.
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Reads a PEM certificate chain (the server's first) and its private key
/// (PKCS#8, RSA or SEC1), and checks that they belong together.
fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let invalid = |path: &Path, reason: String| TlsError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid(cert, format!("bad PEM: {err}")))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_owned(),
        });
    }
    let private = match PrivateKeyDer::from_pem_slice(&read(key)?) {
        Ok(private) => private,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: key.to_owned(),
            });
        }
        Err(err) => return Err(invalid(key, format!("bad PEM: {err}"))),
    };
    CertifiedKey::from_der(chain, private, provider).map_err(|err| match err {
        rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => TlsError::KeyMismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        },
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            invalid(cert, format!("unusable certificate: {err}"))
        }
        other => invalid(key, format!("unusable key: {other}")),
    })
}
