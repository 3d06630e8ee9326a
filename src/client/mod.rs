//! A blocking client of the hub, for CLIs, IDE plugins and services written
//! in Rust: `wshub::client`.
//!
//! It owns one connection at a time to one hub, and everything the
//! protocol asks of a client: the token (and a fresh one after a 4001),
//! reconnecting by the close-code table with full-jitter backoff,
//! re-subscribing every channel and session with `since` so nothing
//! published meanwhile is lost, dropping duplicates and reporting gaps by
//! `seq` and `epoch`, requests correlated with their replies, presence, and
//! a heartbeat watchdog that notices a connection that died silently.
//!
//! **Threads: none.** Everything runs on the thread that calls the client,
//! inside the call: [`Client::next_update`] and the requests read the socket
//! (answering the hub's Pings as they go), notice a dead connection,
//! and reconnect when it is time. Between calls nothing happens, so call
//! `next_update` at least once per heartbeat interval (30 s by default), or
//! the hub will find the client silent and drop it. A [`Client`] is `Send`:
//! move it to a thread of its own if the program has other work.
//!
//! **Ending.** The client ends when it is dropped (the socket is closed),
//! after [`Client::close`], or by itself on a close code that means stop
//! (1000, 1008, 4500 to 4999, ...); every call then returns [`Error::Closed`].
//!
//! ```no_run
//! use std::time::Duration;
//! use wshub::Topic;
//! use wshub::client::{Client, Update, Options};
//!
//! let mut client = Client::connect("ws://127.0.0.1:3000/ws", Options::new().token("s3cret"))?;
//! client.subscribe(Topic::channel("files"))?;
//! let pong = client.request(serde_json::json!({"type": "ping"}), Duration::from_secs(5))?;
//! assert_eq!(pong["type"], "pong");
//! loop {
//!     match client.next_update(Duration::from_secs(30))? {
//!         Some(Update::Message(message)) => println!("{}: {}", message.kind, message.data),
//!         Some(other) => eprintln!("{other:?}"),
//!         None => {} // nothing within 30 s
//!     }
//! }
//! # Ok::<(), wshub::client::Error>(())
//! ```

mod backoff;
mod close;
mod conn;
mod error;
mod streams;
#[cfg(feature = "tls")]
mod tls;
mod update;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value, json};

use self::backoff::Backoff;
use self::conn::{Conn, Endpoint, Opening};
use self::streams::{Streams, Verdict};
use self::update::topic_of;
use crate::protocol::USER_PREFIX;
use crate::{Status, Topic};

pub use self::close::CloseAction;
pub use self::error::{Error, HubError, Result};
pub use self::streams::Position;
pub use self::update::{Loss, Message, Next, Presence, Publisher, Update, Welcome};

/// The prefix of the `correlationId`s the client makes up.
const CORRELATION_PREFIX: &str = "wshub-rs:";

/// A very long wait, for timeouts too large to add to an `Instant`.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A source of fresh tokens, asked after a 4001 (token expired).
type TokenProvider = Box<dyn FnMut() -> Option<String> + Send>;

