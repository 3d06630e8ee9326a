//! What clients send: one text frame parsed into a typed request, with a
//! clear error for everything else.
//!
//! Pure code, run on each connection's reader thread by [`parse`], so the
//! router only ever sees validated requests. Never panics, whatever the
//! input.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::protocol::fields::{Fields, Object};
use crate::protocol::{AppClose, BadClose, ErrorCode, Kind, Status};

/// Longest accepted `correlationId`, in bytes of JSON.
const MAX_CORRELATION_ID: usize = 256;

/// Longest accepted channel name, session id or event name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Longest accepted `idempotencyKey`, in bytes.
pub(crate) const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A channel or a session: what a client subscribes to.
///
/// ```
/// let files = wshub::Topic::channel("files");
/// let session = wshub::Topic::session("session_123");
/// # let _ = (files, session);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A channel, by name.
    Channel(String),
    /// A session, by id.
    Session(String),
}

impl Topic {
    /// [`Topic::Channel`].
    pub fn channel(name: impl Into<String>) -> Topic {
        Topic::Channel(name.into())
    }

    /// [`Topic::Session`].
    pub fn session(id: impl Into<String>) -> Topic {
        Topic::Session(id.into())
    }

    /// Checks the name against the naming rules.
    pub(crate) fn validate(&self) -> Result<(), crate::Error> {
        let (name, what) = match self {
            Topic::Channel(name) => (name, "channel"),
            Topic::Session(id) => (id, "sessionId"),
        };
        check_name(name, what).map_err(|(_, reason)| crate::Error::InvalidName { what, reason })
    }
}

/// Where a publication goes, as a request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    Topic(Topic),
    User(String),
    Client(String),
    Broadcast,
    /// Every client that is not anonymous.
    Authenticated,
}

/// Whose connections a server-side disconnect closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Who {
    Client(String),
    User(String),
}

/// A message a service connection hands the hub for one client.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub kind: String,
    pub data: Option<Box<RawValue>>,
    pub correlation_id: Option<Box<RawValue>>,
}

/// One request from a client, validated.
#[derive(Debug)]
pub(crate) enum ClientMessage {
    /// `ping`: answered `pong` at once.
    Ping,
    /// `subscribe` to a channel or a session; with `client`, a service
    /// subscribes that client.
    Subscribe {
        topic: Topic,
        client: Option<String>,
        /// The last position the client has of this stream: what comes
        /// after it is replayed.
        since: Option<Since>,
    },
    /// `unsubscribe` from one channel or session, or (`None`) from every
    /// session; with `client`, a service unsubscribes that client.
    Unsubscribe {
        topic: Option<Topic>,
        client: Option<String>,
    },
    /// `publish` to a channel or a session (services: to any destination),
    /// once per `idempotency_key` within a few minutes.
    Publish {
        to: Destination,
        event: String,
        data: Option<Box<RawValue>>,
        batched: bool,
        idempotency_key: Option<String>,
    },
    /// `user_presence`: set the user's status.
    Presence(Status),
    /// `presence`: ask who is online.
    PresenceQuery,
    /// `refresh`: replace the connection's token before it expires.
    Refresh { token: String },
    /// `send` (service connections): one message to one client.
    Send { client: String, message: Outgoing },
    /// `disconnect` (service connections): close a client or a user.
    Disconnect { who: Who, close: AppClose },
    /// `set_meta` (service connections): merge key/values into a client's
    /// metadata (`null` removes a key).
    SetMeta {
        client: String,
        meta: serde_json::Map<String, serde_json::Value>,
    },
    /// `subscribers` (service connections): who listens to a topic.
    Subscribers { topic: Topic },
    /// `stats` (service connections): the hub's counters and clients.
    Stats,
    /// `client_info` (service connections): one client of this hub in
    /// detail (the dashboard's client view).
    ClientInfo { client: String },
    /// Any other `type`: an application message, for the application.
    Application {
        kind: String,
        data: Option<Box<RawValue>>,
        /// The whole message as the client sent it.
        message: Box<RawValue>,
    },
}

/// `since` of a `subscribe`: the last publication a client has of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Since {
    pub seq: u64,
    pub epoch: String,
}

/// Longest `epoch` a client may send back.
const MAX_EPOCH: usize = 64;

/// A parsed request and the `correlationId` to echo.
#[derive(Debug)]
pub(crate) struct Request {
    pub message: ClientMessage,
    pub correlation_id: Option<Box<RawValue>>,
}

/// Why a frame was refused, with what the error reply needs.
#[derive(Debug, Clone)]
pub(crate) struct Rejection {
    pub code: ErrorCode,
    pub message: String,
    pub correlation_id: Option<Box<RawValue>>,
}

