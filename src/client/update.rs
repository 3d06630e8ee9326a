//! What [`Client::next_update`](super::Client::next_update) hands the
//! application: messages from the hub, and what happened to the connection
//! and to each stream.
//!
//! Plain data built on the thread that drives the client (the caller's);
//! nothing to end.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{HubError, Result};
use crate::{Status, Topic};

/// Something that happened, in the order it happened.
///
/// ```no_run
/// use std::time::Duration;
/// use wshub::client::{Client, Update, Options};
///
/// let mut client = Client::connect("ws://127.0.0.1:3000/ws", Options::new())?;
/// while let Some(update) = client.next_update(Duration::from_secs(60))? {
///     match update {
///         Update::Message(message) => println!("{} {}", message.kind, message.data),
///         Update::Lost { stream, loss } => eprintln!("missed data on {stream:?}: {loss:?}"),
///         Update::Closed { code, reason, next } => eprintln!("closed {code} {reason}: {next:?}"),
///         other => eprintln!("{other:?}"),
///     }
/// }
/// # Ok::<(), wshub::client::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Update {
    /// A message from the hub that no request of this client was waiting
    /// for: a publication, or a message sent to this client.
    Message(Message),
    /// A user's presence changed (`user_presence`).
    Presence(Presence),
    /// Publications on a stream were missed and cannot be recovered: a
    /// `seq` gap, a new epoch (the hub lost the stream's history), or a
    /// re-subscription the hub answered `recovered: false` or refused.
    Lost {
        /// The stream: a channel, a session, or the channel `user:<id>`.
        stream: Topic,
        /// What was lost.
        loss: Loss,
    },
    /// The connection ended (or a reconnect attempt failed, as 1006), and
    /// what the client does next.
    Closed {
        /// The close code (1006: no Close frame, a failed attempt, or a
        /// connection the heartbeat watchdog found dead).
        code: u16,
        /// Its reason.
        reason: String,
        /// What the client does next.
        next: Next,
    },
    /// Connected again, with a new welcome. Every subscription has been
    /// re-sent (with `since`, where a position was known) and answered by
    /// then; what was missed follows as [`Update::Message`]s.
    Reconnected(Welcome),
    /// An `error` from the hub that answers no request of this client (a
    /// message dropped by the rate limit, `token_expired` before a 4001).
    HubError(HubError),
}

/// A message from the hub, in the standard envelope. Messages of a batch
/// (`batch_update`) come one by one, with `batched` set.
///
/// ```
/// use serde::Deserialize;
/// use wshub::client::Message;
///
/// #[derive(Deserialize)]
/// struct FileEvent {
///     file: String,
///     event: String,
/// }
///
/// fn on_message(message: &Message) -> wshub::client::Result<()> {
///     if message.kind == "event" {
///         let change: FileEvent = message.data_as()?;
///         println!("{} {}", change.event, change.file);
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Message {
    /// Its `type`.
    pub kind: String,
    /// The channel or session it was published to (`user:<id>` for one
    /// addressed to this client's user), if any.
    pub topic: Option<Topic>,
    /// Its `data` (`Null` when it has none).
    pub data: Value,
    /// Its number in its stream, when the hub keeps history for it.
    pub seq: Option<u64>,
    /// Its stream's epoch.
    pub epoch: Option<String>,
    /// Who published it, for a client's publication.
    pub from: Option<Publisher>,
    /// Whether it came inside a batch.
    pub batched: bool,
    /// The whole message as the hub sent it (for a batched one: the batch
    /// item, with the batch's `channel` or `sessionId`).
    pub raw: Value,
}

