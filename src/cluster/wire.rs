//! What hubs tell each other through Redis: every message as one JSON
//! [`Wire`] value, and the framing of a pubsub payload around it.
//!
//! Pure code. A payload is `<seq> <epoch> <json>`: the position Redis gave
//! a publication to a stream (both `-` for anything else), then the JSON,
//! so the publish script can stamp the position without parsing the JSON.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::command::{Answer, Command};
use crate::protocol::{AppClose, Origin, Status, Topic};
use crate::publish::Target;

/// One message between hubs.
///
/// Externally tagged (`{"pub": {...}}`): a publication's data is kept as
/// raw JSON, which an internally tagged enum could not carry.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Wire {
    /// A publication, for the hubs whose clients it reaches.
    Pub(Publication),
    /// A user's status changed cluster-wide (first connection anywhere,
    /// last one gone, or a status the user set).
    Presence { user: String, status: Status },
    /// Server-side control of clients held by another hub; `id` 0 wants no
    /// answer.
    Cmd {
        from: String,
        id: u64,
        cmd: WireCommand,
    },
    /// The answer to a [`Wire::Cmd`].
    Reply { id: u64, answer: WireAnswer },
    /// A client's application request, for a hub with a service connection.
    Request(Request),
    /// The hub a request went to cannot get it answered (no service
    /// connection any more, too many owed, or the one that took it left):
    /// the client's hub tells it `busy`, as it would for a service of its own.
    Unanswered {
        client: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        corr: Option<Box<RawValue>>,
    },
    /// Every heartbeat: a hub is alive, and its numbers.
    Hub(HubBeat),
    /// A client that sent requests to another hub left: what that hub's
    /// services owe it is forgotten.
    Left { client: String },
    /// Published by the head script on the asking hub's channel right
    /// after it read where a stream stands: every publication that answer
    /// counts came on the bus before it, so the answer is used only once
    /// the mark is in.
    Mark(u64),
}

/// A publication as it crosses Redis (and as a stream's history keeps it).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Publication {
    /// The hub it was published on.
    pub hub: String,
    pub to: WireTarget,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<WireOrigin>,
    /// When it was published, in ms since 1970.
    pub ts: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batched: bool,
    /// Echoed to the one client a reply goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corr: Option<Box<RawValue>>,
}

/// Where a publication goes (a filter cannot cross: it is code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireTarget {
    Broadcast,
    Authenticated,
    Channel(String),
    Session(String),
    User(String),
    Client(String),
}

impl WireTarget {
    /// The wire form of `target`; `None` for a filter.
    pub(crate) fn of(target: &Target) -> Option<WireTarget> {
        Some(match target {
            Target::Broadcast => WireTarget::Broadcast,
            Target::Authenticated => WireTarget::Authenticated,
            Target::Channel(name) => WireTarget::Channel(name.clone()),
            Target::Session(id) => WireTarget::Session(id.clone()),
            Target::User(id) => WireTarget::User(id.clone()),
            Target::Client(id) => WireTarget::Client(id.clone()),
            Target::Filter(_) => return None,
        })
    }

    pub(crate) fn target(&self) -> Target {
        match self {
            WireTarget::Broadcast => Target::Broadcast,
            WireTarget::Authenticated => Target::Authenticated,
            WireTarget::Channel(name) => Target::Channel(name.clone()),
            WireTarget::Session(id) => Target::Session(id.clone()),
            WireTarget::User(id) => Target::User(id.clone()),
            WireTarget::Client(id) => Target::Client(id.clone()),
        }
    }
}

/// A channel or a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireTopic {
    Channel(String),
    Session(String),
}

impl WireTopic {
    pub(crate) fn of(topic: &Topic) -> WireTopic {
        match topic {
            Topic::Channel(name) => WireTopic::Channel(name.clone()),
            Topic::Session(id) => WireTopic::Session(id.clone()),
        }
    }

    pub(crate) fn topic(self) -> Topic {
        match self {
            WireTopic::Channel(name) => Topic::Channel(name),
            WireTopic::Session(id) => Topic::Session(id),
        }
    }
}

/// The client a publication comes from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireOrigin {
    pub client: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl WireOrigin {
    pub(crate) fn of(origin: &Origin) -> WireOrigin {
        WireOrigin {
            client: origin.client_id.to_string(),
            user: origin.user_id.as_deref().map(str::to_owned),
        }
    }

    pub(crate) fn origin(&self) -> Origin {
        Origin {
            client_id: self.client.as_str().into(),
            user_id: self.user.as_deref().map(Into::into),
        }
    }
}

