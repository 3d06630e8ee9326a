//! The router thread: the only owner of the hub's state (clients, channels,
//! sessions, users, presence, counters), so there are no locks around it.
//!
//! It reads its lanes (see [`crate::inbox`]) in priority order: control
//! (shutdown) first, then the timer's tick, then work (client requests and
//! the API) in bounded batches, so shutdown and liveness always get in.
//! Each input is handled in one `match` arm of [`Router::handle`]: a
//! breakpoint there sees everything the hub does. After each batch the
//! router hands the links it queued frames for to the writer pool, once per
//! writer (see [`delivery`]).
//!
//! It never blocks on a client: a frame goes into a client's queue after a
//! limit check, and a client over its limits is closed (1013) instead of
//! waited for.
//!
//! It ends on [`Input::Shutdown`], after closing every client with 1001 and
//! waiting up to `shutdown_timeout` for them to go, or when every sender of
//! its lanes is gone. What is queued for a client goes out before its
//! Close for at most [`SHUTDOWN_FLUSH`]; what is still queued then is
//! dropped, so the Close reaches even a slow reader in time. However it
//! ends, it cuts every socket still open and stops the writers.
//!
//! The `impl Router` blocks, by concern: [`clients`] (join, leave, close),
//! [`delivery`] (queues, fan-out, slow consumers, hand-off to writers),
//! [`batches`] (batched publications), [`publishing`] (Redis or here,
//! idempotency keys, answers to publishers), [`topics`] (subscribe,
//! unsubscribe, sessions, publishing from clients), [`replay`] (numbering,
//! a subscription's position, catching up), [`presence`] (statuses and
//! their broadcasts), [`app`] (application requests, service connections),
//! [`control`] (server-side subscribe, close, metadata, listings),
//! [`cluster`] (the other hubs, through Redis), [`console`] (the
//! analytics' second and the dashboards' stream).

mod app;
mod batches;
mod clients;
mod cluster;
mod console;
mod control;
mod delivery;
mod presence;
mod publishing;
mod replay;
mod topics;

#[cfg(test)]
mod harness;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{TryRecvError, select};
use serde_json::value::RawValue;

use crossbeam_channel::Sender;

use crate::analytics::{Analytics, Meters};
use crate::app::ClientRequest;
use crate::auth::{Authenticator, Identity};
use crate::budget::{HandshakeSlot, Threads};
use crate::command::{Answer, Command};
use crate::config::Config;
use crate::handle::Handle;
use crate::history::Store;
use crate::inbox::{Input, Lanes};
use crate::link::{self, Link};
use crate::protocol::{
    ClientMessage, Close, Empty, Envelope, ErrorCode, Kind, Message, Rejection, Request, raw,
};
use crate::publish::ClientRef;
use crate::stats::{ClientStats, Counters, Stats};
use crate::subscriptions::{ClientId, IdMap, IdSet, Index, Sessions};
use crate::throttle::warn_throttled;
use crate::websocket::SharedFrame;
use crate::writer::Outlet;

use app::{AppQueue, Services};
use batches::Batches;
use delivery::Delivery;
use presence::Presence;

/// While a paced replay is under way, how often its clients' queues are
/// looked at for room.
const REPLAY_POLL: Duration = Duration::from_millis(1);

/// How often expired history and unused streams are dropped.
const HISTORY_SWEEP: Duration = Duration::from_secs(1);

/// How often vacant sessions' owners are looked at for expiry.
const SESSION_SWEEP: Duration = Duration::from_secs(10);

/// A gap between two ticks longer than this many tick periods (and a
/// second more) means the hub itself did not run: a debugger held it, it
/// was stopped (SIGSTOP), or starved of CPU. Its clients could not be
/// heard meanwhile, so their silence is counted from the end of the gap.
const STALL_TICKS: u32 = 3;

/// While shutting down, how often to look whether every connection is done.
const SHUTDOWN_POLL: Duration = Duration::from_millis(10);

/// At shutdown, the longest what is queued for a client may hold up its
/// Close 1001 (at most half of `shutdown_timeout`); what is still queued
/// then is dropped, and the client resumes with `since`.
pub(crate) const SHUTDOWN_FLUSH: Duration = Duration::from_secs(1);

/// Most work inputs handled before the control lane and the timer are
/// looked at again and the writers are handed what was queued.
const BATCH: usize = 256;

/// The longest a batch may take (looked at every [`BATCH_CHECK`] inputs).
const BATCH_TIME: Duration = Duration::from_millis(5);
const BATCH_CHECK: usize = 16;

