//! What the hub sends: the envelope every server message shares, the data
//! of the hub's own messages, and the timestamp format.
//!
//! Pure code. The router, the HTTP handlers and [`Handle`](crate::Handle)
//! build messages with [`Envelope`] and encode them once
//! ([`Envelope::encode`]), so a fan-out to any number of clients shares one
//! buffer.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use tungstenite::Bytes;

use crate::protocol::{ErrorCode, Kind, Status, Topic, frame};

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

    /// Names the client a publication comes from, if it does.
    pub(crate) fn origin(mut self, origin: Option<&'a crate::publish::Origin>) -> Self {
        self.from = origin.map(|o| From {
            client_id: &o.client_id,
            user_id: o.user_id.as_deref(),
        });
        self
    }

    /// Echoes a request's `correlationId`.
    pub(crate) fn correlation(mut self, id: Option<&'a RawValue>) -> Self {
        self.correlation_id = id;
        self
    }

    /// The encoded text frame.
    pub(crate) fn encode(&self) -> Bytes {
        frame::encode(self)
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
        serde_json::from_slice(&frame[2..]).expect("a short frame's payload is JSON")
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
        assert_eq!(value["timestamp"].as_str().unwrap().len(), 24);
        assert!(value.get("channel").is_none());
    }
}
