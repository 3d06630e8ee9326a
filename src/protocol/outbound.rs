//! What the hub sends: every server message as its parts ([`Message`]),
//! encoded in the envelope each recipient expects, the data of the hub's
//! own messages, and the timestamp format.
//!
//! Pure code. The router, the HTTP handlers and [`Handle`](crate::Handle)
//! build a [`Message`]; a fan-out encodes it once per envelope in use among
//! its recipients ([`Message::encode`]), and every recipient of one
//! envelope shares the same bytes.
//!
//! The three envelopes (see [`Envelope`]):
//! - `standard`: `{"type", "channel"?, "sessionId"?, "data"?, "from"?,
//!   "correlationId"?, "seq"?, "epoch"?, "timestamp": ISO}`;
//! - `flat`: the same, but an object's fields stand next to `type` instead
//!   of under `data`; a field that would clash with a key the message
//!   writes itself (its `type`, `timestamp`, its `channel`...) is not
//!   lifted, and the whole object is then under `data` too;
//! - `payload`: `{"type", "payload", "timestamp": ms, ...}`; `payload` is
//!   `{}` when there is no data.
//!
//! An `error` whose data has an `error` text and no `message` also gets
//! `message` in the flat and payload envelopes, where their clients read it.

use std::borrow::Cow;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use tungstenite::Bytes;

use crate::protocol::fields::{Object, object_fields};
use crate::protocol::{Envelope, ErrorCode, Kind, Status, Topic, frame};

/// The client a publication comes from, as subscribers see it (`from`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Origin {
    #[serde(rename = "clientId")]
    pub client_id: Box<str>,
    #[serde(rename = "userId")]
    pub user_id: Option<Box<str>>,
}

/// Where a publication stands in its stream (see `docs/protocol.md`, Recovery).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position<'a> {
    pub seq: u64,
    pub epoch: &'a str,
}

/// One server-to-client message, before it is encoded for an envelope.
#[derive(Debug, Clone)]
pub(crate) struct Message<'a> {
    pub kind: &'a str,
    pub topic: Option<&'a Topic>,
    pub data: Option<&'a RawValue>,
    pub from: Option<&'a Origin>,
    pub correlation_id: Option<&'a RawValue>,
    pub position: Option<Position<'a>>,
    pub timestamp: SystemTime,
}

/// Whether a `flat` data field named `key` would clash with a key this
/// message writes itself (then the field stays under `data`, with the
/// whole object): `type`, `timestamp`, `data` and `payload` always, the
/// others when this message has them.
fn clashes(key: &str, message: &Message<'_>) -> bool {
    match key {
        "type" | "timestamp" | "data" | "payload" => true,
        "channel" => matches!(message.topic, Some(Topic::Channel(_))),
        "sessionId" => matches!(message.topic, Some(Topic::Session(_))),
        "from" => message.from.is_some(),
        "correlationId" => message.correlation_id.is_some(),
        "seq" | "epoch" => message.position.is_some(),
        _ => false,
    }
}

impl<'a> Message<'a> {
    /// A message of `kind` with `data`, stamped now.
    pub(crate) fn new(kind: &'a str, data: Option<&'a RawValue>) -> Self {
        Message {
            kind,
            topic: None,
            data,
            from: None,
            correlation_id: None,
            position: None,
            timestamp: SystemTime::now(),
        }
    }

    /// Sets where the message is addressed (`channel` or `sessionId`).
    pub(crate) fn topic(mut self, topic: Option<&'a Topic>) -> Self {
        self.topic = topic;
        self
    }

    /// Names the client a publication comes from, if it does.
    pub(crate) fn origin(mut self, origin: Option<&'a Origin>) -> Self {
        self.from = origin;
        self
    }

    /// Echoes a request's `correlationId`.
    pub(crate) fn correlation(mut self, id: Option<&'a RawValue>) -> Self {
        self.correlation_id = id;
        self
    }

    /// Its place in its stream.
    pub(crate) fn position(mut self, position: Option<Position<'a>>) -> Self {
        self.position = position;
        self
    }

    /// Stamps it with when it was first published (a replay shows the
    /// original time).
    pub(crate) fn at(mut self, timestamp: SystemTime) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// The complete text frame of this message in `envelope`.
    pub(crate) fn encode(&self, envelope: Envelope) -> Bytes {
        frame::encode(&Shaped {
            message: self,
            envelope,
        })
    }