/// One connected client, as the router knows it.
struct Client {
    name: Box<str>,
    peer: SocketAddr,
    identity: Identity,
    channels: Vec<Box<str>>,
    sessions: Vec<Box<str>>,
    link: Arc<Link>,
    next_ping: Instant,
    /// [`link::clock`] when the last Ping was queued, if one was.
    pinged_at: Option<u64>,
    /// [`link::clock`] when the first Ping the client has not answered was
    /// queued (when it went out is the link's [`Link::ping_sent`]).
    unanswered: Option<u64>,
    /// When the client was last heard from, as the router last read it off
    /// the link ([`Link::heard`], which its reader stamps): never later
    /// than the truth, so a recent one spares the tick reading the link.
    heard: u64,
    /// Already on the router's list of slow consumers to close.
    slow: bool,
    /// Key/values about the client: its token's `meta`, and what the
    /// backend set.
    meta: serde_json::Map<String, serde_json::Value>,
    /// Requests of this client that a service connection owes an answer.
    pending: usize,
    /// How its messages look on the wire.
    envelope: Envelope,
    /// Streams it is catching up on (see [`replay`]).
    replays: Vec<replay::Replaying>,
    /// A dashboard's connection (see [`console`]).
    console: bool,
    /// When it was admitted.
    since: SystemTime,
}

impl Client {
    fn as_ref(&self) -> ClientRef<'_> {
        ClientRef {
            id: &self.name,
            user_id: self.identity.user_id.as_deref(),
            authenticated: self.identity.authenticated(),
            channels: &self.channels,
            sessions: &self.sessions,
            meta: &self.meta,
        }
    }

    /// The client as stats and listings show it.
    fn stats(&self) -> ClientStats {
        ClientStats {
            id: self.name.to_string(),
            user_id: self.identity.user_id.clone(),
            session_id: self.sessions.first().map(|s| s.to_string()),
            is_alive: self.is_alive(),
            authenticated: self.identity.authenticated(),
            channels: self.channels.iter().map(|s| s.to_string()).collect(),
            sessions: self.sessions.iter().map(|s| s.to_string()).collect(),
            meta: self.meta.clone(),
            service: self.identity.is_service() && !self.console,
        }
    }

    /// Whether the client may be sent `stream` now: it is subscribed to the
    /// channel or the session, or the stream is its user's (a service may
    /// follow any user's). Checked again wherever a decision made earlier
    /// (a catch-up, publications held for it) would send it something.
    fn follows(&self, stream: &crate::history::StreamKey) -> bool {
        use crate::history::StreamKey;
        match stream {
            StreamKey::Channel(name) => self.channels.iter().any(|c| **c == **name),
            StreamKey::Session(id) => self.sessions.iter().any(|s| **s == **id),
            StreamKey::User(user) => {
                self.identity.is_service() || self.identity.user_id.as_deref() == Some(&**user)
            }
        }
    }

    /// The user whose sessions this client opens, when ownership applies.
    fn session_owner(&self) -> Option<&str> {
        match self.identity.owns_sessions() {
            true => self.identity.user_id.as_deref(),
            false => None,
        }
    }

    /// Whether the client answered the last Ping (or was heard from since).
    fn is_alive(&self) -> bool {
        self.pinged_at.is_none_or(|at| self.link.heard() >= at)
    }
}

/// A connection the router has closed and forgotten (or refused), whose
/// socket it cuts if the close handshake is not over by `deadline`.
struct Closing {
    deadline: Instant,
    link: Weak<Link>,
    /// A refused client's handshake slot, held until it is gone.
    _handshake: Option<HandshakeSlot>,
}

impl Closing {
    /// Whether the connection's threads still hold it.
    fn is_open(&self) -> bool {
        self.link.strong_count() > 0
    }

    fn cut(&self) {
        if let Some(link) = self.link.upgrade() {
            link.cut();
        }
    }
}

/// How a [`Router::turn`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// It handled work: look again at once.
    Worked,
    /// There was none: wait for some.
    Idle,
    /// The shutdown is complete.
    Done,
}

/// What [`Router::wait`] woke up for.
enum Woke {
    Input(Option<Input>),
    Cluster(Option<crate::cluster::In>),
    Tick(Option<Instant>),
    Nothing,
}

