//! The client's error type, and the hub's own errors as the client sees them.
//!
//! Plain data, built on the thread that drives the
//! [`Client`](super::Client) (the caller's); nothing to end.

use std::fmt;
use std::io;
use std::time::Duration;

/// A `Result` whose error defaults to the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An `error` message from the hub: `{"type":"error","data":{"code","error"}}`.
///
/// ```
/// use wshub::client::HubError;
///
/// let refused = HubError { code: "forbidden".into(), message: "Client publishing is disabled".into() };
/// assert_eq!(refused.to_string(), "forbidden: Client publishing is disabled");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubError {
    /// The hub's error code: `forbidden`, `invalid_channel`, `rate_limited`,
    /// `unauthorized`, `token_expired`, `busy`, ... (see `docs/protocol.md`, Errors).
    pub code: String,
    /// What the hub said, for people.
    pub message: String,
}

impl HubError {
    /// The `data` of an `error` message (missing fields are empty).
    pub(crate) fn from_data(data: &serde_json::Value) -> HubError {
        let text = |key: &str| data[key].as_str().unwrap_or_default().to_owned();
        HubError {
            code: text("code"),
            message: text("error"),
        }
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for HubError {}

/// What can go wrong with a [`Client`](super::Client). Each variant says
/// what the caller can do about it.
///
/// ```
/// use wshub::client::{Client, Error, Options};
///
/// match Client::connect("wss://example.com/ws", Options::new()) {
///     Err(Error::TlsUnsupported { .. }) => {} // terminate TLS in front of the hub
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a `ws://` (or `http://`) URL with a host. Fix it.
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `wss://` (or `https://`) URL: this client speaks plain `ws://`
    /// only. Connect to the hub on loopback, or through a local TLS tunnel.
    TlsUnsupported {
        /// The URL given.
        url: String,
    },
    /// No TCP connection to the hub (refused, unreachable, unknown host,
    /// timed out). Is the hub running there?
    Connect {
        /// `host:port`.
        addr: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// The hub answered the upgrade with an HTTP status instead of a
    /// WebSocket (404: wrong path, 403: origin or host refused, 503: busy).
    Http {
        /// The status code.
        status: u16,
    },
    /// The WebSocket handshake or the connection failed at the protocol
    /// level.
    WebSocket(Box<tungstenite::Error>),
    /// The hub closed the connection before its welcome: refused at
    /// connect (1008 `Unauthorized`, 1013 `Server full`, ...).
    Rejected {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
        /// The `error` message the hub sent first, if any.
        error: Option<HubError>,
    },
    /// The hub sent something the protocol does not allow here (not a
    /// wshub hub, or another envelope). Check the URL and `?envelope=`.
    Protocol {
        /// What was expected.
        expected: &'static str,
        /// What came instead.
        got: String,
    },
    /// The hub answered a request with an `error`.
    Hub(HubError),
    /// No answer in time (a request, a subscription, or the welcome).
    Timeout {
        /// How long the client waited.
        waited: Duration,
    },
    /// The connection ended before the answer came, or is down right now
    /// (the client is waiting to reconnect). The request may or may not
    /// have reached the hub. [`next_update`](super::Client::next_update)
    /// reconnects; try again after its [`Update::Reconnected`](super::Update::Reconnected).
    Disconnected,
    /// The client has stopped for good: a close code that means stop, a
    /// 4001 with no fresh token, too many failed attempts, or
    /// [`close`](super::Client::close). Connect again to go on.
    Closed {
        /// The close code that stopped it.
        code: u16,
        /// Its reason.
        reason: String,
    },
    /// A message to send is not a JSON object with a string `type`.
    InvalidMessage {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// JSON that does not fit the type asked for, or data that cannot be
    /// turned into JSON.
    Json(serde_json::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl { url, reason } => write!(f, "invalid hub URL {url:?}: {reason}"),
            Error::TlsUnsupported { url } => write!(
                f,
                "{url}: TLS (wss://) is not supported by this client; connect with ws://"
            ),
            Error::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            Error::Http { status } => write!(f, "the hub answered the upgrade with HTTP {status}"),
            Error::WebSocket(err) => write!(f, "WebSocket: {err}"),
            Error::Rejected {
                code,
                reason,
                error,
            } => {
                write!(f, "the hub refused the connection: {code} {reason}")?;
                match error {
                    Some(error) => write!(f, " ({error})"),
                    None => Ok(()),
                }
            }
            Error::Protocol { expected, got } => write!(f, "expected {expected}, got {got}"),
            Error::Hub(error) => write!(f, "the hub answered {error}"),
            Error::Timeout { waited } => write!(f, "no answer within {waited:?}"),
            Error::Disconnected => f.write_str("the connection to the hub ended"),
            Error::Closed { code, reason } => write!(f, "the client has stopped: {code} {reason}"),
            Error::InvalidMessage { reason } => write!(f, "invalid message: {reason}"),
            Error::Json(err) => write!(f, "JSON: {err}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect { source, .. } => Some(source),
            Error::WebSocket(err) => Some(err.as_ref()),
            Error::Hub(err) => Some(err),
            Error::Json(err) => Some(err),
            _ => None,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::Json(err)
    }
}
