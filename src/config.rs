//! The hub's settings: one plain struct whose [`Default`] is a working
//! development server on `127.0.0.1:3000`.
//!
//! Read by every thread (through an `Arc`), never changed after
//! [`Hub::with_config`](crate::Hub::with_config).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{self, Authenticator, Secret, TokenGrant};
use crate::error::{Error, Result};
use crate::jwks::{self, KeySet};
use crate::jwt::Verifier;
use crate::keys::JwtKey;
use crate::protocol::Envelope;

/// Everything a hub can be told. Every field has a documented default (the
/// [`Default`] is a working development hub on `127.0.0.1:3000`); the
/// binary sets them from flags and `WSHUB_*` environment variables.
///
/// Build one from the default with the method named after each field, as
/// tungstenite's `WebSocketConfig`; the fields stay public to read (and to
/// set on a `mut` value). The struct is `#[non_exhaustive]`: a struct
/// literal cannot be written outside this crate, so new settings break no
/// program.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// let config = wshub::Config::default()
///     .port(0) // any free port
///     .heartbeat_interval(Duration::from_secs(10))
///     .allow_client_publish(true);
/// assert!(config.validate().is_ok());
/// assert_eq!(config.max_queue, 4096);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Interface to listen on. Default `127.0.0.1` (this machine only); use
    /// `0.0.0.0` or `::` to accept connections from the network.
    pub host: String,
    /// TCP port. Default `3000`; `0` picks a free port (see
    /// [`Hub::local_addr`](crate::Hub::local_addr)).
    pub port: u16,
    /// Path of the WebSocket endpoint. Default `/ws`. Upgrades on `/` are
    /// accepted too.
    pub path: String,
    /// PEM file of the hub's certificate chain (its own certificate first,
    /// then the intermediates). Set with [`tls_key`](Config::tls_key), the
    /// hub speaks TLS 1.2 and 1.3 on its port: `wss://` and `https://`,
    /// and nothing else. Read at start and again by
    /// [`Handle::reload_tls`](crate::Handle::reload_tls). Default: none,
    /// plain `ws://` and `http://`. Needs the `tls` feature (on by default).
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the certificate's private key: PKCS#8 (`PRIVATE KEY`),
    /// RSA (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`). Default: none.
    pub tls_key: Option<PathBuf>,
    /// How often the hub sends each client a protocol Ping. Default 30 s.
    pub heartbeat_interval: Duration,
    /// A client that sends nothing (no frame, no Pong) for this long, and
    /// has not answered a Ping that went out `client_timeout -
    /// heartbeat_interval` ago (30 s by default), is terminated. Silence
    /// counts from when the Ping really went out, and never across a time
    /// the hub itself did not run (a debugger pause, SIGSTOP), so a late
    /// Ping is never held against a client. Zero keeps silent clients for
    /// good (while stepping through the hub in a debugger). Default 60 s.
    pub client_timeout: Duration,
    /// Most WebSocket clients at once; one more is closed with 1013
    /// "Server full". Default 10 000.
    pub max_connections: usize,
    /// Largest message a client may send, in bytes. A larger one gets the
    /// error `payload_too_large` and close 1009. Default 65 536.
    pub max_message_size: usize,
    /// Most messages waiting to be written to one client. A client whose
    /// queue is full is a slow consumer: it is closed with 1013 and counted,
    /// and nobody else waits for it. Default 4096, so a burst of a thousand
    /// messages never closes a healthy client. Queued messages of a fan-out
    /// share one buffer, so a queue costs a few dozen bytes per message.
    pub max_queue: usize,
    /// Most bytes waiting to be written to one client; past it, the client
    /// is a slow consumer too. A single message larger than this still goes
    /// to a client with nothing queued. Default 8 MiB.
    pub max_queue_bytes: usize,
    /// Whether clients may `publish`. Default `false`: they get `forbidden`.
    pub allow_client_publish: bool,
    /// How long a new connection has to send its whole HTTP request
    /// (upgrade or API call). Default 10 s.
    pub handshake_timeout: Duration,
    /// How long a client the hub closes has to answer the Close frame before
    /// its socket is cut. Default 5 s.
    pub close_timeout: Duration,
    /// On shutdown, how long clients get to receive the 1001 Close and
    /// answer it before their sockets are cut. What is queued for a client
    /// goes out before its Close for at most 1 s (or half of this); the
    /// rest is dropped. Default 5 s.
    pub shutdown_timeout: Duration,
    /// Largest HTTP request head (request line and headers), in bytes.
    /// Default 8 KiB; larger gets 431.
    pub max_header_size: usize,
    /// Largest HTTP request body (`POST /api/publish`), in bytes.
    /// Default 1 MiB; larger gets 413.
    pub max_body_size: usize,
    /// Stack size of each client's reader thread, in bytes. Default 64 KiB
    /// of address space, of which a reader touches a few pages: thousands
    /// of idle clients fit on a small host.
    pub thread_stack_size: usize,
    /// Writer threads: they write every client's queued frames, each serving
    /// many clients with non-blocking sends. Default: one per CPU.
    pub writer_threads: usize,
    /// Most bytes of client messages waiting for the router, all clients
    /// together; each client may hold a share of `4 * max_message_size`
    /// (at least 64 KiB) of it. A client over its share, or any client when
    /// the whole is used, is not read from until there is room again, so a
    /// flood is held back by TCP, not by the hub's memory. Default 32 MiB.
    pub max_inbox_bytes: usize,
    /// Most application requests waiting for the embedding program (see
    /// [`Hub::requests`](crate::Hub::requests)); past that, clients get the
    /// error `busy`. Default 1024.
    pub request_queue: usize,
    /// How long a batched publication may wait for others of its target
    /// before the batch goes out. Default 100 ms.
    pub batch_window: Duration,
    /// A batch of this many messages goes out at once. Default 64.
    pub batch_max: usize,
    /// The `type` of a batch: `batch_update` by default (`batchUpdate` for
    /// the Cursor Chat Agent clients).
    pub batch_type: String,
    /// The envelope of clients that do not ask for another (`?envelope=`)
    /// on an endpoint without one of its own. Default `standard`.
    pub envelope: Envelope,
    /// More WebSocket endpoints, each with its own default envelope, so
    /// clients written for different shapes share one hub. Default: none.
    pub endpoints: Vec<Endpoint>,
    /// Also send `{"type":"heartbeat","data":{"timestamp"}}` every
    /// `heartbeat_interval` (the Cursor Chat Agent clients expect it),
    /// besides the protocol Ping. Default `false`.
    pub json_heartbeat: bool,
    /// Read buffer of each connection, in bytes. Default 4 KiB: enough for
    /// typical messages. A connection starts with 512 bytes (an idle client
    /// keeps no more) and gets this once a read fills those; larger
    /// messages are read straight into their own buffer.
    pub read_buffer_size: usize,
    /// Offer permessage-deflate (RFC 7692) to clients that ask for it, as
    /// every browser, Node's `ws` and Python's `websockets` do. Default
    /// `false`, as Centrifugo, Socket.IO and `ws` servers choose: it trades
    /// CPU for bandwidth, and compressing secrets beside data an attacker
    /// controls in one message can leak them through its size (BREACH).
    /// The hub keeps no compression context between messages, so an idle
    /// connection holds no DEFLATE window, and a fan-out compresses each
    /// frame once for all its clients (what a connection costs:
    /// `docs/compression.md`). Needs the `compression` feature (on by
    /// default). Compressed messages from clients are inflated up to
    /// [`max_message_size`](Config::max_message_size).
    pub compression: bool,
    /// Messages shorter than this many bytes go uncompressed, where
    /// DEFLATE saves too little to be worth its CPU. Default 256.
    pub compression_min_size: usize,

    /// Static tokens and what each grants (see [`load_tokens`](crate::load_tokens)).
    /// Non-empty turns client auth on. Default: none.
    pub tokens: HashMap<Secret, TokenGrant>,
    /// Shared secret for HS256 JWTs. Set, it turns client auth on. Use at
    /// least 32 random bytes. Default: none.
    pub jwt_secret: Option<Secret>,
    /// Public keys that verify JWTs signed by an identity provider
    /// (RS256/384/512, PS256/384/512, ES256, ES384, EdDSA: each key takes
    /// only its own kind's, never HS256). Set, they turn client auth on.
    /// See [`JwtKey`]. Default: none.
    pub jwt_public_keys: Vec<JwtKey>,
    /// An identity provider's JWK Set, fetched over HTTPS by a thread of the
    /// hub and kept fresh (`https://TENANT.auth0.com/.well-known/jwks.json`,
    /// `https://HOST/realms/REALM/protocol/openid-connect/certs`); `http://`
    /// only to this machine, for tests. Set, it turns client auth on. Needs
    /// the `jwks` feature (on by default). Default: none.
    pub jwks_url: Option<String>,
    /// A PEM file of the CA certificates that the [`jwks_url`](Config::jwks_url)
    /// server's certificate must chain to (an internal Keycloak behind a
    /// company CA). Set, they replace the Mozilla roots built in, as curl's
    /// `--cacert` does: only these CAs are trusted for the key set (to trust
    /// the public roots too, put them in the file). Read when the hub
    /// starts; needs an `https://` `jwks_url`. Default: none (the built-in
    /// roots).
    pub jwks_ca: Option<PathBuf>,
    /// Audiences a JWT's `aud` must name one of; empty: `aud` is not
    /// checked. Set it with an identity provider, or tokens it issued for
    /// other services are accepted too. Default: none.
    pub jwt_audiences: Vec<String>,
    /// The issuer a JWT's `iss` must be (`https://TENANT.auth0.com/`);
    /// `None`: `iss` is not checked. Default: none.
    pub jwt_issuer: Option<String>,
    /// Clock skew allowed on a JWT's `exp` and `nbf`. Default 30 s.
    pub jwt_leeway: Duration,
    /// Bearer token for the admin HTTP endpoints; as a WebSocket token it
    /// opens a service connection. It does not turn client auth on by itself.
    /// Default: none (the admin endpoints are open without client auth, and
    /// locked with it).
    pub admin_token: Option<Secret>,
    /// With client auth on, let clients without a token in, limited to
    /// public channels and broadcasts. Default `false`.
    pub allow_anonymous: bool,
    /// Browser origins allowed to open a WebSocket (`https://app.example.com`,
    /// `https://*.example.com`, `*`); others get 403. Requests without an
    /// Origin header (not from a browser) are always allowed. Cross-origin
    /// `POST /api/publish` is refused unless its origin is listed. Default:
    /// empty, every origin may connect.
    pub allowed_origins: Vec<String>,
    /// Messages a client may send per [`rate_window`](Config::rate_window),
    /// sustained, after a burst of up to [`rate_burst`](Config::rate_burst)
    /// (a token bucket). A message over it is dropped and answered with the
    /// error `rate_limited`; the connection stays. Only a client that keeps
    /// sending more than ten times this rate, until ten bursts beyond it
    /// were refused, is closed (1013 `Rate limit exceeded`: back off and
    /// reconnect). `0` turns the limit off. Default 50 (a second): an IDE
    /// panel or a chat tab sends a few a second, 20 when busy. Service
    /// connections have no limit.
    pub rate_limit: u32,
    /// The window of [`rate_limit`](Config::rate_limit). Default 1 s.
    pub rate_window: Duration,
    /// Messages a client may send at once before the rate applies.
    /// Default 200: a client that reconnects re-subscribes to all of its
    /// [`max_subscriptions`](Config::max_subscriptions) (128) at once.
    pub rate_burst: u32,
    /// Most channels and sessions one client may be subscribed to. Default 128.
    pub max_subscriptions: usize,
    /// Most connections of one user at once; one more is closed with 1013.
    /// Default 100.
    pub max_connections_per_user: usize,
    /// Most WebSocket clients from one address; one more is closed with
    /// 1013. Addresses in [`trusted_proxies`](Config::trusted_proxies) are
    /// exempt. `0` turns the limit off. Default 1000.
    pub max_connections_per_ip: usize,
    /// Most connections still sending their HTTP request (an upgrade or an
    /// API call) at once; past it, new sockets get 503 at once, so idle
    /// sockets cannot take the threads clients need. Default 256.
    pub max_handshakes: usize,
    /// The same, per address (trusted proxies exempt). Default 32.
    pub max_handshakes_per_ip: usize,
    /// Reverse proxies in front of the hub. From one of them, the client's
    /// address is the rightmost hop of `Forwarded` (else `X-Forwarded-For`,
    /// else `X-Real-IP`) that is not itself a trusted proxy, and stands for
    /// the client in per-address limits, logs and
    /// [`ClientRequest::address`](crate::ClientRequest::address); from any
    /// other peer those headers are ignored. A proxy that forwards no
    /// address is exempt from per-address limits. Default: 127.0.0.1 and
    /// ::1.
    pub trusted_proxies: Vec<IpAddr>,
    /// Most connection threads (readers and handshakes) of this hub at
    /// once. Default `None`: `max_connections + max_handshakes`. Either
    /// way, never more than the kernel can map, a ceiling of the process
    /// that every hub in it shares (see `docs/operations.md`, Limits).
    pub max_threads: Option<usize>,
    /// With client auth on, how long a session stays its user's after its
    /// last subscriber leaves (so nobody else can take it over). Default 1 h.
    pub session_retention: Duration,
    /// With client auth on, most sessions one user may own at once (empty
    /// ones count until released). Default 1000.
    pub max_sessions_per_user: usize,
    /// How long after a user's last connection closes the others are told
    /// it went `offline`; a connection within that time cancels it (a page
    /// reload does not flicker). Zero: at once. Default 2 s.
    pub presence_grace: Duration,

    /// Most publications kept per stream (a channel, a session, a user) for
    /// clients that come back (see `docs/protocol.md`, Recovery). `0` keeps none.
    /// Default 1000: a whole AI answer streamed in chunks, or a minute of a
    /// busy channel.
    pub history_size: usize,
    /// How long a publication is kept for recovery. Default 5 min: longer
    /// than a reconnect with the longest backoff, a laptop lid closed for a
    /// moment, or a redeploy.
    pub history_ttl: Duration,
    /// Most bytes of history, every stream together: past it the oldest
    /// publications of all go first. Default 64 MiB.
    pub max_history_bytes: usize,
    /// Streams that keep no history (and whose deliveries carry no `seq`):
    /// channel patterns like `typing-*`; `session:*` and `user:*` match
    /// sessions and users. Default: none.
    pub history_off: Vec<String>,

    /// A Redis shared by several hubs (`redis://host:6379/0`, or
    /// `rediss://host:6380/0` over TLS, as managed Redis services require):
    /// they then serve one set of clients, whichever hub each is connected
    /// to (see `docs/operations.md`, "Running several hubs"). Default: none,
    /// a hub on its own. Needs the `redis` feature (on by default), and
    /// `rediss://` the `redis-tls` feature (on by default).
    pub redis: Option<String>,
    /// A PEM file of the CA certificates that a `rediss://`
    /// [`redis`](Config::redis) server's certificate must chain to (a Redis
    /// with a certificate of its own CA). Set, they replace the system's
    /// trusted authorities for Redis, as [`jwks_ca`](Config::jwks_ca) does
    /// for the key set. Read when the hub starts; needs a `rediss://` URL.
    /// Default: none (the system's authorities).
    pub redis_ca: Option<PathBuf>,
    /// The prefix of every key and channel the hubs use in Redis, so that
    /// several clusters can share one. Default `wshub`.
    pub redis_prefix: String,
    /// How long Redis may take to answer a command (and the pubsub link a
    /// PING, once quiet) before the hub takes it for gone: a stalled Redis
    /// is a lost Redis. Publications are answered within about twice this.
    /// Default 5 s.
    pub redis_timeout: Duration,

    /// Serve the dashboard: the page at `GET /admin` and its live stats
    /// stream (a WebSocket on `/admin`, behind the admin token). Default
    /// `true`; `false` (`--no-admin-ui`) answers both 404. The analytics
    /// behind it (`/api/stats/history`, `/metrics`) stay.
    pub admin_ui: bool,

    /// With [`redis`](Config::redis): whether a Redis that does not answer
    /// at start (within `redis_timeout`) stops the start with
    /// [`Error::Config`](crate::Error::Config). Off (the default), the hub
    /// starts, warns, serves its own clients and joins the others once
    /// Redis answers, `GET /ready` saying 503 meanwhile.
    pub redis_required: bool,
}

