//! [`Handle`]: talks to a running hub from any thread (publish, stats,
//! server-side control, shutdown).
//!
//! A handle is the router's inbox (see [`crate::inbox`]) and the accept
//! loop's stop: each call is one message to the router thread and, except
//! [`Handle::shutdown`], one answer back on a fresh one-slot channel. It has
//! no thread of its own; every clone talks to the same hub, and it is of no
//! more use once the hub has stopped ([`Error::Closed`]).

use std::sync::Arc;

use crossbeam_channel::Sender;
use serde::Serialize;

use crate::analytics::Source;
use crate::command::{Answer, Command};
use crate::conn::accept::Stop;
use crate::error::{Error, Result};
use crate::inbox::{Inbox, Input};
use crate::protocol::{AppClose, BadClose, Topic};
use crate::publish::{Publication, Target};
use crate::stats::{ClientStats, PresenceEntry, Stats};
use crate::tls::{Tls, TlsError};

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
    /// The hub's TLS, for [`Handle::reload_tls`].
    tls: Option<Arc<Tls>>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    /// A handle on the router behind `inbox`, whose accept loop `stop`
    /// stops, serving `tls` if it has any.
    pub(crate) fn new(inbox: Inbox, stop: Arc<Stop>, tls: Option<Arc<Tls>>) -> Handle {
        Handle { inbox, stop, tls }
    }

    /// The router's inbox (the hub's own threads send into it).
    pub(crate) fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// The accept loop's stop.
    pub(crate) fn stop(&self) -> &Arc<Stop> {
        &self.stop
    }

    /// Publishes `{"type": kind, "data": data}` to `target`; returns how many
    /// clients it was queued for. The message is serialised once, on this
    /// thread, and shared by every recipient. With Redis (`--redis`) it
    /// returns once Redis has numbered it for every hub (a round trip), and
    /// counts this hub's clients.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] if `data` is not serialisable, [`Error::InvalidName`]
    /// for a bad target name or `kind`, [`Error::ReservedType`] for a `kind`
    /// that is one of the hub's own (`connection`, `error`, ...),
    /// [`Error::Closed`] after shutdown;
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
            source: Source::Library,
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
    /// client has that id. A message to one client, as a service
    /// connection's `send`, may be of any type (an `error` reply, say); a
    /// publication may not be of the hub's own types.
    ///
    /// # Errors
    ///
    /// As [`publish`](Handle::publish), but never [`Error::ReservedType`].
    pub fn send(&self, client_id: &str, kind: &str, data: impl Serialize) -> Result<bool> {
        let data = serde_json::value::to_raw_value(&data)?;
        let message = Publication::to_client(client_id, kind, Some(&data))?;
        Ok(self.publish_prepared(message, None)? > 0)
    }

    /// Subscribes a client to a channel or session, as if it had asked;
    /// it is told with `subscribed`. The backend is trusted: the client's
    /// permissions do not apply, its subscription limit does. `false` if no
    /// client has that id.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a bad topic, [`Error::Refused`] at the
    /// client's subscription limit, [`Error::Unavailable`] with several hubs
    /// while the queue to Redis is full (not subscribed: try again),
    /// [`Error::Closed`] after shutdown.
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
        let close = AppClose::new(code, reason).map_err(|bad| Error::InvalidName {
            what: match bad {
                BadClose::Code => "close code",
                BadClose::Reason => "close reason",
            },
            reason: bad.rule().to_owned(),
        })?;
        match self.command(Command::Close { target, close })? {
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

    /// Starts draining the hub before a shutdown: `GET /ready` answers 503
    /// `{"status":"draining"}`, so a load balancer or Kubernetes stops
    /// sending it new clients, while everything else goes on as before
    /// (clients stay, new ones are still admitted, `/health` says 200).
    /// Call [`shutdown`](Handle::shutdown) once the balancer has noticed
    /// (a few of its probe periods later). Calling it again does nothing.
    ///
    /// ```no_run
    /// # fn main() -> wshub::Result<()> {
    /// let hub = wshub::Hub::with_config(wshub::Config::default())?;
    /// let handle = hub.handle();
    /// let server = hub.spawn()?;
    /// // SIGTERM came: stop getting traffic, then stop.
    /// handle.drain();
    /// std::thread::sleep(std::time::Duration::from_secs(5));
    /// handle.shutdown();
    /// server.join()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn drain(&self) {
        if self.stop.drain() {
            log::info!("draining: GET /ready answers 503, clients stay until shutdown");
        }
    }

    /// Asks the hub to stop: no new connections, every client closed with
    /// 1001 after what is queued for it, for at most 1 s (what is still
    /// queued then is dropped; the client resumes with `since`), and gone
    /// within `shutdown_timeout`. Returns at once; [`Hub::run`](crate::Hub::run) returns when
    /// it is done. Calling it again does nothing.
    pub fn shutdown(&self) {
        if self.stop.is_set() {
            return;
        }
        let _ = self.inbox.send(Input::Shutdown);
        self.stop.trigger();
    }

    /// Reads the TLS certificate and key files
    /// ([`Config::tls_cert`](crate::Config::tls_cert) and
    /// [`tls_key`](crate::Config::tls_key)) again, as after a renewal: new
    /// connections get the new certificate; connections already open, and
    /// handshakes under way, keep theirs and are not disturbed. The binary
    /// calls it on `SIGHUP`. Runs on the calling thread (it reads two files
    /// and checks the key), not the router's.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`] when the files cannot be used (then logged too, and
    /// the current certificate stays), or with [`TlsError::NotConfigured`]
    /// for a hub without TLS.
    ///
    /// # Example
    ///
    /// ```
    /// # let server = wshub::Hub::bind("127.0.0.1:0")?.spawn()?;
    /// match server.handle().reload_tls() {
    ///     Ok(()) => println!("new connections get the new certificate"),
    ///     Err(wshub::Error::Tls(wshub::TlsError::NotConfigured)) => println!("no TLS here"),
    ///     Err(err) => eprintln!("kept the old certificate: {err}"),
    /// }
    /// # Ok::<(), wshub::Error>(())
    /// ```
    pub fn reload_tls(&self) -> Result<()> {
        match &self.tls {
            Some(tls) => Ok(tls.reload()?),
            None => Err(Error::Tls(TlsError::NotConfigured)),
        }
    }

    /// Asks the router and waits for its answer.
    fn ask<T>(&self, event: impl FnOnce(Sender<T>) -> Input) -> Result<T> {
        self.inbox.ask(event, None).ok_or(Error::Closed)
    }
}

/// A command's answer as a yes or no, or the limit it met.
fn done(answer: Answer) -> Result<bool> {
    match answer {
        Answer::Done(done) => Ok(done),
        Answer::Refused(reason) => Err(Error::Refused(reason)),
        Answer::Busy(reason) => Err(Error::Unavailable(reason)),
        _ => Ok(false),
    }
}
