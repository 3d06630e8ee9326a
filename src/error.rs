//! The crate's one error type.
//!
//! Each variant's documentation says what the caller should do about it.

use std::fmt;
use std::io;

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
    /// a retry is never delivered twice.
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
    Tls(crate::tls::TlsError),
    /// A thread of the hub panicked. This is a bug: please report it with the log.
    Panicked(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Config { field, reason } => write!(f, "invalid {field}: {reason}"),
            Error::InvalidName { what, reason } => write!(f, "invalid {what}: {reason}"),
            Error::Closed => f.write_str("the hub has shut down"),
            Error::Refused(reason) => write!(f, "refused: {reason}"),
            Error::Unavailable(reason) => write!(f, "not published: {reason}"),
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

impl From<crate::tls::TlsError> for Error {
    fn from(err: crate::tls::TlsError) -> Self {
        Error::Tls(err)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::Json(err)
    }
}
