//! The router thread: the only owner of the hub's state (clients, channels,
//! sessions, users, presence, counters).
//!
//! It blocks on its channel of [`Event`]s and on the timer's ticks, and
//! handles each event in one `match` arm of [`Router::handle`]; a debugger
//! breakpoint there sees everything the hub does. It never blocks on a client: frames go into each client's
//! writer queue with a length check first, and a full queue closes that
//! client (1013) instead of waiting for it.
//!
//! It ends on [`Event::Shutdown`], after closing every client with 1001 and
//! waiting up to `shutdown_timeout` for them to go, or when every sender of
//! its channel is gone.

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, select};
use serde::Serialize;
use serde_json::value::RawValue;
use tungstenite::Bytes;

use crate::auth::{Authenticator, Identity};
use crate::budget::Threads;
use crate::config::Config;
use crate::event::{Control, Event, Joining, Outbound, Refusal};
use crate::protocol::{
    self, ClientMessage, Close, Delivered, Empty, Envelope, ErrorCode, Kind, PresenceData,
    PresenceList, Request, Status, Topic, Welcome,
};
use crate::publish::{ClientRef, Filter, Publication, Target};
use crate::ratelimit::{RateLimiter, Verdict};
use crate::stats::{ClientStats, Counters, Stats};
use crate::subscriptions::{self, ClientId, Index, Sessions};

/// How often vacant sessions' owners are looked at for expiry.
const SESSION_SWEEP: Duration = Duration::from_secs(10);

/// While shutting down, how often to look whether every connection is done.
const SHUTDOWN_POLL: Duration = Duration::from_millis(10);

/// One connected client, as the router knows it.
struct Client {
    name: Box<str>,
    peer: SocketAddr,
    identity: Identity,
    channels: Vec<Box<str>>,
    sessions: Vec<Box<str>>,
    outbound: Sender<Outbound>,
    /// Bytes queued and not yet written; the writer takes off what it writes.
    queued_bytes: Arc<AtomicUsize>,
    control: Sender<Control>,
    /// Weak, so the socket closes as soon as the reader and writer are done;
    /// the router only ever needs it to cut a connection short.
    stream: Weak<TcpStream>,
    last_seen: Instant,
    next_ping: Instant,
    awaiting_pong: bool,
    /// `None` when rate limiting is off.
    rate: Option<RateLimiter>,
    /// Already on the router's list of slow consumers to close.
    slow: bool,
}

impl Client {
    fn as_ref(&self) -> ClientRef<'_> {
        ClientRef {
            id: &self.name,
            user_id: self.identity.user_id.as_deref(),
            authenticated: self.identity.authenticated(),
            channels: &self.channels,
            sessions: &self.sessions,
        }
    }

    /// The user whose sessions this client opens, when ownership applies.
    fn session_owner(&self) -> Option<&str> {
        match self.identity.owns_sessions() {
            true => self.identity.user_id.as_deref(),
            false => None,
        }
    }
}

/// A client the router has closed and forgotten, whose socket it cuts if the
/// close handshake is not over by `deadline`.
struct Closing {
    deadline: Instant,
    stream: Weak<TcpStream>,
}

impl Closing {
    /// Whether the connection's threads are still at work on it.
    fn is_open(&self) -> bool {
        self.stream.strong_count() > 0
    }

    fn cut(&self) {
        cut(&self.stream);
    }
}

/// Shuts a socket down (both ways), waking its reader and writer.
fn cut(stream: &Weak<TcpStream>) {
    if let Some(stream) = stream.upgrade() {
        let _ = stream.shutdown(Shutdown::Both);
    }
}

/// How a close is delivered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Urgency {
    /// After everything already queued.
    Graceful,
    /// Ahead of the queue, which is dropped (slow consumers).
    Abort,
}