/// How the client connects and behaves. Every setting has a default, so
/// `Options::new()` (or `Options::default()`) works for a development hub.
///
/// ```
/// use std::time::Duration;
/// use wshub::client::Options;
///
/// let options = Options::new()
///     .token("a JWT")
///     .token_provider(|| Some("a fresh JWT".to_owned()))
///     .session_id("session_123")
///     .backoff(Duration::from_millis(250), Duration::from_secs(10))
///     .max_attempts(20)
///     .request_timeout(Duration::from_secs(5));
/// # let _ = options;
/// ```
pub struct Options {
    token: Option<String>,
    token_provider: Option<TokenProvider>,
    user_id: Option<String>,
    session_id: Option<String>,
    reconnect: bool,
    initial_delay: Duration,
    max_delay: Duration,
    max_attempts: Option<u32>,
    request_timeout: Duration,
    connect_timeout: Duration,
    heartbeat_grace: Duration,
    batch_type: String,
    follow_user_stream: bool,
    /// `wss://`: the authorities to trust instead of the system's.
    ca_file: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            token: None,
            token_provider: None,
            user_id: None,
            session_id: None,
            reconnect: true,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_attempts: None,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            heartbeat_grace: Duration::from_secs(5),
            batch_type: "batch_update".to_owned(),
            follow_user_stream: true,
            ca_file: None,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("token_provider", &self.token_provider.is_some())
            .field("user_id", &self.user_id)
            .field("session_id", &self.session_id)
            .field("reconnect", &self.reconnect)
            .field("initial_delay", &self.initial_delay)
            .field("max_delay", &self.max_delay)
            .field("max_attempts", &self.max_attempts)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("heartbeat_grace", &self.heartbeat_grace)
            .field("batch_type", &self.batch_type)
            .field("follow_user_stream", &self.follow_user_stream)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl Options {
    /// The defaults: no token, reconnect with backoff from 0.5 s up to 20 s
    /// for ever, 10 s for requests and for connecting, a watchdog grace of
    /// 5 s.
    ///
    /// ```
    /// let options = wshub::client::Options::new();
    /// # let _ = options;
    /// ```
    pub fn new() -> Options {
        Options::default()
    }

    /// The token (a static token or a JWT), sent as `Authorization: Bearer`
    /// on every connection until a 4001 or [`Client::refresh`] replaces it.
    ///
    /// ```
    /// let options = wshub::client::Options::new().token("alice-static");
    /// # let _ = options;
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Options {
        self.token = Some(token.into());
        self
    }

    /// Where fresh tokens come from: called when the hub closes with 4001
    /// (token expired), and for the first connection when no
    /// [`token`](Options::token) is set. `None` means there is none: the
    /// client then stops. Without a provider, a 4001 stops the client.
    ///
    /// ```
    /// let options = wshub::client::Options::new()
    ///     .token_provider(|| std::env::var("HUB_TOKEN").ok());
    /// # let _ = options;
    /// ```
    pub fn token_provider(
        mut self,
        provider: impl FnMut() -> Option<String> + Send + 'static,
    ) -> Options {
        self.token_provider = Some(Box::new(provider));
        self
    }

    /// `?userId=`: who to be on a development hub (one without tokens).
    ///
    /// ```
    /// let options = wshub::client::Options::new().user_id("u1");
    /// # let _ = options;
    /// ```
    pub fn user_id(mut self, user: impl Into<String>) -> Options {
        self.user_id = Some(user.into());
        self
    }

    /// `?sessionId=`: join this session on every connection. It counts as a
    /// subscription: recovered after a reconnect, left with
    /// [`Client::unsubscribe`].
    ///
    /// ```
    /// let options = wshub::client::Options::new().session_id("session_123");
    /// # let _ = options;
    /// ```
    pub fn session_id(mut self, session: impl Into<String>) -> Options {
        self.session_id = Some(session.into());
        self
    }

    /// Whether to reconnect at all (default `true`). `false`: the first
    /// close stops the client.
    ///
    /// ```
    /// let options = wshub::client::Options::new().reconnect(false);
    /// # let _ = options;
    /// ```
    pub fn reconnect(mut self, reconnect: bool) -> Options {
        self.reconnect = reconnect;
        self
    }

    /// The backoff: attempt `n` after a loss waits a random time up to
    /// `min(max, initial × 2ⁿ)` (full jitter). Default 0.5 s and 20 s. A hub
    /// going away (1001) is reconnected to after a random time up to 1 s,
    /// or `initial` if longer.
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = wshub::client::Options::new()
    ///     .backoff(Duration::from_millis(100), Duration::from_secs(5));
    /// # let _ = options;
    /// ```
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Options {
        self.initial_delay = initial;
        self.max_delay = max.max(initial);
        self
    }

    /// Gives up after this many reconnect attempts in a row that got no
    /// welcome (default: never).
    ///
    /// ```
    /// let options = wshub::client::Options::new().max_attempts(10);
    /// # let _ = options;
    /// ```
    pub fn max_attempts(mut self, attempts: u32) -> Options {
        self.max_attempts = Some(attempts);
        self
    }

    /// How long [`Client::subscribe`], [`Client::publish`] and the other
    /// helpers wait for their reply, and a reconnect for its
    /// re-subscriptions (default 10 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = wshub::client::Options::new().request_timeout(Duration::from_secs(3));
    /// # let _ = options;
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Options {
        self.request_timeout = timeout;
        self
    }

    /// How long a connection attempt may take, from TCP to the welcome
    /// (default 10 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = wshub::client::Options::new().connect_timeout(Duration::from_secs(3));
    /// # let _ = options;
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Options {
        self.connect_timeout = timeout;
        self
    }

    /// For a `wss://` URL: trust the certificate authorities in this PEM
    /// file (a private CA, or a test's) instead of the system's. Read when
    /// [`Client::connect`] is called. Needs the `tls` feature (on by
    /// default), as `wss://` does.
    ///
    /// ```no_run
    /// use wshub::client::{Client, Options};
    /// let client = Client::connect(
    ///     "wss://hub.internal:3000/ws",
    ///     Options::new().ca_file("/etc/wshub/ca.pem"),
    /// )?;
    /// # Ok::<(), wshub::client::Error>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Options {
        self.ca_file = Some(path.into());
        self
    }

    /// The heartbeat watchdog: a connection that brings no frame at all
    /// (the hub Pings every `heartbeatMs`) for twice the welcome's
    /// `heartbeatMs` plus this grace is taken as dead, and the client
    /// reconnects (default 5 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = wshub::client::Options::new().heartbeat_grace(Duration::from_secs(10));
    /// # let _ = options;
    /// ```
    pub fn heartbeat_grace(mut self, grace: Duration) -> Options {
        self.heartbeat_grace = grace;
        self
    }

    /// The type of the hub's batched deliveries (`--batch-type`, default
    /// `batch_update`), whose messages the client hands over one by one.
    ///
    /// ```
    /// let options = wshub::client::Options::new().batch_type("batchUpdate");
    /// # let _ = options;
    /// ```
    pub fn batch_type(mut self, kind: impl Into<String>) -> Options {
        self.batch_type = kind.into();
        self
    }

    /// Whether to follow this user's own stream, the channel `user:<id>`
    /// (default `true`, for a connection with a user): every connection of
    /// the user gets its publications anyway; following it gives the client
    /// a position, so that notifications sent while it was away are
    /// replayed after a reconnect.
    ///
    /// ```
    /// let options = wshub::client::Options::new().follow_user_stream(false);
    /// # let _ = options;
    /// ```
    pub fn follow_user_stream(mut self, follow: bool) -> Options {
        self.follow_user_stream = follow;
        self
    }
}