/// The state and the loop of the router thread.
pub(crate) struct Router {
    config: Arc<Config>,
    auth: Arc<Authenticator>,
    threads: Arc<Threads>,
    lanes: Lanes,
    delivery: Delivery,
    clients: IdMap<Client>,
    names: HashMap<Box<str>, ClientId>,
    /// Clients per address, for `max_connections_per_ip`.
    addresses: HashMap<IpAddr, usize>,
    channels: Index,
    sessions: Sessions,
    users: Index,
    presence: Presence,
    batches: Batches,
    /// Every stream's position and recent publications.
    history: Box<dyn Store>,
    /// Clients with a paced replay under way.
    replaying: IdSet,
    next_history_sweep: Instant,
    /// The other hubs, through Redis (`--redis`).
    cluster: Option<cluster::ClusterState>,
    /// The answers to recent idempotency keys.
    recent: crate::idempotency::Recent,
    /// The embedding program's request queue, while it reads it.
    app: Option<AppQueue>,
    services: Services,
    closing: Vec<Closing>,
    /// Slow consumers to close once the current input is handled.
    slow: Vec<ClientId>,
    counters: Counters,
    /// The router's analytics, and what the other threads measure.
    analytics: Analytics,
    meters: Arc<Meters>,
    /// The dashboards connected.
    console: console::Consoles,
    started: Instant,
    last_activity: Option<SystemTime>,
    next_sweep: Instant,
    /// When the last tick was handled, to tell a hub that did not run.
    last_tick: Instant,
    /// [`link::clock`] at the end of the last stall (see [`STALL_TICKS`]):
    /// no client's silence counts from before it.
    resumed: u64,
    /// Set by [`Input::Shutdown`]: when to stop waiting for clients to go.
    stopping: Option<Instant>,
    /// Shutting down: clients already forgotten whose queue goes out before
    /// their Close, until `flush_until`.
    flushing: Vec<Arc<Link>>,
    flush_until: Option<Instant>,
}

impl Router {
    pub(crate) fn new(
        config: Arc<Config>,
        auth: Arc<Authenticator>,
        threads: Arc<Threads>,
        lanes: Lanes,
        writers: Arc<dyn Outlet>,
        app: Option<(Sender<ClientRequest>, Handle)>,
        cluster: Option<crate::cluster::Cluster>,
    ) -> Router {
        let now = Instant::now();
        let meters = Arc::clone(writers.meters());
        Router {
            batches: Batches::default(),
            history: Box::new(crate::history::memory::Memory::new(config.history_limits())),
            replaying: IdSet::default(),
            cluster: cluster.map(|link| cluster::ClusterState::new(link, &config)),
            recent: crate::idempotency::Recent::default(),
            next_history_sweep: now + HISTORY_SWEEP,
            app: app.map(|(sender, handle)| AppQueue { sender, handle }),
            services: Services::default(),
            presence: Presence::new(config.presence_grace),
            delivery: Delivery::new(writers, &config),
            config,
            auth,
            threads,
            lanes,
            clients: IdMap::default(),
            names: HashMap::new(),
            addresses: HashMap::new(),
            channels: Index::default(),
            sessions: Sessions::default(),
            users: Index::default(),
            closing: Vec::new(),
            slow: Vec::new(),
            counters: Counters::default(),
            analytics: Analytics::default(),
            meters,
            console: console::Consoles::default(),
            started: now,
            last_activity: None,
            next_sweep: now + SESSION_SWEEP,
            last_tick: now,
            resumed: 0,
            stopping: None,
            flushing: Vec::new(),
            flush_until: None,
        }
    }

    /// The router thread's loop: a turn, and, when it found no work, a
    /// wait for the next input.
    pub(crate) fn run(mut self) {
        loop {
            match self.turn() {
                Turn::Done => break,
                Turn::Worked => {}
                Turn::Idle => {
                    if !self.wait() {
                        break;
                    }
                }
            }
        }
        log::debug!("router stopped");
    }

    /// One turn of the loop: control, then the tick, then a batch of work,
    /// then the writers are handed what the batch queued.
    fn turn(&mut self) -> Turn {
        // Shutdown never waits behind work.
        while let Ok(input) = self.lanes.control.try_recv() {
            self.handle(input);
        }
        // Nor do heartbeats and deadlines.
        match self.lanes.ticks.try_recv() {
            Ok(now) => self.tick(now),
            // The timer is gone (it only stops after us): stop listening to it.
            Err(TryRecvError::Disconnected) => self.lanes.ticks = crossbeam_channel::never(),
            Err(TryRecvError::Empty) => {}
        }
        if self.stopping.is_some() {
            self.flush_for_shutdown(Instant::now());
        }
        if self.done() {
            return Turn::Done;
        }
        let worked = self.work_batch();
        self.flush_due_batches(Instant::now());
        if !self.replaying.is_empty() {
            self.pump_replays();
        }
        self.end_batch();
        match worked {
            true => Turn::Worked,
            false => Turn::Idle,
        }
    }