/// The shape of a request before validation: every field kept as raw JSON so
/// that each can be checked with its own clear error.
#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    channel: Option<&'a RawValue>,
    #[serde(rename = "sessionId", borrow)]
    session_id: Option<&'a RawValue>,
    #[serde(borrow)]
    event: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
    #[serde(rename = "correlationId", borrow)]
    correlation_id: Option<&'a RawValue>,
    #[serde(rename = "userId", borrow)]
    user_id: Option<&'a RawValue>,
    #[serde(rename = "clientId", borrow)]
    client_id: Option<&'a RawValue>,
    #[serde(borrow)]
    broadcast: Option<&'a RawValue>,
    #[serde(borrow)]
    authenticated: Option<&'a RawValue>,
    #[serde(borrow)]
    batched: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    #[serde(borrow)]
    code: Option<&'a RawValue>,
    #[serde(borrow)]
    reason: Option<&'a RawValue>,
    #[serde(borrow)]
    since: Option<&'a RawValue>,
    #[serde(rename = "idempotencyKey", borrow)]
    idempotency_key: Option<&'a RawValue>,
}

/// Only the `correlationId`, to answer a request that failed validation.
#[derive(Deserialize)]
struct CorrelationOnly<'a> {
    #[serde(rename = "correlationId", borrow)]
    correlation_id: Option<&'a RawValue>,
}

/// The valid `correlationId` of a text frame, if it has one, without
/// looking at anything else (to answer a request that is refused whole).
pub(crate) fn correlation_of(text: &str) -> Option<Box<RawValue>> {
    serde_json::from_str::<CorrelationOnly<'_>>(text)
        .ok()
        .and_then(|c| c.correlation_id)
        .and_then(|c| correlation_id(c).ok())
}

/// The role of the connection a frame comes from: what it may say differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A client: `send`, `disconnect`, `set_meta`, `subscribers`, `stats`
    /// and `client_info` are application messages like any other type it
    /// makes up.
    Client,
    /// A backend's service connection: those are commands to the hub.
    Service,
}

/// Parses one text frame into a request.
///
/// Never panics, whatever the input: every failure is a [`Rejection`] with the
/// code the protocol gives it and, when it can be recovered, the request's
/// `correlationId`.
pub(crate) fn parse(text: &str, role: Role) -> Result<Request, Rejection> {
    let raw: RawRequest<'_> = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(err) => return Err(parse_failure(text, &err)),
    };
    let correlation_id = match raw.correlation_id {
        None => None,
        Some(value) => Some(correlation_id(value)?),
    };
    let reject = |code, message: String| Rejection {
        code,
        message,
        correlation_id: correlation_id.clone(),
    };
    match validate(&raw, text, role) {
        Ok(message) => Ok(Request {
            message,
            correlation_id,
        }),
        Err((code, message)) => Err(reject(code, message)),
    }
}

fn parse_failure(text: &str, err: &serde_json::Error) -> Rejection {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => Rejection {
            code: ErrorCode::InvalidJson,
            message: "Invalid message format".to_owned(),
            correlation_id: None,
        },
        Category::Data => {
            // Valid JSON of the wrong shape: try to keep the correlationId.
            let correlation_id = correlation_of(text);
            let message = if text.trim_start().starts_with('{') {
                format!("Invalid message: {}", strip_position(&err.to_string()))
            } else {
                "Invalid message: expected a JSON object".to_owned()
            };
            Rejection {
                code: ErrorCode::InvalidMessage,
                message,
                correlation_id,
            }
        }
    }
}

/// serde_json appends " at line L column C"; for one-line frames it is noise.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) => &message[..at],
        None => message,
    }
}

fn correlation_id(value: &RawValue) -> Result<Box<RawValue>, Rejection> {
    let text = value.get();
    let scalar = matches!(text.as_bytes().first(), Some(b'"' | b'-' | b'0'..=b'9'));
    if !scalar || text.len() > MAX_CORRELATION_ID {
        return Err(Rejection {
            code: ErrorCode::InvalidMessage,
            message: format!(
                "`correlationId` must be a string or a number of at most {MAX_CORRELATION_ID} bytes"
            ),
            correlation_id: None,
        });
    }
    Ok(value.to_owned())
}

/// An error a request is answered with: its code and its message.
pub(crate) type ErrorReply = (ErrorCode, String);

