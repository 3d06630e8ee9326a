//! Starting and stopping a hub: [`Hub`] binds and runs the accept loop,
//! [`Server`] is a hub running in the background, [`Handle`] talks to a
//! running hub from any thread.
//!
//! The accept loop runs on the thread that calls [`Hub::run`] (or a thread of
//! its own with [`Hub::spawn`]). It blocks in `accept`, hands each socket to a
//! new connection thread at once and does nothing else with it. It ends when
//! [`Handle::shutdown`] sets the stop flag and wakes it with a connection of
//! its own; it then waits for the router, the timer and the writers to finish.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded};
use serde::Serialize;

use crate::app::ClientRequest;
use crate::auth::Authenticator;
use crate::budget::{self, Handshakes, Threads};
use crate::config::Config;
use crate::conn::Shared;
use crate::conn::pool::{self, Job, Pool};

use crate::command::{Answer, Command};
use crate::error::{Error, Result};
use crate::inbox::{self, Inbox, InboxBudget, Input, Lanes};
use crate::protocol::Topic;
use crate::publish::{Publication, Target};
use crate::router::Router;
use crate::stats::{ClientStats, PresenceEntry, Stats};
use crate::throttle::warn_throttled;
use crate::timer;
use crate::writer::Writers;

/// A bound, not yet running, hub.
///
/// # Example
///
/// ```
/// let hub = wshub::Hub::bind("127.0.0.1:0")?;
/// println!("listening on {}", hub.local_addr());
/// let server = hub.spawn()?;
/// server.handle().publish(wshub::Target::Broadcast, "notification", serde_json::json!({
///     "level": "info", "message": "hello",
/// }))?;
/// server.shutdown()?;
/// # Ok::<(), wshub::Error>(())
/// ```
pub struct Hub {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: Arc<Config>,
    auth: Arc<Authenticator>,
    threads: Arc<Threads>,
    lanes: Lanes,
    /// The cluster threads' lane to the router, for `run` to hand them.
    cluster_lane: crate::cluster::Lane,
    ticks: Sender<Instant>,
    handle: Handle,
    /// The application's request queue, once [`Hub::requests`] made it.
    requests: Option<(Sender<ClientRequest>, Receiver<ClientRequest>)>,
}

impl Hub {
    /// Binds to `addr` with the default [`Config`] for everything else.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] when the address cannot be resolved or bound.
    pub fn bind(addr: impl ToSocketAddrs) -> Result<Hub> {
        let shown = "the given address".to_owned();
        let addr = addr
            .to_socket_addrs()
            .map_err(|source| Error::Bind {
                addr: shown.clone(),
                source,
            })?
            .next()
            .ok_or_else(|| Error::Bind {
                addr: shown,
                source: std::io::ErrorKind::AddrNotAvailable.into(),
            })?;
        Hub::with_config(Config {
            host: addr.ip().to_string(),
            port: addr.port(),
            ..Config::default()
        })
    }

    /// Validates `config` and binds to its `host` and `port`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a value out of range, [`Error::Bind`] when the
    /// address cannot be bound.
    pub fn with_config(config: Config) -> Result<Hub> {
        config.validate()?;
        let shown = match config.host.contains(':') {
            true => format!("[{}]:{}", config.host, config.port),
            false => format!("{}:{}", config.host, config.port),
        };
        let listener =
            TcpListener::bind((config.host.as_str(), config.port)).map_err(|source| {
                Error::Bind {
                    addr: shown.clone(),
                    source,
                }
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: shown,
            source,
        })?;
        // Small messages go out at once rather than waiting for more. Linux
        // gives accepted sockets the listener's TCP_NODELAY (a `setsockopt`
        // less per connection); elsewhere each is set when accepted.
        let _ = socket2::SockRef::from(&listener).set_tcp_nodelay(true);
        let auth = Arc::new(config.authenticator());
        let config = Arc::new(config);
        let (ticks, router_ticks) = bounded(1);
        let share = (4 * config.max_message_size).max(64 * 1024);
        let (inbox, lanes, cluster_lane) = inbox::open(
            InboxBudget::new(config.max_inbox_bytes, share),
            router_ticks,
        );
        // A reader per client, plus connections mid-handshake, and never
        // more than the kernel can map, which is the process's budget,
        // shared with any other hub in it (see `budget`). Writers, idle
        // connection threads and the hub's own hold no place in the hub's
        // budget, but do in the process's.
        let wanted = config
            .max_threads
            .unwrap_or(config.max_connections + config.max_handshakes);
        let threads = Threads::new(
            wanted,
            config.writer_threads + pool::MOST_IDLE + budget::OWN_THREADS,
        );
        let handle = Handle {
            inbox,
            stop: Arc::new(Stop {
                flag: AtomicBool::new(false),
                wake: wake_addr(local_addr),
            }),
        };
        Ok(Hub {
            listener,
            local_addr,
            config,
            auth,
            threads,
            lanes,
            cluster_lane,
            ticks,
            handle,
            requests: None,
        })
    }

