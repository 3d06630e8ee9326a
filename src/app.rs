//! The application side: a client's request on its way to the program that
//! embeds the hub.
//!
//! Any message type the protocol does not reserve (`agent:start`,
//! `chat:send`, ...) is an application request. The router hands each one
//! to the program as a [`ClientRequest`] on the channel from
//! [`Hub::requests`](crate::Hub::requests), or, with no such consumer, to a
//! backend's service connection (see `docs/protocol.md`), or answers it
//! `unknown_type`. It never waits for the application: when the channel is
//! full, the client gets the error `busy`.
//!
//! Pure data plus a [`Handle`]: answering a request is one message to the
//! router, from whatever thread the program reads requests on. Several
//! threads may share the [`Requests`] receiver (clones read one queue).

use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::events::Event;
use crate::handle::Handle;
use crate::publish::Publication;

/// One application message from a client, with who sent it.
///
/// # Example
///
/// ```
/// use serde_json::json;
/// let mut hub = wshub::Hub::bind("127.0.0.1:0")?;
/// let requests = hub.requests();
/// let server = hub.spawn()?;
/// std::thread::spawn(move || {
///     for request in requests.iter() {
///         match request.kind() {
///             "agent:start" => {
///                 let _ = request.reply("agent:started", json!({"sessionId": request.client_id()}));
///             }
///             other => {
///                 let _ = request.reply_error("unknown_request", &format!("cannot {other}"));
///             }
///         }
///     }
/// });
/// # server.shutdown()?;
/// # Ok::<(), wshub::Error>(())
/// ```
#[derive(Debug)]
pub struct ClientRequest {
    pub(crate) client_id: String,
    pub(crate) user_id: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) kind: String,
    pub(crate) data: Option<Box<RawValue>>,
    pub(crate) correlation_id: Option<Box<RawValue>>,
    /// The `correlationId` as text: a string's contents, a number's digits.
    pub(crate) correlation_text: Option<Box<str>>,
    /// The client's address (see the README's trusted proxies).
    pub(crate) address: String,
    pub(crate) meta: serde_json::Map<String, serde_json::Value>,
    pub(crate) handle: Handle,
}

impl ClientRequest {
    /// The `clientId` of the connection that sent it.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The sender's user, if it has one.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// The first session the sender is subscribed to, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The message's `type`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The message's `data` (or `payload`) as `T`; a message without one
    /// reads as JSON `null`.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] when it does not fit `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T> {
        let text = self.data.as_deref().map_or("null", RawValue::get);
        serde_json::from_str(text).map_err(Error::Json)
    }

    /// The message's `data` as the JSON text the client sent.
    pub fn raw_data(&self) -> Option<&str> {
        self.data.as_deref().map(RawValue::get)
    }

    /// The request's `correlationId`: the string the client sent (`"r1"`
    /// is `r1`), or a number's digits (`7` is `7`). [`reply`](Self::reply)
    /// echoes it exactly as it came, whatever its type.
    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_text.as_deref()
    }

    /// The address the client connected from: the socket's, or, through a
    /// trusted proxy, the one the proxy forwarded (see `--trusted-proxy`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The sender's metadata (its token's `meta`, and what the backend set).
    pub fn meta(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.meta
    }

    /// A handle on the hub, to publish anywhere.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Answers the request: `{"type": kind, "data": data}` to the sender,
    /// with its `correlationId`. `false` if the sender is gone.
    ///
    /// # Errors
    ///
    /// As [`Handle::publish`].
    pub fn reply(&self, kind: &str, data: impl Serialize) -> Result<bool> {
        self.to_sender(kind, data, true)
    }

    /// Answers the request with a typed event (its `type` is `E::TYPE`).
    ///
    /// # Errors
    ///
    /// As [`Handle::publish`].
    pub fn reply_event<E: Event>(&self, event: &E) -> Result<bool> {
        self.to_sender(E::TYPE, event, true)
    }

    /// Sends the sender a typed event, without the `correlationId`.
    ///
    /// # Errors
    ///
    /// As [`Handle::publish`].
    pub fn send_event<E: Event>(&self, event: &E) -> Result<bool> {
        self.to_sender(E::TYPE, event, false)
    }

    /// Answers the request with an error: `{"type":"error","data":{"code",
    /// "error"}}` to the sender, with its `correlationId`.
    ///
    /// # Errors
    ///
    /// As [`Handle::publish`].
    pub fn reply_error(&self, code: &str, message: &str) -> Result<bool> {
        #[derive(Serialize)]
        struct Failure<'a> {
            code: &'a str,
            error: &'a str,
        }
        self.to_sender(
            "error",
            Failure {
                code,
                error: message,
            },
            true,
        )
    }

    /// Sends the sender something more (a stream chunk, say), without the
    /// `correlationId`. `false` if the sender is gone.
    ///
    /// # Errors
    ///
    /// As [`Handle::publish`].
    pub fn send(&self, kind: &str, data: impl Serialize) -> Result<bool> {
        self.to_sender(kind, data, false)
    }

    fn to_sender(&self, kind: &str, data: impl Serialize, correlated: bool) -> Result<bool> {
        let data = serde_json::value::to_raw_value(&data)?;
        let publication = Publication::to_client(&self.client_id, kind, Some(&data))?.correlation(
            match correlated {
                true => self.correlation_id.clone(),
                false => None,
            },
        );
        Ok(self.handle.publish_prepared(publication, None)? > 0)
    }
}