    /// Handles up to [`BATCH`] inputs of the work lanes (clients and API,
    /// in turn), for at most [`BATCH_TIME`]. `false` when there was none.
    fn work_batch(&mut self) -> bool {
        let started = Instant::now();
        let mut handled = 0;
        while handled < BATCH {
            let mut got = false;
            if let Ok(input) = self.lanes.clients.try_recv() {
                self.handle(input);
                handled += 1;
                got = true;
            }
            if let Ok(input) = self.lanes.api.try_recv() {
                self.handle(input);
                handled += 1;
                got = true;
            }
            if let Ok(news) = self.lanes.cluster.try_recv() {
                self.handle_cluster(news);
                handled += 1;
                got = true;
            }
            if !got || (handled % BATCH_CHECK == 0 && started.elapsed() >= BATCH_TIME) {
                break;
            }
        }
        handled > 0
    }

    /// After a batch: the writers get what was queued, and readers waiting
    /// for room in the inbox are woken.
    fn end_batch(&mut self) {
        self.delivery.flush();
        self.lanes.budget.wake_waiters();
    }

    /// Blocks until any lane has something (while stopping, at most a few
    /// ms, to look whether every client is gone), and handles it. `false`
    /// when every sender is gone.
    fn wait(&mut self) -> bool {
        let now = Instant::now();
        let batch = self
            .batches
            .next_due()
            .map(|due| due.saturating_duration_since(now));
        let timeout = match self.stopping {
            Some(_) => SHUTDOWN_POLL,
            None => Duration::from_secs(3600),
        }
        .min(batch.unwrap_or(Duration::MAX))
        .min(match self.replaying.is_empty() {
            true => Duration::MAX,
            false => REPLAY_POLL,
        });
        let lanes = &self.lanes;
        let next = select! {
            recv(lanes.control) -> input => Woke::Input(input.ok()),
            recv(lanes.clients) -> input => Woke::Input(input.ok()),
            recv(lanes.api) -> input => Woke::Input(input.ok()),
            recv(lanes.cluster) -> news => Woke::Cluster(news.ok()),
            recv(lanes.ticks) -> tick => Woke::Tick(tick.ok()),
            default(timeout) => Woke::Nothing,
        };
        match next {
            Woke::Input(Some(input)) => self.handle(input),
            // Every lane's senders live in the same `Inbox`: all are gone.
            Woke::Input(None) => return false,
            Woke::Cluster(Some(news)) => self.handle_cluster(news),
            // No cluster threads (no Redis), or they ended: stop listening.
            Woke::Cluster(None) => self.lanes.cluster = crossbeam_channel::never(),
            Woke::Tick(Some(now)) => self.tick(now),
            // The timer is gone (it only stops after us): stop listening to it.
            Woke::Tick(None) => self.lanes.ticks = crossbeam_channel::never(),
            // A batch window ended (the loop flushes it), or a poll while stopping.
            Woke::Nothing => {}
        }
        true
    }

    /// Whether a shutdown is complete: every client gone, or out of time.
    fn done(&mut self) -> bool {
        let Some(deadline) = self.stopping else {
            return false;
        };
        self.closing.retain(Closing::is_open);
        (self.clients.is_empty() && self.flushing.is_empty() && self.closing.is_empty())
            || Instant::now() >= deadline
    }

