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
//! threads may share the receiver (it is a crossbeam `Receiver`).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::events::Event;
use crate::handle::Handle;
use crate::publish::{Publication, Target};

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

    /// The request's `correlationId`, as JSON text (a string keeps its quotes).
    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_id.as_deref().map(RawValue::get)
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
        let publication = Publication::new(Target::client(&self.client_id), kind, Some(&data))?
            .correlation(match correlated {
                true => self.correlation_id.clone(),
                false => None,
            });
        Ok(self.handle.publish_prepared(publication, None)? > 0)
    }
}
