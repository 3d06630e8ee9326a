//! Topics: subscribing to channels and sessions, leaving them, and
//! publishing from a connection.
//!
//! Runs on the router thread. Every way into a session (a `subscribe`, the
//! `sessionId` of the upgrade, the backend's server-side subscribe) goes
//! through one admission, [`Router::join_session`], so each refusal has one
//! code and one message; the backend is trusted with permissions, not with
//! limits.

use std::time::Instant;

use serde_json::value::RawValue;

use super::Router;
use super::publishing::{Asked, Key, Publisher};
use crate::history::StreamKey;
use crate::protocol::{
    Destination, Empty, ErrorCode, ErrorReply, Kind, Origin, Since, Topic, USER_PREFIX,
};
use crate::publish::{Publication, Target};
use crate::subscriptions::{ClientId, Refused};

impl Router {
    /// A client's own `subscribe`, answered with where the stream stands
    /// and, with `since`, followed by what it missed. The channel
    /// `user:<id>` is the user's own stream: every connection of the user
    /// gets its publications already, so following it only positions (and
    /// recovers) it.
    pub(super) fn subscribe(
        &mut self,
        id: ClientId,
        topic: Topic,
        since: Option<Since>,
        correlation: Option<&RawValue>,
    ) {
        let had = self.has_topic(id, &topic);
        let refused = match &topic {
            Topic::Channel(name) => match name.strip_prefix(USER_PREFIX) {
                Some(user) => self.may_follow_user(id, user),
                None => self.join_channel(id, name, false),
            },
            Topic::Session(session) => self.join_session(id, session, false),
        };
        match refused {
            Err((code, message)) => self.error(id, code, &message, correlation),
            Ok(()) => {
                if !self.open_stream(id, &topic, since, correlation) {
                    let why = self.not_opened(id, &topic, had);
                    self.counters.busy += 1;
                    self.error(id, ErrorCode::Busy, &why, correlation);
                }
            }
        }
    }

    /// Whether a client is subscribed to `topic` already. Its user's own
    /// stream, which it follows without subscribing, counts as one: there
    /// is nothing to undo.
    pub(super) fn has_topic(&self, id: ClientId, topic: &Topic) -> bool {
        self.clients.get(&id).is_some_and(|client| match topic {
            Topic::Channel(name) if name.starts_with(USER_PREFIX) => true,
            Topic::Channel(name) => client.channels.iter().any(|c| **c == **name),
            Topic::Session(session) => client.sessions.iter().any(|s| **s == **session),
        })
    }

    /// A subscribe the queue to Redis could not take (see
    /// [`Opening::Busy`](super::cluster::Opening)): a new subscription is
    /// undone, one the client `had` stands as it was. Returns why, for
    /// the `busy` its asker gets.
    pub(super) fn not_opened(&mut self, id: ClientId, topic: &Topic, had: bool) -> String {
        let name = match topic {
            Topic::Channel(name) | Topic::Session(name) => name.clone(),
        };
        if had {
            return format!(
                "The queue to Redis is full (Redis is slow or away): this subscribe to {name} was not done, the subscription in place stands; try again"
            );
        }
        self.leave(id, Some(topic));
        format!(
            "The queue to Redis is full (Redis is slow or away): not subscribed to {name}; try again"
        )
    }

    /// Subscribes a client to a channel it may read (any channel when
    /// `trusted`: the backend asks), within its limit.
    pub(super) fn join_channel(
        &mut self,
        id: ClientId,
        name: &str,
        trusted: bool,
    ) -> Result<(), ErrorReply> {
        let max = self.config.max_subscriptions;
        let Some(client) = self.clients.get_mut(&id) else {
            return Ok(());
        };
        if client.channels.iter().any(|c| **c == *name) {
            return Ok(());
        }
        if client.channels.len() + client.sessions.len() >= max {
            return Err(too_many(max));
        }
        if !trusted && !client.identity.may_read_channel(name) {
            return Err((
                ErrorCode::Forbidden,
                format!("Not allowed to subscribe to channel {name}"),
            ));
        }
        self.channels.add(name, id);
        client.channels.push(name.into());
        Ok(())
    }

    /// The one admission to a session: anonymous clients never, a session
    /// of another user never (when auth is on), within the client's
    /// subscription limit and its user's session limit. `trusted` (the
    /// backend asks) lifts the first two.
    pub(super) fn join_session(
        &mut self,
        id: ClientId,
        session: &str,
        trusted: bool,
    ) -> Result<(), ErrorReply> {
        let max = self.config.max_subscriptions;
        let max_owned = self.config.max_sessions_per_user;
        let Some(client) = self.clients.get_mut(&id) else {
            return Ok(());
        };
        if client.sessions.iter().any(|s| **s == *session) {
            return Ok(());
        }
        if client.channels.len() + client.sessions.len() >= max {
            return Err(too_many(max));
        }
        if !trusted && !client.identity.sees_private_events() {
            return Err((
                ErrorCode::Forbidden,
                format!("Anonymous clients cannot join session {session}"),
            ));
        }
        let owner = match trusted {
            true => None,
            false => client.session_owner(),
        };
        match self.sessions.join(session, id, owner, max_owned) {
            Ok(_) => {
                client.sessions.push(session.into());
                Ok(())
            }
            Err(Refused::Taken) => Err((
                ErrorCode::Forbidden,
                format!("Session {session} belongs to another user"),
            )),
            Err(Refused::TooMany) => Err((
                ErrorCode::TooManySubscriptions,
                format!(
                    "You own {max_owned} sessions already; a session is released when it has been empty for session_retention"
                ),
            )),
        }
    }