    /// For an error whose data has an `error` text and no `message`: its
    /// fields with `message` added, where clients read it.
    fn mirrored_error(&self) -> Option<Vec<(Cow<'a, str>, &'a RawValue)>> {
        if self.kind != Kind::Error.as_str() {
            return None;
        }
        let mut fields = object_fields(self.data?)?;
        let has = |name: &str, fields: &[(Cow<'_, str>, &RawValue)]| {
            fields.iter().any(|(k, _)| k == name)
        };
        if has("message", &fields) || !has("error", &fields) {
            return None;
        }
        let error = fields.iter().find(|(k, _)| k == "error").map(|(_, v)| *v)?;
        fields.push((Cow::Borrowed("message"), error));
        Some(fields)
    }
}

/// A message in one envelope, as serde writes it.
struct Shaped<'m, 'a> {
    message: &'m Message<'a>,
    envelope: Envelope,
}

impl Serialize for Shaped<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let m = self.message;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", m.kind)?;
        match m.topic {
            Some(Topic::Channel(channel)) => map.serialize_entry("channel", channel)?,
            Some(Topic::Session(session)) => map.serialize_entry("sessionId", session)?,
            None => {}
        }
        let mirrored = match self.envelope {
            Envelope::Standard => None,
            Envelope::Flat | Envelope::Payload => m.mirrored_error(),
        };
        match self.envelope {
            Envelope::Standard => {
                if let Some(data) = m.data {
                    map.serialize_entry("data", data)?;
                }
            }
            Envelope::Payload => match (&mirrored, m.data) {
                (Some(fields), _) => map.serialize_entry("payload", &Object(fields))?,
                (None, Some(data)) => map.serialize_entry("payload", data)?,
                (None, None) => map.serialize_entry("payload", &Empty {})?,
            },
            Envelope::Flat => {
                let fields = mirrored.or_else(|| m.data.and_then(object_fields));
                match (fields, m.data) {
                    (Some(fields), data) => {
                        let mut collided = false;
                        for (key, value) in &fields {
                            if clashes(key, m) {
                                collided = true;
                            } else {
                                map.serialize_entry(key, value)?;
                            }
                        }
                        if collided && let Some(data) = data {
                            map.serialize_entry("data", data)?;
                        }
                    }
                    (None, Some(data)) => map.serialize_entry("data", data)?,
                    (None, None) => {}
                }
            }
        }
        if let Some(from) = m.from {
            map.serialize_entry("from", from)?;
        }
        if let Some(correlation) = m.correlation_id {
            map.serialize_entry("correlationId", correlation)?;
        }
        if let Some(position) = &m.position {
            map.serialize_entry("seq", &position.seq)?;
            map.serialize_entry("epoch", position.epoch)?;
        }
        match self.envelope {
            Envelope::Payload => map.serialize_entry("timestamp", &unix_millis(m.timestamp))?,
            Envelope::Standard | Envelope::Flat => {
                map.serialize_entry("timestamp", &Timestamp::at(m.timestamp))?
            }
        }
        map.end()
    }
}

/// Milliseconds since 1970 (before it counts as 0).
fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Data of the hub's own messages, serialised once into raw JSON for a
/// [`Message`].
pub(crate) fn raw<T: Serialize + ?Sized>(data: &T) -> Box<RawValue> {
    match serde_json::value::to_raw_value(data) {
        Ok(raw) => raw,
        Err(err) => {
            // Only a Serialize impl that fails can get here; the hub's do not.
            log::error!("could not serialise a message's data: {err}");
            serde_json::value::to_raw_value(&()).unwrap_or_default()
        }
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
    /// `"connected"`, in the flat envelope's welcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'a str>,
    #[serde(rename = "clientId")]
    pub client_id: &'a str,
    #[serde(rename = "userId")]
    pub user_id: Option<&'a str>,
    /// The session (`null` if none); left out of the flat welcome, which
    /// names it next to `type`.
    #[serde(rename = "sessionId", skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Option<&'a str>>,
    pub authenticated: bool,
    #[serde(rename = "heartbeatMs")]
    pub heartbeat_ms: u64,
    /// `true` on a service connection (left out otherwise), so a backend can
    /// tell that its token made it one rather than an ordinary client.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub service: bool,
}

/// Data of `subscribed`: where the stream stands, and whether what the
/// client missed since its `since` is on its way.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Subscribed<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
}