/// Declares a builder method for each field, named after it, so a
/// [`Config`] reads as a chain (`Config::default().port(0).max_queue(64)`)
/// and a struct literal is never needed (the struct is
/// `#[non_exhaustive]`, so settings can be added without breaking anyone).
macro_rules! setters {
    ( $( $(@$into:ident)? $field:ident: $ty:ty, )* ) => {
        impl Config {
            $( setters!(@one $field $($into)? $ty); )*
        }

        /// Fails to compile when a field has no builder method (a struct
        /// literal must name every field).
        #[cfg(test)]
        #[test]
        fn every_field_has_a_builder_method() {
            let config = Config::default();
            let rebuilt = Config { $( $field: config.$field.clone(), )* };
            assert_eq!(format!("{rebuilt:?}"), format!("{config:?}"));
        }
    };
    (@one $field:ident into $ty:ty) => {
        #[doc = concat!("Sets [`", stringify!($field), "`](Config::", stringify!($field), ").")]
        #[must_use]
        pub fn $field(mut self, value: impl Into<$ty>) -> Config {
            self.$field = value.into();
            self
        }
    };
    (@one $field:ident $ty:ty) => {
        #[doc = concat!("Sets [`", stringify!($field), "`](Config::", stringify!($field), ").")]
        #[must_use]
        pub fn $field(mut self, value: $ty) -> Config {
            self.$field = value;
            self
        }
    };
}