    /// One input, one arm; then the slow consumers it found.
    fn handle(&mut self, input: Input) {
        match input {
            Input::Joined(joining) => self.join(*joining),
            Input::Request {
                link,
                request,
                cost,
            } => {
                self.request(link.id, request);
                self.lanes.budget.release(&link, cost);
            }
            Input::FrameRefused { link, why } => self.frame_refused(link.id, why),
            Input::HandshakeRefused {
                link,
                frames,
                handshake,
            } => self.refuse_handshake(&link, frames, handshake),
            Input::Left { link, why } => self.left(&link, why),
            Input::Publish {
                publication,
                key,
                reply,
                gate,
                source,
            } => {
                // Given up on before it was taken: nothing is done with it.
                if gate.is_none_or(|gate| gate.take()) {
                    self.analytics.published(source);
                    let key = key.map(|key| publishing::Key {
                        scope: publishing::BACKEND.into(),
                        key,
                    });
                    self.publish(publication, key, publishing::Publisher::Caller(reply));
                }
            }
            Input::Disconnect { client, reply } => {
                let found = self.names.get(client.as_str()).copied();
                if let Some(id) = found {
                    self.close(id, Close::Normal, false);
                    let _ = reply.try_send(true);
                } else {
                    // Another hub's client, maybe.
                    let command = Command::Close {
                        target: crate::Target::Client(client),
                        close: Close::Normal.into(),
                    };
                    if let Some((_, waiter)) =
                        self.route_command(command, cluster::Waiter::Disconnect(reply))
                    {
                        self.answer(waiter, Answer::Done(false));
                    }
                }
            }
            Input::Stats { clients, reply } => {
                let _ = reply.try_send(self.stats(clients));
            }
            Input::History { metric, reply } => {
                let _ = reply.try_send(self.analytics.history(metric));
            }
            Input::Command { command, reply } => {
                if let Some((command, waiter)) =
                    self.route_command(command, cluster::Waiter::Caller(reply))
                {
                    let answer = self.command(command);
                    self.answer(waiter, answer);
                }
            }
            Input::Shutdown => self.shutdown(),
        }
        self.close_slow_consumers();
    }

    /// One message of the cluster lane; then the slow consumers it found.
    fn handle_cluster(&mut self, news: crate::cluster::In) {
        self.cluster_event(news);
        self.close_slow_consumers();
    }

    /// A client's parsed request (or why it could not be parsed).
    fn request(&mut self, id: ClientId, request: Result<Request, Rejection>) {
        if !self.clients.contains_key(&id) {
            return;
        }
        self.counters.messages_received += 1;
        self.last_activity = Some(SystemTime::now());
        match request {
            Ok(Request {
                message,
                correlation_id,
            }) => self.dispatch(id, message, correlation_id.as_deref()),
            Err(rejection) => self.error(
                id,
                rejection.code,
                &rejection.message,
                rejection.correlation_id.as_deref(),
            ),
        }
    }

    fn dispatch(&mut self, id: ClientId, message: ClientMessage, correlation: Option<&RawValue>) {
        self.log_console_action(id, &message);
        match message {
            ClientMessage::Ping => self.reply(id, Kind::Pong, None, None::<Empty>, correlation),
            ClientMessage::Subscribe {
                topic,
                client,
                since,
            } => match client {
                None => self.subscribe(id, topic, since, correlation),
                Some(_) if since.is_some() => {
                    let message = "`since` is for a client's own subscribe, not a service's";
                    self.error(id, ErrorCode::InvalidMessage, message, correlation)
                }
                Some(other) => self.service_command(
                    id,
                    correlation,
                    Command::Subscribe {
                        client: other,
                        topic,
                    },
                ),
            },
            ClientMessage::Unsubscribe { topic, client } => match client {
                None => self.unsubscribe(id, topic, correlation),
                Some(other) => self.service_command(
                    id,
                    correlation,
                    Command::Unsubscribe {
                        client: other,
                        topic,
                    },
                ),
            },
            ClientMessage::Publish {
                to,
                event,
                data,
                batched,
                idempotency_key,
            } => {
                let asked = publishing::Asked {
                    batched,
                    idempotency_key,
                };
                self.client_publish(id, to, event, data, asked, correlation)
            }
            ClientMessage::Presence(status) => self.set_presence(id, status, correlation),
            ClientMessage::PresenceQuery => self.presence_query(id, correlation),
            ClientMessage::Refresh { token } => self.refresh(id, &token, correlation),
            ClientMessage::Send { client, message } => {
                self.service_send(id, &client, message, correlation)
            }
            ClientMessage::Disconnect { who, close } => {
                let target = match who {
                    crate::protocol::Who::Client(client) => crate::Target::Client(client),
                    crate::protocol::Who::User(user) => crate::Target::User(user),
                };
                self.service_command(id, correlation, Command::Close { target, close })
            }
            ClientMessage::SetMeta { client, meta } => {
                self.service_command(id, correlation, Command::SetMeta { client, meta })
            }
            ClientMessage::Subscribers { topic } => {
                let clients = self.subscribers(&topic);
                let list: Vec<_> = clients.iter().map(crate::stats::client_body).collect();
                self.reply(
                    id,
                    Kind::Subscribers,
                    Some(&topic),
                    Some(serde_json::json!({ "clients": list })),
                    correlation,
                );
            }
            ClientMessage::Stats => {
                let body = crate::stats::stats_body(&self.stats(true));
                self.reply(id, Kind::Stats, None, Some(body), correlation);
            }
            ClientMessage::ClientInfo { client } => self.client_info(id, &client, correlation),
            ClientMessage::Application {
                kind,
                data,
                message,
            } => self.application(id, kind, data, message, correlation),
        }
    }