/// The connection, as far as the client knows.
#[derive(Debug)]
enum Link {
    /// Open, past the welcome (boxed: the other states are small).
    Up(Box<Conn>),
    /// Lost; the next attempt is due at `at`.
    Down { at: Instant },
    /// Stopped for good.
    Stopped { code: u16, reason: String },
}

/// A request of this client waiting for its reply.
#[derive(Debug)]
enum Pending {
    /// Its reply goes to whoever waits for it.
    Request,
    /// A `subscribe`: its reply confirms (or refuses) the subscription;
    /// `waiter` when a [`Client::subscribe`] call waits for it too.
    Subscribe {
        topic: Topic,
        since: bool,
        waiter: bool,
    },
}

/// A client of one hub (see the [module documentation](self)).
///
/// ```no_run
/// use std::time::Duration;
/// use wshub::client::{Client, Update, Options};
///
/// let mut client = Client::connect("ws://127.0.0.1:3000/ws", Options::new().user_id("u1"))?;
/// client.subscribe(wshub::Topic::session("session_123"))?;
/// while let Some(update) = client.next_update(Duration::from_secs(60))? {
///     if let Update::Message(message) = update {
///         println!("{}", message.raw);
///     }
/// }
/// # Ok::<(), wshub::client::Error>(())
/// ```
pub struct Client {
    endpoint: Endpoint,
    options: Options,
    link: Link,
    welcome: Welcome,
    /// Bumped on every connect and every loss: a wait that sees it change
    /// knows its connection is gone.
    generation: u64,
    /// Reconnect attempts since the last welcome.
    attempt: u32,
    backoff: Backoff,
    /// Events not handed out yet.
    updates: VecDeque<Update>,
    /// What the client subscribed to and re-subscribes on reconnect, in order.
    subscriptions: Vec<Topic>,
    /// Those the hub confirmed on this connection.
    confirmed: HashSet<Topic>,
    streams: Streams,
    pending: HashMap<String, Pending>,
    /// Replies that arrived for waiting requests.
    replies: HashMap<String, Value>,
    next_id: u64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.endpoint.url())
            .field("link", &self.link)
            .field("welcome", &self.welcome)
            .field("attempt", &self.attempt)
            .field("subscriptions", &self.subscriptions)
            .field("confirmed", &self.confirmed)
            .field("positions", self.streams.positions())
            .field("pending", &self.pending)
            .field("queued_updates", &self.updates.len())
            .field("options", &self.options)
            .finish()
    }
}

impl Client {
    /// Connects to the hub at `url` (`ws://host:port/ws`) and reads its
    /// welcome. A first connection that fails is an error (no retry): the
    /// client reconnects only once it has been connected.
    ///
    /// ```no_run
    /// let client = wshub::client::Client::connect(
    ///     "ws://127.0.0.1:3000/ws",
    ///     wshub::client::Options::new().token("alice-static"),
    /// )?;
    /// println!("connected as {:?}", client.welcome().user_id);
    /// # Ok::<(), wshub::client::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`], [`Error::TlsUnsupported`] for `wss://` in a
    /// build without the `tls` feature, [`Error::Certificates`] for a
    /// [`ca_file`](Options::ca_file) that cannot be used, [`Error::Connect`]
    /// when nothing listens there, [`Error::Tls`] when the TLS handshake
    /// fails (an untrusted certificate), [`Error::Http`] or
    /// [`Error::WebSocket`] when the upgrade fails, [`Error::Rejected`] when
    /// the hub refuses the client (a bad token: 1008), [`Error::Timeout`]
    /// after the connect timeout, [`Error::Protocol`] for something that is
    /// not a wshub hub.
    pub fn connect(url: &str, mut options: Options) -> Result<Client> {
        let endpoint = Endpoint::parse(url, options.ca_file.as_deref())?;
        if options.token.is_none()
            && let Some(provider) = options.token_provider.as_mut()
        {
            options.token = provider();
        }
        let opening = Opening {
            token: options.token.as_deref(),
            user_id: options.user_id.as_deref(),
            session_id: options.session_id.as_deref(),
            timeout: options.connect_timeout,
            heartbeat_grace: options.heartbeat_grace,
        };
        let (conn, welcome) = Conn::open(&endpoint, &opening)?;
        log::debug!(
            "connected to {} as {} ({:?})",
            endpoint.url(),
            welcome.client_id,
            welcome.user_id
        );
        // The session joined at connect is a subscription like the others.
        let subscriptions = options
            .session_id
            .iter()
            .cloned()
            .map(Topic::session)
            .collect();
        let mut client = Client {
            backoff: Backoff::new(options.initial_delay, options.max_delay),
            endpoint,
            options,
            link: Link::Up(Box::new(conn)),
            welcome,
            generation: 0,
            attempt: 0,
            updates: VecDeque::new(),
            subscriptions,
            confirmed: HashSet::new(),
            streams: Streams::default(),
            pending: HashMap::new(),
            replies: HashMap::new(),
            next_id: 0,
        };
        // Where the joined session and the user's own stream stand, so a
        // reconnect can recover them.
        client.resubscribe();
        Ok(client)
    }

