//! `wss://` for the client (the `tls` feature): rustls with its `ring`
//! provider, as the hub uses, trusting the system's certificate
//! authorities or those of a PEM file ([`Options::ca_file`](super::Options::ca_file)).
//!
//! Runs on the client's thread, inside `Client::connect` and its
//! reconnections: the handshake blocks it up to the connect timeout.

use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::conn::Stream;
use super::{Error, Result};

/// The TLS settings of a `wss://` endpoint: TLS 1.2 and 1.3, ALPN
/// `http/1.1`, trusting the authorities in `ca_file`, or else the system's.
pub(super) fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let unusable = |reason: String| Error::Certificates {
                reason: format!("{}: {reason}", path.display()),
            };
            let pem = std::fs::read(path).map_err(|err| unusable(err.to_string()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|err| unusable(format!("bad PEM: {err}")))?;
                roots
                    .add(cert)
                    .map_err(|err| unusable(format!("not a usable authority: {err}")))?;
            }
            if roots.is_empty() {
                return Err(unusable("holds no PEM certificate".to_owned()));
            }
        }
        None => {
            // Unreadable files among the system's are skipped; what remains
            // is trusted.
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|err| Error::Certificates {
            reason: err.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// rustls's `ring` provider: the hub's one crypto library (rustls marks
/// it deprecated only for lacking post-quantum key exchange).
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The TLS handshake with `host` over `tcp`, within the socket's timeouts.
pub(super) fn handshake(
    config: &Arc<ClientConfig>,
    host: &str,
    addr: &str,
    mut tcp: TcpStream,
) -> Result<Stream> {
    let failed = |reason: String| Error::Tls {
        addr: addr.to_owned(),
        reason,
    };
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| failed(format!("{host} is not a name TLS can check")))?;
    let mut conn =
        ClientConnection::new(Arc::clone(config), name).map_err(|err| failed(err.to_string()))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|err| failed(err.to_string()))?;
    }
    Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
}