fn validate(raw: &RawRequest<'_>, text: &str, role: Role) -> Result<ClientMessage, ErrorReply> {
    let kind = match raw.kind {
        None => return Err(invalid("`type` is missing")),
        Some(kind) => string_field(kind, "type")?,
    };
    if kind.is_empty() {
        return Err(invalid("`type` must not be empty"));
    }
    if kind.len() > MAX_NAME_LEN {
        return Err(invalid("`type` is longer than 255 bytes"));
    }
    let given = match (raw.data, raw.payload) {
        (Some(_), Some(_)) => return Err(invalid("give `data` or `payload`, not both")),
        (data, payload) => data.or(payload),
    };
    // Without `data` or `payload`, a flat message's own fields are its data.
    let data = |consumed: &[&str]| -> Result<Option<Cow<'_, RawValue>>, ErrorReply> {
        match given {
            Some(data) => Ok(Some(Cow::Borrowed(data))),
            None => Ok(gathered(text, consumed)?.map(Cow::Owned)),
        }
    };
    let service = role == Role::Service;
    let message = match kind.as_str() {
        "ping" => ClientMessage::Ping,
        "subscribe" => ClientMessage::Subscribe {
            topic: required_topic(raw, "subscribe")?,
            client: client_field(raw)?,
            since: since(raw.since)?,
        },
        "unsubscribe" => ClientMessage::Unsubscribe {
            topic: topic(raw)?,
            client: client_field(raw)?,
        },
        "publish" => {
            let event = match raw.event {
                None => "event".to_owned(),
                Some(event) => event_name(&string_field(event, "event")?)?,
            };
            ClientMessage::Publish {
                to: destination(raw)?,
                event,
                data: data(PUBLISH_KEYS)?.map(Cow::into_owned),
                batched: flag(raw.batched, "batched")?,
                idempotency_key: idempotency_key(raw.idempotency_key)?,
            }
        }
        "user_presence" => ClientMessage::Presence(presence_status(data(OWN_KEYS)?.as_deref())?),
        "presence" => ClientMessage::PresenceQuery,
        "refresh" => ClientMessage::Refresh {
            token: refresh_token(data(OWN_KEYS)?.as_deref())?,
        },
        "send" if service => ClientMessage::Send {
            client: required_client(raw, "send")?,
            message: outgoing(raw.message)?,
        },
        "disconnect" if service => ClientMessage::Disconnect {
            who: who(raw)?,
            close: close(raw.code, raw.reason)?,
        },
        "set_meta" if service => ClientMessage::SetMeta {
            client: required_client(raw, "set_meta")?,
            meta: meta(given)?,
        },
        "subscribers" if service => ClientMessage::Subscribers {
            topic: required_topic(raw, "subscribers")?,
        },
        "stats" if service => ClientMessage::Stats,
        "client_info" if service => ClientMessage::ClientInfo {
            client: required_client(raw, "client_info")?,
        },
        _ => ClientMessage::Application {
            kind,
            data: data(OWN_KEYS)?.map(Cow::into_owned),
            // The frame parsed as a JSON object, so it is a valid raw value.
            message: RawValue::from_string(text.trim().to_owned())
                .map_err(|_| invalid("the message is not valid JSON"))?,
        },
    };
    Ok(message)
}

/// The keys every request may carry besides its data.
const OWN_KEYS: &[&str] = &["type", "correlationId"];

/// The keys of a `publish` besides its data: where it goes and how.
const PUBLISH_KEYS: &[&str] = &[
    "type",
    "correlationId",
    "channel",
    "sessionId",
    "userId",
    "clientId",
    "broadcast",
    "authenticated",
    "event",
    "batched",
    "idempotencyKey",
];

/// The data of a `flat` message: its fields but the `consumed` ones, as one
/// object, or `None` when there are none.
fn gathered(text: &str, consumed: &[&str]) -> Result<Option<Box<RawValue>>, ErrorReply> {
    let fields: Fields<'_> =
        serde_json::from_str(text).map_err(|_| invalid("the message is not a JSON object"))?;
    let rest: Vec<_> = fields
        .0
        .into_iter()
        .filter(|(key, _)| !consumed.contains(&key.as_ref()))
        .collect();
    if rest.is_empty() {
        return Ok(None);
    }
    let text = serde_json::to_string(&Object(&rest))
        .map_err(|_| invalid("the message's fields could not be gathered"))?;
    RawValue::from_string(text)
        .map(Some)
        .map_err(|_| invalid("the message's fields could not be gathered"))
}

/// `since`: absent, `null`, or `{"seq": <u64>, "epoch": "<string>"}`.
fn since(value: Option<&RawValue>) -> Result<Option<Since>, ErrorReply> {
    let Some(value) = value.filter(|v| v.get() != "null") else {
        return Ok(None);
    };
    let since: Since = serde_json::from_str(value.get())
        .map_err(|_| invalid("`since` must be {\"seq\": <number>, \"epoch\": \"<string>\"}"))?;
    if since.epoch.len() > MAX_EPOCH {
        return Err(invalid("`since.epoch` is longer than 64 bytes"));
    }
    Ok(Some(since))
}

/// `true`, `false` or absent.
fn flag(value: Option<&RawValue>, name: &str) -> Result<bool, ErrorReply> {
    match value {
        None => Ok(false),
        Some(value) => serde_json::from_str::<bool>(value.get())
            .map_err(|_| invalid(&format!("`{name}` must be true or false"))),
    }
}

/// A publication's `idempotencyKey`, if it has one.
fn idempotency_key(value: Option<&RawValue>) -> Result<Option<String>, ErrorReply> {
    value
        .map(|value| {
            let key = string_field(value, "idempotencyKey")?;
            check_idempotency_key(&key)
                .map_err(|why| invalid(&format!("`idempotencyKey` {why}")))?;
            Ok(key)
        })
        .transpose()
}

/// Checks an idempotency key as a publisher gave it (a request, the HTTP
/// API or the library).
///
/// # Errors
///
/// Why it is not a key (empty, or longer than [`MAX_IDEMPOTENCY_KEY`]
/// bytes), as "must be ...".
pub(crate) fn check_idempotency_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(format!("must be 1 to {MAX_IDEMPOTENCY_KEY} bytes"));
    }
    Ok(())
}

