//! The wire protocol: what clients send, what the hub answers, and how a
//! message becomes the bytes of one WebSocket frame.
//!
//! Pure code with no threads of its own. Connection readers call [`parse`] on
//! every text frame; the router, the HTTP handlers and [`Handle`](crate::Handle)
//! build server messages with [`Envelope`] and [`encode`] them once, so that a
//! fan-out to any number of clients shares one buffer.
//!
//! The contract is `PROTOCOL.md`; the README describes it as built.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use tungstenite::Bytes;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame, FrameHeader};

/// The longest header of an unmasked server frame: 2 bytes + a 64-bit length.
const MAX_SERVER_HEADER: usize = 10;

/// Longest accepted `correlationId`, in bytes of JSON.
const MAX_CORRELATION_ID: usize = 256;

/// Longest accepted channel name, session id or event name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Error codes sent in `{"type":"error","data":{"code":...}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not JSON.
    InvalidJson,
    /// JSON, but not a valid request (not an object, `type` missing, a field of the wrong type).
    InvalidMessage,
    /// A `type` the hub does not know and no application handles.
    UnknownType,
    /// A binary frame: the protocol is JSON in text frames.
    UnsupportedFrame,
    /// The client may not do this.
    Forbidden,
    /// A channel or session name that breaks the naming rules.
    InvalidChannel,
    /// The client sends faster than its rate limit.
    RateLimited,
    /// The client already holds the maximum number of subscriptions.
    TooManySubscriptions,
    /// The message is larger than the hub accepts.
    PayloadTooLarge,
    /// Authentication is required and missing or invalid.
    Unauthorized,
    /// The client's token expired.
    TokenExpired,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::UnsupportedFrame => "unsupported_frame",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidChannel => "invalid_channel",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token_expired",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Close codes the hub sends, each with its reason text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// 1000: the client asked for it, or the application disconnected it.
    Normal,
    /// 1001: the server is shutting down.
    GoingAway,
    /// 1002: the client broke the WebSocket protocol.
    Protocol,
    /// 1007: a text frame that is not UTF-8.
    InvalidUtf8,
    /// 1008: not authenticated.
    Unauthorized,
    /// 1008: rate limit exceeded again and again.
    Abuse,
    /// 1009: a message larger than `max_message_size`.
    TooBig,
    /// 1011: the hub failed internally.
    Internal,
    /// 1013: the hub is at `max_connections`.
    ServerFull,
    /// 1013: the user is at `max_connections_per_user`.
    UserFull,
    /// 1013: the address is at `max_connections_per_ip`.
    AddressFull,
    /// 1013: the client did not read fast enough (its queue filled up).
    TooSlow,
    /// 4001: the client's token expired; reconnect with a fresh one.
    TokenExpired,
}

impl Close {
    /// The numeric close code.
    pub(crate) fn code(self) -> u16 {
        match self {
            Close::Normal => 1000,
            Close::GoingAway => 1001,
            Close::Protocol => 1002,
            Close::InvalidUtf8 => 1007,
            Close::Unauthorized | Close::Abuse => 1008,
            Close::TooBig => 1009,
            Close::Internal => 1011,
            Close::ServerFull | Close::UserFull | Close::AddressFull | Close::TooSlow => 1013,
            Close::TokenExpired => 4001,
        }
    }

    /// The short reason sent with the code.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Close::Normal => "Normal closure",
            Close::GoingAway => "Server shutting down",
            Close::Protocol => "Protocol error",
            Close::InvalidUtf8 => "Invalid UTF-8",
            Close::Unauthorized => "Unauthorized",
            Close::Abuse => "Rate limit exceeded",
            Close::TooBig => "Message too big",
            Close::Internal => "Internal error",
            Close::ServerFull => "Server full",
            Close::UserFull => "Too many connections for this user",
            Close::AddressFull => "Too many connections from this address",
            Close::TooSlow => "Client too slow",
            Close::TokenExpired => "Token expired",
        }
    }

    /// The encoded close frame.
    pub(crate) fn frame(self) -> Bytes {
        close_frame(self.code(), self.reason())
    }
}

/// A user's presence status (`001_*.txt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Active.
    Online,
    /// Idle.
    Away,
    /// Do not disturb.
    Busy,
    /// Disconnected (sent by the hub when a user's last connection closes).
    Offline,
}

/// Where a client-side request points: a channel or a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topic {
    Channel(String),
    Session(String),
}