impl Message {
    /// Its `data` as the application's own type.
    ///
    /// ```
    /// # fn f(message: &wshub::client::Message) -> wshub::client::Result<()> {
    /// let progress: wshub::events::AiProgress = message.data_as()?;
    /// # let _ = progress; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Json`](super::Error::Json) when the data does not fit `T`.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(T::deserialize(&self.data)?)
    }

    /// The whole message as the application's own type: for an enum
    /// tagged like the protocol, `#[serde(tag = "type", content = "data")]`.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// #[serde(tag = "type", content = "data", rename_all = "snake_case")]
    /// enum Update {
    ///     AiProgress { progress: serde_json::Value },
    ///     AiComplete { result: serde_json::Value },
    /// }
    /// # fn f(message: &wshub::client::Message) -> wshub::client::Result<()> {
    /// match message.parse::<Update>()? {
    ///     Update::AiProgress { progress } => println!("{progress}"),
    ///     Update::AiComplete { .. } => println!("done"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Json`](super::Error::Json) when the message does not fit `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(T::deserialize(&self.raw)?)
    }

    /// A message as the hub sent it.
    pub(crate) fn from_raw(raw: Value, batched: bool) -> Message {
        let kind = raw["type"].as_str().unwrap_or_default().to_owned();
        let topic = topic_of(&raw);
        Message {
            kind,
            topic,
            data: raw.get("data").cloned().unwrap_or(Value::Null),
            seq: raw["seq"].as_u64(),
            epoch: raw["epoch"].as_str().map(str::to_owned),
            from: raw
                .get("from")
                .and_then(|from| Publisher::deserialize(from).ok()),
            batched,
            raw,
        }
    }
}

/// The topic a message names: its `channel`, else its `sessionId`.
pub(crate) fn topic_of(message: &Value) -> Option<Topic> {
    if let Some(channel) = message["channel"].as_str() {
        return Some(Topic::channel(channel));
    }
    message["sessionId"].as_str().map(Topic::session)
}

/// Who published a message: `from` on a client's publication.
///
/// ```
/// # fn f(message: &wshub::client::Message) {
/// if let Some(from) = &message.from {
///     println!("from {} ({:?})", from.client_id, from.user_id);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Publisher {
    /// The publishing connection.
    pub client_id: String,
    /// Its user, if it has one.
    pub user_id: Option<String>,
}

/// A user and its presence status: a `user_presence` message, or an entry
/// of [`Client::presence`](super::Client::presence).
///
/// ```
/// # fn f(presence: wshub::client::Presence) {
/// if presence.status == wshub::Status::Offline {
///     println!("{} left", presence.user_id);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Presence {
    /// The user.
    pub user_id: String,
    /// Its status.
    pub status: Status,
}

/// What was lost on a stream (see [`Update::Lost`]).
///
/// ```
/// use wshub::client::Loss;
///
/// fn explain(loss: &Loss) -> String {
///     match loss {
///         Loss::Gap { from, to } => format!("publications {from} to {to} never came"),
///         Loss::EpochChanged { .. } => "the hub lost the stream's history".into(),
///         Loss::NotRecovered => "what was published while away is gone".into(),
///         Loss::Refused(error) => format!("no longer subscribed: {error}"),
///         _ => "lost".into(),
///     }
/// }
/// assert_eq!(explain(&Loss::Gap { from: 5, to: 6 }), "publications 5 to 6 never came");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Loss {
    /// Publications `from..=to` were skipped.
    Gap {
        /// The first missing `seq`.
        from: u64,
        /// The last missing `seq`.
        to: u64,
    },
    /// The stream's epoch changed: the hub lost its history, so anything
    /// after the last publication seen in the old epoch may be missing.
    EpochChanged {
        /// The epoch the client knew.
        previous: String,
        /// The new one.
        current: String,
    },
    /// After a reconnect, the hub could not replay what was published while
    /// the client was away (`recovered: false`): too old for its history,
    /// or a new epoch. The stream goes on live.
    NotRecovered,
    /// After a reconnect, the hub refused the subscription (say
    /// `forbidden` with a new token): the client is no longer subscribed.
    Refused(HubError),
}

/// What the client does after a connection ended (see [`Update::Closed`]),
/// by the close-code table ([`CloseAction`](super::CloseAction)) and the
/// [`Options`](super::Options).
///
/// ```
/// # fn f(next: wshub::client::Next) {
/// match next {
///     wshub::client::Next::Reconnect { delay } => eprintln!("reconnecting in {delay:?}"),
///     _ => eprintln!("stopped"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Next {
    /// Reconnects after `delay`, during a later call that waits
    /// ([`next_update`](super::Client::next_update) or a request). After a
    /// 4001 the token provider has already been asked for a fresh token.
    Reconnect {
        /// How long until the attempt.
        delay: Duration,
    },
    /// Does not reconnect. Every call from now on returns
    /// [`Error::Closed`](super::Error::Closed).
    Stop,
}

