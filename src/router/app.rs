//! The application side, on the router thread: where application requests
//! go, and what service connections send back.
//!
//! An application request (a message type the protocol does not reserve)
//! goes to the embedding program if it asked for requests
//! ([`Hub::requests`](crate::Hub::requests)), else to one of the service
//! connections that handle its type, in turn (as `client_message`), else
//! it is answered `unknown_type`. A service connection handles the types
//! it declared when it connected (`?handles=`), or every type if it
//! declared none. Nothing here waits: a full queue is `busy`. A request
//! with a `correlationId` that a service connection took is remembered
//! until that service answers it (a `send` to the client with the same
//! `correlationId`); if the service leaves first, the client gets `busy`.
//!
//! With other hubs, a request nobody here can answer goes to a hub with a
//! service connection, and the same promise holds across them: the hub
//! that took it remembers what its service owes to the other hub's client
//! and tells that hub when it cannot be answered ([`Wire::Unanswered`]),
//! and the client's hub remembers where each request went, so a request
//! whose hub dies or is cut off is answered `busy` too.
//!
//! [`Wire::Unanswered`]: crate::cluster::wire::Wire::Unanswered

use std::collections::{BTreeSet, HashMap, HashSet};

use crossbeam_channel::{Sender, TrySendError};
use serde::Serialize;
use serde_json::value::RawValue;

use super::Router;
use super::cluster::Routed;
use super::publishing::Publisher;
use crate::app::ClientRequest;
use crate::cluster::wire::Wire;
use crate::handle::Handle;
use crate::protocol::{ErrorCode, Kind, Message, Outgoing, raw};
use crate::subscriptions::ClientId;

/// Most requests all service connections together may owe an answer to.
const MAX_PENDING: usize = 64 * 1024;

/// The embedding program's request queue.
pub(super) struct AppQueue {
    pub sender: Sender<ClientRequest>,
    pub handle: Handle,
}

/// A service connection and the request types it handles.
struct Service {
    id: ClientId,
    /// `None`: every type.
    handles: Option<HashSet<Box<str>>>,
    /// When it was last given a request ([`Services::clock`]).
    served: u64,
}

impl Service {
    fn handles(&self, kind: &str) -> bool {
        self.handles
            .as_ref()
            .is_none_or(|types| types.contains(kind))
    }
}

/// The service connections and what they owe.
#[derive(Default)]
pub(super) struct Services {
    /// In the order they came.
    list: Vec<Service>,
    /// Requests given to them so far.
    clock: u64,
    /// What other hubs were last told of them: whether there is one, and
    /// [`declared`](Services::declared).
    told: (bool, Option<Vec<String>>),
    /// (client, its `correlationId`) -> the service that took the request.
    pending: HashMap<(ClientId, Box<str>), ClientId>,
    /// (another hub's client, its `correlationId`) -> the service here
    /// that took its request.
    remote: HashMap<(Box<str>, Box<str>), ClientId>,
    /// (client here, its `correlationId`) -> the hub its request went to.
    forwarded: HashMap<(ClientId, Box<str>), Box<str>>,
}

impl Services {
    /// A service connection, handling `handles` (`None`: every type).
    pub(super) fn add(&mut self, id: ClientId, handles: Option<Vec<String>>) {
        let handles = handles.map(|types| types.into_iter().map(String::into_boxed_str).collect());
        self.list.push(Service {
            id,
            handles,
            served: 0,
        });
    }

    pub(super) fn count(&self) -> usize {
        self.list.len()
    }

    /// The types the service connections handle, sorted, when none of them
    /// handles every type (`None` if one does, or there is none).
    pub(super) fn declared(&self) -> Option<Vec<String>> {
        let mut types = BTreeSet::new();
        for service in &self.list {
            types.extend(service.handles.as_ref()?.iter().map(|t| t.to_string()));
        }
        Some(types.into_iter().collect()).filter(|_| !self.list.is_empty())
    }

    /// Whether other hubs have news of the service connections (one came
    /// or left, so [`declared`](Services::declared) may have changed): the
    /// news is then taken as told.
    pub(super) fn news(&mut self) -> bool {
        let now = (!self.list.is_empty(), self.declared());
        if now == self.told {
            return false;
        }
        self.told = now;
        true
    }

    /// Answers owed, every kind together.
    fn owed(&self) -> usize {
        self.pending.len() + self.remote.len() + self.forwarded.len()
    }

    /// The service that handles `kind` and was given a request the
    /// longest ago: the services of one type take its requests in turn,
    /// whatever else they take.
    fn pick(&mut self, kind: &str) -> Option<ClientId> {
        let service = self
            .list
            .iter_mut()
            .filter(|s| s.handles(kind))
            .min_by_key(|s| s.served)?;
        self.clock += 1;
        service.served = self.clock;
        Some(service.id)
    }
}