/// A [`Command`] another hub is to carry out.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireCommand {
    Subscribe {
        client: String,
        topic: WireTopic,
    },
    Unsubscribe {
        client: String,
        topic: Option<WireTopic>,
    },
    Close {
        to: WireTarget,
        code: u16,
        reason: String,
    },
    SetMeta {
        client: String,
        meta: serde_json::Map<String, serde_json::Value>,
    },
}

impl WireCommand {
    /// The wire form of `command`, for those that can act on other hubs.
    pub(crate) fn of(command: &Command) -> Option<WireCommand> {
        Some(match command {
            Command::Subscribe { client, topic } => WireCommand::Subscribe {
                client: client.clone(),
                topic: WireTopic::of(topic),
            },
            Command::Unsubscribe { client, topic } => WireCommand::Unsubscribe {
                client: client.clone(),
                topic: topic.as_ref().map(WireTopic::of),
            },
            Command::Close { target, close } => WireCommand::Close {
                to: WireTarget::of(target)?,
                code: close.code(),
                reason: close.reason().to_owned(),
            },
            Command::SetMeta { client, meta } => WireCommand::SetMeta {
                client: client.clone(),
                meta: meta.clone(),
            },
            Command::Subscribers { .. } | Command::Presence => return None,
        })
    }

    /// The command to carry out; a close that breaks the rule (another
    /// hub's bug) is refused, with why.
    pub(crate) fn command(self) -> Result<Command, String> {
        Ok(match self {
            WireCommand::Subscribe { client, topic } => Command::Subscribe {
                client,
                topic: topic.topic(),
            },
            WireCommand::Unsubscribe { client, topic } => Command::Unsubscribe {
                client,
                topic: topic.map(WireTopic::topic),
            },
            WireCommand::Close { to, code, reason } => Command::Close {
                target: to.target(),
                close: AppClose::new(code, reason)
                    .map_err(|bad| format!("close {} {}", bad.field(), bad.rule()))?,
            },
            WireCommand::SetMeta { client, meta } => Command::SetMeta { client, meta },
        })
    }
}

/// An [`Answer`] on its way back.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WireAnswer {
    Done(bool),
    Count(usize),
    Refused(String),
    Busy(String),
}

impl WireAnswer {
    pub(crate) fn of(answer: &Answer) -> WireAnswer {
        match answer {
            Answer::Done(done) => WireAnswer::Done(*done),
            Answer::Count(count) => WireAnswer::Count(*count),
            Answer::Refused(why) => WireAnswer::Refused(why.clone()),
            Answer::Busy(why) => WireAnswer::Busy(why.clone()),
            Answer::Clients(clients) => WireAnswer::Count(clients.len()),
            Answer::Presence(users) => WireAnswer::Count(users.len()),
        }
    }

    pub(crate) fn answer(self) -> Answer {
        match self {
            WireAnswer::Done(done) => Answer::Done(done),
            WireAnswer::Count(count) => Answer::Count(count),
            WireAnswer::Refused(why) => Answer::Refused(why),
            WireAnswer::Busy(why) => Answer::Busy(why),
        }
    }
}

/// A client's application request, forwarded to a hub with a service.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub client: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default)]
    pub meta: serde_json::Map<String, serde_json::Value>,
    /// The message as the client sent it.
    pub message: Box<RawValue>,
    /// Its `correlationId`, which the answer (or [`Wire::Unanswered`]) echoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corr: Option<Box<RawValue>>,
}

/// A hub's heartbeat.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct HubBeat {
    pub hub: String,
    pub connections: usize,
    pub users: usize,
    pub channels: usize,
    pub sessions: usize,
    pub services: usize,
    pub messages_sent: u64,
    pub messages_received: u64,
    /// When (ms since 1970) this hub last joined Redis: a change tells the
    /// others it was cut off meanwhile, so what they asked of it may be
    /// lost.
    #[serde(default)]
    pub up_since: u64,
    /// The request types its service connections handle, when none of them
    /// handles every type (`?handles=`); `None`: one does (or the hub is of
    /// a version that does not say), so every type goes there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handles: Option<Vec<String>>,
}