/// One request from a client, validated.
#[derive(Debug)]
pub(crate) enum ClientMessage {
    /// `ping`: answered `pong` at once.
    Ping,
    /// `subscribe` to a channel or a session.
    Subscribe(Topic),
    /// `unsubscribe` from one channel or session, or (`None`) from every session.
    Unsubscribe(Option<Topic>),
    /// `publish` to a channel or a session.
    Publish {
        topic: Topic,
        event: String,
        data: Option<Box<RawValue>>,
    },
    /// `user_presence`: set the user's status.
    Presence(Status),
    /// `presence`: ask who is online.
    PresenceQuery,
    /// `refresh`: replace the connection's token before it expires.
    Refresh { token: String },
    /// Any other `type`: an application message.
    Application { kind: String },
}

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
}

/// Only the `correlationId`, to answer a request that failed validation.
#[derive(Deserialize)]
struct CorrelationOnly<'a> {
    #[serde(rename = "correlationId", borrow)]
    correlation_id: Option<&'a RawValue>,
}

/// Parses one text frame into a request.
///
/// Never panics, whatever the input: every failure is a [`Rejection`] with the
/// code the protocol gives it and, when it can be recovered, the request's
/// `correlationId`.
pub(crate) fn parse(text: &str) -> Result<Request, Rejection> {
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
    match validate(&raw) {
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
            let correlation_id = serde_json::from_str::<CorrelationOnly<'_>>(text)
                .ok()
                .and_then(|c| c.correlation_id)
                .and_then(|c| correlation_id(c).ok());
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

type Invalid = (ErrorCode, String);

fn validate(raw: &RawRequest<'_>) -> Result<ClientMessage, Invalid> {
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
    let data = match (raw.data, raw.payload) {
        (Some(_), Some(_)) => return Err(invalid("give `data` or `payload`, not both")),
        (data, payload) => data.or(payload),
    };
    let message = match kind.as_str() {
        "ping" => ClientMessage::Ping,
        "subscribe" => ClientMessage::Subscribe(required_topic(raw, "subscribe")?),
        "unsubscribe" => ClientMessage::Unsubscribe(topic(raw)?),
        "publish" => {
            let topic = required_topic(raw, "publish")?;
            let event = match raw.event {
                None => "event".to_owned(),
                Some(event) => event_name(&string_field(event, "event")?)?,
            };
            ClientMessage::Publish {
                topic,
                event,
                data: data.map(RawValue::to_owned),
            }
        }
        "user_presence" => ClientMessage::Presence(presence_status(data)?),
        "presence" => ClientMessage::PresenceQuery,
        "refresh" => ClientMessage::Refresh {
            token: refresh_token(data)?,
        },
        _ => ClientMessage::Application { kind },
    };
    Ok(message)
}

fn invalid(message: &str) -> Invalid {
    (ErrorCode::InvalidMessage, message.to_owned())
}

fn string_field(value: &RawValue, name: &str) -> Result<String, Invalid> {
    serde_json::from_str::<String>(value.get()).map_err(|_| {
        (
            ErrorCode::InvalidMessage,
            format!("`{name}` must be a string"),
        )
    })
}

fn topic(raw: &RawRequest<'_>) -> Result<Option<Topic>, Invalid> {
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

fn required_topic(raw: &RawRequest<'_>, what: &str) -> Result<Topic, Invalid> {
    topic(raw)?.ok_or_else(|| invalid(&format!("`{what}` needs a `channel` or a `sessionId`")))
}

/// Checks a channel name or session id against the naming rules:
/// 1 to 255 bytes of ASCII letters, digits and `-_.:@/=+#|$!~`.
pub(crate) fn check_name(name: &str, what: &str) -> Result<(), Invalid> {
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

/// Names that clients may not publish under: they would pass for the hub's own messages.
const RESERVED_EVENTS: &[&str] = &[
    "connection",
    "pong",
    "subscribed",
    "unsubscribed",
    "published",
    "ack",
    "error",
    "user_presence",
    "presence",
    "client_message",
    "batch_update",
];

fn event_name(event: &str) -> Result<String, Invalid> {
    if event.is_empty() || event.len() > MAX_NAME_LEN {
        return Err(invalid("`event` must be 1 to 255 bytes"));
    }
    if RESERVED_EVENTS.contains(&event) {
        return Err(invalid(&format!(
            "`event` {event:?} is reserved for the hub's own messages"
        )));
    }
    Ok(event.to_owned())
}

fn presence_status(data: Option<&RawValue>) -> Result<Status, Invalid> {
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

fn refresh_token(data: Option<&RawValue>) -> Result<String, Invalid> {
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

/// The `type` of a message the hub itself originates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Connection,
    Pong,
    Subscribed,
    Unsubscribed,
    Published,
    Ack,
    Error,
    UserPresence,
    Presence,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Connection => "connection",
            Kind::Pong => "pong",
            Kind::Subscribed => "subscribed",
            Kind::Unsubscribed => "unsubscribed",
            Kind::Published => "published",
            Kind::Ack => "ack",
            Kind::Error => "error",
            Kind::UserPresence => "user_presence",
            Kind::Presence => "presence",
        }
    }
}

/// The sender of a client publication, as subscribers see it.
#[derive(Debug, Serialize)]
pub(crate) struct From<'a> {
    #[serde(rename = "clientId")]
    pub client_id: &'a str,
    #[serde(rename = "userId")]
    pub user_id: Option<&'a str>,
}

/// Every server-to-client message: `type`, `timestamp` and what applies.
#[derive(Debug, Serialize)]
pub(crate) struct Envelope<'a, D: Serialize> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    #[serde(rename = "sessionId", skip_serializing_if = "Option::is_none")]
    pub session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<D>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<From<'a>>,
    #[serde(rename = "correlationId", skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<&'a RawValue>,
    pub timestamp: Timestamp,
}

impl<'a, D: Serialize> Envelope<'a, D> {
    /// A message of `kind` with `data`, stamped now.
    pub(crate) fn new(kind: &'a str, data: Option<D>) -> Self {
        Envelope {
            kind,
            channel: None,
            session_id: None,
            data,
            from: None,
            correlation_id: None,
            timestamp: Timestamp::now(),
        }
    }

    /// Sets where the message is addressed (`channel` or `sessionId`).
    pub(crate) fn topic(mut self, topic: Option<&'a Topic>) -> Self {
        match topic {
            Some(Topic::Channel(c)) => self.channel = Some(c),
            Some(Topic::Session(s)) => self.session_id = Some(s),
            None => {}
        }
        self
    }

    /// Names the client a publication comes from.
    pub(crate) fn from(mut self, from: From<'a>) -> Self {
        self.from = Some(from);
        self
    }

    /// Echoes a request's `correlationId`.
    pub(crate) fn correlation(mut self, id: Option<&'a RawValue>) -> Self {
        self.correlation_id = id;
        self
    }

    /// The encoded text frame.
    pub(crate) fn encode(&self) -> Bytes {
        encode(self)
    }
}

/// Data of an `error` message.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorData<'a> {
    pub code: ErrorCode,
    pub error: &'a str,
}