/// The `type` of a client's request, as another hub forwarded it.
fn request_type(message: &RawValue) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_str::<Typed>(message.get())
        .ok()
        .map(|t| t.kind)
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
                correlation_text: correlation.map(crate::app::correlation_text),
                address: client.peer.ip().to_string(),
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
        if correlation.is_some() && self.services.owed() >= MAX_PENDING {
            return self.busy(id, correlation);
        }
        let Some(service) = self.services.pick(&kind) else {
            // With other hubs, one with a service connection for it takes it.
            if let Some(hub) = self.forward_request(id, &kind, &message, correlation) {
                self.counters.requests += 1;
                if let Some(correlation) = correlation {
                    self.services
                        .forwarded
                        .insert((id, correlation.get().into()), hub.into());
                    if let Some(client) = self.clients.get_mut(&id) {
                        client.pending += 1;
                    }
                }
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
        let full = request.corr.is_some() && self.services.owed() >= MAX_PENDING;
        let kind = request_type(&request.message).unwrap_or_default();
        let service = self.services.pick(&kind).filter(|_| !full);
        let Some(service) = service else {
            // The hub that sent it had old news (or this one owes too
            // much): its client hears `busy` rather than nothing.
            self.counters.busy += 1;
            return self.tell_unanswered(request.client, request.corr);
        };
        if let Some(corr) = &request.corr {
            let key = (request.client.as_str().into(), corr.get().into());
            self.services.remote.insert(key, service);
        }
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
        if target.is_none()
            && let Some(answered) = &message.correlation_id
        {
            // Perhaps the answer to another hub's client.
            let key = (Box::<str>::from(client), Box::<str>::from(answered.get()));
            self.services.remote.remove(&key);
        }
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
            // A client of another hub: it goes there through Redis, and the
            // service hears how it went once Redis answered.
            let publication = crate::publish::Publication {
                target: crate::Target::Client(client.to_owned()),
                kind: message.kind.as_str().into(),
                data: message.data,
                correlation_id: message.correlation_id,
                batched: false,
                from: None,
            };
            let publisher = Publisher::Sent {
                service,
                correlation: correlation.map(RawValue::to_owned),
            };
            match self.cluster_publish(publication, None, publisher) {
                Routed::Redis => return,
                Routed::Unpublished(publisher, why) => {
                    return self.tell_publisher(publisher, Err(why));
                }
                // Not for Redis after all (it went away): no such client here.
                Routed::Here(..) => {}
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
        self.services.list.retain(|s| s.id != service);
        self.services_changed();
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
            self.gone_away(client, Some(&correlation));
        }
        let owed_there: Vec<(Box<str>, Box<str>)> = self
            .services
            .remote
            .iter()
            .filter(|(_, s)| **s == service)
            .map(|(key, _)| key.clone())
            .collect();
        for key in owed_there {
            self.services.remote.remove(&key);
            let (client, correlation) = key;
            self.counters.busy += 1;
            let correlation = RawValue::from_string(correlation.into()).ok();
            self.tell_unanswered(client.into(), correlation);
        }
    }

    /// The client's request was taken and will not be answered.
    fn gone_away(&mut self, id: ClientId, correlation: Option<&RawValue>) {
        let message = "The service handling this request went away: try again";
        self.error(id, ErrorCode::Busy, message, correlation);
    }

    /// Tells the hub of another hub's client that its request will not be
    /// answered.
    fn tell_unanswered(&mut self, client: String, corr: Option<Box<RawValue>>) {
        let Some(hub) = crate::cluster::wire::hub_of(&client).map(str::to_owned) else {
            return;
        };
        self.cluster_send(&hub, &Wire::Unanswered { client, corr });
    }

    /// Another hub will not answer a request of client `name` of this hub.
    pub(super) fn unanswered(&mut self, name: &str, corr: Option<Box<RawValue>>) {
        let Some(id) = self.names.get(name).copied() else {
            return;
        };
        if let Some(corr) = &corr {
            self.forwarded_done(id, corr);
        }
        self.counters.busy += 1;
        self.gone_away(id, corr.as_deref());
    }

    /// The answer to a request sent to another hub came (or never will).
    pub(super) fn forwarded_done(&mut self, id: ClientId, corr: &RawValue) {
        let key = (id, Box::<str>::from(corr.get()));
        if self.services.forwarded.remove(&key).is_some()
            && let Some(client) = self.clients.get_mut(&id)
        {
            client.pending = client.pending.saturating_sub(1);
        }
    }

    /// Hubs are gone (every other hub, when `None`: this one is cut off):
    /// the requests sent to them will not be answered, so their clients
    /// hear `busy`, and what services here owe their clients is forgotten.
    pub(super) fn hubs_lost(&mut self, gone: Option<&[String]>) {
        let among = |hub: &str| gone.is_none_or(|gone| gone.iter().any(|g| g == hub));
        self.services
            .remote
            .retain(|(client, _), _| !crate::cluster::wire::hub_of(client).is_some_and(among));
        let lost: Vec<(ClientId, Box<str>)> = self
            .services
            .forwarded
            .iter()
            .filter(|(_, hub)| among(hub))
            .map(|(key, _)| key.clone())
            .collect();
        for (id, correlation) in lost {
            let Ok(correlation) = RawValue::from_string(correlation.into()) else {
                continue;
            };
            self.forwarded_done(id, &correlation);
            self.counters.busy += 1;
            self.gone_away(id, Some(&correlation));
        }
    }

    /// A client left: forget what services owed it, here and on the hubs
    /// its requests went to.
    pub(super) fn forget_pending(&mut self, id: ClientId, name: &str) {
        self.services.pending.retain(|(client, _), _| *client != id);
        let mut hubs: Vec<Box<str>> = Vec::new();
        self.services.forwarded.retain(|(client, _), hub| {
            if *client == id && !hubs.contains(hub) {
                hubs.push(hub.clone());
            }
            *client != id
        });
        for hub in hubs {
            let client = name.to_owned();
            self.cluster_send(&hub, &Wire::Left { client });
        }
    }

    /// A client of another hub left: nothing owed to it is kept.
    pub(super) fn remote_client_left(&mut self, name: &str) {
        self.services
            .remote
            .retain(|(client, _), _| &**client != name);
    }
}