    /// A server-side command from a connection, which must be a service's;
    /// answered `ack` with what it did, or an error.
    fn service_command(&mut self, id: ClientId, correlation: Option<&RawValue>, command: Command) {
        let service = self
            .clients
            .get(&id)
            .is_some_and(|c| c.identity.is_service());
        if !service {
            let message = "Only a service connection may act on other clients";
            return self.error(id, ErrorCode::Forbidden, message, correlation);
        }
        let waiter = cluster::Waiter::Service {
            client: id,
            correlation: correlation.map(RawValue::to_owned),
        };
        // A client of another hub: the answer comes when that hub sends it.
        if let Some((command, waiter)) = self.route_command(command, waiter) {
            let answer = self.command(command);
            self.answer(waiter, answer);
        }
    }

    /// A service connection's command, answered `ack` with what it did.
    fn service_answer(&mut self, id: ClientId, correlation: Option<&RawValue>, answer: Answer) {
        let data = match answer {
            Answer::Done(done) => serde_json::json!({ "done": done }),
            Answer::Count(count) => serde_json::json!({ "count": count }),
            Answer::Clients(_) | Answer::Presence(_) => serde_json::json!({}),
            Answer::Refused(why) => {
                return self.error(id, ErrorCode::Forbidden, &why, correlation);
            }
            Answer::Busy(why) => {
                self.counters.busy += 1;
                return self.error(id, ErrorCode::Busy, &why, correlation);
            }
        };
        self.reply(id, Kind::Ack, None, Some(data), correlation);
    }

