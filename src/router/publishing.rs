//! Publishing: whether a publication goes through Redis or is delivered
//! here at once, idempotency keys, and telling each publisher how its
//! publication went.
//!
//! Runs on the router thread. A hub alone answers at once. With Redis the
//! answer waits for Redis's (see [`cluster`](super::cluster)): a publisher
//! is told `delivered` once Redis has numbered the publication, or that it
//! was not published (nothing of it delivered anywhere), or that Redis did
//! not answer in time (it may have been): never a success for what the
//! other hubs did not get. A retry with the same idempotency key, within
//! [`crate::idempotency::TTL`], gets the first answer and is not delivered
//! again.

use std::time::{Instant, SystemTime};

use crossbeam_channel::Sender;
use serde_json::value::RawValue;

use super::Router;
use super::cluster::Routed;
use crate::idempotency::Once;
use crate::protocol::{Delivered, ErrorCode, Kind, Topic};
use crate::publish::{Publication, Published, Target};
use crate::subscriptions::ClientId;

/// The scope of the backend's keys: the library, the HTTP API and service
/// connections publish as one.
pub(super) const BACKEND: &str = "backend";

/// Who is told how a publication went.
pub(super) enum Publisher {
    /// A handle or the HTTP API, waiting for the answer.
    Caller(Sender<Published>),
    /// A connection's `publish`: `published` if it gave a `correlationId`,
    /// an error `busy` if it was not (surely) published.
    Client {
        id: ClientId,
        topic: Option<Topic>,
        correlation: Option<Box<RawValue>>,
    },
    /// A service's `send` to a client of another hub: `ack`, or `busy`.
    Sent {
        service: ClientId,
        correlation: Option<Box<RawValue>>,
    },
}

/// How a connection asked to publish, besides what and where.
pub(super) struct Asked {
    /// Held for its target's batch.
    pub batched: bool,
    /// Once per key (see [`crate::idempotency`]).
    pub idempotency_key: Option<String>,
}

/// An idempotency key as its publisher gave it, and who that is.
pub(super) struct Key {
    /// [`BACKEND`], or the client's own scope (its user, or itself).
    pub scope: Box<str>,
    pub key: Box<str>,
}

/// A target as an idempotency key's scope names it.
fn target_label(target: &Target) -> String {
    match target {
        Target::Broadcast => "*".to_owned(),
        Target::Authenticated => "authenticated".to_owned(),
        Target::Channel(name) => format!("c:{name}"),
        Target::Session(id) => format!("s:{id}"),
        Target::User(id) => format!("u:{id}"),
        Target::Client(id) => format!("k:{id}"),
        Target::Filter(_) => "filter".to_owned(),
    }
}

impl Router {
    /// A client's scope for its idempotency keys: a service publishes as
    /// the backend, a user's connections share their user's, an anonymous
    /// client has its own.
    pub(super) fn key_scope(&self, id: ClientId) -> Box<str> {
        let Some(client) = self.clients.get(&id) else {
            return "".into();
        };
        if client.identity.is_service() {
            return BACKEND.into();
        }
        match &client.identity.user_id {
            Some(user) => format!("u:{user}").into(),
            None => format!("k:{}", client.name).into(),
        }
    }

    /// Publishes `publication` (its target already final) and tells
    /// `publisher` how it went: now, or once Redis answered.
    pub(super) fn route_publication(
        &mut self,
        publication: Publication,
        key: Option<Key>,
        publisher: Publisher,
    ) {
        let once = key.map(|k| Once::new(&k.scope, &target_label(&publication.target), &k.key));
        let now = Instant::now();
        if let Some(once) = &once
            && let Some(first) = self.recent.get(once, now)
        {
            return self.tell_publisher(publisher, Ok(first));
        }
        match self.cluster_publish(publication, once, publisher) {
            Routed::Redis => {}
            Routed::Unpublished(publisher, why) => self.tell_publisher(publisher, Err(why)),
            Routed::Here(publication, publisher) => {
                let delivered = self.publish_here(publication, None, SystemTime::now());
                if let Some(once) = once {
                    self.recent.remember(once, delivered, now);
                }
                self.tell_publisher(publisher, Ok(delivered));
            }
        }
    }

    /// Tells a publisher how its publication went.
    pub(super) fn tell_publisher(&mut self, publisher: Publisher, published: Published) {
        match publisher {
            Publisher::Caller(reply) => {
                // A fresh one-slot channel: never full, never blocks.
                let _ = reply.try_send(published);
            }
            Publisher::Client {
                id,
                topic,
                correlation,
            } => match published {
                Ok(delivered) if correlation.is_some() => self.reply(
                    id,
                    Kind::Published,
                    topic.as_ref(),
                    Some(Delivered { delivered }),
                    correlation.as_deref(),
                ),
                Ok(_) => {}
                Err(why) => self.error(id, ErrorCode::Busy, why.reason(), correlation.as_deref()),
            },
            Publisher::Sent {
                service,
                correlation,
            } => match published {
                Ok(_) if correlation.is_some() => self.reply(
                    service,
                    Kind::Ack,
                    None,
                    Some(Delivered { delivered: 1 }),
                    correlation.as_deref(),
                ),
                Ok(_) => {}
                Err(why) => self.error(
                    service,
                    ErrorCode::Busy,
                    why.reason(),
                    correlation.as_deref(),
                ),
            },
        }
    }
}