setters! {
    @into host: String,
    port: u16,
    @into path: String,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    heartbeat_interval: Duration,
    client_timeout: Duration,
    max_connections: usize,
    max_message_size: usize,
    max_queue: usize,
    max_queue_bytes: usize,
    allow_client_publish: bool,
    handshake_timeout: Duration,
    close_timeout: Duration,
    shutdown_timeout: Duration,
    max_header_size: usize,
    max_body_size: usize,
    thread_stack_size: usize,
    writer_threads: usize,
    max_inbox_bytes: usize,
    request_queue: usize,
    batch_window: Duration,
    batch_max: usize,
    @into batch_type: String,
    envelope: Envelope,
    endpoints: Vec<Endpoint>,
    json_heartbeat: bool,
    read_buffer_size: usize,
    compression: bool,
    compression_min_size: usize,
    tokens: HashMap<Secret, TokenGrant>,
    jwt_secret: Option<Secret>,
    jwt_public_keys: Vec<JwtKey>,
    jwks_url: Option<String>,
    jwks_ca: Option<PathBuf>,
    jwt_audiences: Vec<String>,
    jwt_issuer: Option<String>,
    jwt_leeway: Duration,
    admin_token: Option<Secret>,
    allow_anonymous: bool,
    allowed_origins: Vec<String>,
    rate_limit: u32,
    rate_window: Duration,
    rate_burst: u32,
    max_subscriptions: usize,
    max_connections_per_user: usize,
    max_connections_per_ip: usize,
    max_handshakes: usize,
    max_handshakes_per_ip: usize,
    trusted_proxies: Vec<IpAddr>,
    max_threads: Option<usize>,
    session_retention: Duration,
    max_sessions_per_user: usize,
    presence_grace: Duration,
    history_size: usize,
    history_ttl: Duration,
    max_history_bytes: usize,
    history_off: Vec<String>,
    redis: Option<String>,
    redis_ca: Option<PathBuf>,
    @into redis_prefix: String,
    redis_timeout: Duration,
    admin_ui: bool,
    redis_required: bool,
}

