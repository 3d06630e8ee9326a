//! Starting and stopping a hub: [`Hub`] binds, starts the hub's threads
//! and runs the accept loop; [`Server`] is a hub running in the
//! background. [`Handle`](crate::Handle) (in `handle.rs`) talks to a
//! running hub from any thread.
//!
//! [`Hub::run`] starts the writers, the router, the timer, (with Redis)
//! the cluster threads and (with a JWKS URL) the key set's fetcher, then
//! runs the accept loop (`conn/accept.rs`) on the calling thread until
//! [`Handle::shutdown`](crate::Handle::shutdown); it then stops the
//! fetcher without waiting for it (see `jwks`) and waits for the router,
//! the timer and the writers to finish.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::app::{ClientRequest, Requests};
use crate::auth::Authenticator;
use crate::budget::{self, Threads};
use crate::config::Config;
use crate::conn::Shared;
use crate::conn::accept::{self, Stop, WakeOnDrop};
use crate::conn::pool;
use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::inbox::{self, InboxBudget, Lanes};
use crate::router::Router;
use crate::timer;
use crate::tls::Tls;
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
    /// With a certificate: the TLS every connection starts with.
    tls: Option<Arc<Tls>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
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
    /// [`Error::Config`] for a value out of range, [`Error::Tls`] when the
    /// TLS certificate or key cannot be used, [`Error::Bind`] when the
    /// address cannot be bound.
    pub fn with_config(config: Config) -> Result<Hub> {
        config.validate()?;
        let tls = Tls::new(config.tls_cert.as_ref(), config.tls_key.as_ref())?;
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
        let handle = Handle::new(inbox, Arc::new(Stop::new(local_addr)), tls.clone());
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
            tls,
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
    pub fn requests(&mut self) -> Requests {
        let capacity = self.config.request_queue;
        let (_, receiver) = self.requests.get_or_insert_with(|| bounded(capacity));
        Requests(receiver.clone())
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
            tls,
        } = self;

        let (writers, writer_threads) = Writers::start(config.writer_threads)?;
        // What the writers, the connection threads and the timer measure
        // for the analytics (see `analytics`).
        let meters = Arc::clone(writers.meters());
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
            handle.inbox().clone(),
            Arc::clone(&writers),
        );
        shared.loopback = local_addr.ip().is_loopback();
        shared.tls = tls.clone();
        shared.hub = hub_id;
        shared.stop = Some(Arc::clone(handle.stop()));
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
        let stop = Arc::clone(handle.stop());
        // Dropped when the router thread ends, which stops the timer at once.
        let (router_alive, router_gone) = bounded::<()>(0);
        // An identity provider's key set: its fetcher is stopped when the
        // accept loop ends (or by being dropped, however this returns).
        let fetcher = match auth.jwt().and_then(|jwt| jwt.key_set()) {
            Some(set) => match crate::jwks::start(Arc::clone(set)) {
                Ok(fetcher) => Some(fetcher),
                Err(err) => {
                    shared.writers.stop();
                    return Err(err);
                }
            },
            None => None,
        };
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
            .spawn(move || timer::run(tick, ticks, router_gone, &meters))?;

        let (ws, http) = match tls {
            Some(_) => ("wss", "HTTPS"),
            None => ("ws", "HTTP"),
        };
        log::info!(
            "wshub listening on {ws}://{local_addr}{} ({http} API on the same port; {} writer threads)",
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
        if config.admin_ui {
            log::info!(
                "dashboard on {}://{local_addr}/admin ({})",
                http.to_ascii_lowercase(),
                match auth.admin(None) {
                    crate::auth::AdminCheck::Allowed => "open: development mode",
                    crate::auth::AdminCheck::Refused => "behind the admin token",
                    crate::auth::AdminCheck::Locked => "locked: no --admin-token",
                }
            );
        }
        if config.compression {
            log::info!(
                "permessage-deflate offered to clients that ask for it; messages of {} bytes or more go compressed",
                config.compression_min_size
            );
        }
        warn_about_auth(&config, &auth);
        if threads.most() < config.max_connections {
            log::warn!(
                "this kernel's vm.max_map_count leaves this process room for about {} more WebSocket clients \
                 (a thread each), fewer than --max-connections {}; raise it (sysctl -w vm.max_map_count=262144) for more",
                threads.most(),
                config.max_connections
            );
        }
        accept::run(&listener, &shared, handle.stop());
        drop(listener);
        drop(shared);
        // No new connection comes to need the key set: a fetch in flight is
        // interrupted (a handshake waiting for it is refused, the hub is
        // stopping) and the fetcher ends by itself, not waited for.
        if let Some(fetcher) = fetcher {
            fetcher.stop();
        }

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

/// Says at start what an operator should know about the security settings.
fn warn_about_auth(config: &Config, auth: &Authenticator) {
    if !auth.client_auth() {
        log::warn!(
            "no client auth configured (--tokens, --jwt-secret, --jwt-public-key or --jwks-url): development mode, anyone may connect as any userId"
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
    let public_keys = !config.jwt_public_keys.is_empty() || config.jwks_url.is_some();
    if public_keys && config.jwt_audiences.is_empty() {
        log::warn!(
            "JWTs signed with public keys are accepted whatever their audience: set --jwt-audience, or tokens the provider issued for other services get in"
        );
    }
    if public_keys && config.jwt_issuer.is_none() {
        log::warn!(
            "JWTs signed with public keys are accepted whatever their issuer: set --jwt-issuer"
        );
    }
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

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hub_and_a_server_debug_print_their_address_but_no_secret() {
        let config = Config {
            port: 0,
            jwt_secret: Some("a secret that must not be printed".into()),
            ..Config::default()
        };
        let hub = Hub::with_config(config).expect("bound");
        let shown = format!("{hub:?}");
        assert!(shown.contains(&hub.local_addr().to_string()), "{shown}");
        assert!(!shown.contains("must not be printed"), "{shown}");
        let server = hub.spawn().expect("started");
        let shown = format!("{server:?}");
        assert!(shown.contains("running: true"), "{shown}");
        server.shutdown().expect("stopped");
    }
}