/// A `correlationId` as text: a JSON string's contents (unescaped), or the
/// JSON text of anything else the protocol allows (a number).
pub(crate) fn correlation_text(raw: &RawValue) -> Box<str> {
    match serde_json::from_str::<String>(raw.get()) {
        Ok(text) => text.into(),
        Err(_) => raw.get().into(),
    }
}

/// The clients' application requests, from [`Hub::requests`](crate::Hub::requests):
/// the receiving end of one bounded queue. Clones read the same queue, so
/// several threads may share the work; each request goes to one of them.
///
/// It is the crate's own type, so a program names it without depending on
/// the channel crate underneath; [`receiver`](Requests::receiver) gives
/// that channel for `crossbeam_channel::select!`.
///
/// ```
/// use std::time::Duration;
/// let mut hub = wshub::Hub::bind("127.0.0.1:0")?;
/// let requests: wshub::Requests = hub.requests();
/// let server = hub.spawn()?;
/// // Nothing was sent: the wait ends empty-handed.
/// assert!(requests.recv_timeout(Duration::from_millis(10))?.is_none());
/// server.shutdown()?;
/// // The hub is gone: so are its requests.
/// assert!(matches!(requests.recv(), Err(wshub::Error::Closed)));
/// # Ok::<(), wshub::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Requests(pub(crate) Receiver<ClientRequest>);

impl Requests {
    /// Waits for the next request.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the hub has stopped and every request was taken.
    pub fn recv(&self) -> Result<ClientRequest> {
        self.0.recv().map_err(|_| Error::Closed)
    }

    /// Waits at most `timeout` for the next request: `None` if none came.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the hub has stopped and every request was taken.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<ClientRequest>> {
        match self.0.recv_timeout(timeout) {
            Ok(request) => Ok(Some(request)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Closed),
        }
    }

    /// The next request if one is waiting, without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the hub has stopped and every request was taken.
    pub fn try_recv(&self) -> Result<Option<ClientRequest>> {
        match self.0.try_recv() {
            Ok(request) => Ok(Some(request)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(Error::Closed),
        }
    }

    /// Every request, waiting for each; ends when the hub has stopped.
    pub fn iter(&self) -> impl Iterator<Item = ClientRequest> + '_ {
        self.0.iter()
    }

    /// The requests waiting now, without waiting.
    pub fn try_iter(&self) -> impl Iterator<Item = ClientRequest> + '_ {
        self.0.try_iter()
    }

    /// How many requests wait now.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no request waits now.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The channel underneath, for `crossbeam_channel::select!` beside the
    /// program's own channels (add `crossbeam-channel = "0.5"` to use it).
    pub fn receiver(&self) -> &Receiver<ClientRequest> {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn a_correlation_id_reads_as_its_string_not_its_json() {
        assert_eq!(&*correlation_text(&raw(r#""r1""#)), "r1");
        assert_eq!(&*correlation_text(&raw(r#""a\"b""#)), "a\"b");
        assert_eq!(&*correlation_text(&raw(r#""\u0072\u0031""#)), "r1");
        assert_eq!(&*correlation_text(&raw("42")), "42");
    }
}