    /// The address the hub listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle to publish, read stats and shut down, usable before and
    /// during [`run`](Hub::run).
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The application requests of every client: each message whose `type`
    /// the protocol does not reserve, as a [`ClientRequest`] to answer.
    ///
    /// Call it before [`run`](Hub::run) or [`spawn`](Hub::spawn); every call
    /// gives a receiver of the same queue, so several threads may share the
    /// work. The queue holds `request_queue` requests; past that, clients
    /// get the error `busy` at once (the hub never waits for the program).
    /// Once every receiver is dropped, requests go to service connections,
    /// or are answered `unknown_type`, as if this was never called.
    ///
    /// See [`ClientRequest`] for an example.
    pub fn requests(&mut self) -> Receiver<ClientRequest> {
        let capacity = self.config.request_queue;
        let (_, receiver) = self.requests.get_or_insert_with(|| bounded(capacity));
        receiver.clone()
    }

    /// Runs the hub on this thread until [`Handle::shutdown`].
    ///
    /// Starts the router and timer threads, then accepts connections. After
    /// shutdown, returns once every client is closed (or `shutdown_timeout`
    /// has passed).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a thread cannot be started, [`Error::Panicked`] if the
    /// router panicked (a bug).
    pub fn run(self) -> Result<()> {
        let Hub {
            listener,
            local_addr,
            config,
            auth,
            threads,
            lanes,
            cluster_lane,
            ticks,
            handle,
            requests,
        } = self;

        let (writers, writer_threads) = Writers::start(config.writer_threads)?;
        // With `--redis`, the threads that join this hub to the others.
        let hub_id = config.redis.as_ref().map(|_| crate::cluster::new_hub_id());
        let (cluster, cluster_threads) = match (&config.redis, &hub_id) {
            (Some(url), Some(hub)) => {
                match crate::cluster::start(&config, url, Arc::clone(hub), cluster_lane) {
                    Ok((cluster, threads)) => (Some(cluster), threads),
                    Err(err) => {
                        writers.stop();
                        return Err(err);
                    }
                }
            }
            _ => (None, Vec::new()),
        };
        let mut shared = Shared::new(
            Arc::clone(&config),
            Arc::clone(&auth),
            Arc::clone(&threads),
            handle.inbox.clone(),
            Arc::clone(&writers),
        );
        shared.loopback = local_addr.ip().is_loopback();
        shared.hub = hub_id;
        let shared = Arc::new(shared);
        let router = Router::new(
            Arc::clone(&config),
            Arc::clone(&auth),
            Arc::clone(&threads),
            lanes,
            writers,
            // The router keeps the sender only: with no receiver left, the
            // queue is closed and requests go elsewhere.
            requests.map(|(sender, _)| (sender, handle.clone())),
            cluster,
        );
        let stop = Arc::clone(&handle.stop);
        // Dropped when the router thread ends, which stops the timer at once.
        let (router_alive, router_gone) = bounded::<()>(0);
        let spawned = thread::Builder::new()
            .name("wshub-router".into())
            .spawn(move || {
                let _alive = router_alive;
                // However the router ends, the accept loop must stop too.
                let _wake = WakeOnDrop(stop);
                router.run();
            });
        let router = match spawned {
            Ok(router) => router,
            Err(err) => {
                shared.writers.stop();
                return Err(err.into());
            }
        };
        let tick = config.tick();
        let timer = thread::Builder::new()
            .name("wshub-timer".into())
            .spawn(move || timer::run(tick, ticks, router_gone))?;

        log::info!(
            "wshub listening on ws://{local_addr}{} (HTTP API on the same port; {} writer threads)",
            config.path,
            config.writer_threads
        );
        log::info!(
            "clients get the {} envelope{}",
            config.envelope.as_str(),
            config
                .endpoints
                .iter()
                .map(|e| format!("; on {}, {}", e.path, e.envelope.as_str()))
                .collect::<String>()
        );
        warn_about_auth(&config, &auth);
        if threads.most() < config.max_connections {
            log::warn!(
                "this kernel's vm.max_map_count leaves this process room for about {} more WebSocket clients \
                 (a thread each), fewer than --max-connections {}; raise it (sysctl -w vm.max_map_count=262144) for more",
                threads.most(),
                config.max_connections
            );
        }
        accept_loop(&listener, &shared, &handle.stop);
        drop(listener);
        drop(shared);

        let router = router.join().map_err(|_| Error::Panicked("router"));
        let _ = timer.join();
        for writer in writer_threads {
            let _ = writer.join();
        }
        // The router dropped its side: both end within a poll.
        for thread in cluster_threads {
            let _ = thread.join();
        }
        router?;
        log::info!("wshub stopped");
        Ok(())
    }

