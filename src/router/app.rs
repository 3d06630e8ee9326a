//! The application side, on the router thread: where application requests
//! go, and what service connections send back.
//!
//! An application request (a message type the protocol does not reserve)
//! goes to the embedding program if it asked for requests
//! ([`Hub::requests`](crate::Hub::requests)), else to one of the service
//! connections in turn (as `client_message`), else it is answered
//! `unknown_type`. Nothing here waits: a full queue is `busy`. A request
//! with a `correlationId` that a service connection took is remembered
//! until that service answers it (a `send` to the client with the same
//! `correlationId`); if the service leaves first, the client gets `busy`.

use std::collections::HashMap;

use crossbeam_channel::{Sender, TrySendError};
use serde::Serialize;
use serde_json::value::RawValue;

use super::Router;
use crate::app::ClientRequest;
use crate::hub::Handle;
use crate::protocol::{ErrorCode, Kind, Message, Outgoing, raw};
use crate::subscriptions::ClientId;

/// Most requests all service connections together may owe an answer to.
const MAX_PENDING: usize = 64 * 1024;

/// The embedding program's request queue.
pub(super) struct AppQueue {
    pub sender: Sender<ClientRequest>,
    pub handle: Handle,
}

/// The service connections and what they owe.
#[derive(Default)]
pub(super) struct Services {
    /// In the order requests go round them.
    ids: Vec<ClientId>,
    next: usize,
    /// (client, its `correlationId`) -> the service that took the request.
    pending: HashMap<(ClientId, Box<str>), ClientId>,
}

impl Services {
    pub(super) fn add(&mut self, id: ClientId) {
        self.ids.push(id);
    }

    pub(super) fn count(&self) -> usize {
        self.ids.len()
    }

    /// The next service, in turn.
    fn pick(&mut self) -> Option<ClientId> {
        if self.ids.is_empty() {
            return None;
        }
        let id = self.ids[self.next % self.ids.len()];
        self.next = self.next.wrapping_add(1);
        Some(id)
    }
}

/// The data of a `client_message`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Forwarded<'a> {
    client_id: &'a str,
    user_id: Option<&'a str>,
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    meta: &'a serde_json::Map<String, serde_json::Value>,
    message: &'a RawValue,
}

/// The data of the `ack` of a `send`.
#[derive(Serialize)]
struct Sent {
    delivered: usize,
}