/// Data of the `connection` welcome.
#[derive(Debug, Serialize)]
pub(crate) struct Welcome<'a> {
    #[serde(rename = "clientId")]
    pub client_id: &'a str,
    #[serde(rename = "userId")]
    pub user_id: Option<&'a str>,
    #[serde(rename = "sessionId")]
    pub session_id: Option<&'a str>,
    pub authenticated: bool,
    #[serde(rename = "heartbeatMs")]
    pub heartbeat_ms: u64,
}

/// Data of a `user_presence` broadcast.
#[derive(Debug, Serialize)]
pub(crate) struct PresenceData<'a> {
    #[serde(rename = "userId")]
    pub user_id: &'a str,
    pub status: Status,
}

/// Data of a `presence` answer.
#[derive(Debug, Serialize)]
pub(crate) struct PresenceList<'a> {
    pub users: Vec<PresenceData<'a>>,
}

/// Data of `published`: how many clients the publication reached.
#[derive(Debug, Serialize)]
pub(crate) struct Delivered {
    pub delivered: usize,
}

/// An empty JSON object, for `"data": {}`.
#[derive(Debug, Serialize)]
pub(crate) struct Empty {}

/// An `error` message, encoded.
pub(crate) fn error_frame(
    code: ErrorCode,
    message: &str,
    correlation_id: Option<&RawValue>,
) -> Bytes {
    Envelope::new(
        Kind::Error.as_str(),
        Some(ErrorData {
            code,
            error: message,
        }),
    )
    .correlation(correlation_id)
    .encode()
}