/// The `clientId` a request names, if any.
fn client_field(raw: &RawRequest<'_>) -> Result<Option<String>, ErrorReply> {
    raw.client_id
        .map(|c| {
            let client = string_field(c, "clientId")?;
            check_id(&client, "clientId")?;
            Ok(client)
        })
        .transpose()
}

fn required_client(raw: &RawRequest<'_>, what: &str) -> Result<String, ErrorReply> {
    client_field(raw)?.ok_or_else(|| invalid(&format!("`{what}` needs a `clientId`")))
}

/// A user or client id: 1 to 255 bytes, no control characters.
fn check_id(id: &str, what: &str) -> Result<(), ErrorReply> {
    if id.is_empty() || id.len() > MAX_NAME_LEN || id.chars().any(char::is_control) {
        return Err(invalid(&format!(
            "`{what}` must be 1 to {MAX_NAME_LEN} bytes with no control characters"
        )));
    }
    Ok(())
}

/// The one destination of a `publish`: a channel, a session, a user, a
/// client, every client, or every authenticated client.
fn destination(raw: &RawRequest<'_>) -> Result<Destination, ErrorReply> {
    let mut found = Vec::with_capacity(1);
    if let Some(topic) = topic(raw)? {
        found.push(Destination::Topic(topic));
    }
    if let Some(user) = raw.user_id {
        let user = string_field(user, "userId")?;
        check_id(&user, "userId")?;
        found.push(Destination::User(user));
    }
    if let Some(client) = client_field(raw)? {
        found.push(Destination::Client(client));
    }
    if flag(raw.broadcast, "broadcast")? {
        found.push(Destination::Broadcast);
    }
    if flag(raw.authenticated, "authenticated")? {
        found.push(Destination::Authenticated);
    }
    match found.pop() {
        Some(to) if found.is_empty() => Ok(to),
        _ => Err(invalid(
            "`publish` needs exactly one of `channel`, `sessionId`, `userId`, `clientId`, `\"broadcast\": true` or `\"authenticated\": true`",
        )),
    }
}

fn who(raw: &RawRequest<'_>) -> Result<Who, ErrorReply> {
    let user = raw
        .user_id
        .map(|u| {
            let user = string_field(u, "userId")?;
            check_id(&user, "userId")?;
            Ok::<_, ErrorReply>(user)
        })
        .transpose()?;
    match (client_field(raw)?, user) {
        (Some(client), None) => Ok(Who::Client(client)),
        (None, Some(user)) => Ok(Who::User(user)),
        _ => Err(invalid("`disconnect` needs a `clientId` or a `userId`")),
    }
}

/// A `disconnect`'s `code` and `reason` (1000 and the default reason
/// when absent), checked by [`AppClose`]'s one rule.
fn close(code: Option<&RawValue>, reason: Option<&RawValue>) -> Result<AppClose, ErrorReply> {
    let broken = |bad: BadClose| invalid(&format!("`{}` {}", bad.field(), bad.rule()));
    let code = code
        .map(|c| serde_json::from_str::<u16>(c.get()).map_err(|_| broken(BadClose::Code)))
        .transpose()?;
    let reason = reason.map(|r| string_field(r, "reason")).transpose()?;
    AppClose::or_default(code, reason).map_err(broken)
}

fn meta(data: Option<&RawValue>) -> Result<serde_json::Map<String, serde_json::Value>, ErrorReply> {
    data.and_then(|d| serde_json::from_str(d.get()).ok())
        .ok_or_else(|| invalid("`set_meta` needs `data`: an object of key/values"))
}

/// The `message` of a `send`: `{"type", "data"|"payload"?, "correlationId"?}`.
fn outgoing(message: Option<&RawValue>) -> Result<Outgoing, ErrorReply> {
    let message = message.ok_or_else(|| invalid("`send` needs a `message` object"))?;
    let raw: RawRequest<'_> = serde_json::from_str(message.get())
        .map_err(|_| invalid("`message` must be an object with a `type`"))?;
    let kind = match raw.kind {
        Some(kind) => string_field(kind, "message.type")?,
        None => return Err(invalid("`message` needs a `type`")),
    };
    if kind.is_empty() || kind.len() > MAX_NAME_LEN {
        return Err(invalid("`message.type` must be 1 to 255 bytes"));
    }
    let data = match (raw.data, raw.payload) {
        (Some(_), Some(_)) => return Err(invalid("give `data` or `payload`, not both")),
        (data, payload) => data.or(payload),
    };
    let correlation_id = raw
        .correlation_id
        .map(|c| correlation_id(c).map_err(|r| (r.code, r.message)))
        .transpose()?;
    Ok(Outgoing {
        kind,
        data: data.map(RawValue::to_owned),
        correlation_id,
    })
}

fn invalid(message: &str) -> ErrorReply {
    (ErrorCode::InvalidMessage, message.to_owned())
}

fn string_field(value: &RawValue, name: &str) -> Result<String, ErrorReply> {
    serde_json::from_str::<String>(value.get()).map_err(|_| {
        (
            ErrorCode::InvalidMessage,
            format!("`{name}` must be a string"),
        )
    })
}