/// One more WebSocket endpoint and the envelope its clients get.
///
/// ```
/// let agents = wshub::Endpoint::new("/agents", wshub::Envelope::Payload);
/// # let _ = agents;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint {
    /// Its path, like `/agents`.
    pub path: String,
    /// The envelope its clients get unless they ask for another.
    pub envelope: Envelope,
}

impl Endpoint {
    /// An endpoint at `path` with `envelope`.
    pub fn new(path: impl Into<String>, envelope: Envelope) -> Endpoint {
        Endpoint {
            path: path.into(),
            envelope,
        }
    }
}

/// Paths of the HTTP API, which an endpoint may not take.
fn reserved_path(path: &str) -> bool {
    path == "/health" || path == "/ready" || path == "/metrics" || path.starts_with("/api/")
}

/// The dashboard's page and stats stream, and its files below it.
pub(crate) const ADMIN_PATH: &str = "/admin";

/// Whether `path` is the dashboard's (the page, its files or its stream).
fn dashboard_path(path: &str) -> bool {
    path == ADMIN_PATH || path.starts_with("/admin/")
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".to_owned(),
            port: 3000,
            path: "/ws".to_owned(),
            tls_cert: None,
            tls_key: None,
            heartbeat_interval: Duration::from_secs(30),
            client_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_message_size: 64 * 1024,
            max_queue: 4096,
            max_queue_bytes: 8 * 1024 * 1024,
            allow_client_publish: false,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(5),
            max_header_size: 8 * 1024,
            max_body_size: 1024 * 1024,
            thread_stack_size: 64 * 1024,
            writer_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_inbox_bytes: 32 * 1024 * 1024,
            request_queue: 1024,
            batch_window: Duration::from_millis(100),
            batch_max: 64,
            batch_type: "batch_update".to_owned(),
            envelope: Envelope::Standard,
            endpoints: Vec::new(),
            json_heartbeat: false,
            read_buffer_size: 4 * 1024,
            compression: false,
            compression_min_size: 256,
            tokens: HashMap::new(),
            jwt_secret: None,
            jwt_public_keys: Vec::new(),
            jwks_url: None,
            jwks_ca: None,
            jwt_audiences: Vec::new(),
            jwt_issuer: None,
            jwt_leeway: Duration::from_secs(30),
            admin_token: None,
            allow_anonymous: false,
            allowed_origins: Vec::new(),
            rate_limit: 50,
            rate_window: Duration::from_secs(1),
            rate_burst: 200,
            max_subscriptions: 128,
            max_connections_per_user: 100,
            max_connections_per_ip: 1000,
            max_handshakes: 256,
            max_handshakes_per_ip: 32,
            trusted_proxies: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
            max_threads: None,
            session_retention: Duration::from_secs(3600),
            max_sessions_per_user: 1000,
            presence_grace: Duration::from_secs(2),
            history_size: 1000,
            history_ttl: Duration::from_secs(300),
            max_history_bytes: 64 * 1024 * 1024,
            history_off: Vec::new(),
            redis: None,
            redis_ca: None,
            redis_prefix: "wshub".to_owned(),
            redis_timeout: Duration::from_secs(5),
            admin_ui: true,
            redis_required: false,
        }
    }
}