/// Data of the `auth` message that follows the standard welcome.
#[derive(Debug, Serialize)]
pub(crate) struct AuthResult<'a> {
    pub success: bool,
    #[serde(rename = "userId")]
    pub user_id: Option<&'a str>,
    /// Why a token was not accepted, for a client let in as anonymous.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
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

/// The data of an `error` message, as raw JSON.
pub(crate) fn error_data(code: ErrorCode, message: &str) -> Box<RawValue> {
    raw(&ErrorData {
        code,
        error: message,
    })
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

    fn raw_json(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn shaped(message: &Message<'_>, envelope: Envelope) -> serde_json::Value {
        let frame = message.encode(envelope);
        let start = match frame[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        serde_json::from_slice(&frame[start..]).unwrap()
    }

    #[test]
    fn the_standard_envelope_carries_data_topic_correlation_and_position() {
        let data = raw_json(r#"{"k":[1,2,3]}"#);
        let corr = raw_json(r#""abc""#);
        let topic = Topic::Session("s1".into());
        let mut message = Message::new("ai_progress", Some(&data))
            .topic(Some(&topic))
            .correlation(Some(&corr));
        message.position = Some(Position {
            seq: 7,
            epoch: "e1",
        });
        let value = shaped(&message, Envelope::Standard);
        assert_eq!(value["sessionId"], "s1");
        assert_eq!(value["correlationId"], "abc");
        assert_eq!(value["data"]["k"][2], 3);
        assert_eq!(
            (value["seq"].as_u64(), value["epoch"].as_str()),
            (Some(7), Some("e1"))
        );
        assert_eq!(value["timestamp"].as_str().unwrap().len(), 24);
        assert!(value.get("channel").is_none());
    }

    #[test]
    fn the_flat_envelope_lifts_an_object_payload_and_keeps_the_rest_under_data() {
        let data = raw_json(r#"{"progress":{"chunksReceived":25},"note":"x"}"#);
        let topic = Topic::Session("s1".into());
        let message = Message::new("ai_progress", Some(&data)).topic(Some(&topic));
        let value = shaped(&message, Envelope::Flat);
        assert_eq!(value["progress"]["chunksReceived"], 25);
        assert_eq!(value["note"], "x");
        assert_eq!(value["sessionId"], "s1");
        assert!(value.get("data").is_none());
        assert!(value["timestamp"].is_string());
        // A field named like an envelope key stays under data, whole.
        let clash = raw_json(r#"{"type":"commit","message":"m"}"#);
        let value = shaped(&Message::new("event", Some(&clash)), Envelope::Flat);
        assert_eq!(value["type"], "event");
        assert_eq!(value["message"], "m");
        assert_eq!(value["data"]["type"], "commit");
        // Anything but an object stays under data.
        let list = raw_json("[1,2]");
        let value = shaped(&Message::new("event", Some(&list)), Envelope::Flat);
        assert_eq!(value["data"][1], 2);
    }

    #[test]
    fn the_payload_envelope_has_a_payload_and_a_numeric_timestamp() {
        let data = raw_json(r#"{"sessionId":"s","content":"hi"}"#);
        let value = shaped(
            &Message::new("stream:chunk", Some(&data)),
            Envelope::Payload,
        );
        assert_eq!(value["payload"]["content"], "hi");
        assert!(value["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
        let value = shaped(&Message::new("pong", None), Envelope::Payload);
        assert_eq!(value["payload"], serde_json::json!({}));
    }

    #[test]
    fn errors_read_as_message_where_their_clients_look_for_it() {
        let data = error_data(ErrorCode::UnknownType, "Unknown message type: x");
        let message = Message::new("error", Some(&data));
        let standard = shaped(&message, Envelope::Standard);
        assert_eq!(standard["data"]["code"], "unknown_type");
        assert!(standard["data"].get("message").is_none());
        let payload = shaped(&message, Envelope::Payload);
        assert_eq!(payload["payload"]["message"], "Unknown message type: x");
        assert_eq!(payload["payload"]["code"], "unknown_type");
        let flat = shaped(&message, Envelope::Flat);
        assert_eq!(flat["message"], "Unknown message type: x");
        assert_eq!(flat["code"], "unknown_type");
        assert_eq!(flat["error"], "Unknown message type: x");
    }
}