fn topic(raw: &RawRequest<'_>) -> Result<Option<Topic>, ErrorReply> {
    let channel = raw
        .channel
        .map(|c| string_field(c, "channel"))
        .transpose()?;
    let session = raw
        .session_id
        .map(|s| string_field(s, "sessionId"))
        .transpose()?;
    match (channel, session) {
        (Some(_), Some(_)) => Err(invalid("give `channel` or `sessionId`, not both")),
        (Some(channel), None) => {
            check_name(&channel, "channel")?;
            Ok(Some(Topic::Channel(channel)))
        }
        (None, Some(session)) => {
            check_name(&session, "sessionId")?;
            Ok(Some(Topic::Session(session)))
        }
        (None, None) => Ok(None),
    }
}

fn required_topic(raw: &RawRequest<'_>, what: &str) -> Result<Topic, ErrorReply> {
    topic(raw)?.ok_or_else(|| invalid(&format!("`{what}` needs a `channel` or a `sessionId`")))
}

/// Checks a channel name or session id against the naming rules:
/// 1 to 255 bytes of ASCII letters, digits and `-_.:@/=+#|$!~`.
pub(crate) fn check_name(name: &str, what: &str) -> Result<(), ErrorReply> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.:@/=+#|$!~".contains(&b);
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.bytes().all(allowed) {
        return Err((
            ErrorCode::InvalidChannel,
            format!(
                "Invalid {what} {}: use 1 to {MAX_NAME_LEN} letters, digits or -_.:@/=+#|$!~",
                Shown(name)
            ),
        ));
    }
    Ok(())
}

fn event_name(event: &str) -> Result<String, ErrorReply> {
    check_event(event).map_err(|bad| invalid(&bad.to_string()))?;
    Ok(event.to_owned())
}

/// Why a publication's type (its `event`) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadEvent {
    /// Empty, or longer than [`MAX_NAME_LEN`] bytes.
    Length,
    /// One of the hub's own message types ([`Kind`]): a publication under
    /// it would pass for the hub's own (a `connection` welcome, an `error`,
    /// a `user_presence`, ...).
    Reserved(Kind),
}

impl fmt::Display for BadEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadEvent::Length => write!(f, "`event` must be 1 to {MAX_NAME_LEN} bytes"),
            BadEvent::Reserved(kind) => f.write_str(&crate::error::reserved_type(kind.as_str())),
        }
    }
}

/// The one check of a publication's type, wherever it is published from:
/// a connection's `publish` (its `event`), `POST /api/publish` (its
/// `type`) and the library's publishing calls. A message `send` to one
/// client (a reply, which may be an `error`) is not a publication and is
/// not checked against the hub's own types.
///
/// # Errors
///
/// [`BadEvent`]: an empty or too long name, or one of the hub's own types.
pub(crate) fn check_event(event: &str) -> Result<(), BadEvent> {
    if event.is_empty() || event.len() > MAX_NAME_LEN {
        return Err(BadEvent::Length);
    }
    match Kind::from_wire(event) {
        Some(kind) => Err(BadEvent::Reserved(kind)),
        None => Ok(()),
    }
}

/// The types a client's message has when it is the protocol's own, never
/// an application request (kept so by a test over [`parse`]).
const PROTOCOL_TYPES: &[&str] = &[
    "ping",
    "subscribe",
    "unsubscribe",
    "publish",
    "user_presence",
    "presence",
    "refresh",
];

/// Most request types one service connection may declare (`?handles=`).
pub(crate) const MAX_HANDLES: usize = 256;

/// The request types a service connection declares it handles, from its
/// `?handles=` (comma-separated; empty: none): each a type a client's
/// request may have (not one the protocol takes for its own), once, at most
/// [`MAX_HANDLES`] of them.
///
/// # Errors
///
/// Why the list is refused, for a 400.
pub(crate) fn request_types(list: &str) -> Result<Vec<String>, String> {
    let mut types: Vec<String> = Vec::new();
    for kind in list.split(',').filter(|k| !k.is_empty()) {
        if kind.len() > MAX_NAME_LEN {
            return Err(format!(
                "handles: each type must be 1 to {MAX_NAME_LEN} bytes"
            ));
        }
        if PROTOCOL_TYPES.contains(&kind) {
            return Err(format!(
                "handles: {} is one of the protocol's own message types, never a request",
                Shown(kind)
            ));
        }
        if !types.iter().any(|t| t == kind) {
            types.push(kind.to_owned());
        }
        if types.len() > MAX_HANDLES {
            return Err(format!("handles: at most {MAX_HANDLES} types"));
        }
    }
    Ok(types)
}

fn presence_status(data: Option<&RawValue>) -> Result<Status, ErrorReply> {
    #[derive(Deserialize)]
    struct Object {
        status: Status,
    }
    let bad = || invalid("`data` must be one of \"online\", \"away\", \"busy\", \"offline\"");
    let text = data.ok_or_else(bad)?.get();
    // Look at the first byte rather than try shapes in turn (serde's
    // `untagged` would buffer the whole value, recursively).
    let status = match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<Status>(text).ok(),
        Some(b'{') => serde_json::from_str::<Object>(text).ok().map(|o| o.status),
        _ => None,
    };
    status.ok_or_else(bad)
}