    /// Every tick: Pings, silent clients, expired tokens, presence, sessions
    /// and closes that take too long.
    fn tick(&mut self, now: Instant) {
        let heartbeat = self.config.heartbeat_interval;
        let limits = self.delivery.limits(&self.config);
        let clock = link::clock();
        self.note_stall(clock);
        let liveness = Liveness::new(&self.config, clock, self.resumed);
        let wall = SystemTime::now();
        let mut stale = Vec::new();
        let mut slow = Vec::new();
        let mut expired = Vec::new();
        // `--json-heartbeat`: one message per tick, encoded once per envelope.
        let beat = self.config.json_heartbeat.then(|| {
            raw(&serde_json::json!({ "timestamp": crate::protocol::Timestamp::at(wall) }))
        });
        let beat = beat
            .as_deref()
            .map(|data| Message::new(Kind::Heartbeat.as_str(), Some(data)));
        let mut beats: [Option<SharedFrame>; Envelope::COUNT] = Default::default();
        // One pass over every client per tick, over the map alone: a
        // client's link is read only when it is due (a Ping, a silence).
        for (id, client) in &mut self.clients {
            // Readers stamp `heard` themselves: no backlog here can make a
            // healthy client look silent.
            if liveness.is_dead(&client.link, &mut client.heard, client.unanswered) {
                stale.push(*id);
            } else if client.identity.expires_at.is_some_and(|at| at <= wall) {
                expired.push(*id);
            } else if now >= client.next_ping {
                // The first Ping since the client was last heard from is the
                // one its silence is measured from: the link notes when it
                // goes out. The next ones are plain Pings.
                let answered = client.unanswered.is_none_or(|at| client.link.heard() >= at);
                let pushed = match answered {
                    true => {
                        client.unanswered = Some(clock);
                        self.delivery.push_ping(&client.link, limits)
                    }
                    false => {
                        self.delivery
                            .push(&client.link, crate::protocol::ping_frame(), limits)
                    }
                };
                if pushed.is_slow() {
                    slow.push(*id);
                }
                if let Some(beat) = &beat {
                    let frame = beats[client.envelope.index()]
                        .get_or_insert_with(|| SharedFrame::new(beat.encode(client.envelope)));
                    if self
                        .delivery
                        .push_shared(&client.link, frame, limits)
                        .is_slow()
                    {
                        slow.push(*id);
                    }
                }
                client.next_ping = now + heartbeat;
                client.pinged_at = Some(clock);
            }
        }
        for id in stale {
            if let Some(client) = self.clients.get(&id) {
                warn_throttled!(
                    "client {} sent nothing for {:.1?}, not even a Pong to a Ping sent {}: terminating it",
                    client.name,
                    client.link.silent_for(clock),
                    client
                        .link
                        .ping_sent()
                        .map_or("(never sent)".to_owned(), |sent| format!(
                            "{:.1?} ago",
                            Duration::from_millis(clock.saturating_sub(sent))
                        ))
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
            self.close(id, Close::TokenExpired, false);
        }
        self.presence_tick(now);
        if now >= self.next_sweep {
            self.sessions.sweep(now, self.config.session_retention);
            self.next_sweep = now + SESSION_SWEEP;
        }
        self.cluster_tick(now);
        self.console_tick(now);
        if now >= self.next_history_sweep {
            self.sweep_history(now);
            self.next_history_sweep = now + HISTORY_SWEEP;
        }
        self.closing.retain(|closing| {
            if closing.deadline <= now {
                closing.cut();
                return false;
            }
            closing.is_open()
        });
        self.close_slow_consumers();
    }

    /// Notes a tick that came far later than it should have: the hub did
    /// not run meanwhile, so silence counts again from now.
    fn note_stall(&mut self, clock: u64) {
        let now = Instant::now();
        let gap = now.saturating_duration_since(self.last_tick);
        self.last_tick = now;
        if gap > self.config.tick() * STALL_TICKS + Duration::from_secs(1) {
            self.resumed = clock;
            log::warn!(
                "the hub did not run for {gap:.1?} (a debugger, SIGSTOP or a starved CPU): \
                 its clients' silence counts from now"
            );
        }
    }

    fn shutdown(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        log::info!(
            "shutting down: closing {} clients with 1001",
            self.clients.len()
        );
        let now = Instant::now();
        self.stopping = Some(now + self.config.shutdown_timeout);
        self.flush_until = Some(now + SHUTDOWN_FLUSH.min(self.config.shutdown_timeout / 2));
        // Held batches go out first, ahead of every client's Close.
        self.flush_all_batches();
        let ids: Vec<ClientId> = self.clients.keys().copied().collect();
        for id in ids {
            let idle = self.clients.get(&id).is_some_and(|c| c.link.queued() == 0);
            if idle {
                self.close(id, Close::GoingAway, false);
            } else if let Some(client) = self.detach(id) {
                // Its Close waits for its queue, within the flush budget.
                self.flushing.push(client.link);
            }
        }
        self.flush_for_shutdown(now);
    }

    /// Shutting down: each client whose queue has gone out gets its Close;
    /// past the flush budget, every other one too, in place of what is
    /// still queued (it resumes with `since`).
    fn flush_for_shutdown(&mut self, now: Instant) {
        if self.flushing.is_empty() {
            return;
        }
        let over = self.flush_until.is_none_or(|until| now >= until);
        let mut dropped = 0;
        for link in std::mem::take(&mut self.flushing) {
            let queued = link.queued();
            if queued > 0 && !over {
                self.flushing.push(link);
                continue;
            }
            dropped += queued;
            self.delivery.close(&link, Close::GoingAway, queued > 0);
            self.closing.push(Closing {
                deadline: now + self.config.close_timeout,
                link: Arc::downgrade(&link),
                _handshake: None,
            });
        }
        if dropped > 0 {
            log::warn!(
                "shutting down: {dropped} queued messages not sent within {:?} were dropped (their clients resume with since)",
                SHUTDOWN_FLUSH.min(self.config.shutdown_timeout / 2)
            );
        }
    }

    fn stats(&self, with_clients: bool) -> Stats {
        let clients = match with_clients {
            true => self.clients.values().map(Client::stats).collect(),
            false => Vec::new(),
        };
        let c = &self.counters;
        let history = self.history.usage();
        let (queued_messages, queued_bytes) =
            self.clients
                .values()
                .fold((0, 0), |(messages, bytes), client| {
                    let (frames, queued) = client.link.backlog();
                    let (held, held_bytes) = replay::held(&client.replays);
                    (messages + frames + held, bytes + queued + held_bytes)
                });
        Stats {
            total_connections: c.total_connections,
            messages_received: c.messages_received,
            messages_sent: c.messages_sent,
            slow_consumers: c.slow_consumers,
            stale_clients: c.stale_clients,
            rejected_connections: c.rejected_connections,
            rate_limited: c.rate_limited,
            errors_sent: c.errors_sent,
            requests: c.requests,
            busy: c.busy,
            recoveries: c.recoveries,
            recoveries_lost: c.recoveries_lost,
            history_streams: history.streams,
            history_entries: history.entries,
            history_bytes: history.bytes,
            service_connections: self.services.count(),
            active_connections: self.clients.len(),
            authenticated_connections: self
                .clients
                .values()
                .filter(|c| c.identity.authenticated())
                .count(),
            channels: self.channels.len(),
            sessions: self.sessions.len(),
            users: self.users.len(),
            threads: self.threads.live(),
            thread_limit: self.threads.most(),
            writer_threads: self.delivery.writers(),
            inbox_bytes: self.lanes.budget.used(),
            queued_messages,
            queued_bytes,
            uptime: self.started.elapsed(),
            last_activity: self.last_activity,
            totals: self.analytics.totals(
                &self.meters,
                c.total_connections
                    .saturating_sub(self.clients.len() as u64),
            ),
            clients,
            cluster: self.cluster.as_ref().map(|cluster| {
                let mut hubs: Vec<crate::stats::HubStats> = cluster
                    .hubs()
                    .map(|beat| crate::stats::HubStats {
                        hub: beat.hub.clone(),
                        connections: beat.connections,
                        users: beat.users,
                        channels: beat.channels,
                        sessions: beat.sessions,
                        services: beat.services,
                        messages_sent: beat.messages_sent,
                        messages_received: beat.messages_received,
                    })
                    .collect();
                hubs.sort_by(|a, b| a.hub.cmp(&b.hub));
                crate::stats::ClusterStats {
                    hub: cluster.hub().to_owned(),
                    redis_up: cluster.is_up(),
                    hubs,
                }
            }),
        }
    }
}

/// Who is dead, as of one tick: a client is terminated when it has been
/// silent for `client_timeout` and has not answered a Ping that went out at
/// least `client_timeout - heartbeat_interval` ago (all of
/// `client_timeout`, when that is shorter than the heartbeat). Silence and
/// a Ping's age count from when the Ping went onto the wire, not when it
/// was queued, and never from before the hub's last stall: a hub that sent
/// its Ping late (behind a backlog, starved of CPU, held in a debugger)
/// does not blame its clients for it.
struct Liveness {
    /// `None`: silent clients are kept (`client_timeout` 0).
    timeout: Option<u64>,
    /// How long a Ping that went out may stay unanswered.
    answer: u64,
    clock: u64,
    resumed: u64,
}

impl Liveness {
    fn new(config: &Config, clock: u64, resumed: u64) -> Liveness {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let timeout = millis(config.client_timeout);
        let heartbeat = millis(config.heartbeat_interval);
        Liveness {
            timeout: (timeout > 0).then_some(timeout),
            answer: match timeout > heartbeat {
                true => timeout - heartbeat,
                false => timeout,
            },
            clock,
            resumed,
        }
    }

    /// Milliseconds since `stamp`, or since the last stall if later.
    fn since(&self, stamp: u64) -> u64 {
        self.clock.saturating_sub(stamp.max(self.resumed))
    }

    /// Whether the client of `link` is dead; `unanswered` is when the first
    /// Ping it has not answered was queued. `heard` is when it was last
    /// heard from as last read off the link: the link's own stamp, never
    /// older, is read only when that one is too old to clear the client.
    /// So a tick touches a client's link about once per `client_timeout`
    /// rather than every time (each link is memory of its own: with ten
    /// thousand idle clients, reading them all every tick was most of an
    /// idle hub's CPU).
    fn is_dead(&self, link: &Link, heard: &mut u64, unanswered: Option<u64>) -> bool {
        let Some(timeout) = self.timeout else {
            return false;
        };
        if self.since(*heard) < timeout {
            return false;
        }
        *heard = link.heard();
        let heard = *heard;
        if self.since(heard) < timeout {
            return false;
        }
        match unanswered {
            // A Ping it has not answered: how long since it went out.
            Some(queued) if heard < queued => match link.ping_sent() {
                Some(sent) => self.since(sent) >= self.answer,
                // Queued all this time and never written: the client reads
                // nothing at all.
                None => self.since(queued) >= timeout,
            },
            // None outstanding (the heartbeat is longer than the timeout):
            // silence alone.
            _ => true,
        }
    }
}

/// However the router thread ends (shutdown, the last sender gone, or a
/// panic unwinding), no client stays connected to a hub that no longer
/// routes, no reader waits for room, and the writers stop.
impl Drop for Router {
    fn drop(&mut self) {
        for closing in self.closing.drain(..) {
            closing.cut();
        }
        for link in self.flushing.drain(..) {
            link.cut();
        }
        for client in self.clients.values() {
            client.link.cut();
        }
        self.lanes.budget.close();
        self.delivery.stop_writers();
    }
}
