//! Server-side publications: where they go ([`Target`]) and the message
//! they become.
//!
//! A [`Publication`] is encoded on the caller's thread (a [`Handle`](crate::Handle)
//! user or an HTTP connection), so the router only has to hand the shared
//! bytes to each recipient.

use std::fmt;
use std::sync::Arc;

use serde_json::value::RawValue;
use tungstenite::Bytes;

use crate::error::{Error, Result};
use crate::protocol::{self, Envelope, MAX_NAME_LEN, Topic};

/// Who receives a publication.
///
/// # Example
///
/// ```
/// use wshub::{Filter, Target};
/// let files = Target::channel("files");
/// let session = Target::session("session_123");
/// let admins = Target::Filter(Filter::new(|c| c.user_id().is_some_and(|u| u.starts_with("admin-"))));
/// # let _ = (files, session, admins);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Target {
    /// Every connected client.
    Broadcast,
    /// The subscribers of a channel; the message carries `"channel"`.
    Channel(String),
    /// The subscribers of a session; the message carries `"sessionId"`.
    Session(String),
    /// Every connection of a user.
    User(String),
    /// One connection, by the `clientId` it was welcomed with.
    Client(String),
    /// Every client the filter accepts.
    Filter(Filter),
}

impl Target {
    /// [`Target::Channel`].
    pub fn channel(name: impl Into<String>) -> Target {
        Target::Channel(name.into())
    }

    /// [`Target::Session`].
    pub fn session(id: impl Into<String>) -> Target {
        Target::Session(id.into())
    }

    /// [`Target::User`].
    pub fn user(id: impl Into<String>) -> Target {
        Target::User(id.into())
    }

    /// [`Target::Client`].
    pub fn client(id: impl Into<String>) -> Target {
        Target::Client(id.into())
    }

    /// Checks the names against the protocol's rules.
    fn validate(&self) -> Result<()> {
        let checked = match self {
            Target::Channel(name) => protocol::check_name(name, "channel"),
            Target::Session(id) => protocol::check_name(id, "sessionId"),
            Target::User(id) => check_id(id, "userId"),
            Target::Client(id) => check_id(id, "clientId"),
            Target::Broadcast | Target::Filter(_) => Ok(()),
        };
        checked.map_err(|(_, reason)| Error::InvalidName {
            what: match self {
                Target::Channel(_) => "channel",
                Target::Session(_) => "sessionId",
                Target::User(_) => "userId",
                _ => "clientId",
            },
            reason,
        })
    }

    fn topic(&self) -> Option<Topic> {
        match self {
            Target::Channel(name) => Some(Topic::Channel(name.clone())),
            Target::Session(id) => Some(Topic::Session(id.clone())),
            _ => None,
        }
    }
}

fn check_id(id: &str, what: &str) -> Result<(), (protocol::ErrorCode, String)> {
    if id.is_empty() || id.len() > MAX_NAME_LEN {
        return Err((
            protocol::ErrorCode::InvalidMessage,
            format!("{what} must be 1 to {MAX_NAME_LEN} bytes"),
        ));
    }
    Ok(())
}

/// A predicate choosing recipients among connected clients.
///
/// It runs on the router thread for every client, so keep it quick and
/// never block in it.
#[derive(Clone)]
pub struct Filter(pub(crate) Arc<dyn Fn(&ClientRef<'_>) -> bool + Send + Sync>);

impl Filter {
    /// Wraps a predicate.
    pub fn new(accept: impl Fn(&ClientRef<'_>) -> bool + Send + Sync + 'static) -> Filter {
        Filter(Arc::new(accept))
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Filter(..)")
    }
}

/// What a [`Filter`] may look at: one connected client.
#[derive(Debug)]
pub struct ClientRef<'a> {
    pub(crate) id: &'a str,
    pub(crate) user_id: Option<&'a str>,
    pub(crate) authenticated: bool,
    pub(crate) channels: &'a [Box<str>],
    pub(crate) sessions: &'a [Box<str>],
}

impl ClientRef<'_> {
    /// The `clientId` the client was welcomed with.
    pub fn id(&self) -> &str {
        self.id
    }

    /// The user, if the client has one.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id
    }

    /// Whether a token vouched for the client.
    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// Whether the client is subscribed to `channel`.
    pub fn is_subscribed(&self, channel: &str) -> bool {
        self.channels.iter().any(|c| &**c == channel)
    }

    /// The sessions the client is subscribed to.
    pub fn sessions(&self) -> impl Iterator<Item = &str> + '_ {
        self.sessions.iter().map(|s| &**s)
    }
}

/// A message on its way to a target, already encoded.
#[derive(Debug)]
pub(crate) struct Publication {
    pub target: Target,
    pub frame: Bytes,
}

impl Publication {
    /// Builds `{"type": kind, "channel"|"sessionId"?, "data"?, "timestamp"}` for `target`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a bad target name or `kind`.
    pub(crate) fn new(target: Target, kind: &str, data: Option<&RawValue>) -> Result<Publication> {
        target.validate()?;
        if kind.is_empty() || kind.len() > MAX_NAME_LEN {
            return Err(Error::InvalidName {
                what: "type",
                reason: format!("must be 1 to {MAX_NAME_LEN} bytes"),
            });
        }
        let topic = target.topic();
        let frame = Envelope::new(kind, data).topic(topic.as_ref()).encode();
        Ok(Publication { target, frame })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_target_names_are_refused() {
        let data = RawValue::from_string("1".into()).unwrap();
        for target in [
            Target::channel(""),
            Target::channel("a b"),
            Target::session("x".repeat(300)),
            Target::user(""),
            Target::client(""),
        ] {
            let err = Publication::new(target.clone(), "event", Some(&data)).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{target:?}");
        }
        assert!(Publication::new(Target::Broadcast, "", None).is_err());
    }

    #[test]
    fn channel_publications_carry_the_channel() {
        let data = RawValue::from_string(r#"{"file":"a.rs"}"#.into()).unwrap();
        let p = Publication::new(Target::channel("files"), "event", Some(&data)).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&p.frame[2..]).unwrap();
        assert_eq!(json["type"], "event");
        assert_eq!(json["channel"], "files");
        assert_eq!(json["data"]["file"], "a.rs");
    }
}