fn refresh_token(data: Option<&RawValue>) -> Result<String, ErrorReply> {
    #[derive(Deserialize)]
    struct Refresh {
        token: String,
    }
    data.and_then(|d| serde_json::from_str::<Refresh>(d.get()).ok())
        .map(|r| r.token)
        .ok_or_else(|| invalid("`refresh` needs `data: {\"token\": \"...\"}`"))
}

/// Shows a client-given name in an error message, cut short and quoted.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut end = self.0.len().min(64);
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        let ellipsis = if end < self.0.len() { "..." } else { "" };
        write!(f, "{:?}{ellipsis}", &self.0[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_services_declared_types_are_request_types_once_each() {
        assert_eq!(
            request_types("agent:start,agent:cancel,agent:start").unwrap(),
            ["agent:start", "agent:cancel"]
        );
        assert!(request_types("").unwrap().is_empty());
        assert!(request_types(",,").unwrap().is_empty());
        let reserved = request_types("agent:start,subscribe").unwrap_err();
        assert!(reserved.contains("\"subscribe\""), "{reserved}");
        // A regular client's `stats` is a request like any other.
        assert_eq!(request_types("stats").unwrap(), ["stats"]);
        // The list is what the parser takes for the protocol's own.
        for kind in PROTOCOL_TYPES {
            let text = format!(r#"{{"type":"{kind}","channel":"c","data":"online"}}"#);
            if let Ok(parsed) = parse_client(&text) {
                assert!(
                    !matches!(parsed.message, ClientMessage::Application { .. }),
                    "{kind}"
                );
            }
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(request_types(&long).is_err());
        let many: Vec<String> = (0..=MAX_HANDLES).map(|n| format!("t{n}")).collect();
        assert!(request_types(&many.join(",")).is_err());
        assert_eq!(
            request_types(&many[..MAX_HANDLES].join(",")).unwrap().len(),
            MAX_HANDLES
        );
    }

    fn parse_client(text: &str) -> Result<Request, Rejection> {
        parse(text, Role::Client)
    }

    #[test]
    fn ping_subscribe_and_publish_parse_into_typed_requests() {
        let r = parse_client(r#"{"type":"ping","correlationId":"r1"}"#).unwrap();
        assert!(matches!(r.message, ClientMessage::Ping));
        assert_eq!(r.correlation_id.unwrap().get(), r#""r1""#);

        let r = parse_client(r#"{"type":"subscribe","channel":"files"}"#).unwrap();
        assert!(matches!(
            r.message,
            ClientMessage::Subscribe { topic: Topic::Channel(ref c), client: None, since: None } if c == "files"
        ));

        let r = parse_client(r#"{"type":"subscribe","sessionId":"s1","correlationId":7}"#).unwrap();
        assert!(matches!(
            r.message,
            ClientMessage::Subscribe { topic: Topic::Session(ref s), .. } if s == "s1"
        ));
        assert_eq!(r.correlation_id.unwrap().get(), "7");

        let r = parse_client(r#"{"type":"unsubscribe"}"#).unwrap();
        assert!(matches!(
            r.message,
            ClientMessage::Unsubscribe {
                topic: None,
                client: None
            }
        ));

        let r =
            parse_client(r#"{"type":"publish","channel":"git","payload":{"a":[1,2]}}"#).unwrap();
        match r.message {
            ClientMessage::Publish {
                to, event, data, ..
            } => {
                assert_eq!(to, Destination::Topic(Topic::Channel("git".into())));
                assert_eq!(event, "event");
                assert_eq!(data.unwrap().get(), r#"{"a":[1,2]}"#);
            }
            other => panic!("not a publish: {other:?}"),
        }
    }

    #[test]
    fn presence_accepts_a_bare_status_or_an_object() {
        for text in [
            r#"{"type":"user_presence","data":"away"}"#,
            r#"{"type":"user_presence","data":{"status":"away"}}"#,
        ] {
            let r = parse_client(text).unwrap();
            assert!(
                matches!(r.message, ClientMessage::Presence(Status::Away)),
                "{text}"
            );
        }
        let err = parse_client(r#"{"type":"user_presence","data":"sleeping","correlationId":"c"}"#)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidMessage);
        assert_eq!(err.correlation_id.unwrap().get(), r#""c""#);
    }

    #[test]
    fn unknown_types_are_application_messages() {
        let r = parse_client(r#"{"type":"agent:start","payload":{"projectId":"p"}}"#).unwrap();
        assert!(
            matches!(r.message, ClientMessage::Application { ref kind, .. } if kind == "agent:start")
        );
    }

    #[test]
    fn service_commands_are_commands_only_on_service_connections() {
        let send = r#"{"type":"send","clientId":"c_1","message":{"type":"agent:started","payload":{"sessionId":"s"},"correlationId":"r1"}}"#;
        match parse(send, Role::Service).unwrap().message {
            ClientMessage::Send { client, message } => {
                assert_eq!(client, "c_1");
                assert_eq!(message.kind, "agent:started");
                assert_eq!(message.data.unwrap().get(), r#"{"sessionId":"s"}"#);
                assert_eq!(message.correlation_id.unwrap().get(), r#""r1""#);
            }
            other => panic!("not a send: {other:?}"),
        }
        match parse_client(send).unwrap().message {
            ClientMessage::Application { kind, message, .. } => {
                assert_eq!(kind, "send");
                assert_eq!(message.get(), send, "the whole message, as sent");
            }
            other => panic!("a client's send is the application's: {other:?}"),
        }
        let disconnect = r#"{"type":"disconnect","userId":"alice","code":4000,"reason":"bye"}"#;
        assert!(matches!(
            parse(disconnect, Role::Service).unwrap().message,
            ClientMessage::Disconnect { who: Who::User(ref u), ref close } if u == "alice" && close.code() == 4000 && close.reason() == "bye"
        ));
        for bad in [
            r#"{"type":"disconnect","userId":"a","code":1001}"#,
            r#"{"type":"disconnect"}"#,
            r#"{"type":"send","clientId":"c"}"#,
            r#"{"type":"send","message":{"type":"x"}}"#,
            r#"{"type":"set_meta","clientId":"c","data":[1]}"#,
            r#"{"type":"client_info"}"#,
        ] {
            assert_eq!(
                parse(bad, Role::Service).unwrap_err().code,
                ErrorCode::InvalidMessage,
                "{bad}"
            );
        }
    }

    #[test]
    fn client_info_asks_a_service_connection_for_one_client() {
        let info = r#"{"type":"client_info","clientId":"c_1","correlationId":1}"#;
        assert!(matches!(
            parse(info, Role::Service).unwrap().message,
            ClientMessage::ClientInfo { ref client } if client == "c_1"
        ));
        assert!(matches!(
            parse_client(info).unwrap().message,
            ClientMessage::Application { ref kind, .. } if kind == "client_info"
        ));
    }

    #[test]
    fn flat_messages_gather_their_own_fields_as_data() {
        let request = parse_client(
            r#"{"type":"publish","channel":"c","event":"e","text":"hi","n":1,"correlationId":7}"#,
        )
        .unwrap();
        match request.message {
            ClientMessage::Publish { data, event, .. } => {
                assert_eq!(event, "e");
                assert_eq!(data.unwrap().get(), r#"{"text":"hi","n":1}"#);
            }
            other => panic!("expected a publish, got {other:?}"),
        }
        match parse_client(r#"{"type":"chat","message":"hi","correlationId":"a"}"#)
            .unwrap()
            .message
        {
            ClientMessage::Application { data, .. } => {
                assert_eq!(data.unwrap().get(), r#"{"message":"hi"}"#);
            }
            other => panic!("expected an application message, got {other:?}"),
        }
        match parse_client(r#"{"type":"user_presence","status":"away"}"#)
            .unwrap()
            .message
        {
            ClientMessage::Presence(status) => assert_eq!(status, Status::Away),
            other => panic!("expected presence, got {other:?}"),
        }
        match parse_client(r#"{"type":"refresh","token":"t2"}"#)
            .unwrap()
            .message
        {
            ClientMessage::Refresh { token } => assert_eq!(token, "t2"),
            other => panic!("expected a refresh, got {other:?}"),
        }
        // Nothing but the request's own keys: no data at all.
        match parse_client(r#"{"type":"publish","channel":"c"}"#)
            .unwrap()
            .message
        {
            ClientMessage::Publish { data, .. } => assert!(data.is_none()),
            other => panic!("expected a publish, got {other:?}"),
        }
        // The payload shape and the standard one are read as before.
        match parse_client(r#"{"type":"agent:start","payload":{"projectId":"p"},"x":1}"#)
            .unwrap()
            .message
        {
            ClientMessage::Application { data, .. } => {
                assert_eq!(data.unwrap().get(), r#"{"projectId":"p"}"#);
            }
            other => panic!("expected an application message, got {other:?}"),
        }
    }

    #[test]
    fn publish_names_exactly_one_destination() {
        let to = |text: &str| match parse_client(text).map(|r| r.message) {
            Ok(ClientMessage::Publish { to, batched, .. }) => Ok((to, batched)),
            Ok(other) => panic!("{other:?}"),
            Err(rejection) => Err(rejection.code),
        };
        assert_eq!(
            to(r#"{"type":"publish","userId":"u","batched":true}"#),
            Ok((Destination::User("u".into()), true))
        );
        assert_eq!(
            to(r#"{"type":"publish","broadcast":true}"#),
            Ok((Destination::Broadcast, false))
        );
        assert_eq!(
            to(r#"{"type":"publish","authenticated":true}"#),
            Ok((Destination::Authenticated, false))
        );
        assert_eq!(
            to(r#"{"type":"publish","channel":"a","userId":"u"}"#),
            Err(ErrorCode::InvalidMessage)
        );
        assert_eq!(to(r#"{"type":"publish"}"#), Err(ErrorCode::InvalidMessage));
        assert_eq!(
            to(r#"{"type":"publish","channel":"a","batched":"yes"}"#),
            Err(ErrorCode::InvalidMessage)
        );
    }

    #[test]
    fn every_kind_of_malformed_input_gets_its_code() {
        let cases: &[(&str, ErrorCode)] = &[
            ("", ErrorCode::InvalidJson),
            ("{", ErrorCode::InvalidJson),
            ("not json", ErrorCode::InvalidJson),
            ("{\"type\":\"ping\"} trailing", ErrorCode::InvalidJson),
            ("[]", ErrorCode::InvalidMessage),
            ("42", ErrorCode::InvalidMessage),
            ("\"ping\"", ErrorCode::InvalidMessage),
            ("null", ErrorCode::InvalidMessage),
            ("{}", ErrorCode::InvalidMessage),
            (r#"{"type":5}"#, ErrorCode::InvalidMessage),
            (r#"{"type":""}"#, ErrorCode::InvalidMessage),
            (
                r#"{"type":"ping","type":"ping"}"#,
                ErrorCode::InvalidMessage,
            ),
            (r#"{"type":"subscribe"}"#, ErrorCode::InvalidMessage),
            (
                r#"{"type":"subscribe","channel":3}"#,
                ErrorCode::InvalidMessage,
            ),
            (
                r#"{"type":"subscribe","channel":"a","sessionId":"b"}"#,
                ErrorCode::InvalidMessage,
            ),
            (
                r#"{"type":"subscribe","channel":""}"#,
                ErrorCode::InvalidChannel,
            ),
            (
                r#"{"type":"subscribe","channel":"has space"}"#,
                ErrorCode::InvalidChannel,
            ),
            (
                r#"{"type":"subscribe","channel":"wild*"}"#,
                ErrorCode::InvalidChannel,
            ),
            (
                r#"{"type":"publish","channel":"a","event":"error"}"#,
                ErrorCode::InvalidMessage,
            ),
            (
                r#"{"type":"publish","channel":"a","data":1,"payload":2}"#,
                ErrorCode::InvalidMessage,
            ),
            (r#"{"type":"refresh"}"#, ErrorCode::InvalidMessage),
            (
                r#"{"type":"ping","correlationId":{"a":1}}"#,
                ErrorCode::InvalidMessage,
            ),
        ];
        for (text, code) in cases {
            let err = parse_client(text).expect_err(text);
            assert_eq!(err.code, *code, "{text}: {}", err.message);
            assert!(!err.message.is_empty());
        }
        let long = format!(r#"{{"type":"subscribe","channel":"{}"}}"#, "a".repeat(256));
        assert_eq!(
            parse_client(&long).unwrap_err().code,
            ErrorCode::InvalidChannel
        );
    }

    #[test]
    fn a_rejected_request_keeps_its_correlation_id() {
        let err = parse_client(r#"{"type":7,"correlationId":"r9"}"#).unwrap_err();
        assert_eq!(err.correlation_id.unwrap().get(), r#""r9""#);
        let err = parse_client(r#"{"type":"subscribe","correlationId":"r8"}"#).unwrap_err();
        assert_eq!(err.correlation_id.unwrap().get(), r#""r8""#);
    }

    mod properties {
        use super::super::*;
        use super::parse_client;
        use crate::test_json::{any_json, request_like};
        use proptest::prelude::*;
        use serde_json::Value;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            #[test]
            fn any_text_is_parsed_or_rejected_without_panicking(text in ".{0,200}") {
                if let Err(rejection) = parse_client(&text) {
                    prop_assert!(!rejection.message.is_empty());
                }
            }

            #[test]
            fn any_json_value_is_parsed_or_rejected_with_a_code(value in any_json()) {
                let text = value.to_string();
                match parse_client(&text) {
                    Ok(_) => prop_assert!(value.get("type").is_some_and(Value::is_string)),
                    Err(rejection) => prop_assert_ne!(rejection.code, ErrorCode::InvalidJson, "{}", text),
                }
            }

            #[test]
            fn request_shaped_json_keeps_its_correlation_id(value in request_like()) {
                let text = value.to_string();
                let given = value.get("correlationId").filter(|c| c.is_string() || c.is_number());
                let echoed = match parse_client(&text) {
                    Ok(request) => request.correlation_id,
                    Err(rejection) => rejection.correlation_id,
                };
                // A valid correlationId (short enough) always comes back,
                // byte for byte as given.
                if let Some(given) = given.map(Value::to_string).filter(|g| g.len() <= MAX_CORRELATION_ID) {
                    let echoed = echoed.expect("echoed");
                    prop_assert_eq!(echoed.get(), given);
                }
            }
        }
    }

    #[test]
    fn idempotency_keys_are_checked() {
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key(&"k".repeat(MAX_IDEMPOTENCY_KEY + 1)).is_err());
        assert!(check_idempotency_key("order-42").is_ok());
    }

    #[test]
    fn shown_names_are_cut_at_a_char_boundary() {
        let long = "é".repeat(100);
        let shown = Shown(&long).to_string();
        assert!(shown.ends_with("..."));
        assert!(shown.len() < 80);
    }
}