    /// Runs the hub on a background thread.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the thread cannot be started.
    pub fn spawn(self) -> Result<Server> {
        let handle = self.handle();
        let local_addr = self.local_addr;
        let thread = thread::Builder::new()
            .name("wshub-accept".into())
            .spawn(move || self.run())?;
        Ok(Server {
            handle,
            local_addr,
            thread: Some(thread),
        })
    }
}

/// A command's answer as a yes or no, or the limit it met.
fn done(answer: Answer) -> Result<bool> {
    match answer {
        Answer::Done(done) => Ok(done),
        Answer::Refused(reason) => Err(Error::Refused(reason)),
        _ => Ok(false),
    }
}

/// Says at start what an operator should know about the security settings.
fn warn_about_auth(config: &Config, auth: &Authenticator) {
    if !auth.client_auth() {
        log::warn!(
            "no client auth configured (--tokens or --jwt-secret): development mode, anyone may connect as any userId"
        );
    } else if config.admin_token.is_none() {
        log::warn!(
            "client auth is on but --admin-token is not set: the admin HTTP endpoints are locked"
        );
    }
    if config
        .jwt_secret
        .as_ref()
        .is_some_and(|s| s.expose().len() < 32)
    {
        log::warn!("the JWT secret is shorter than 32 bytes: use a long random secret");
    }
}

/// The accept loop: one thread per connection, nothing else.
fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, stop: &Stop) {
    let config = &shared.config;
    let pool = Pool::new(Arc::clone(shared));
    let mut handshakes = Handshakes::new(
        config.max_handshakes,
        config.max_handshakes_per_ip,
        config
            .trusted_proxies
            .iter()
            .map(|ip| ip.to_canonical())
            .collect(),
    );
    for accepted in listener.incoming() {
        if stop.flag.load(Ordering::Acquire) {
            break;
        }
        let stream = match accepted {
            Ok(stream) => stream,
            Err(err) => {
                // Out of file descriptors or memory: wait a moment rather
                // than spin on an error that will repeat.
                warn_throttled!("accept failed: {err}");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(_) => continue,
        };
        let Some(handshake) = handshakes.admit(peer.ip().to_canonical()) else {
            warn_throttled!(
                "refusing a connection from {}: too many handshakes under way",
                peer.ip()
            );
            busy(stream);
            continue;
        };
        let Some(slot) = shared.threads.reserve() else {
            warn_throttled!(
                "refusing a connection: {} threads are running",
                shared.threads.most()
            );
            busy(stream);
            continue;
        };
        if !cfg!(target_os = "linux") {
            let _ = stream.set_nodelay(true);
        }
        let job = Job {
            stream,
            peer,
            handshake,
            thread: slot,
        };
        if let Err(err) = pool.dispatch(job) {
            log::error!("cannot start a connection thread: {err}");
        }
    }
}

/// Tells a connection the hub has no room for it, without ever blocking the
/// accept loop: a fresh socket's send buffer takes the few bytes at once.
fn busy(stream: TcpStream) {
    let body = r#"{"success":false,"code":"busy","error":"The hub is at its connection limit"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.set_nonblocking(true).is_ok() {
        let _ = (&stream).write(response.as_bytes());
    }
}