impl Config {
    /// Serves TLS with the certificate chain and key in these PEM files:
    /// sets [`tls_cert`](Config::tls_cert) and [`tls_key`](Config::tls_key).
    ///
    /// ```
    /// let config = wshub::Config::default().tls("/etc/wshub/fullchain.pem", "/etc/wshub/key.pem");
    /// assert!(config.tls_cert.is_some() && config.tls_key.is_some());
    /// ```
    #[must_use]
    pub fn tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Config {
        self.tls_cert = Some(cert.into());
        self.tls_key = Some(key.into());
        self
    }

    /// Checks every value, naming the first one out of range.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] with the field and the reason.
    pub fn validate(&self) -> Result<()> {
        let fail = |field, reason: &str| {
            Err(Error::Config {
                field,
                reason: reason.to_owned(),
            })
        };
        let positive = |d: Duration| !d.is_zero();
        // Far beyond any sensible value, and far from overflowing an Instant.
        let year = Duration::from_secs(365 * 24 * 3600);
        for (field, value) in [
            ("heartbeat_interval", self.heartbeat_interval),
            ("client_timeout", self.client_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("close_timeout", self.close_timeout),
            ("shutdown_timeout", self.shutdown_timeout),
            ("jwt_leeway", self.jwt_leeway),
            ("rate_window", self.rate_window),
            ("session_retention", self.session_retention),
            ("presence_grace", self.presence_grace),
            ("history_ttl", self.history_ttl),
            ("redis_timeout", self.redis_timeout),
        ] {
            if value > year {
                return fail(field, "must be at most a year");
            }
        }
        if self.host.is_empty() {
            return fail("host", "must not be empty");
        }
        if !self.path.starts_with('/') || self.path.contains(['?', '#', ' ']) {
            return fail("path", "must start with / and hold no ?, # or space");
        }
        if !positive(self.heartbeat_interval) {
            return fail("heartbeat_interval", "must be more than 0");
        }
        if !positive(self.handshake_timeout) {
            return fail("handshake_timeout", "must be more than 0");
        }
        if !positive(self.close_timeout) {
            return fail("close_timeout", "must be more than 0");
        }
        if self.max_connections == 0 {
            return fail("max_connections", "must be at least 1");
        }
        if self.max_message_size < 64 || self.max_message_size > 64 * 1024 * 1024 {
            return fail("max_message_size", "must be between 64 bytes and 64 MiB");
        }
        if self.max_queue == 0 {
            return fail("max_queue", "must be at least 1");
        }
        if self.max_queue_bytes == 0 {
            return fail("max_queue_bytes", "must be at least 1");
        }
        if self.max_header_size < 1024 {
            return fail("max_header_size", "must be at least 1024 bytes");
        }
        if self.max_body_size == 0 {
            return fail("max_body_size", "must be at least 1 byte");
        }
        if self.thread_stack_size < 32 * 1024 {
            return fail("thread_stack_size", "must be at least 32 KiB");
        }
        if self.writer_threads == 0 || self.writer_threads > 1024 {
            return fail("writer_threads", "must be between 1 and 1024");
        }
        if self.request_queue == 0 {
            return fail("request_queue", "must be at least 1");
        }
        if self.batch_window.is_zero() || self.batch_window > Duration::from_secs(60) {
            return fail("batch_window", "must be more than 0 and at most 60 s");
        }
        if self.batch_max == 0 || self.batch_max > 10_000 {
            return fail("batch_max", "must be between 1 and 10000");
        }
        if let Err((_, reason)) = crate::protocol::check_name(&self.batch_type, "batch_type") {
            return fail("batch_type", &reason);
        }
        for endpoint in &self.endpoints {
            let path = &endpoint.path;
            if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
                return fail(
                    "endpoints",
                    "a path must start with / and hold no ?, # or space",
                );
            }
            if *path == self.path || path == "/" || reserved_path(path) {
                return fail("endpoints", &format!("{path} is taken already"));
            }
            if self.admin_ui && dashboard_path(path) {
                return fail(
                    "endpoints",
                    &format!("{path} is the dashboard's (or turn it off: admin_ui, --no-admin-ui)"),
                );
            }
        }
        if self.admin_ui && dashboard_path(&self.path) {
            return fail(
                "path",
                "/admin is the dashboard's: pick another path, or turn the dashboard off (admin_ui, --no-admin-ui)",
            );
        }
        if self.max_inbox_bytes < self.max_message_size {
            return fail("max_inbox_bytes", "must be at least max_message_size");
        }
        if self.read_buffer_size < 1024 {
            return fail("read_buffer_size", "must be at least 1024 bytes");
        }
        if let Err(reason) = auth::check_tokens(&self.tokens) {
            return fail("tokens", &reason);
        }
        if self
            .jwt_secret
            .as_ref()
            .is_some_and(|s| s.expose().is_empty())
        {
            return fail("jwt_secret", "must not be empty");
        }
        if let Some(url) = &self.jwks_url {
            match jwks::parse_url(url) {
                Ok(jwks::Scheme::Https) => {}
                Ok(jwks::Scheme::Http(host)) if auth::is_loopback_host(&host) => {}
                Ok(jwks::Scheme::Http(_)) => {
                    let reason = format!(
                        "{url:?} must be an https:// URL (http:// only to this machine, for tests)"
                    );
                    return fail("jwks_url", &reason);
                }
                Err(reason) => return fail("jwks_url", &reason),
            }
            if cfg!(not(feature = "jwks")) {
                return fail(
                    "jwks_url",
                    "this build has no JWKS fetcher (the `jwks` feature)",
                );
            }
        }
        if let Some(ca) = &self.jwks_ca {
            if !self
                .jwks_url
                .as_deref()
                .is_some_and(|url| jwks::parse_url(url) == Ok(jwks::Scheme::Https))
            {
                return fail(
                    "jwks_ca",
                    "it is for an https:// jwks_url, and there is none",
                );
            }
            if let Err(err) = jwks::check_ca(ca) {
                return fail("jwks_ca", &err.to_string());
            }
        }
        if self.jwt_audiences.iter().any(|a| a.is_empty()) {
            return fail("jwt_audiences", "an audience must not be empty");
        }
        if self.jwt_issuer.as_ref().is_some_and(|i| i.is_empty()) {
            return fail("jwt_issuer", "must not be empty");
        }
        if self
            .admin_token
            .as_ref()
            .is_some_and(|s| s.expose().is_empty())
        {
            return fail("admin_token", "must not be empty");
        }
        for origin in &self.allowed_origins {
            if let Err(reason) = auth::check_origin_rule(origin) {
                return fail("allowed_origins", &reason);
            }
        }
        if self.rate_limit > 0 && !positive(self.rate_window) {
            return fail("rate_window", "must be more than 0");
        }
        if self.rate_limit > 0 && self.rate_burst == 0 {
            return fail("rate_burst", "must be at least 1");
        }
        if self.max_subscriptions == 0 {
            return fail("max_subscriptions", "must be at least 1");
        }
        if self.max_connections_per_user == 0 {
            return fail("max_connections_per_user", "must be at least 1");
        }
        if self.max_sessions_per_user == 0 {
            return fail("max_sessions_per_user", "must be at least 1");
        }
        if self.max_handshakes == 0 || self.max_handshakes_per_ip == 0 {
            return fail("max_handshakes", "must be at least 1 (per address too)");
        }
        if self.history_size > 1_000_000 {
            return fail("history_size", "must be at most 1000000");
        }
        for pattern in &self.history_off {
            if let Err(reason) = auth::Pattern::parse(pattern) {
                return fail("history_off", &reason);
            }
        }
        if let Some(url) = &self.redis
            && !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("unix://"))
        {
            return fail(
                "redis",
                "must be a redis://, rediss:// (TLS) or unix:// URL",
            );
        }
        let tls_redis = self
            .redis
            .as_deref()
            .is_some_and(|url| url.starts_with("rediss://"));
        if cfg!(all(feature = "redis", not(feature = "redis-tls"))) && tls_redis {
            return fail(
                "redis",
                "this build has no TLS for Redis (the `redis-tls` feature): rediss:// is refused",
            );
        }
        if let Some(ca) = &self.redis_ca {
            if !tls_redis {
                return fail(
                    "redis_ca",
                    "it is for a rediss:// redis URL, and there is none",
                );
            }
            if let Err(reason) = check_redis_ca(ca) {
                return fail("redis_ca", &reason);
            }
        }
        if cfg!(not(feature = "redis")) && self.redis.is_some() {
            return fail(
                "redis",
                "this build has no Redis support (the `redis` feature)",
            );
        }
        if cfg!(not(feature = "compression")) && self.compression {
            return fail(
                "compression",
                "this build has no compression support (the `compression` feature)",
            );
        }
        if self.redis_timeout < Duration::from_millis(10) {
            return fail("redis_timeout", "must be at least 10 ms");
        }
        if let Err((_, reason)) = crate::protocol::check_name(&self.redis_prefix, "redis_prefix") {
            return fail("redis_prefix", &reason);
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return fail("tls_key", "must be set with tls_cert"),
            (None, Some(_)) => return fail("tls_cert", "must be set with tls_key"),
            (Some(_), Some(_)) if cfg!(not(feature = "tls")) => {
                return fail(
                    "tls_cert",
                    "this build has no TLS support (the `tls` feature)",
                );
            }
            _ => {}
        }
        if self.max_threads.is_some_and(|n| n < 2) {
            return fail("max_threads", "must be at least 2");
        }
        Ok(())
    }

    /// The envelope of a client connecting on `path` (its own choice, the
    /// query's `envelope`, comes first); `None` if `path` is no WebSocket
    /// endpoint.
    pub(crate) fn endpoint_envelope(&self, path: &str) -> Option<Envelope> {
        if path == self.path || path == "/" {
            return Some(self.envelope);
        }
        self.endpoints
            .iter()
            .find(|e| e.path == path)
            .map(|e| e.envelope)
    }

    /// The authenticator these settings describe.
    pub(crate) fn authenticator(&self) -> Authenticator {
        let jwt = (self.jwt_secret.is_some()
            || !self.jwt_public_keys.is_empty()
            || self.jwks_url.is_some())
        .then(|| {
            Verifier::new(
                self.jwt_secret.as_ref().map(|s| s.expose().as_bytes()),
                self.jwt_public_keys.clone(),
                self.jwks_url
                    .as_deref()
                    .map(|url| Arc::new(KeySet::new(url, self.jwks_ca.as_deref()))),
                self.jwt_audiences.clone(),
                self.jwt_issuer.clone(),
                self.jwt_leeway,
            )
        });
        Authenticator::new(
            &self.tokens,
            jwt,
            self.handshake_timeout.min(jwks::MOST_WAIT),
            self.admin_token.as_ref(),
            self.allow_anonymous,
            &self.allowed_origins,
        )
    }

    /// The bounds of history these settings describe.
    pub(crate) fn history_limits(&self) -> crate::history::Limits {
        crate::history::Limits {
            size: self.history_size,
            ttl: self.history_ttl,
            bytes: self.max_history_bytes,
            // Checked by `validate`.
            off: self
                .history_off
                .iter()
                .filter_map(|p| auth::Pattern::parse(p).ok())
                .collect(),
        }
    }

    /// How often the timer thread wakes the router: often enough to ping and
    /// time out clients within a quarter of the shortest period, at most once
    /// a second, at least every 10 ms.
    pub(crate) fn tick(&self) -> Duration {
        let timeout = match self.client_timeout.is_zero() {
            true => self.heartbeat_interval,
            false => self.client_timeout,
        };
        let shortest = self
            .heartbeat_interval
            .min(timeout)
            .min(self.close_timeout)
            .min(self.shutdown_timeout.max(Duration::from_millis(40)));
        (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// Checks that `path` is a PEM file of CA certificates rustls takes, for
/// [`Config::redis_ca`]; the reason if it is not.
pub(crate) fn check_redis_ca(path: &Path) -> std::result::Result<(), String> {
    #[cfg(feature = "redis-tls")]
    return read_redis_ca(path).map(drop);
    #[cfg(not(feature = "redis-tls"))]
    return Err(format!(
        "{}: this build has no TLS for Redis (the `redis-tls` feature)",
        path.display()
    ));
}

/// The PEM text of a CA file, once each of its certificates is checked as
/// rustls will take it as a trust anchor.
#[cfg(feature = "redis-tls")]
pub(crate) fn read_redis_ca(path: &Path) -> std::result::Result<Vec<u8>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let pem = std::fs::read(path).map_err(|err| format!("{}: {err}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|err| format!("{}: not PEM ({err})", path.display()))?;
        roots
            .add(cert)
            .map_err(|err| format!("{}: not a CA certificate ({err})", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no CERTIFICATE in the file", path.display()));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        let cases: Vec<(Config, &str)> = vec![
            (
                Config {
                    path: "ws".into(),
                    ..Config::default()
                },
                "path",
            ),
            (
                Config {
                    heartbeat_interval: Duration::ZERO,
                    ..Config::default()
                },
                "heartbeat_interval",
            ),
            (
                Config {
                    max_connections: 0,
                    ..Config::default()
                },
                "max_connections",
            ),
            (
                Config {
                    max_message_size: 10,
                    ..Config::default()
                },
                "max_message_size",
            ),
            (
                Config {
                    max_queue: 0,
                    ..Config::default()
                },
                "max_queue",
            ),
            (
                Config {
                    thread_stack_size: 1024,
                    ..Config::default()
                },
                "thread_stack_size",
            ),
            (
                Config {
                    jwt_secret: Some("".into()),
                    ..Config::default()
                },
                "jwt_secret",
            ),
            (
                Config {
                    allowed_origins: vec!["example.com".into()],
                    ..Config::default()
                },
                "allowed_origins",
            ),
            (
                Config {
                    rate_window: Duration::ZERO,
                    ..Config::default()
                },
                "rate_window",
            ),
            (
                Config {
                    max_subscriptions: 0,
                    ..Config::default()
                },
                "max_subscriptions",
            ),
            (
                Config {
                    max_connections_per_user: 0,
                    ..Config::default()
                },
                "max_connections_per_user",
            ),
            (
                Config {
                    tokens: HashMap::from([("t".into(), TokenGrant::user(""))]),
                    ..Config::default()
                },
                "tokens",
            ),
        ];
        for (config, field) in cases {
            match config.validate() {
                Err(Error::Config { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_jwks_url_is_https_or_plain_http_to_this_machine() {
        let check = |url: &str| Config::default().jwks_url(Some(url.into())).validate();
        for url in [
            "https://tenant.auth0.com/.well-known/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:1/k",
        ] {
            assert!(check(url).is_ok(), "{url}");
        }
        for url in [
            "http://example.com/jwks",
            "http://127.0.0.1.evil.example/jwks",
            "ftp://example.com/jwks",
            "https://user:pw@example.com/jwks",
            "example.com/jwks",
        ] {
            match check(url) {
                Err(Error::Config { field, reason }) => {
                    assert_eq!(field, "jwks_url");
                    assert!(reason.contains(url), "{url}: {reason}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_dashboards_path_is_its_own_while_it_is_on() {
        let admin = Config::default().path("/admin");
        assert!(matches!(
            admin.validate(),
            Err(Error::Config { field: "path", .. })
        ));
        assert!(admin.admin_ui(false).validate().is_ok());
        let endpoint =
            Config::default().endpoints(vec![Endpoint::new("/admin/ws", Envelope::Flat)]);
        assert!(matches!(
            endpoint.validate(),
            Err(Error::Config {
                field: "endpoints",
                ..
            })
        ));
    }

    #[test]
    fn durations_too_long_to_add_to_an_instant_are_refused() {
        let huge = |config: Config| match config.validate() {
            Err(Error::Config { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let max = Duration::MAX;
        assert_eq!(
            huge(Config {
                heartbeat_interval: max,
                ..Config::default()
            }),
            "heartbeat_interval"
        );
        assert_eq!(
            huge(Config {
                session_retention: max,
                ..Config::default()
            }),
            "session_retention"
        );
        assert_eq!(
            huge(Config {
                jwt_leeway: max,
                ..Config::default()
            }),
            "jwt_leeway"
        );
        assert_eq!(
            huge(Config {
                max_queue_bytes: 0,
                ..Config::default()
            }),
            "max_queue_bytes"
        );
    }

    #[test]
    fn the_tick_follows_the_shortest_period() {
        assert_eq!(Config::default().tick(), Duration::from_secs(1));
        let fast = Config {
            heartbeat_interval: Duration::from_millis(100),
            ..Config::default()
        };
        assert_eq!(fast.tick(), Duration::from_millis(25));
        let tiny = Config {
            client_timeout: Duration::from_millis(1),
            ..Config::default()
        };
        assert_eq!(tiny.tick(), Duration::from_millis(10));
        let kept = Config {
            client_timeout: Duration::ZERO,
            ..Config::default()
        };
        assert_eq!(
            kept.tick(),
            Duration::from_secs(1),
            "zero is off, not the shortest"
        );
    }
}