impl HubBeat {
    /// Whether a request of type `kind` may go to this hub.
    pub(crate) fn serves(&self, kind: &str) -> bool {
        self.services > 0
            && self
                .handles
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| t == kind))
    }
}

/// What a pubsub payload carries: a position (for a publication to a
/// stream) and the message.
#[derive(Debug)]
pub(crate) struct Framed {
    pub seq: Option<u64>,
    pub epoch: Option<String>,
    pub wire: Wire,
}

/// `- - <json>`: a message with no position.
pub(crate) fn frame(wire: &Wire) -> Result<String, serde_json::Error> {
    Ok(format!("- - {}", serde_json::to_string(wire)?))
}

/// Reads a pubsub payload; `None` for one no hub of this version sent.
pub(crate) fn unframe(payload: &[u8]) -> Option<Framed> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(3, ' ');
    let seq = parts.next()?;
    let epoch = parts.next()?;
    let json = parts.next()?;
    let wire = serde_json::from_str(json).ok()?;
    let (seq, epoch) = match (seq, epoch) {
        ("-", "-") => (None, None),
        (seq, epoch) => (Some(seq.parse().ok()?), Some(epoch.to_owned())),
    };
    Some(Framed { seq, epoch, wire })
}

/// A stream's history entry as the publish script keeps it: the JSON of
/// its [`Publication`].
pub(crate) fn publication(json: &[u8]) -> Option<Publication> {
    match serde_json::from_slice::<Wire>(json).ok()? {
        Wire::Pub(publication) => Some(publication),
        _ => None,
    }
}

/// The channel of one hub.
pub(crate) fn hub_channel(prefix: &str, hub: &str) -> String {
    format!("{prefix}:hub:{hub}")
}

/// The channel of every hub.
pub(crate) fn bus_channel(prefix: &str) -> String {
    format!("{prefix}:bus")
}

/// The hub a client id names (`c_<n>-<tag>.<hub>`), if it names one.
pub(crate) fn hub_of(client_id: &str) -> Option<&str> {
    client_id
        .rsplit_once('.')
        .map(|(_, hub)| hub)
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publication_round_trips_with_its_raw_data() {
        let data = RawValue::from_string(r#"{"k":[1,2]}"#.to_owned()).unwrap();
        let wire = Wire::Pub(Publication {
            hub: "h1".into(),
            to: WireTarget::Session("s1".into()),
            kind: "ai_progress".into(),
            data: Some(data),
            from: None,
            ts: 5,
            batched: true,
            corr: None,
        });
        let payload = frame(&wire).unwrap();
        assert!(payload.starts_with("- - {\"pub\":"), "{payload}");
        let back = unframe(payload.as_bytes()).unwrap();
        assert_eq!((back.seq, back.epoch), (None, None));
        match back.wire {
            Wire::Pub(p) => {
                assert_eq!(p.data.unwrap().get(), r#"{"k":[1,2]}"#);
                assert_eq!(p.to, WireTarget::Session("s1".into()));
                assert!(p.batched);
            }
            other => panic!("{other:?}"),
        }
        let stamped = format!("42 e1 {}", &payload[4..]);
        let back = unframe(stamped.as_bytes()).unwrap();
        assert_eq!((back.seq, back.epoch.as_deref()), (Some(42), Some("e1")));
    }

    #[test]
    fn an_unanswered_request_keeps_its_raw_correlation_id() {
        let corr = RawValue::from_string(r#"{"n":7}"#.to_owned()).unwrap();
        let wire = Wire::Unanswered {
            client: "c_1-ab.h1".into(),
            corr: Some(corr),
        };
        let back = unframe(frame(&wire).unwrap().as_bytes()).unwrap();
        match back.wire {
            Wire::Unanswered { client, corr } => {
                assert_eq!(client, "c_1-ab.h1");
                assert_eq!(corr.unwrap().get(), r#"{"n":7}"#);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_payloads_are_ignored() {
        for payload in [
            &b""[..],
            b"x",
            b"1 e",
            b"x e {}",
            b"- - {\"nope\":1}",
            b"\xff - {}",
        ] {
            assert!(unframe(payload).is_none(), "{payload:?}");
        }
    }

    #[test]
    fn client_ids_name_their_hub() {
        assert_eq!(hub_of("c_1f-0a0b0c0d.h7k2"), Some("h7k2"));
        assert_eq!(hub_of("c_1f-0a0b0c0d"), None);
        assert_eq!(hub_of("c_1f-0a0b0c0d."), None);
    }
}