/// The accept loop's stop flag and the address that wakes it.
#[derive(Debug)]
struct Stop {
    flag: AtomicBool,
    wake: SocketAddr,
}

impl Stop {
    fn trigger(&self) {
        if !self.flag.swap(true, Ordering::AcqRel) {
            // accept() has no timeout: a connection of our own wakes it.
            let _ = TcpStream::connect_timeout(&self.wake, Duration::from_secs(1));
        }
    }
}

/// Stops the accept loop when dropped (the router thread holds one).
struct WakeOnDrop(Arc<Stop>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

/// Where to connect to wake an accept loop bound to `addr`.
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let mut wake = addr;
    if addr.ip().is_unspecified() {
        wake.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    wake
}

/// A hub running on a background thread (from [`Hub::spawn`]).
///
/// Dropping it asks the hub to shut down without waiting; call
/// [`shutdown`](Server::shutdown) to wait for the end.
pub struct Server {
    handle: Handle,
    local_addr: SocketAddr,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Server {
    /// The handle of the running hub.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The address the hub listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Shuts the hub down and waits until it has stopped.
    ///
    /// # Errors
    ///
    /// What [`Hub::run`] returned.
    pub fn shutdown(mut self) -> Result<()> {
        self.handle.shutdown();
        self.join_thread()
    }

    /// Waits until the hub stops (after a [`Handle::shutdown`] elsewhere).
    ///
    /// # Errors
    ///
    /// What [`Hub::run`] returned.
    pub fn join(mut self) -> Result<()> {
        self.join_thread()
    }

    fn join_thread(&mut self) -> Result<()> {
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| Error::Panicked("accept"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.handle.shutdown();
        }
    }
}

/// Talks to a running hub from any thread: publish, stats, disconnect,
/// shutdown. Cheap to clone; every clone talks to the same hub.
///
/// Each call sends one message to the router thread and, except
/// [`shutdown`](Handle::shutdown), waits for its answer (microseconds, unless
/// the hub is overloaded).
#[derive(Clone)]
pub struct Handle {
    inbox: Inbox,
    stop: Arc<Stop>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    /// Publishes `{"type": kind, "data": data}` to `target`; returns how many
    /// clients it was queued for. The message is serialised once, on this
    /// thread, and shared by every recipient. With Redis (`--redis`) it
    /// returns once Redis has numbered it for every hub (a round trip), and
    /// counts this hub's clients.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] if `data` is not serialisable, [`Error::InvalidName`]
    /// for a bad target name or `kind`, [`Error::Closed`] after shutdown;
    /// with Redis, [`Error::Unavailable`] when it could not be published
    /// (nothing was delivered) and [`Error::Unconfirmed`] when Redis did not
    /// answer in time (it may have been): retry those with
    /// [`publish_idempotent`](Handle::publish_idempotent).
    ///
    /// # Example
    ///
    /// ```
    /// # let server = wshub::Hub::bind("127.0.0.1:0")?.spawn()?;
    /// # let handle = server.handle();
    /// use serde_json::json;
    /// use wshub::Target;
    /// let delivered = handle.publish(Target::session("session_123"), "ai_progress", json!({
    ///     "chunksReceived": 25, "contentLength": 1250,
    /// }))?;
    /// assert_eq!(delivered, 0); // nobody is subscribed yet
    /// # Ok::<(), wshub::Error>(())
    /// ```
    pub fn publish(&self, target: Target, kind: &str, data: impl Serialize) -> Result<usize> {
        let data = serde_json::value::to_raw_value(&data)?;
        self.publish_prepared(Publication::new(target, kind, Some(&data))?, None)
    }

    /// Publishes as [`publish`](Handle::publish), once per `key`: a retry
    /// with the same key (and target) within 5 minutes returns the first
    /// attempt's count and is not delivered again, on any hub of the same
    /// Redis. Use it to retry after [`Error::Unavailable`] or
    /// [`Error::Unconfirmed`]. The HTTP API and service connections share
    /// these keys (they all publish as the backend).
    ///
    /// # Errors
    ///
    /// As [`publish`](Handle::publish); [`Error::InvalidName`] for a key
    /// that is empty or longer than 255 bytes. With Redis, a key cannot be
    /// checked while Redis is unreachable: [`Error::Unavailable`].
    ///
    /// # Example
    ///
    /// ```
    /// # let server = wshub::Hub::bind("127.0.0.1:0")?.spawn()?;
    /// # let handle = server.handle();
    /// use serde_json::json;
    /// use wshub::Target;
    /// let order = json!({"id": 42, "status": "shipped"});
    /// let first = handle.publish_idempotent(Target::channel("orders"), "order", &order, "order-42-shipped")?;
    /// // A retry (say, after a timeout) is not delivered twice.
    /// let again = handle.publish_idempotent(Target::channel("orders"), "order", &order, "order-42-shipped")?;
    /// assert_eq!(first, again);
    /// # Ok::<(), wshub::Error>(())
    /// ```
    pub fn publish_idempotent(
        &self,
        target: Target,
        kind: &str,
        data: impl Serialize,
        key: &str,
    ) -> Result<usize> {
        crate::protocol::check_idempotency_key(key).map_err(|reason| Error::InvalidName {
            what: "idempotency key",
            reason,
        })?;
        let data = serde_json::value::to_raw_value(&data)?;
        self.publish_prepared(Publication::new(target, kind, Some(&data))?, Some(key))
    }

    /// Publishes a checked publication, once per `key` if given; returns
    /// how many clients got it.
    pub(crate) fn publish_prepared(
        &self,
        publication: Publication,
        key: Option<&str>,
    ) -> Result<usize> {
        let published = self.ask(|reply| Input::Publish {
            publication,
            key: key.map(Into::into),
            reply,
            gate: None,
        })?;
        published.map_err(Error::from)
    }

    /// Publishes `{"type": kind, "data": data}` to `target` as part of a
    /// batch: it is held up to `batch_window` from the first held message
    /// of that target and delivered with the others as one `batch_update`
    /// (`batch_max` messages go at once). Returns how many clients the
    /// batch will reach. A filter target cannot be batched: it goes at once.
    ///
    /// # Errors
    ///
    /// As [`publish`](Handle::publish).
    pub fn publish_batched(
        &self,
        target: Target,
        kind: &str,
        data: impl Serialize,
    ) -> Result<usize> {
        let data = serde_json::value::to_raw_value(&data)?;
        self.publish_prepared(
            Publication::new(target, kind, Some(&data))?.batched(true),
            None,
        )
    }

    /// Sends `{"type": kind, "data": data}` to one client; `false` if no
    /// client has that id.
    ///
    /// # Errors
    ///
    /// As [`publish`](Handle::publish).
    pub fn send(&self, client_id: &str, kind: &str, data: impl Serialize) -> Result<bool> {
        Ok(self.publish(Target::client(client_id), kind, data)? > 0)
    }

    /// Subscribes a client to a channel or session, as if it had asked;
    /// it is told with `subscribed`. The backend is trusted: the client's
    /// permissions do not apply, its subscription limit does. `false` if no
    /// client has that id.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a bad topic, [`Error::Refused`] at the
    /// client's subscription limit, [`Error::Closed`] after shutdown.
    pub fn subscribe(&self, client_id: &str, topic: Topic) -> Result<bool> {
        topic.validate()?;
        self.command(Command::Subscribe {
            client: client_id.to_owned(),
            topic,
        })
        .and_then(done)
    }

    /// Unsubscribes a client from a topic, or (`None`) from every session;
    /// it is told with `unsubscribed`. `false` if no client has that id.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown.
    pub fn unsubscribe(&self, client_id: &str, topic: Option<Topic>) -> Result<bool> {
        self.command(Command::Unsubscribe {
            client: client_id.to_owned(),
            topic,
        })
        .and_then(done)
    }

    /// Closes every client of `target` (one client, every connection of a
    /// user, a channel's subscribers...) with `code` (1000, or 3000 to
    /// 4999) and `reason` (at most 123 bytes). Returns how many.
    ///
    /// ```
    /// # let server = wshub::Hub::bind("127.0.0.1:0")?.spawn()?;
    /// # let handle = server.handle();
    /// let closed = handle.close(wshub::Target::user("alice"), 4500, "Signed out elsewhere")?;
    /// # assert_eq!(closed, 0);
    /// # Ok::<(), wshub::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a code or reason out of range,
    /// [`Error::Closed`] after shutdown.
    pub fn close(&self, target: Target, code: u16, reason: &str) -> Result<usize> {
        if !crate::protocol::valid_close_code(code) {
            return Err(Error::InvalidName {
                what: "close code",
                reason: "must be 1000 or 3000 to 4999".into(),
            });
        }
        if reason.len() > crate::protocol::inbound::MAX_CLOSE_REASON {
            return Err(Error::InvalidName {
                what: "close reason",
                reason: "must be at most 123 bytes".into(),
            });
        }
        match self.command(Command::Close {
            target,
            code,
            reason: reason.to_owned(),
        })? {
            Answer::Count(count) => Ok(count),
            _ => Ok(0),
        }
    }

    /// Sets one key of a client's metadata (`null` removes it), which
    /// publish filters and stats see. `false` if no client has that id.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] for data that is not JSON, [`Error::Refused`] past
    /// 64 keys or 16 KiB of metadata, [`Error::Closed`] after shutdown.
    pub fn set_meta(&self, client_id: &str, key: &str, value: impl Serialize) -> Result<bool> {
        let mut meta = serde_json::Map::new();
        meta.insert(key.to_owned(), serde_json::to_value(value)?);
        self.command(Command::SetMeta {
            client: client_id.to_owned(),
            meta,
        })
        .and_then(done)
    }

    /// The clients subscribed to a channel or session.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown.
    pub fn subscribers(&self, topic: Topic) -> Result<Vec<ClientStats>> {
        match self.command(Command::Subscribers { topic })? {
            Answer::Clients(clients) => Ok(clients),
            _ => Ok(Vec::new()),
        }
    }

    /// Every user online and its status.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown.
    pub fn presence(&self) -> Result<Vec<PresenceEntry>> {
        match self.command(Command::Presence)? {
            Answer::Presence(users) => Ok(users),
            _ => Ok(Vec::new()),
        }
    }

    fn command(&self, command: Command) -> Result<Answer> {
        self.ask(|reply| Input::Command { command, reply })
    }

    /// Publishes to every connected client; see [`publish`](Handle::publish).
    ///
    /// # Errors
    ///
    /// As [`publish`](Handle::publish).
    pub fn broadcast(&self, kind: &str, data: impl Serialize) -> Result<usize> {
        self.publish(Target::Broadcast, kind, data)
    }

    /// Publishes a typed event to `target` (its wire type is `E::TYPE`); see
    /// [`publish`](Handle::publish).
    ///
    /// # Errors
    ///
    /// As [`publish`](Handle::publish).
    pub fn emit<E: crate::events::Event>(&self, target: Target, event: &E) -> Result<usize> {
        self.publish(target, E::TYPE, event)
    }

    /// Publishes a channel event on its own channel (`E::CHANNEL`), with its
    /// wire type `E::TYPE`; see [`publish`](Handle::publish).
    ///
    /// # Errors
    ///
    /// As [`publish`](Handle::publish).
    pub fn emit_on_channel<E: crate::events::ChannelEvent>(&self, event: &E) -> Result<usize> {
        self.publish(Target::channel(E::CHANNEL), E::TYPE, event)
    }

    /// Closes one client with 1000; `false` if no client has that id.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown.
    pub fn disconnect(&self, client_id: &str) -> Result<bool> {
        self.ask(|reply| Input::Disconnect {
            client: client_id.to_owned(),
            reply,
        })
    }

    /// The hub's counters and its client list.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown.
    pub fn stats(&self) -> Result<Stats> {
        self.ask(|reply| Input::Stats {
            clients: true,
            reply,
        })
    }

    /// Asks the hub to stop: no new connections, every client closed with
    /// 1001 after what is queued for it, for at most 1 s (what is still
    /// queued then is dropped; the client resumes with `since`), and gone
    /// within `shutdown_timeout`. Returns at once; [`Hub::run`] returns when
    /// it is done. Calling it again does nothing.
    pub fn shutdown(&self) {
        if self.stop.flag.load(Ordering::Acquire) {
            return;
        }
        let _ = self.inbox.send(Input::Shutdown);
        self.stop.trigger();
    }

    /// Asks the router and waits for its answer.
    fn ask<T>(&self, event: impl FnOnce(Sender<T>) -> Input) -> Result<T> {
        self.inbox.ask(event, None).ok_or(Error::Closed)
    }
}