/// Who a fan-out reaches.
enum Audience<'a> {
    All,
    /// Clients allowed to see user-level events (presence).
    Trusted,
    Channel(&'a str),
    Session(&'a str),
    User(&'a str),
    Client(&'a str),
    Filter(&'a Filter),
}

/// The error for a session a client may not join.
fn session_refusal(
    refused: subscriptions::Refused,
    session: &str,
    max_owned: usize,
) -> (ErrorCode, String) {
    match refused {
        subscriptions::Refused::Taken => (
            ErrorCode::Forbidden,
            format!("Session {session} belongs to another user"),
        ),
        subscriptions::Refused::TooMany => (
            ErrorCode::TooManySubscriptions,
            format!(
                "You own {max_owned} sessions already; a session is released when it has been empty for session_retention"
            ),
        ),
    }
}

/// What the router's loop woke up for.
enum Next {
    Event(Event),
    Tick(Option<Instant>),
    Idle,
    /// Every sender of events is gone.
    Closed,
}

impl Next {
    fn from(event: Result<Event, crossbeam_channel::RecvError>) -> Next {
        event.map_or(Next::Closed, Next::Event)
    }
}

/// The result of offering a frame to one client.
enum Push {
    Queued,
    Slow,
    Gone,
}

/// How much may wait for one client.
#[derive(Clone, Copy)]
struct QueueLimits {
    messages: usize,
    bytes: usize,
}

impl Client {
    /// Queues `frame` unless the client's queue is at its limits.
    ///
    /// The outbound channel is unbounded so that an idle client costs
    /// nothing; the bound is enforced here, exactly, because the router is
    /// its only sender. (A crossbeam `bounded(n)` channel allocates all `n`
    /// slots up front: 4096 slots would cost 160 KiB per idle client.) Bytes
    /// are counted too, so a client that never reads cannot pin gigabytes of
    /// large messages; one frame larger than the byte limit still goes to a
    /// client with an empty queue.
    fn offer(&self, frame: Bytes, limits: QueueLimits) -> Push {
        let queued = self.queued_bytes.load(Ordering::Acquire);
        if self.outbound.len() >= limits.messages
            || (queued > 0 && queued + frame.len() > limits.bytes)
        {
            return Push::Slow;
        }
        self.queued_bytes.fetch_add(frame.len(), Ordering::AcqRel);
        match self.outbound.send(Outbound::Frame(frame)) {
            Ok(()) => Push::Queued,
            Err(_) => Push::Gone,
        }
    }
}

/// The state and the loop of the router thread.
pub(crate) struct Router {
    config: Arc<Config>,
    auth: Arc<Authenticator>,
    threads: Arc<Threads>,
    events: Receiver<Event>,
    ticks: Receiver<Instant>,
    clients: HashMap<ClientId, Client>,
    names: HashMap<Box<str>, ClientId>,
    /// Clients per address, for `max_connections_per_ip`.
    addresses: HashMap<IpAddr, usize>,
    channels: Index,
    sessions: Sessions,
    users: Index,
    presence: HashMap<Box<str>, Status>,
    /// Users whose last connection left, and when to announce them offline.
    pending_offline: HashMap<Box<str>, Instant>,
    closing: Vec<Closing>,
    /// Slow consumers to close once the current event is handled.
    slow: Vec<ClientId>,
    counters: Counters,
    started: Instant,
    last_activity: Option<SystemTime>,
    next_sweep: Instant,
    /// Set by [`Event::Shutdown`]: when to stop waiting for clients to go.
    stopping: Option<Instant>,
}

impl Router {
    pub(crate) fn new(
        config: Arc<Config>,
        auth: Arc<Authenticator>,
        threads: Arc<Threads>,
        events: Receiver<Event>,
        ticks: Receiver<Instant>,
    ) -> Router {
        Router {
            config,
            auth,
            threads,
            events,
            ticks,
            clients: HashMap::new(),
            names: HashMap::new(),
            addresses: HashMap::new(),
            channels: Index::default(),
            sessions: Sessions::default(),
            users: Index::default(),
            presence: HashMap::new(),
            pending_offline: HashMap::new(),
            closing: Vec::new(),
            slow: Vec::new(),
            counters: Counters::default(),
            started: Instant::now(),
            last_activity: None,
            next_sweep: Instant::now() + SESSION_SWEEP,
            stopping: None,
        }
    }

    /// The router thread's loop: one event or one tick at a time, then the
    /// slow consumers that turned up while handling it.
    pub(crate) fn run(mut self) {
        loop {
            let timeout = match self.stopping {
                None => None,
                Some(deadline) => {
                    // Stopping: done once every connection's threads are.
                    // Writers do not report their end, so look every few ms.
                    self.closing.retain(Closing::is_open);
                    if self.clients.is_empty() && self.closing.is_empty() {
                        break;
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    Some(deadline.min(now + SHUTDOWN_POLL) - now)
                }
            };
            // Ticks have their own channel, so a flood of events cannot
            // starve heartbeats and deadlines: `select!` picks fairly.
            let next = match timeout {
                None => select! {
                    recv(self.events) -> event => Next::from(event),
                    recv(self.ticks) -> tick => Next::Tick(tick.ok()),
                },
                Some(timeout) => select! {
                    recv(self.events) -> event => Next::from(event),
                    recv(self.ticks) -> tick => Next::Tick(tick.ok()),
                    default(timeout) => Next::Idle,
                },
            };
            match next {
                Next::Event(event) => self.handle(event),
                Next::Tick(Some(now)) => self.tick(now),
                // The timer is gone (it only stops after us): stop listening to it.
                Next::Tick(None) => self.ticks = crossbeam_channel::never(),
                Next::Idle => {}
                Next::Closed => break,
            }
            self.close_slow_consumers();
        }
        log::debug!("router stopped");
    }

    /// Closes the clients found slow while handling the last event.
    ///
    /// Closing one may tell the others its user went offline, which may find
    /// more slow clients: they join the list, and this loop (not recursion)
    /// works through them, however many there are.
    fn close_slow_consumers(&mut self) {
        while let Some(id) = self.slow.pop() {
            self.slow_consumer(id);
        }
    }

    /// One event, one arm.
    fn handle(&mut self, event: Event) {
        match event {
            Event::Joined(joining) => self.join(*joining),
            Event::Request { client, request } => {
                let correlation = match &request {
                    Ok(request) => request.correlation_id.as_deref(),
                    Err(rejection) => rejection.correlation_id.as_deref(),
                };
                if self.admit(client, correlation) {
                    match request {
                        Ok(Request {
                            message,
                            correlation_id,
                        }) => self.dispatch(client, message, correlation_id.as_deref()),
                        Err(rejection) => self.error(
                            client,
                            rejection.code,
                            &rejection.message,
                            rejection.correlation_id.as_deref(),
                        ),
                    }
                }
            }
            Event::Refused { client, why } => self.refused(client, why),
            Event::Alive(client) => {
                if let Some(c) = self.clients.get_mut(&client) {
                    c.last_seen = Instant::now();
                    c.awaiting_pong = false;
                }
            }
            Event::Left(client) => self.left(client),
            Event::Rejected => self.counters.rejected_connections += 1,
            Event::Publish { publication, reply } => {
                let delivered = self.publish(&publication);
                if let Some(reply) = reply {
                    // A fresh one-slot channel: never full, never blocks.
                    let _ = reply.try_send(delivered);
                }
            }
            Event::Disconnect { client, reply } => {
                let found = self.names.get(client.as_str()).copied();
                if let Some(id) = found {
                    self.close(id, Close::Normal, Urgency::Graceful);
                }
                let _ = reply.try_send(found.is_some());
            }
            Event::Stats { clients, reply } => {
                let _ = reply.try_send(self.stats(clients));
            }
            Event::Shutdown => self.shutdown(),
        }
    }

    fn join(&mut self, joining: Joining) {
        let now = Instant::now();
        let user_connections = joining
            .identity
            .user_id
            .as_deref()
            .map_or(0, |u| self.users.count(u));
        let address = joining.peer.ip().to_canonical();
        let address_limited = self.config.max_connections_per_ip > 0
            && !self
                .config
                .trusted_proxies
                .iter()
                .any(|p| p.to_canonical() == address);
        let address_connections = self.addresses.get(&address).copied().unwrap_or(0);
        let refusal = if self.stopping.is_some() {
            Some(Close::GoingAway)
        } else if self.clients.len() >= self.config.max_connections {
            Some(Close::ServerFull)
        } else if user_connections >= self.config.max_connections_per_user {
            Some(Close::UserFull)
        } else if address_limited && address_connections >= self.config.max_connections_per_ip {
            Some(Close::AddressFull)
        } else {
            None
        };
        if let Some(close) = refusal {
            self.counters.rejected_connections += 1;
            log::warn!(
                "refused {} from {}: {}",
                joining.name,
                joining.peer,
                close.reason()
            );
            let _ = joining.outbound.send(Outbound::Close(close.frame()));
            self.closing.push(Closing {
                deadline: now + self.config.close_timeout,
                stream: Arc::downgrade(&joining.stream),
            });
            return;
        }

        let id = joining.id;
        let user = joining.identity.user_id.clone();
        let mut client = Client {
            name: joining.name.into(),
            peer: joining.peer,
            identity: joining.identity,
            channels: Vec::new(),
            sessions: Vec::new(),
            outbound: joining.outbound,
            queued_bytes: joining.queued_bytes,
            control: joining.control,
            stream: Arc::downgrade(&joining.stream),
            last_seen: now,
            next_ping: now + self.config.heartbeat_interval,
            awaiting_pong: false,
            rate: RateLimiter::new(self.config.rate_limit, self.config.rate_window, now),
            slow: false,
        };
        // The session asked for in the query, if this client may use it.
        let mut session_refused = None;
        if let Some(session) = joining.session_id {
            if !client.identity.sees_private_events() {
                session_refused = Some(format!("Anonymous clients cannot join session {session}"));
            } else {
                let max_owned = self.config.max_sessions_per_user;
                match self
                    .sessions
                    .join(&session, id, client.session_owner(), max_owned)
                {
                    Ok(_) => client.sessions.push(session.into()),
                    Err(refused) => {
                        session_refused = Some(session_refusal(refused, &session, max_owned).1)
                    }
                }
            }
        }
        let welcome = Envelope::new(
            Kind::Connection.as_str(),
            Some(Welcome {
                client_id: &client.name,
                user_id: user.as_deref(),
                session_id: client.sessions.first().map(|s| &**s),
                authenticated: client.identity.authenticated(),
                heartbeat_ms: self.config.heartbeat_interval.as_millis() as u64,
            }),
        )
        .encode();
        log::info!(
            "client {} connected from {}{} ({} connected)",
            client.name,
            client.peer,
            user.as_deref()
                .map(|u| format!(" as user {u:?}"))
                .unwrap_or_default(),
            self.clients.len() + 1
        );
        self.names.insert(client.name.clone(), id);
        *self.addresses.entry(address).or_default() += 1;
        self.clients.insert(id, client);
        self.counters.total_connections += 1;
        self.send(id, welcome);
        if let Some(message) = session_refused {
            self.error(id, ErrorCode::Forbidden, &message, None);
        }

        if let Some(user) = user {
            let first = self.users.count(&user) == 0;
            self.users.add(&user, id);
            // Back within the grace period: the others never saw it leave.
            let returning = self.pending_offline.remove(user.as_str()).is_some();
            if first && !returning {
                self.presence.insert(user.as_str().into(), Status::Online);
                self.broadcast_presence(&user, Status::Online);
            }
        }
    }

    /// A user's last connection is gone (and its grace period over).
    fn went_offline(&mut self, user: &str) {
        self.presence.remove(user);
        self.broadcast_presence(user, Status::Offline);
    }

    /// Notes that a client sent a message and applies its rate limit.
    /// `false` when the message must not be handled (the client is gone, or
    /// over its limit and told so).
    fn admit(&mut self, id: ClientId, correlation: Option<&RawValue>) -> bool {
        let Some(client) = self.clients.get_mut(&id) else {
            return false;
        };
        let now = Instant::now();
        client.last_seen = now;
        client.awaiting_pong = false;
        self.counters.messages_received += 1;
        self.last_activity = Some(SystemTime::now());
        let verdict = client
            .rate
            .as_mut()
            .map_or(Verdict::Allowed, |rate| rate.check(now));
        match verdict {
            Verdict::Allowed => return true,
            Verdict::Limited => {
                self.counters.rate_limited += 1;
                let message = format!(
                    "Rate limit exceeded: at most {} messages per {:?}",
                    self.config.rate_limit, self.config.rate_window
                );
                self.error(id, ErrorCode::RateLimited, &message, correlation);
            }
            Verdict::Abusive => {
                self.counters.rate_limited += 1;
                log::warn!(
                    "client {} keeps exceeding its rate limit: closing it with 1008",
                    client.name
                );
                self.close(id, Close::Abuse, Urgency::Abort);
            }
        }
        false
    }

    fn dispatch(&mut self, id: ClientId, message: ClientMessage, correlation: Option<&RawValue>) {
        match message {
            ClientMessage::Ping => self.reply(id, Kind::Pong, None, None::<Empty>, correlation),
            ClientMessage::Subscribe(topic) => self.subscribe(id, topic, correlation),
            ClientMessage::Unsubscribe(topic) => self.unsubscribe(id, topic, correlation),
            ClientMessage::Publish { topic, event, data } => {
                self.client_publish(id, &topic, &event, data.as_deref(), correlation)
            }
            ClientMessage::Presence(status) => self.set_presence(id, status, correlation),
            ClientMessage::PresenceQuery => self.presence_query(id, correlation),
            ClientMessage::Refresh { token } => self.refresh(id, &token, correlation),
            ClientMessage::Application { kind } => self.error(
                id,
                ErrorCode::UnknownType,
                &format!("Unknown message type: {kind}"),
                correlation,
            ),
        }
    }

    fn subscribe(&mut self, id: ClientId, topic: Topic, correlation: Option<&RawValue>) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let held = client.channels.len() + client.sessions.len();
        let refusal = match &topic {
            Topic::Channel(name) if client.channels.iter().any(|c| **c == **name) => None,
            Topic::Session(session) if client.sessions.iter().any(|s| **s == **session) => None,
            _ if held >= self.config.max_subscriptions => Some((
                ErrorCode::TooManySubscriptions,
                format!(
                    "At most {} subscriptions per client",
                    self.config.max_subscriptions
                ),
            )),
            Topic::Channel(name) if !client.identity.may_read_channel(name) => Some((
                ErrorCode::Forbidden,
                format!("Not allowed to subscribe to channel {name}"),
            )),
            Topic::Channel(name) => {
                self.channels.add(name, id);
                client.channels.push(name.as_str().into());
                None
            }
            Topic::Session(_) if !client.identity.sees_private_events() => Some((
                ErrorCode::Forbidden,
                "Anonymous clients cannot subscribe to sessions".to_owned(),
            )),
            Topic::Session(session) => {
                let max_owned = self.config.max_sessions_per_user;
                match self
                    .sessions
                    .join(session, id, client.session_owner(), max_owned)
                {
                    Ok(_) => {
                        client.sessions.push(session.as_str().into());
                        None
                    }
                    Err(refused) => Some(session_refusal(refused, session, max_owned)),
                }
            }
        };
        match refusal {
            Some((code, message)) => self.error(id, code, &message, correlation),
            None => self.reply(
                id,
                Kind::Subscribed,
                Some(&topic),
                Some(Empty {}),
                correlation,
            ),
        }
    }

    fn unsubscribe(&mut self, id: ClientId, topic: Option<Topic>, correlation: Option<&RawValue>) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let now = Instant::now();
        match &topic {
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
        self.reply(
            id,
            Kind::Unsubscribed,
            topic.as_ref(),
            Some(Empty {}),
            correlation,
        );
    }

    /// Replaces the client's token with a newer one for the same user.
    fn refresh(&mut self, id: ClientId, token: &str, correlation: Option<&RawValue>) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        if !self.auth.client_auth() {
            let message = "Token refresh needs token auth (--tokens or --jwt-secret)";
            return self.error(id, ErrorCode::Forbidden, message, correlation);
        }
        let identity = match self.auth.verify(token, SystemTime::now()) {
            Ok(identity) => identity,
            Err(denied) => {
                return self.error(
                    id,
                    ErrorCode::Unauthorized,
                    &denied.to_string(),
                    correlation,
                );
            }
        };
        if identity.user_id != client.identity.user_id {
            let message = "The new token is for another user";
            return self.error(id, ErrorCode::Forbidden, message, correlation);
        }
        client.identity = identity;
        // Channels the new token no longer allows are left.
        let (kept, lost): (Vec<Box<str>>, Vec<Box<str>>) = std::mem::take(&mut client.channels)
            .into_iter()
            .partition(|c| client.identity.may_read_channel(c));
        client.channels = kept;
        for channel in &lost {
            self.channels.remove(channel, id);
        }
        // Sessions are checked again too: a token that lost admin rights
        // keeps only its own (and claims the ones nobody owns).
        let owner = client.session_owner().map(str::to_owned);
        let max_owned = self.config.max_sessions_per_user;
        let (kept, lost_sessions): (Vec<Box<str>>, Vec<Box<str>>) =
            std::mem::take(&mut client.sessions)
                .into_iter()
                .partition(|s| {
                    self.sessions
                        .join(s, id, owner.as_deref(), max_owned)
                        .is_ok()
                });
        client.sessions = kept;
        let now = Instant::now();
        for session in &lost_sessions {
            self.sessions.leave(session, id, now);
        }
        let lost = lost.into_iter().map(|c| Topic::Channel(c.into()));
        let lost_sessions = lost_sessions.into_iter().map(|s| Topic::Session(s.into()));
        for topic in lost.chain(lost_sessions) {
            self.reply(id, Kind::Unsubscribed, Some(&topic), Some(Empty {}), None);
        }
        self.reply(id, Kind::Ack, None, None::<Empty>, correlation);
    }

    fn client_publish(
        &mut self,
        id: ClientId,
        topic: &Topic,
        event: &str,
        data: Option<&RawValue>,
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
        let allowed = match topic {
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
        let frame = Envelope::new(event, data)
            .topic(Some(topic))
            .from(protocol::From {
                client_id: &client.name,
                user_id: client.identity.user_id.as_deref(),
            })
            .encode();
        let delivered = match topic {
            Topic::Channel(name) => self.fan_out(Audience::Channel(name), &frame),
            Topic::Session(session) => self.fan_out(Audience::Session(session), &frame),
        };
        if correlation.is_some() {
            self.reply(
                id,
                Kind::Published,
                Some(topic),
                Some(Delivered { delivered }),
                correlation,
            );
        }
    }

    fn set_presence(&mut self, id: ClientId, status: Status, correlation: Option<&RawValue>) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let Some(user) = client.identity.user_id.clone() else {
            let message = "Presence needs a user: connect with ?userId= or a token";
            return self.error(id, ErrorCode::Forbidden, message, correlation);
        };
        self.presence.insert(user.as_str().into(), status);
        self.broadcast_presence(&user, status);
        if correlation.is_some() {
            self.reply(id, Kind::Ack, None, None::<Empty>, correlation);
        }
    }

    fn presence_query(&mut self, id: ClientId, correlation: Option<&RawValue>) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        if !client.identity.sees_private_events() {
            let message = "Anonymous clients cannot see presence";
            return self.error(id, ErrorCode::Forbidden, message, correlation);
        }
        let mut users: Vec<PresenceData<'_>> = self
            .presence
            .iter()
            .map(|(user, status)| PresenceData {
                user_id: user,
                status: *status,
            })
            .collect();
        users.sort_by(|a, b| a.user_id.cmp(b.user_id));
        let frame = Envelope::new(Kind::Presence.as_str(), Some(PresenceList { users }))
            .correlation(correlation)
            .encode();
        self.send(id, frame);
    }

    fn broadcast_presence(&mut self, user: &str, status: Status) {
        let frame = Envelope::new(
            Kind::UserPresence.as_str(),
            Some(PresenceData {
                user_id: user,
                status,
            }),
        )
        .encode();
        self.fan_out(Audience::Trusted, &frame);
    }

    fn refused(&mut self, id: ClientId, why: Refusal) {
        // A refusal that closes is final: the reader has stopped, so it must
        // not be lost to the rate limit. A binary frame is a message like any.
        let handled = match why.closes() {
            true => self.clients.contains_key(&id),
            false => self.admit(id, None),
        };
        if !handled {
            return;
        }
        match why {
            Refusal::Binary => self.error(
                id,
                ErrorCode::UnsupportedFrame,
                "Binary frames are not supported: send JSON in text frames",
                None,
            ),
            Refusal::TooBig => {
                let message = format!("Message larger than {} bytes", self.config.max_message_size);
                self.error(id, ErrorCode::PayloadTooLarge, &message, None);
                self.close(id, Close::TooBig, Urgency::Graceful);
            }
            Refusal::InvalidUtf8 => {
                self.error(
                    id,
                    ErrorCode::InvalidMessage,
                    "Text frame is not valid UTF-8",
                    None,
                );
                self.close(id, Close::InvalidUtf8, Urgency::Graceful);
            }
            Refusal::Protocol => self.close(id, Close::Protocol, Urgency::Graceful),
            Refusal::ControlFlood => {
                self.counters.rate_limited += 1;
                if let Some(client) = self.clients.get(&id) {
                    log::warn!(
                        "client {} floods Pings or Pongs: closing it with 1008",
                        client.name
                    );
                }
                self.close(id, Close::Abuse, Urgency::Graceful);
            }
        }
    }

    fn left(&mut self, id: ClientId) {
        if let Some(client) = self.detach(id) {
            log::info!(
                "client {} disconnected ({} connected)",
                client.name,
                self.clients.len()
            );
            // The writer may still be answering the client's Close, or be
            // stuck writing to a client that stopped reading: give it
            // `close_timeout`, then cut.
            self.closing.push(Closing {
                deadline: Instant::now() + self.config.close_timeout,
                stream: client.stream,
            });
        }
    }

    fn publish(&mut self, publication: &Publication) -> usize {
        let frame = &publication.frame;
        match &publication.target {
            Target::Broadcast => self.fan_out(Audience::All, frame),
            Target::Channel(name) => self.fan_out(Audience::Channel(name), frame),
            Target::Session(id) => self.fan_out(Audience::Session(id), frame),
            Target::User(id) => self.fan_out(Audience::User(id), frame),
            Target::Client(name) => self.fan_out(Audience::Client(name), frame),
            Target::Filter(filter) => self.fan_out(Audience::Filter(filter), frame),
        }
    }

    /// Offers one encoded frame to every client of `audience`, sharing the
    /// bytes. Clients whose queue is full are closed afterwards; the count is
    /// of clients the frame was queued for.
    fn fan_out(&mut self, audience: Audience<'_>, frame: &Bytes) -> usize {
        let limits = self.limits();
        let clients = &self.clients;
        let mut delivered = 0;
        let mut slow = Vec::new();
        let mut offer = |id: ClientId| {
            if let Some(client) = clients.get(&id) {
                match client.offer(frame.clone(), limits) {
                    Push::Queued => delivered += 1,
                    Push::Slow => slow.push(id),
                    Push::Gone => {}
                }
            }
        };
        match audience {
            Audience::All => clients.keys().copied().for_each(&mut offer),
            Audience::Channel(name) => self.channels.members(name).for_each(&mut offer),
            Audience::Session(name) => self.sessions.members(name).for_each(&mut offer),
            Audience::User(name) => self.users.members(name).for_each(&mut offer),
            Audience::Client(name) => self
                .names
                .get(name)
                .copied()
                .into_iter()
                .for_each(&mut offer),
            Audience::Trusted => clients
                .iter()
                .filter(|(_, c)| c.identity.sees_private_events())
                .for_each(|(id, _)| offer(*id)),
            Audience::Filter(filter) => {
                let mut panicked = false;
                for (id, client) in clients {
                    // The application's code, on the router thread: a panic
                    // in it must not take the hub down.
                    let accepted =
                        panic::catch_unwind(AssertUnwindSafe(|| (filter.0)(&client.as_ref())));
                    match accepted {
                        Ok(true) => offer(*id),
                        Ok(false) => {}
                        Err(_) => panicked = true,
                    }
                }
                if panicked {
                    log::error!(
                        "a publish filter panicked; the clients it panicked on were skipped"
                    );
                }
            }
        }
        self.counters.messages_sent += delivered as u64;
        if delivered > 0 {
            self.last_activity = Some(SystemTime::now());
        }
        for id in slow {
            self.mark_slow(id);
        }
        delivered
    }

    /// Puts a client on the list of slow consumers to close after this event.
    fn mark_slow(&mut self, id: ClientId) {
        if let Some(client) = self.clients.get_mut(&id)
            && !client.slow
        {
            client.slow = true;
            self.slow.push(id);
        }
    }

    fn limits(&self) -> QueueLimits {
        QueueLimits {
            messages: self.config.max_queue,
            bytes: self.config.max_queue_bytes,
        }
    }

    /// Sends one encoded frame to one client.
    fn send(&mut self, id: ClientId, frame: Bytes) {
        let limits = self.limits();
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        match client.offer(frame, limits) {
            Push::Queued => {
                self.counters.messages_sent += 1;
                self.last_activity = Some(SystemTime::now());
            }
            Push::Slow => self.mark_slow(id),
            Push::Gone => {}
        }
    }

    fn reply<D: Serialize>(
        &mut self,
        id: ClientId,
        kind: Kind,
        topic: Option<&Topic>,
        data: Option<D>,
        correlation: Option<&RawValue>,
    ) {
        let frame = Envelope::new(kind.as_str(), data)
            .topic(topic)
            .correlation(correlation)
            .encode();
        self.send(id, frame);
    }

    fn error(
        &mut self,
        id: ClientId,
        code: ErrorCode,
        message: &str,
        correlation: Option<&RawValue>,
    ) {
        self.counters.errors_sent += 1;
        log::debug!("error {code} to client {id:?}: {message}");
        self.send(id, protocol::error_frame(code, message, correlation));
    }

    fn slow_consumer(&mut self, id: ClientId) {
        if let Some(client) = self.clients.get(&id) {
            log::warn!(
                "client {} is too slow ({} messages queued): closing it with 1013",
                client.name,
                client.outbound.len()
            );
            self.counters.slow_consumers += 1;
        }
        self.close(id, Close::TooSlow, Urgency::Abort);
    }

    /// Forgets a client and sends it a Close; its socket is cut if the close
    /// handshake is not over within `close_timeout`.
    fn close(&mut self, id: ClientId, close: Close, urgency: Urgency) {
        let Some(client) = self.detach(id) else {
            return;
        };
        log::debug!(
            "closing client {} with {} {}",
            client.name,
            close.code(),
            close.reason()
        );
        let frame = close.frame();
        let queued = match urgency {
            Urgency::Graceful => client.outbound.send(Outbound::Close(frame)).is_ok(),
            Urgency::Abort => client.control.try_send(Control::Abort(frame)).is_ok(),
        };
        if !queued {
            cut(&client.stream);
            return;
        }
        self.closing.push(Closing {
            deadline: Instant::now() + self.config.close_timeout,
            stream: client.stream,
        });
    }

    /// Forgets a client and cuts its socket at once.
    fn terminate(&mut self, id: ClientId) {
        if let Some(client) = self.detach(id) {
            cut(&client.stream);
        }
    }

    /// Removes a client from every index; tells the others when its user has
    /// no connection left.
    fn detach(&mut self, id: ClientId) -> Option<Client> {
        let client = self.clients.remove(&id)?;
        self.names.remove(&client.name);
        let address = client.peer.ip().to_canonical();
        if let Some(count) = self.addresses.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                self.addresses.remove(&address);
            }
        }
        for channel in &client.channels {
            self.channels.remove(channel, id);
        }
        let now = Instant::now();
        for session in &client.sessions {
            self.sessions.leave(session, id, now);
        }
        if let Some(user) = &client.identity.user_id {
            self.users.remove(user, id);
            if self.users.count(user) == 0 {
                let grace = self.config.presence_grace;
                if self.stopping.is_some() {
                    self.presence.remove(user.as_str());
                } else if grace.is_zero() {
                    self.went_offline(user);
                } else {
                    // Offline only if not back within the grace period: a
                    // page reload is not news, and churn costs nobody else.
                    self.pending_offline
                        .insert(user.as_str().into(), now + grace);
                }
            }
        }
        Some(client)
    }

    fn tick(&mut self, now: Instant) {
        let timeout = self.config.client_timeout;
        let heartbeat = self.config.heartbeat_interval;
        let limits = self.limits();
        let wall = SystemTime::now();
        let mut stale = Vec::new();
        let mut slow = Vec::new();
        let mut expired = Vec::new();
        // One pass over every client per tick.
        for (id, client) in &mut self.clients {
            if now.saturating_duration_since(client.last_seen) >= timeout {
                stale.push(*id);
            } else if client.identity.expires_at.is_some_and(|at| at <= wall) {
                expired.push(*id);
            } else if now >= client.next_ping {
                if let Push::Slow = client.offer(protocol::ping_frame(), limits) {
                    slow.push(*id);
                }
                client.next_ping = now + heartbeat;
                client.awaiting_pong = true;
            }
        }
        for id in stale {
            if let Some(client) = self.clients.get(&id) {
                log::warn!(
                    "client {} sent nothing for {:.1?}: terminating it",
                    client.name,
                    now.saturating_duration_since(client.last_seen)
                );
            }
            self.counters.stale_clients += 1;
            self.terminate(id);
        }
        for id in slow {
            self.mark_slow(id);
        }
        for id in expired {
            let message =
                "Token expired: reconnect with a fresh token, or send refresh before it expires";
            self.error(id, ErrorCode::TokenExpired, message, None);
            self.close(id, Close::TokenExpired, Urgency::Graceful);
        }
        if now >= self.next_sweep {
            self.sessions.sweep(now, self.config.session_retention);
            self.next_sweep = now + SESSION_SWEEP;
        }
        let gone: Vec<Box<str>> = self
            .pending_offline
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(user, _)| user.clone())
            .collect();
        for user in gone {
            self.pending_offline.remove(&user);
            self.went_offline(&user);
        }
        self.closing.retain(|closing| {
            if closing.deadline <= now {
                closing.cut();
                return false;
            }
            closing.is_open()
        });
    }

    fn shutdown(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        log::info!(
            "shutting down: closing {} clients with 1001",
            self.clients.len()
        );
        self.stopping = Some(Instant::now() + self.config.shutdown_timeout);
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            self.close(id, Close::GoingAway, Urgency::Graceful);
        }
    }

    /// On the way out: cut every socket still open.
    fn cut_everyone(&mut self) {
        for closing in self.closing.drain(..) {
            closing.cut();
        }
        for client in self.clients.values() {
            cut(&client.stream);
        }
    }

    fn stats(&self, with_clients: bool) -> Stats {
        let clients = if with_clients {
            self.clients
                .values()
                .map(|c| ClientStats {
                    id: c.name.to_string(),
                    user_id: c.identity.user_id.clone(),
                    session_id: c.sessions.first().map(|s| s.to_string()),
                    is_alive: !c.awaiting_pong,
                    authenticated: c.identity.authenticated(),
                    channels: c.channels.iter().map(|s| s.to_string()).collect(),
                    sessions: c.sessions.iter().map(|s| s.to_string()).collect(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let c = &self.counters;
        Stats {
            total_connections: c.total_connections,
            active_connections: self.clients.len(),
            authenticated_connections: self
                .clients
                .values()
                .filter(|c| c.identity.authenticated())
                .count(),
            messages_received: c.messages_received,
            messages_sent: c.messages_sent,
            slow_consumers: c.slow_consumers,
            stale_clients: c.stale_clients,
            rejected_connections: c.rejected_connections,
            rate_limited: c.rate_limited,
            errors_sent: c.errors_sent,
            channels: self.channels.len(),
            sessions: self.sessions.len(),
            users: self.users.len(),
            threads: self.threads.live(),
            thread_limit: self.threads.most(),
            uptime: self.started.elapsed(),
            last_activity: self.last_activity,
            clients,
        }
    }
}

/// However the router thread ends (shutdown, the last sender gone, or a
/// panic unwinding), no client stays connected to a hub that no longer routes.
impl Drop for Router {
    fn drop(&mut self) {
        self.cut_everyone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscriptions::ClientId;
    use std::net::TcpListener;

    /// A router fed by hand, on the test's thread.
    fn router(config: Config) -> Router {
        let config = Arc::new(config);
        let auth = Arc::new(Authenticator::new(&config));
        let (_, events) = crossbeam_channel::unbounded();
        Router::new(
            config,
            auth,
            Threads::new(100),
            events,
            crossbeam_channel::never(),
        )
    }

    /// One loopback socket for every fake client (the router only ever cuts it).
    fn socket() -> Arc<TcpStream> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Arc::new(TcpStream::connect(listener.local_addr().unwrap()).unwrap())
    }

    /// Joins a client whose writer is the returned receiver.
    fn join(
        router: &mut Router,
        stream: &Arc<TcpStream>,
        n: u64,
    ) -> (Receiver<Outbound>, Receiver<Control>) {
        let (outbound, outbound_rx) = crossbeam_channel::unbounded();
        let (control, control_rx) = crossbeam_channel::bounded(16);
        router.handle(Event::Joined(Box::new(Joining {
            id: ClientId(n),
            name: format!("c{n}"),
            peer: "127.0.0.1:1".parse().unwrap(),
            identity: Identity::open(Some(format!("user-{n}"))),
            session_id: None,
            stream: Arc::clone(stream),
            outbound,
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            control,
        })));
        router.close_slow_consumers();
        (outbound_rx, control_rx)
    }

    fn broadcast(router: &mut Router) -> usize {
        let publication = Publication::new(Target::Broadcast, "event", None).unwrap();
        let delivered = router.publish(&publication);
        router.close_slow_consumers();
        delivered
    }

    #[test]
    fn a_wave_of_slow_consumers_closes_without_recursing() {
        const CLIENTS: u64 = 3000;
        let mut router = router(Config {
            max_queue: 4,
            ..Config::default()
        });
        let stream = socket();
        let mut writers = Vec::new();
        for n in 0..CLIENTS {
            writers.push(join(&mut router, &stream, n));
            // Healthy writers while everyone joins: drain the queues.
            for (outbound, _) in &writers {
                while outbound.try_recv().is_ok() {}
            }
        }
        // Then nobody reads: four broadcasts fill every queue...
        for _ in 0..4 {
            assert_eq!(broadcast(&mut router), CLIENTS as usize);
        }
        // ...and the fifth finds every client slow at once. Each close tells
        // the others its user went offline, which finds them slow again.
        assert_eq!(broadcast(&mut router), 0);
        assert!(router.clients.is_empty());
        assert_eq!(router.counters.slow_consumers, CLIENTS);
        assert_eq!(router.users.len(), 0);
        // Every writer was told to close at once (ahead of its queue).
        for (_, control) in &writers {
            assert!(matches!(control.try_recv(), Ok(Control::Abort(_))));
        }
    }

    #[test]
    fn a_panicking_filter_skips_its_clients_and_the_router_carries_on() {
        let mut router = router(Config::default());
        let stream = socket();
        let writers: Vec<_> = (0..3).map(|n| join(&mut router, &stream, n)).collect();
        let filter = Filter::new(|c| {
            if c.id() == "c1" {
                panic!("application bug")
            } else {
                true
            }
        });
        let publication = Publication::new(Target::Filter(filter), "event", None).unwrap();
        assert_eq!(router.publish(&publication), 2);
        assert_eq!(broadcast(&mut router), 3);
        drop(writers);
    }
}
