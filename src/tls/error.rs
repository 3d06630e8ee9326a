//! Why a certificate or key cannot serve TLS.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why the hub's certificate or key cannot be used, at start
/// ([`Hub::with_config`](crate::Hub::with_config)) or on a reload
/// ([`Handle::reload_tls`](crate::Handle::reload_tls), which then keeps
/// the certificate it had). Fix the file named, then reload.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// The hub was started without TLS (no `tls_cert`): there is nothing
    /// to reload.
    NotConfigured,
    /// This build has no TLS (the `tls` cargo feature is off).
    Unsupported,
    /// A file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The certificate file holds no PEM `CERTIFICATE`.
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no PEM private key (`PRIVATE KEY` (PKCS#8),
    /// `RSA PRIVATE KEY` or `EC PRIVATE KEY` (SEC1)).
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// A file's PEM, certificate or key is malformed or of a kind TLS
    /// cannot use; the reason says which.
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// The key is not the one of the certificate (the first of the chain).
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::NotConfigured => f.write_str("TLS is off (no certificate configured)"),
            TlsError::Unsupported => {
                f.write_str("this build has no TLS support (the `tls` feature)")
            }
            TlsError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            TlsError::NoCertificate { path } => {
                write!(f, "{} holds no PEM certificate", path.display())
            }
            TlsError::NoKey { path } => write!(
                f,
                "{} holds no PEM private key (PKCS#8, RSA or SEC1)",
                path.display()
            ),
            TlsError::Invalid { path, reason } => write!(f, "{}: {reason}", path.display()),
            TlsError::KeyMismatch { cert, key } => write!(
                f,
                "the key in {} is not the key of the certificate in {}",
                key.display(),
                cert.display()
            ),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}