/// Serialises `message` as JSON straight into a server text frame.
///
/// The JSON is written after room for the longest frame header; the header is
/// then written just before it, so the frame is built with no copy and can be
/// shared by every recipient of a fan-out.
pub(crate) fn encode<T: Serialize + ?Sized>(message: &T) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&[0; MAX_SERVER_HEADER]);
    if let Err(err) = serde_json::to_writer(&mut buf, message) {
        // Only a Serialize impl that fails can get here; ours do not, and
        // application data arrives as already-validated raw JSON.
        log::error!("could not serialise a message: {err}");
        buf.truncate(MAX_SERVER_HEADER);
        buf.extend_from_slice(
            br#"{"type":"error","data":{"code":"internal","error":"Internal error"}}"#,
        );
    }
    let len = (buf.len() - MAX_SERVER_HEADER) as u64;
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    let start = MAX_SERVER_HEADER - header.len(len);
    let mut slot = &mut buf[start..MAX_SERVER_HEADER];
    // Writing at most 10 bytes into a 10-byte slice sized by `header.len`: cannot fail.
    let _ = header.format(len, &mut slot);
    Bytes::from(buf).slice(start..)
}

/// A protocol Ping frame with an empty payload.
pub(crate) fn ping_frame() -> Bytes {
    Bytes::from_static(&[0x89, 0x00])
}

/// A Pong frame answering a Ping with `payload`.
pub(crate) fn pong_frame(payload: Bytes) -> Bytes {
    control_frame(Frame::pong(payload))
}

/// A Close frame with `code` and `reason`.
pub(crate) fn close_frame(code: u16, reason: &str) -> Bytes {
    control_frame(Frame::close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    })))
}

/// The Close frame that answers a client's Close: its code echoed, or none.
pub(crate) fn close_reply(frame: Option<&CloseFrame>) -> Bytes {
    control_frame(Frame::close(frame.map(|f| CloseFrame {
        code: f.code,
        reason: "".into(),
    })))
}

fn control_frame(frame: Frame) -> Bytes {
    let mut buf = Vec::with_capacity(frame.len());
    // Formatting into a Vec cannot fail.
    let _ = frame.format(&mut buf);
    Bytes::from(buf)
}

/// A UTC instant written as ISO-8601 with milliseconds: `2024-01-01T12:00:00.000Z`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Timestamp([u8; 24]);

impl Timestamp {
    /// Now.
    pub fn now() -> Self {
        Self::at(SystemTime::now())
    }

    /// The given instant (before 1970 counts as 1970).
    pub fn at(time: SystemTime) -> Self {
        let millis = time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Self::from_unix_millis(u64::try_from(millis).unwrap_or(u64::MAX))
    }