    pub(super) fn unsubscribe(
        &mut self,
        id: ClientId,
        topic: Option<Topic>,
        correlation: Option<&RawValue>,
    ) {
        self.leave(id, topic.as_ref());
        self.reply(
            id,
            Kind::Unsubscribed,
            topic.as_ref(),
            Some(Empty {}),
            correlation,
        );
    }

    /// Takes a client off a topic, or (`None`) off every session. Every
    /// way a right to a stream ends comes here (the client's unsubscribe,
    /// the backend's on any hub), and its catch-up of the stream ends with
    /// it: nothing more of the stream is queued for it.
    pub(super) fn leave(&mut self, id: ClientId, topic: Option<&Topic>) {
        self.stop_replay(id, topic.map(StreamKey::of_topic).as_ref());
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let now = Instant::now();
        match topic {
            Some(Topic::Channel(name)) => {
                if self.channels.remove(name, id) {
                    client.channels.retain(|c| **c != **name);
                }
            }
            Some(Topic::Session(session)) => {
                if self.sessions.leave(session, id, now) {
                    client.sessions.retain(|s| **s != **session);
                }
            }
            None => {
                for session in client.sessions.drain(..) {
                    self.sessions.leave(&session, id, now);
                }
            }
        }
    }

    /// A client may follow its own user stream (a service, anyone's).
    pub(super) fn may_follow_user(&self, id: ClientId, user: &str) -> Result<(), ErrorReply> {
        let Some(client) = self.clients.get(&id) else {
            return Ok(());
        };
        if client.identity.is_service() || client.identity.user_id.as_deref() == Some(user) {
            return Ok(());
        }
        Err((
            ErrorCode::Forbidden,
            format!("{USER_PREFIX}{user} is another user's stream"),
        ))
    }

    /// `publish` from a connection: a client to a channel or session it may
    /// use, a service connection anywhere.
    pub(super) fn client_publish(
        &mut self,
        id: ClientId,
        to: Destination,
        event: String,
        data: Option<Box<RawValue>>,
        asked: Asked,
        correlation: Option<&RawValue>,
    ) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        if !client
            .identity
            .may_publish(self.config.allow_client_publish)
        {
            let message = "Clients may not publish: start the hub with --allow-client-publish";
            return self.error(id, ErrorCode::Forbidden, message, correlation);
        }
        let service = client.identity.is_service();
        let (target, from) = match to {
            // A service publishes as the backend: no `from`.
            Destination::Topic(topic) if service => (topic_target(topic), None),
            Destination::Topic(Topic::Channel(name)) if name.starts_with(USER_PREFIX) => {
                let message = "A user's own stream takes publications from the backend only";
                return self.error(id, ErrorCode::Forbidden, message, correlation);
            }
            Destination::Topic(topic) => {
                let allowed = match &topic {
                    Topic::Channel(name) => client.identity.may_read_channel(name),
                    Topic::Session(session) => {
                        client.identity.sees_private_events()
                            && self.sessions.may_use(session, client.session_owner())
                    }
                };
                if !allowed {
                    return self.error(
                        id,
                        ErrorCode::Forbidden,
                        "Not allowed to publish there",
                        correlation,
                    );
                }
                let from = Origin {
                    client_id: client.name.clone(),
                    user_id: client.identity.user_id.as_deref().map(Into::into),
                };
                (topic_target(topic), Some(from))
            }
            Destination::User(user) if service => (Target::User(user), None),
            Destination::Client(other) if service => (Target::Client(other), None),
            Destination::Broadcast if service => (Target::Broadcast, None),
            Destination::Authenticated if service => (Target::Authenticated, None),
            _ => {
                let message =
                    "Only a service connection may publish to a user, a client or everyone";
                return self.error(id, ErrorCode::Forbidden, message, correlation);
            }
        };
        let topic = target.topic();
        let publication = Publication {
            target,
            kind: event.into(),
            data,
            correlation_id: None,
            batched: asked.batched,
            from,
        };
        let key = asked.idempotency_key.map(|key| Key {
            scope: self.key_scope(id),
            key: key.into(),
        });
        let publisher = Publisher::Client {
            id,
            topic,
            correlation: correlation.map(RawValue::to_owned),
        };
        self.analytics
            .published(crate::analytics::Source::WebSocket);
        self.publish(publication, key, publisher);
    }
}

fn topic_target(topic: Topic) -> Target {
    match topic {
        Topic::Channel(name) => Target::Channel(name),
        Topic::Session(id) => Target::Session(id),
    }
}

fn too_many(max: usize) -> ErrorReply {
    (
        ErrorCode::TooManySubscriptions,
        format!("At most {max} subscriptions per client"),
    )
}
