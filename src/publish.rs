//! Server-side publications: where they go ([`Target`]), what a filter may
//! look at ([`ClientRef`]), and the message they carry.
//!
//! A [`Publication`] is checked and its data serialised on the caller's
//! thread (a [`Handle`](crate::Handle) user or an HTTP connection); the
//! router encodes it once per envelope in use among its recipients and
//! hands the shared bytes to each of them.

use std::fmt;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::protocol::{self, MAX_NAME_LEN, Origin, Topic, USER_PREFIX};

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
    /// Every client that is not anonymous: with client auth on, those a
    /// token vouched for; in development mode, everyone.
    Authenticated,
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
        let (checked, what) = match self {
            Target::Channel(name) => (protocol::check_name(name, "channel"), "channel"),
            Target::Session(id) => (protocol::check_name(id, "sessionId"), "sessionId"),
            Target::User(id) => (check_id(id, "userId"), "userId"),
            Target::Client(id) => (check_id(id, "clientId"), "clientId"),
            Target::Broadcast | Target::Authenticated | Target::Filter(_) => return Ok(()),
        };
        checked.map_err(|(_, reason)| Error::InvalidName { what, reason })
    }

    /// The channel or session a delivery to this target names; a user's
    /// deliveries name its own stream, the channel `user:<id>`.
    pub(crate) fn topic(&self) -> Option<Topic> {
        match self {
            Target::Channel(name) => Some(Topic::Channel(name.clone())),
            Target::Session(id) => Some(Topic::Session(id.clone())),
            Target::User(id) => Some(Topic::Channel(format!("{USER_PREFIX}{id}"))),
            _ => None,
        }
    }
}

fn check_id(id: &str, what: &str) -> Result<(), protocol::ErrorReply> {
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
    pub(crate) meta: &'a serde_json::Map<String, serde_json::Value>,
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

    /// One key of the client's metadata (from its token's `meta` claim, or
    /// set by the backend with [`Handle::set_meta`](crate::Handle::set_meta)).
    ///
    /// ```
    /// use serde_json::json;
    /// use wshub::{Filter, Target};
    /// // The IDE clients that asked for IDE events:
    /// let ide = Target::Filter(Filter::new(|c| c.meta("subscribedToIDE") == Some(&json!(true))));
    /// # let _ = ide;
    /// ```
    pub fn meta(&self, key: &str) -> Option<&serde_json::Value> {
        self.meta.get(key)
    }
}

/// A message on its way to a target: checked, its data serialised.
#[derive(Debug)]
pub(crate) struct Publication {
    pub target: Target,
    pub kind: Box<str>,
    pub data: Option<Box<RawValue>>,
    /// Echoed to the one client a reply goes to.
    pub correlation_id: Option<Box<RawValue>>,
    /// Held up to the batch window and delivered with the others of its
    /// target as one batch.
    pub batched: bool,
    /// The client it comes from, for a client's publication (`from`).
    pub from: Option<Origin>,
}

impl Publication {
    /// A publication of `{"type": kind, "data"?}` to `target`.
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
        Ok(Publication {
            target,
            kind: kind.into(),
            data: data.map(RawValue::to_owned),
            correlation_id: None,
            batched: false,
            from: None,
        })
    }

    /// Marks it batched.
    pub(crate) fn batched(mut self, batched: bool) -> Publication {
        self.batched = batched;
        self
    }

    /// Echoes a request's `correlationId`.
    pub(crate) fn correlation(mut self, correlation_id: Option<Box<RawValue>>) -> Publication {
        self.correlation_id = correlation_id;
        self
    }
}

/// How a publication went, as its publisher is told: how many of this
/// hub's clients it reaches, or why it was not (surely) published.
pub(crate) type Published = std::result::Result<usize, Unpublished>;

/// Why a publication was not published, or not surely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unpublished {
    /// Nothing of it was delivered, anywhere: the reason says why
    /// ([`Error::Unavailable`]).
    Unavailable(String),
    /// Redis did not answer in time: it may have been delivered.
    Unconfirmed(String),
}

impl Unpublished {
    /// The reason, as a client or an HTTP caller reads it.
    pub(crate) fn reason(&self) -> &str {
        match self {
            Unpublished::Unavailable(why) | Unpublished::Unconfirmed(why) => why,
        }
    }
}

impl From<Unpublished> for Error {
    fn from(unpublished: Unpublished) -> Error {
        match unpublished {
            Unpublished::Unavailable(why) => Error::Unavailable(why),
            Unpublished::Unconfirmed(why) => Error::Unconfirmed(why),
        }
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
    fn channel_publications_name_their_channel() {
        let data = RawValue::from_string(r#"{"file":"a.rs"}"#.into()).unwrap();
        let p = Publication::new(Target::channel("files"), "event", Some(&data)).unwrap();
        assert_eq!(p.target.topic(), Some(Topic::Channel("files".into())));
        assert_eq!(&*p.kind, "event");
        assert_eq!(p.data.unwrap().get(), r#"{"file":"a.rs"}"#);
    }
}