    fn from_unix_millis(millis: u64) -> Self {
        let secs = millis / 1000;
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        let (hour, minute, second, milli) = (rem / 3600, rem % 3600 / 60, rem % 60, millis % 1000);
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: u64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year.clamp(0, 9999) as u64);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, hour);
        put(14, 2, minute);
        put(17, 2, second);
        put(20, 3, milli);
        Timestamp(out)
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        // Built from ASCII digits and separators only.
        std::str::from_utf8(&self.0).unwrap_or("1970-01-01T00:00:00.000Z")
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u64, u64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(frame: &Bytes) -> serde_json::Value {
        let len = frame[1] & 0x7f;
        let start = match len {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        serde_json::from_slice(&frame[start..]).expect("frame payload is JSON")
    }

    #[test]
    fn timestamps_are_iso8601_utc_with_milliseconds() {
        assert_eq!(
            Timestamp::from_unix_millis(0).as_str(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(1_704_110_400_123).as_str(),
            "2024-01-01T12:00:00.123Z"
        );
        // A leap day and the last millisecond of a day.
        assert_eq!(
            Timestamp::from_unix_millis(1_709_251_199_999).as_str(),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(951_782_400_000).as_str(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn ping_subscribe_and_publish_parse_into_typed_requests() {
        let r = parse(r#"{"type":"ping","correlationId":"r1"}"#).unwrap();
        assert!(matches!(r.message, ClientMessage::Ping));
        assert_eq!(r.correlation_id.unwrap().get(), r#""r1""#);

        let r = parse(r#"{"type":"subscribe","channel":"files"}"#).unwrap();
        assert!(
            matches!(r.message, ClientMessage::Subscribe(Topic::Channel(ref c)) if c == "files")
        );

        let r = parse(r#"{"type":"subscribe","sessionId":"s1","correlationId":7}"#).unwrap();
        assert!(matches!(r.message, ClientMessage::Subscribe(Topic::Session(ref s)) if s == "s1"));
        assert_eq!(r.correlation_id.unwrap().get(), "7");

        let r = parse(r#"{"type":"unsubscribe"}"#).unwrap();
        assert!(matches!(r.message, ClientMessage::Unsubscribe(None)));

        let r = parse(r#"{"type":"publish","channel":"git","payload":{"a":[1,2]}}"#).unwrap();
        match r.message {
            ClientMessage::Publish { topic, event, data } => {
                assert_eq!(topic, Topic::Channel("git".into()));
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
            let r = parse(text).unwrap();
            assert!(
                matches!(r.message, ClientMessage::Presence(Status::Away)),
                "{text}"
            );
        }
        let err =
            parse(r#"{"type":"user_presence","data":"sleeping","correlationId":"c"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidMessage);
        assert_eq!(err.correlation_id.unwrap().get(), r#""c""#);
    }

    #[test]
    fn unknown_types_are_application_messages() {
        let r = parse(r#"{"type":"agent:start","payload":{"projectId":"p"}}"#).unwrap();
        assert!(
            matches!(r.message, ClientMessage::Application { ref kind } if kind == "agent:start")
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
            let err = parse(text).expect_err(text);
            assert_eq!(err.code, *code, "{text}: {}", err.message);
            assert!(!err.message.is_empty());
        }
        let long = format!(r#"{{"type":"subscribe","channel":"{}"}}"#, "a".repeat(256));
        assert_eq!(parse(&long).unwrap_err().code, ErrorCode::InvalidChannel);
    }

    #[test]
    fn a_rejected_request_keeps_its_correlation_id() {
        let err = parse(r#"{"type":7,"correlationId":"r9"}"#).unwrap_err();
        assert_eq!(err.correlation_id.unwrap().get(), r#""r9""#);
        let err = parse(r#"{"type":"subscribe","correlationId":"r8"}"#).unwrap_err();
        assert_eq!(err.correlation_id.unwrap().get(), r#""r8""#);
    }

    #[test]
    fn encode_builds_one_complete_text_frame() {
        for size in [0usize, 10, 200, 70_000] {
            let data = "x".repeat(size);
            let frame = Envelope::new("event", Some(&data)).encode();
            assert_eq!(frame[0], 0x81, "FIN + text opcode");
            let value = payload(&frame);
            assert_eq!(value["type"], "event");
            assert_eq!(value["data"].as_str().unwrap().len(), size);
            assert_eq!(value["timestamp"].as_str().unwrap().len(), 24);
        }
    }

    #[test]
    fn envelopes_carry_topic_correlation_and_raw_data() {
        let raw = RawValue::from_string(r#"{"k":[1,2,3]}"#.to_owned()).unwrap();
        let corr = RawValue::from_string(r#""abc""#.to_owned()).unwrap();
        let topic = Topic::Session("s1".into());
        let frame = Envelope::new("ai_progress", Some(&raw))
            .topic(Some(&topic))
            .correlation(Some(&corr))
            .encode();
        let value = payload(&frame);
        assert_eq!(value["sessionId"], "s1");
        assert_eq!(value["correlationId"], "abc");
        assert_eq!(value["data"]["k"][2], 3);
        assert!(value.get("channel").is_none());
    }

    #[test]
    fn close_frames_carry_code_and_reason() {
        let frame = Close::TooSlow.frame();
        assert_eq!(frame[0], 0x88);
        assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1013);
        assert_eq!(&frame[4..], b"Client too slow");
    }

    mod properties {
        use super::super::*;
        use crate::test_json::{any_json, request_like};
        use proptest::prelude::*;
        use serde_json::Value;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            #[test]
            fn any_text_is_parsed_or_rejected_without_panicking(text in ".{0,200}") {
                if let Err(rejection) = parse(&text) {
                    prop_assert!(!rejection.message.is_empty());
                }
            }

            #[test]
            fn any_json_value_is_parsed_or_rejected_with_a_code(value in any_json()) {
                let text = value.to_string();
                match parse(&text) {
                    Ok(_) => prop_assert!(value.get("type").is_some_and(Value::is_string)),
                    Err(rejection) => prop_assert_ne!(rejection.code, ErrorCode::InvalidJson, "{}", text),
                }
            }

            #[test]
            fn request_shaped_json_keeps_its_correlation_id(value in request_like()) {
                let text = value.to_string();
                let given = value.get("correlationId").filter(|c| c.is_string() || c.is_number());
                let echoed = match parse(&text) {
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
    fn shown_names_are_cut_at_a_char_boundary() {
        let long = "é".repeat(100);
        let shown = Shown(&long).to_string();
        assert!(shown.ends_with("..."));
        assert!(shown.len() < 80);
    }
}
