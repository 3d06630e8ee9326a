//! What clients send: one text frame parsed into a typed request, with a
//! clear error for everything else.
//!
//! Pure code, run on each connection's reader thread by [`parse`], so the
//! router only ever sees validated requests. Never panics, whatever the
//! input.

use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::protocol::{ErrorCode, Kind, Status};

/// Longest accepted `correlationId`, in bytes of JSON.
const MAX_CORRELATION_ID: usize = 256;

/// Longest accepted channel name, session id or event name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

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

/// The valid `correlationId` of a text frame, if it has one, without
/// looking at anything else (to answer a request that is refused whole).
pub(crate) fn correlation_of(text: &str) -> Option<Box<RawValue>> {
    serde_json::from_str::<CorrelationOnly<'_>>(text)
        .ok()
        .and_then(|c| c.correlation_id)
        .and_then(|c| correlation_id(c).ok())
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

fn event_name(event: &str) -> Result<String, Invalid> {
    if event.is_empty() || event.len() > MAX_NAME_LEN {
        return Err(invalid("`event` must be 1 to 255 bytes"));
    }
    if Kind::from_wire(event).is_some() {
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

#[cfg(test)]
mod tests {
    use super::*;

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
