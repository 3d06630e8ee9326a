//! The crate's one error type, and the TLS reasons inside it.
//!
//! Each variant's documentation says what the caller should do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong when starting or driving a hub.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be bound (address in use, no permission,
    /// unknown host). Pick another address or free the port.
    Bind {
        /// The address that was asked for.
        addr: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// A [`Config`](crate::Config) value is out of range. Fix the value named.
    Config {
        /// The field (or command-line flag) at fault.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A channel, session, user or client name breaks the naming rules.
    /// Use 1 to 255 ASCII letters, digits or `-_.:@/=+#|$!~`.
    InvalidName {
        /// What kind of name (`channel`, `sessionId`, ...).
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A publication's type is one of the hub's own message types
    /// (`connection`, `error`, `user_presence`, `heartbeat`, ...): clients
    /// would take it for the hub's own message. Publish under another name.
    /// (A message to one client, [`Handle::send`](crate::Handle::send) or a
    /// request's reply, is not a publication: an `error` reply is fine.)
    ReservedType(String),
    /// The hub has shut down, so this [`Handle`](crate::Handle) can do nothing
    /// more. Not a failure of the call itself.
    Closed,
    /// The hub refused a command for one of its limits (a client's
    /// subscriptions, the size of its metadata); the reason says which.
    Refused(String),
    /// The publication could not be taken now, and nothing of it was
    /// delivered: the queue to Redis is full, Redis is unreachable or did
    /// not take it within its deadline (`--redis-timeout`). The reason says
    /// which. Try again later; with an idempotency key
    /// ([`Handle::publish_idempotent`](crate::Handle::publish_idempotent))
    /// a retry is never delivered twice. Also a server-side subscribe
    /// ([`Handle::subscribe`](crate::Handle::subscribe)) that could not be
    /// made while the queue to Redis is full: try again.
    Unavailable(String),
    /// Redis did not confirm the publication within its deadline: it may or
    /// may not have been delivered. Retry with the same idempotency key
    /// ([`Handle::publish_idempotent`](crate::Handle::publish_idempotent)):
    /// it is then delivered once, whatever happened to the first attempt.
    Unconfirmed(String),
    /// Application data could not be turned into JSON (a map with non-string
    /// keys, a failing `Serialize` impl). Fix the data.
    Json(serde_json::Error),
    /// The operating system refused something the hub needed at run time
    /// (spawning a thread, reading a file). Usually a resource limit.
    Io(io::Error),
    /// The TLS certificate or key cannot be used (at start, or on a
    /// reload, which then keeps the certificate it had). Fix the file named.
    Tls(TlsError),
    /// A thread of the hub panicked. This is a bug: please report it with the log.
    Panicked(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Config { field, reason } => write!(f, "invalid {field}: {reason}"),
            Error::InvalidName { what, reason } => write!(f, "invalid {what}: {reason}"),
            Error::ReservedType(kind) => f.write_str(&reserved_type(kind)),
            Error::Closed => f.write_str("the hub has shut down"),
            Error::Refused(reason) => write!(f, "refused: {reason}"),
            Error::Unavailable(reason) => write!(f, "unavailable: {reason}"),
            Error::Unconfirmed(reason) => write!(f, "not confirmed: {reason}"),
            Error::Json(err) => write!(f, "data is not serialisable as JSON: {err}"),
            Error::Io(err) => write!(f, "{err}"),
            Error::Tls(err) => write!(f, "TLS: {err}"),
            Error::Panicked(thread) => write!(f, "the {thread} thread panicked"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } => Some(source),
            Error::Json(err) => Some(err),
            Error::Io(err) => Some(err),
            Error::Tls(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::Io(err)
    }
}

impl From<TlsError> for Error {
    fn from(err: TlsError) -> Self {
        Error::Tls(err)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::Json(err)
    }
}

/// Why a publication may not be of type `kind`, in the same words wherever
/// it was published from (here, below the protocol, which says it too).
pub(crate) fn reserved_type(kind: &str) -> String {
    format!(
        "{kind:?} is reserved: it is one of the hub's own message types; publish under another name"
    )
}

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