impl Router {
    /// An application request from client `id`.
    pub(super) fn application(
        &mut self,
        id: ClientId,
        kind: String,
        data: Option<Box<RawValue>>,
        message: Box<RawValue>,
        correlation: Option<&RawValue>,
    ) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        if client.identity.is_service() {
            // A service speaks the service protocol; it has no application.
            let message = format!("Unknown message type for a service connection: {kind}");
            return self.error(id, ErrorCode::UnknownType, &message, correlation);
        }
        if let Some(app) = &self.app {
            let request = ClientRequest {
                client_id: client.name.to_string(),
                user_id: client.identity.user_id.clone(),
                session_id: client.sessions.first().map(|s| s.to_string()),
                kind,
                data,
                correlation_id: correlation.map(RawValue::to_owned),
                meta: client.meta.clone(),
                handle: app.handle.clone(),
            };
            match app.sender.try_send(request) {
                Ok(()) => {
                    self.counters.requests += 1;
                    return;
                }
                Err(TrySendError::Full(_)) => return self.busy(id, correlation),
                Err(TrySendError::Disconnected(request)) => {
                    // Nobody reads requests any more: as if never asked.
                    log::info!("the application stopped reading requests");
                    self.app = None;
                    return self.application(id, request.kind, request.data, message, correlation);
                }
            }
        }
        let Some(service) = self.services.pick() else {
            // With other hubs, one with a service connection takes it.
            if self.forward_request(id, &message) {
                self.counters.requests += 1;
                return;
            }
            return self.error(
                id,
                ErrorCode::UnknownType,
                &format!("Unknown message type: {kind}"),
                correlation,
            );
        };
        if let Some(correlation) = correlation {
            if self.services.pending.len() >= MAX_PENDING {
                return self.busy(id, Some(correlation));
            }
            self.services
                .pending
                .insert((id, correlation.get().into()), service);
            if let Some(client) = self.clients.get_mut(&id) {
                client.pending += 1;
            }
        }
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let data = raw(&Forwarded {
            client_id: &client.name,
            user_id: client.identity.user_id.as_deref(),
            session_id: client.sessions.first().map(|s| &**s),
            meta: &client.meta,
            message: &message,
        });
        self.counters.requests += 1;
        self.send_message(
            service,
            &Message::new(Kind::ClientMessage.as_str(), Some(&data)),
        );
    }

    /// A client's request another hub forwarded: one of this hub's service
    /// connections gets it, as if the client were here.
    pub(super) fn remote_request(&mut self, request: crate::cluster::wire::Request) {
        let Some(service) = self.services.pick() else {
            crate::throttle::warn_throttled!(
                "a request of client {} came for a service connection, but this hub has none now",
                request.client
            );
            return;
        };
        let data = raw(&Forwarded {
            client_id: &request.client,
            user_id: request.user.as_deref(),
            session_id: request.session.as_deref(),
            meta: &request.meta,
            message: &request.message,
        });
        self.counters.requests += 1;
        self.send_message(
            service,
            &Message::new(Kind::ClientMessage.as_str(), Some(&data)),
        );
    }

    /// The application cannot take a request now.
    fn busy(&mut self, id: ClientId, correlation: Option<&RawValue>) {
        self.counters.busy += 1;
        let message = "The application is busy: try again";
        self.error(id, ErrorCode::Busy, message, correlation);
    }

    /// `send` from a service: one message to one client.
    pub(super) fn service_send(
        &mut self,
        service: ClientId,
        client: &str,
        message: Outgoing,
        correlation: Option<&RawValue>,
    ) {
        let target = self.names.get(client).copied();
        let mut delivered = 0;
        if let Some(target) = target {
            if let Some(answered) = &message.correlation_id {
                let key = (target, Box::<str>::from(answered.get()));
                if self.services.pending.remove(&key).is_some()
                    && let Some(c) = self.clients.get_mut(&target)
                {
                    c.pending = c.pending.saturating_sub(1);
                }
            }
            let outgoing = Message::new(&message.kind, message.data.as_deref())
                .correlation(message.correlation_id.as_deref());
            self.send_message(target, &outgoing);
            delivered = 1;
        } else if self.cluster_up() && crate::cluster::wire::hub_of(client).is_some() {
            // A client of another hub: it goes there through Redis.
            let publication = crate::publish::Publication {
                target: crate::Target::Client(client.to_owned()),
                kind: message.kind.as_str().into(),
                data: message.data,
                correlation_id: message.correlation_id,
                batched: false,
                from: None,
            };
            if self.cluster_publish(&publication).is_some() {
                delivered = 1;
            }
        }
        if correlation.is_some() {
            self.reply(
                service,
                Kind::Ack,
                None,
                Some(Sent { delivered }),
                correlation,
            );
        }
    }

    /// A service connection left: it answers nothing more, so each client
    /// still waiting on it gets `busy` instead of silence.
    pub(super) fn service_left(&mut self, service: ClientId) {
        self.services.ids.retain(|id| *id != service);
        let owed: Vec<(ClientId, Box<str>)> = self
            .services
            .pending
            .iter()
            .filter(|(_, s)| **s == service)
            .map(|(key, _)| key.clone())
            .collect();
        for key in owed {
            self.services.pending.remove(&key);
            let (client, correlation) = key;
            if let Some(c) = self.clients.get_mut(&client) {
                c.pending = c.pending.saturating_sub(1);
            }
            let Ok(correlation) = RawValue::from_string(correlation.into()) else {
                continue;
            };
            self.counters.busy += 1;
            let message = "The service handling this request went away: try again";
            self.error(client, ErrorCode::Busy, message, Some(&correlation));
        }
    }

    /// A client left: forget what services owed it.
    pub(super) fn forget_pending(&mut self, id: ClientId) {
        self.services.pending.retain(|(client, _), _| *client != id);
    }
}