    /// The latest welcome: this connection's id, user and heartbeat.
    ///
    /// ```no_run
    /// # let client = wshub::client::Client::connect("ws://127.0.0.1:3000/ws", Default::default())?;
    /// let id = &client.welcome().client_id;
    /// # let _ = id; Ok::<(), wshub::client::Error>(())
    /// ```
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Whether a connection is open right now.
    ///
    /// ```no_run
    /// # let client = wshub::client::Client::connect("ws://127.0.0.1:3000/ws", Default::default())?;
    /// assert!(client.is_connected());
    /// # Ok::<(), wshub::client::Error>(())
    /// ```
    pub fn is_connected(&self) -> bool {
        matches!(self.link, Link::Up(_))
    }

    /// The last publication seen on a stream (a channel, a session, or the
    /// channel `user:<id>`): where a reconnect resumes it from.
    ///
    /// ```no_run
    /// # let client = wshub::client::Client::connect("ws://127.0.0.1:3000/ws", Default::default())?;
    /// if let Some(at) = client.position(&wshub::Topic::channel("files")) {
    ///     println!("files: seq {} in epoch {:?}", at.seq, at.epoch);
    /// }
    /// # Ok::<(), wshub::client::Error>(())
    /// ```
    pub fn position(&self, topic: &Topic) -> Option<&Position> {
        self.streams.position(topic)
    }

    /// The next update, waiting up to `timeout`: `Ok(None)` if nothing came
    /// by then. While it waits it answers the hub's Pings, watches for a
    /// dead connection, and reconnects when the close-code table says so
    /// (a reconnect attempt may take up to the connect timeout). A zero
    /// timeout reads what has already arrived.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # let mut client = wshub::client::Client::connect("ws://127.0.0.1:3000/ws", Default::default())?;
    /// while let Some(update) = client.next_update(Duration::from_secs(60))? {
    ///     println!("{update:?}");
    /// }
    /// # Ok::<(), wshub::client::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the client has stopped and every update before
    /// the stop was handed out.
    pub fn next_update(&mut self, timeout: Duration) -> Result<Option<Update>> {
        let deadline = deadline_after(timeout);
        let mut waited = false;
        loop {
            if let Some(update) = self.updates.pop_front() {
                return Ok(Some(update));
            }
            if let Link::Stopped { code, reason } = &self.link {
                return Err(Error::Closed {
                    code: *code,
                    reason: reason.clone(),
                });
            }
            if waited && Instant::now() >= deadline {
                return Ok(None);
            }
            self.step(deadline)?;
            waited = true;
        }
    }