/// The hub's welcome (`connection`): who this connection is.
///
/// ```no_run
/// let client = wshub::client::Client::connect("ws://127.0.0.1:3000/ws?userId=u1", Default::default())?;
/// println!("{} as {:?}", client.welcome().client_id, client.welcome().user_id);
/// # Ok::<(), wshub::client::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Welcome {
    /// This connection's id (`c_...`); a new one on every connection.
    pub client_id: String,
    /// The user, from the token (or `?userId=` in development mode).
    pub user_id: Option<String>,
    /// The session joined at connect (`?sessionId=`).
    pub session_id: Option<String>,
    /// Whether the token was accepted.
    pub authenticated: bool,
    /// How often the hub sends its protocol Ping (`heartbeatMs`), if it said.
    pub heartbeat: Option<Duration>,
}

impl Welcome {
    /// The welcome from the `data` of a `connection` message.
    pub(crate) fn from_data(data: &Value) -> Option<Welcome> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            client_id: String,
            user_id: Option<String>,
            session_id: Option<String>,
            #[serde(default)]
            authenticated: bool,
            heartbeat_ms: Option<u64>,
        }
        let wire = Wire::deserialize(data).ok()?;
        Some(Welcome {
            client_id: wire.client_id,
            user_id: wire.user_id,
            session_id: wire.session_id,
            authenticated: wire.authenticated,
            heartbeat: wire
                .heartbeat_ms
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_delivery_is_read_from_the_standard_envelope() {
        let raw = json!({"type": "chat_message", "channel": "room", "data": {"text": "hi"},
            "from": {"clientId": "c_1", "userId": null}, "seq": 3, "epoch": "e",
            "timestamp": "2024-01-01T12:00:00.000Z"});
        let message = Message::from_raw(raw.clone(), false);
        assert_eq!(message.kind, "chat_message");
        assert_eq!(message.topic, Some(Topic::channel("room")));
        assert_eq!(message.data, json!({"text": "hi"}));
        assert_eq!(
            (message.seq, message.epoch.as_deref()),
            (Some(3), Some("e"))
        );
        let from = message.from.as_ref().expect("from");
        assert_eq!(
            (from.client_id.as_str(), from.user_id.as_deref()),
            ("c_1", None)
        );
        assert_eq!(message.raw, raw);

        let bare = Message::from_raw(json!({"type": "pong", "sessionId": "s1"}), true);
        assert_eq!(bare.topic, Some(Topic::session("s1")));
        assert_eq!(
            (bare.data, bare.seq, bare.from, bare.batched),
            (Value::Null, None, None, true)
        );
    }

    #[test]
    fn data_and_whole_messages_decode_into_the_application_s_types() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Text {
            text: String,
        }
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(tag = "type", content = "data", rename_all = "snake_case")]
        enum Update {
            ChatMessage(Text),
        }
        let message = Message::from_raw(
            json!({"type": "chat_message", "channel": "room", "data": {"text": "hi"}}),
            false,
        );
        let text = Text { text: "hi".into() };
        assert_eq!(message.data_as::<Text>().unwrap(), text);
        assert_eq!(
            message.parse::<Update>().unwrap(),
            Update::ChatMessage(text)
        );
        assert!(message.data_as::<u64>().is_err());
    }

    #[test]
    fn the_welcome_needs_a_client_id_and_reads_the_heartbeat() {
        let welcome = Welcome::from_data(&json!({"clientId": "c_1", "userId": "u1",
            "sessionId": null, "authenticated": true, "heartbeatMs": 30000}))
        .expect("a welcome");
        assert_eq!(welcome.client_id, "c_1");
        assert_eq!(welcome.user_id.as_deref(), Some("u1"));
        assert_eq!(welcome.heartbeat, Some(Duration::from_secs(30)));
        assert!(Welcome::from_data(&json!({"userId": "u1"})).is_none());
        let quiet = Welcome::from_data(&json!({"clientId": "c", "heartbeatMs": 0})).unwrap();
        assert_eq!((quiet.heartbeat, quiet.authenticated), (None, false));
    }
}