    /// Subscribes to a channel or a session and waits for the hub's
    /// answer. The subscription is remembered and re-sent on every
    /// reconnect, with `since` so that what was published meanwhile comes
    /// first. Subscribing again to a topic already subscribed does nothing.
    ///
    /// ```no_run
    /// # let mut client = wshub::client::Client::connect("ws://127.0.0.1:3000/ws", Default::default())?;
    /// client.subscribe(wshub::Topic::channel("files"))?;
    /// client.subscribe(wshub::Topic::session("session_123"))?;
    /// # Ok::<(), wshub::client::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Hub`] when refused (`forbidden`, `invalid_channel`,
    /// `too_many_subscriptions`; it is then forgotten). [`Error::Timeout`]
    /// after the request timeout, or [`Error::Disconnected`] while the
    /// client is down with no attempt due in time: it stays remembered, and
    /// the next connection subscribes it. [`Error::Closed`] once stopped.
    pub fn subscribe(&mut self, topic: Topic) -> Result<()> {
        let deadline = deadline_after(self.options.request_timeout);
        if !self.subscriptions.contains(&topic) {
            self.subscriptions.push(topic.clone());
        }
        loop {
            if self.confirmed.contains(&topic) {
                return Ok(());
            }
            // A reconnect here re-sends it with the others.
            self.ensure_up(deadline)?;
            if self.confirmed.contains(&topic) {
                return Ok(());
            }
            let id = self.send_subscribe(&topic, true)?;
            match self.await_reply(&id, deadline) {
                Ok(_) => return Ok(()),
                // Still remembered: the reconnect sends it again.
                Err(Error::Disconnected) => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// Leaves a channel or session, and forgets it and its position.
    ///
    /// ```no_run
    /// # let mut client = wshub::client::Client::connect("ws://127.0.0.1:3000/ws", Default::default())?;
    /// client.unsubscribe(wshub::Topic::channel("files"))?;
    /// # Ok::<(), wshub::client::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`request`](Client::request); when not connected there is nothing
    /// to leave, and it succeeds.
    pub fn unsubscribe(&mut self, topic: Topic) -> Result<()> {
        self.forget(&topic);
        if !self.is_connected() {
            return Ok(());
        }
        let mut message = json!({"type": "unsubscribe"});
        name_topic(&mut message, &topic);
        self.request(message, self.options.request_timeout)
            .map(|_| ())
    }

    /// Publishes `data` as `event` to a channel's or a session's
    /// subscribers, and returns how many the hub delivered it to. The hub
    /// must allow it (`--allow-client-publish`, or the token's `publish`).
    ///
    /// ```no_run
    /// # let mut client = wshub::client::Client::connect("ws://127.0.0.1:3000/ws", Default::default())?;
    /// let delivered = client.publish(
    ///     wshub::Topic::channel("chat"),
    ///     "chat_message",
    ///     serde_json::json!({"text": "hello"}),
    /// )?;
    /// # let _ = delivered; Ok::<(), wshub::client::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Json`] for data that is not JSON, [`Error::Hub`] when
    /// refused (`forbidden`), and as [`request`](Client::request).
    pub fn publish(&mut self, topic: Topic, event: &str, data: impl Serialize) -> Result<usize> {
        let mut message =
            json!({"type": "publish", "event": event, "data": serde_json::to_value(data)?});
        name_topic(&mut message, &topic);
        let reply = self.request(message, self.options.request_timeout)?;
        let delivered = reply["data"]["delivered"].as_u64().unwrap_or(0);
        Ok(usize::try_from(delivered).unwrap_or(usize::MAX))
    }

    /// Sends a request and waits up to `timeout` for its reply, which is
    /// returned whole (`{"type", "data", "correlationId", ...}`). The
    /// client sets the `correlationId` itself. Messages that arrive in the
    /// meantime are kept, in order, for [`next_update`](Client::next_update).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # let mut client = wshub::client::Client::connect("ws://127.0.0.1:3000/ws", Default::default())?;
    /// let reply = client.request(
    ///     serde_json::json!({"type": "agent:start", "data": {"projectId": "p1"}}),
    ///     Duration::from_secs(10),
    /// )?;
    /// println!("{} {}", reply["type"], reply["data"]);
    /// # Ok::<(), wshub::client::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`] if `message` is not an object with a
    /// string `type`; [`Error::Hub`] when the reply is an `error`;
    /// [`Error::Timeout`]; [`Error::Disconnected`] when the connection ended
    /// before the reply (or is down, with the next attempt after the
    /// timeout); [`Error::Closed`] once stopped.
    pub fn request(&mut self, message: Value, timeout: Duration) -> Result<Value> {
        let deadline = deadline_after(timeout);
        let mut message = checked(message)?;
        self.ensure_up(deadline)?;
        let id = self.correlation_id();
        message.insert("correlationId".into(), Value::String(id.clone()));
        self.pending.insert(id.clone(), Pending::Request);
        self.transmit(&Value::Object(message))?;
        self.await_reply(&id, deadline)
    }

    /// Sends a message that expects no reply (an application message the
    /// backend handles, say), as it is.
    ///
    /// ```no_run
    /// # let mut client = wshub::client::Client::connect("ws://127.0.0.1:3000/ws", Default::default())?;
    /// client.send(serde_json::json!({"type": "agent:message", "data": {"content": "hi"}}))?;
    /// # Ok::<(), wshub::client::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMessage`], [`Error::Disconnected`] when not
    /// connected (nothing was sent), [`Error::Closed`] once stopped.
    pub fn send(&mut self, message: Value) -> Result<()> {
        let message = checked(message)?;
        self.ensure_up(Instant::now())?;
        self.transmit(&Value::Object(message))
    }

    /// Sets this user's presence, and waits for the hub's `ack`.
    ///
    /// ```no_run
    /// # let mut client = wshub::client::Client::connect("ws://127.0.0.1:3000/ws", Default::default())?;
    /// client.set_presence(wshub::Status::Away)?;
    /// # Ok::<(), wshub::client::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Hub`] (`forbidden` for a client without a user), and as
    /// [`request`](Client::request).
    pub fn set_presence(&mut self, status: Status) -> Result<()> {
        let message = json!({"type": "user_presence", "data": {"status": status}});
        self.request(message, self.options.request_timeout)
            .map(|_| ())
    }

    /// Every user online and its status.
    ///
    /// ```no_run
    /// # let mut client = wshub::client::Client::connect("ws://127.0.0.1:3000/ws", Default::default())?;
    /// for user in client.presence()? {
    ///     println!("{} is {}", user.user_id, user.status);
    /// }
    /// # Ok::<(), wshub::client::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Json`] for an answer of the wrong shape, and as
    /// [`request`](Client::request).
    pub fn presence(&mut self) -> Result<Vec<Presence>> {
        let reply = self.request(json!({"type": "presence"}), self.options.request_timeout)?;
        let users = reply["data"].get("users").cloned().unwrap_or(json!([]));
        Ok(serde_json::from_value(users)?)
    }

    /// Sends a fresh token for the same user before the current one
    /// expires, so the connection stays open; it is also the token of every
    /// later connection.
    ///
    /// ```no_run
    /// # let mut client = wshub::client::Client::connect("ws://127.0.0.1:3000/ws", Default::default())?;
    /// client.refresh("a fresh JWT")?;
    /// # Ok::<(), wshub::client::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Hub`]: `unauthorized` (a bad token; the connection stays
    /// as it was), `forbidden` (another user); and as
    /// [`request`](Client::request).
    pub fn refresh(&mut self, token: &str) -> Result<()> {
        let message = json!({"type": "refresh", "data": {"token": token}});
        self.request(message, self.options.request_timeout)?;
        self.options.token = Some(token.to_owned());
        Ok(())
    }

    /// Closes the connection with 1000 (waiting briefly for the hub's
    /// answer) and stops: no reconnect. Events already received stay
    /// available from [`next_update`](Client::next_update).
    ///
    /// ```no_run
    /// # let mut client = wshub::client::Client::connect("ws://127.0.0.1:3000/ws", Default::default())?;
    /// client.close();
    /// assert!(!client.is_connected());
    /// # Ok::<(), wshub::client::Error>(())
    /// ```
    pub fn close(&mut self) {
        let reason = "Client closed";
        let link = std::mem::replace(
            &mut self.link,
            Link::Stopped {
                code: 1000,
                reason: reason.to_owned(),
            },
        );
        if let Link::Up(conn) = link {
            conn.close(reason);
        }
        self.connection_ended();
    }

    // ---- The connection ---------------------------------------------------

    /// Makes progress until `deadline`: reads one frame, or waits for the
    /// next reconnect attempt and makes it.
    fn step(&mut self, deadline: Instant) -> Result<()> {
        let read = match &mut self.link {
            Link::Up(conn) => conn.read(deadline),
            Link::Down { at } => {
                let at = *at;
                let now = Instant::now();
                if at > deadline {
                    std::thread::sleep(deadline.saturating_duration_since(now));
                } else {
                    std::thread::sleep(at.saturating_duration_since(now));
                    self.reconnect();
                }
                return Ok(());
            }
            Link::Stopped { code, reason } => {
                return Err(Error::Closed {
                    code: *code,
                    reason: reason.clone(),
                });
            }
        };
        match read {
            Ok(Some(text)) => self.received(&text),
            Ok(None) => {}
            Err(gone) => self.lost(gone.code, gone.reason),
        }
        Ok(())
    }

    /// Connected by `deadline`, reconnecting if one is due by then.
    fn ensure_up(&mut self, deadline: Instant) -> Result<()> {
        loop {
            match &self.link {
                Link::Up(_) => return Ok(()),
                Link::Stopped { code, reason } => {
                    return Err(Error::Closed {
                        code: *code,
                        reason: reason.clone(),
                    });
                }
                Link::Down { at } if *at > deadline => return Err(Error::Disconnected),
                Link::Down { .. } => self.step(deadline)?,
            }
        }
    }

    /// The connection ended (`code` 1006 without a Close frame, or for an
    /// attempt that failed): decide what next, and say so.
    fn lost(&mut self, code: u16, reason: String) {
        self.link = Link::Down { at: Instant::now() };
        self.connection_ended();
        let next = self.decide(code);
        log::debug!(
            "connection to {} ended: {code} {reason}; {next:?}",
            self.endpoint.url()
        );
        self.link = match next {
            Next::Reconnect { delay } => Link::Down {
                at: Instant::now() + delay,
            },
            Next::Stop => Link::Stopped {
                code,
                reason: reason.clone(),
            },
        };
        self.updates
            .push_back(Update::Closed { code, reason, next });
    }

    /// Whatever was in flight on the connection is gone with it.
    fn connection_ended(&mut self) {
        self.generation += 1;
        self.pending.clear();
        self.replies.clear();
        self.confirmed.clear();
        self.streams.connection_ended();
    }

    /// The close-code table, the options and the token provider decide.
    fn decide(&mut self, code: u16) -> Next {
        let action = CloseAction::for_code(code);
        let out_of_attempts = self
            .options
            .max_attempts
            .is_some_and(|max| self.attempt >= max);
        if action == CloseAction::Stop || !self.options.reconnect || out_of_attempts {
            return Next::Stop;
        }
        let delay = match action {
            CloseAction::Reconnect => self.backoff.jitter(),
            CloseAction::RefreshToken => {
                let fresh = self.options.token_provider.as_mut().and_then(|p| p());
                match fresh {
                    Some(token) => self.options.token = Some(token),
                    None => return Next::Stop,
                }
                Duration::ZERO
            }
            _ => self.backoff.delay(self.attempt),
        };
        self.attempt += 1;
        Next::Reconnect { delay }
    }

    /// A reconnect attempt: on success, every subscription is re-sent and
    /// answered (or the request timeout passes) before it returns.
    fn reconnect(&mut self) {
        let opening = Opening {
            token: self.options.token.as_deref(),
            user_id: self.options.user_id.as_deref(),
            session_id: self.options.session_id.as_deref(),
            timeout: self.options.connect_timeout,
            heartbeat_grace: self.options.heartbeat_grace,
        };
        match Conn::open(&self.endpoint, &opening) {
            Ok((conn, welcome)) => {
                log::debug!(
                    "reconnected to {} as {} after {} attempts",
                    self.endpoint.url(),
                    welcome.client_id,
                    self.attempt
                );
                self.link = Link::Up(Box::new(conn));
                self.generation += 1;
                self.attempt = 0;
                self.welcome = welcome.clone();
                self.updates.push_back(Update::Reconnected(welcome));
                self.resubscribe();
            }
            Err(Error::Rejected {
                code,
                reason,
                error,
            }) => {
                if let Some(error) = error {
                    self.updates.push_back(Update::HubError(error));
                }
                self.lost(code, reason);
            }
            Err(err) => self.lost(1006, err.to_string()),
        }
    }

    /// Sends every subscription on a new connection (with `since` where the
    /// position is known), and the user's own stream's, and reads until the
    /// hub answered them all. The session joined at connect is subscribed
    /// again too: that tells where it stands, or replays what was missed.
    fn resubscribe(&mut self) {
        let deadline = deadline_after(self.options.request_timeout);
        let mut topics = self.subscriptions.clone();
        if let Some(own) = self.own_stream()
            && !topics.contains(&own)
        {
            topics.push(own);
        }
        for topic in topics {
            if self.send_subscribe(&topic, false).is_err() {
                return; // the connection is gone again
            }
        }
        let generation = self.generation;
        while self.generation == generation
            && self
                .pending
                .values()
                .any(|p| matches!(p, Pending::Subscribe { .. }))
            && Instant::now() < deadline
        {
            if self.step(deadline).is_err() {
                return;
            }
        }
    }

    /// The user's own stream, when the client follows it.
    fn own_stream(&self) -> Option<Topic> {
        let user = self.welcome.user_id.as_ref()?;
        self.options
            .follow_user_stream
            .then(|| Topic::channel(format!("{USER_PREFIX}{user}")))
    }

    fn is_url_session(&self, topic: &Topic) -> bool {
        matches!((topic, &self.options.session_id), (Topic::Session(id), Some(joined)) if id == joined)
    }

    /// Sends a `subscribe` for `topic`, with `since` when its position is
    /// known. Returns its `correlationId`.
    fn send_subscribe(&mut self, topic: &Topic, waiter: bool) -> Result<String> {
        let id = self.correlation_id();
        let mut message = json!({"type": "subscribe", "correlationId": id});
        name_topic(&mut message, topic);
        let since = self.streams.begin_recovery(topic);
        if let Some(at) = &since {
            message["since"] = match &at.epoch {
                Some(epoch) => json!({"seq": at.seq, "epoch": epoch}),
                None => json!({"seq": at.seq}),
            };
        }
        self.pending.insert(
            id.clone(),
            Pending::Subscribe {
                topic: topic.clone(),
                since: since.is_some(),
                waiter,
            },
        );
        self.transmit(&message)?;
        Ok(id)
    }

    /// Sends on the open connection; a failure is the connection's end.
    fn transmit(&mut self, message: &Value) -> Result<()> {
        let sent = match &mut self.link {
            Link::Up(conn) => conn.send(message),
            Link::Down { .. } => return Err(Error::Disconnected),
            Link::Stopped { code, reason } => {
                return Err(Error::Closed {
                    code: *code,
                    reason: reason.clone(),
                });
            }
        };
        sent.map_err(|gone| {
            self.lost(gone.code, gone.reason);
            Error::Disconnected
        })
    }

    /// Reads until the reply to `id` arrives, the connection ends, or `deadline`.
    fn await_reply(&mut self, id: &str, deadline: Instant) -> Result<Value> {
        let generation = self.generation;
        let started = Instant::now();
        loop {
            if let Some(reply) = self.replies.remove(id) {
                if reply["type"] == "error" {
                    return Err(Error::Hub(HubError::from_data(&reply["data"])));
                }
                return Ok(reply);
            }
            if self.generation != generation {
                return Err(Error::Disconnected);
            }
            if Instant::now() >= deadline {
                self.pending.remove(id);
                return Err(Error::Timeout {
                    waited: started.elapsed(),
                });
            }
            self.step(deadline)?;
        }
    }

    fn correlation_id(&mut self) -> String {
        self.next_id += 1;
        format!("{CORRELATION_PREFIX}{}", self.next_id)
    }

    /// Stops re-subscribing to `topic`.
    fn forget(&mut self, topic: &Topic) {
        self.subscriptions.retain(|t| t != topic);
        self.confirmed.remove(topic);
        self.streams.forget(topic);
        if self.is_url_session(topic) {
            self.options.session_id = None;
        }
    }

    // ---- What the hub sends -----------------------------------------------

    fn received(&mut self, text: &str) {
        let message: Value = match serde_json::from_str(text) {
            Ok(message @ Value::Object(_)) => message,
            _ => {
                log::warn!("the hub sent something that is not a JSON object: {text:.200}");
                return;
            }
        };
        let Some(kind) = message["type"].as_str().map(str::to_owned) else {
            log::warn!("the hub sent a message without a type: {text:.200}");
            return;
        };
        if let Some(id) = message["correlationId"].as_str() {
            if let Some(pending) = self.pending.remove(id) {
                let id = id.to_owned();
                self.answered(id, pending, message);
                return;
            }
            if id.starts_with(CORRELATION_PREFIX) {
                log::debug!("a late reply, after its request gave up: {text:.200}");
                return;
            }
        }
        match kind.as_str() {
            // The welcome's second half: `connection` said it all already.
            "auth" => {}
            "user_presence" => match serde_json::from_value::<Presence>(message["data"].clone()) {
                Ok(presence) => self.updates.push_back(Update::Presence(presence)),
                Err(_) => self.deliver(Message::from_raw(message, false)),
            },
            "error" => {
                let error = HubError::from_data(&message["data"]);
                self.updates.push_back(Update::HubError(error));
            }
            "unsubscribed" => {
                // The hub left a subscription for us (a refreshed token
                // that no longer allows it, the backend): forget it.
                match topic_of(&message) {
                    Some(topic) => self.forget(&topic),
                    None => {
                        let sessions: Vec<Topic> = self
                            .subscriptions
                            .iter()
                            .filter(|t| matches!(t, Topic::Session(_)))
                            .cloned()
                            .collect();
                        for session in sessions {
                            self.forget(&session);
                        }
                    }
                }
                self.deliver(Message::from_raw(message, false));
            }
            _ if kind == self.options.batch_type && message["data"]["messages"].is_array() => {
                self.unbatch(message);
            }
            _ => self.deliver(Message::from_raw(message, false)),
        }
    }

    /// A reply to one of this client's requests.
    fn answered(&mut self, id: String, pending: Pending, reply: Value) {
        let Pending::Subscribe {
            topic,
            since,
            waiter,
        } = pending
        else {
            self.replies.insert(id, reply);
            return;
        };
        if reply["type"] == "subscribed" {
            self.confirmed.insert(topic.clone());
            let data = &reply["data"];
            let latest = data["seq"].as_u64().map(|seq| Position {
                seq,
                epoch: data["epoch"].as_str().map(str::to_owned),
            });
            if since {
                let recovered = data["recovered"] == true;
                if !self.streams.end_recovery(&topic, recovered, latest) {
                    self.updates.push_back(Update::Lost {
                        stream: topic,
                        loss: Loss::NotRecovered,
                    });
                }
            } else {
                self.streams.start(&topic, latest);
            }
        } else if reply["type"] == "error" {
            let error = HubError::from_data(&reply["data"]);
            self.forget(&topic);
            if self.own_stream().as_ref() == Some(&topic) && !waiter {
                log::debug!("the hub does not let this client follow {topic:?}: {error}");
            } else if !waiter {
                self.updates.push_back(Update::Lost {
                    stream: topic,
                    loss: Loss::Refused(error),
                });
            }
        }
        if waiter {
            self.replies.insert(id, reply);
        }
    }

    /// A batch's messages, one by one, each with the batch's topic.
    fn unbatch(&mut self, batch: Value) {
        let Value::Object(mut batch) = batch else {
            return;
        };
        let items = match batch.get_mut("data").and_then(|d| d.get_mut("messages")) {
            Some(Value::Array(items)) => std::mem::take(items),
            _ => Vec::new(),
        };
        for item in items {
            let Value::Object(mut item) = item else {
                continue;
            };
            for key in ["channel", "sessionId", "epoch"] {
                if let Some(value) = batch.get(key)
                    && !item.contains_key(key)
                {
                    item.insert(key.to_owned(), value.clone());
                }
            }
            self.deliver(Message::from_raw(Value::Object(item), true));
        }
    }

    /// A message for the application, after its stream's say.
    fn deliver(&mut self, message: Message) {
        if let (Some(seq), Some(topic)) = (message.seq, &message.topic) {
            match self.streams.track(topic, seq, message.epoch.as_deref()) {
                Verdict::Deliver => {}
                Verdict::Duplicate | Verdict::Replayed => return,
                Verdict::Gap { from, to } => self.updates.push_back(Update::Lost {
                    stream: topic.clone(),
                    loss: Loss::Gap { from, to },
                }),
                Verdict::NewEpoch { previous } => self.updates.push_back(Update::Lost {
                    stream: topic.clone(),
                    loss: Loss::EpochChanged {
                        previous,
                        current: message.epoch.clone().unwrap_or_default(),
                    },
                }),
            }
        }
        self.updates.push_back(Update::Message(message));
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Link::Up(conn) = &mut self.link {
            conn.close_now();
        }
    }
}

/// `now + timeout`, for any timeout.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(FOREVER))
        .unwrap_or(now)
}

/// Adds `channel` or `sessionId` to a request.
fn name_topic(message: &mut Value, topic: &Topic) {
    match topic {
        Topic::Channel(name) => message["channel"] = json!(name),
        Topic::Session(id) => message["sessionId"] = json!(id),
    }
}

/// A message to send: an object with a string `type`.
fn checked(message: Value) -> Result<Map<String, Value>> {
    match message {
        Value::Object(map) if map.get("type").is_some_and(Value::is_string) => Ok(map),
        Value::Object(_) => Err(Error::InvalidMessage {
            reason: "it has no string `type`",
        }),
        _ => Err(Error::InvalidMessage {
            reason: "it is not a JSON object",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_can_move_to_a_thread_of_its_own() {
        fn send<T: Send>() {}
        send::<Client>();
        send::<Options>();
        send::<Update>();
        send::<Error>();
    }

    #[test]
    fn messages_to_send_are_objects_with_a_type() {
        assert!(checked(json!({"type": "ping", "data": 1})).is_ok());
        assert!(matches!(
            checked(json!({"type": 1})),
            Err(Error::InvalidMessage { .. })
        ));
        assert!(matches!(
            checked(json!(["ping"])),
            Err(Error::InvalidMessage { .. })
        ));
    }

    #[test]
    fn requests_name_their_topic_and_timeouts_never_overflow() {
        let mut message = json!({"type": "subscribe"});
        name_topic(&mut message, &Topic::session("s1"));
        assert_eq!(message, json!({"type": "subscribe", "sessionId": "s1"}));
        name_topic(&mut message, &Topic::channel("c"));
        assert_eq!(message["channel"], "c");
        assert!(deadline_after(Duration::MAX) > Instant::now());
    }
}
