//! One connection's first thread: on a TLS port, the TLS handshake (see
//! [`crate::tls`]); then read the HTTP request, and either answer it (the
//! HTTP API, [`api`]) or upgrade it to WebSocket ([`upgrade`]), which hands
//! the socket (and its TLS session) to a reader thread of its own
//! ([`reader`]).
//!
//! Spawned by the accept loop for each TCP connection, with a deadline on
//! the whole request. It ends once the request is answered, or once the
//! upgraded client has its reader: the stack pages this thread touched
//! (request parsing, token checks) are not kept for the client's lifetime.

pub(crate) mod accept;
mod api;
mod dashboard;
mod http;
mod linger;
pub(crate) mod pool;
mod reader;
mod ready;
mod upgrade;

use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::analytics::{Meters, Refusal};
use crate::auth::Authenticator;
use crate::budget::{HandshakeSlot, Threads};
use crate::config::Config;
use crate::inbox::Inbox;
use crate::subscriptions::ClientId;
use crate::throttle::debug_throttled;
use crate::tls::{self, Tls};
use crate::writer::Writers;
use http::{HeadError, Request, Response};
use socket2::SockRef;

/// After an error response, how long to read and discard what the client is
/// still sending, so that closing does not reset the connection before the
/// client has read the response.
const LINGER: Duration = Duration::from_secs(1);

/// What every connection thread shares: read-only settings, the router's
/// inbox and the writer pool.
pub(crate) struct Shared {
    pub config: Arc<Config>,
    /// Whether the hub listens on a loopback address only.
    pub loopback: bool,
    pub auth: Arc<Authenticator>,
    pub threads: Arc<Threads>,
    pub inbox: Inbox,
    pub writers: Arc<Writers>,
    /// Where refusals are counted.
    pub meters: Arc<Meters>,
    next_id: AtomicU64,
    /// Keyed per process, so `clientId`s from before a restart match nobody.
    id_key: RandomState,
    /// This hub's id among the hubs of a Redis: every `clientId` ends with
    /// it (`c_1-5cb63b6f.3fa9c2d1`), so commands for a client find its hub.
    pub(crate) hub: Option<std::sync::Arc<str>>,
    /// The accept loop's stop, which also says whether the hub is draining
    /// (`GET /ready`).
    pub(crate) stop: Option<Arc<accept::Stop>>,
    /// With a certificate: every connection starts with a TLS handshake.
    pub(crate) tls: Option<Arc<Tls>>,
}

impl Shared {
    pub(crate) fn new(
        config: Arc<Config>,
        auth: Arc<Authenticator>,
        threads: Arc<Threads>,
        inbox: Inbox,
        writers: Arc<Writers>,
    ) -> Shared {
        let meters = Arc::clone(writers.meters());
        Shared {
            config,
            loopback: false,
            auth,
            threads,
            inbox,
            writers,
            meters,
            next_id: AtomicU64::new(1),
            id_key: RandomState::new(),
            hub: None,
            stop: None,
            tls: None,
        }
    }

    /// Whether the hub was told to drain or stop: `GET /ready` says 503.
    fn is_draining(&self) -> bool {
        self.stop.as_ref().is_some_and(|stop| stop.is_draining())
    }

    fn new_client(&self) -> (ClientId, String) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tag = self.id_key.hash_one(id) as u32;
        let name = match &self.hub {
            Some(hub) => format!("c_{id:x}-{tag:08x}.{hub}"),
            None => format!("c_{id:x}-{tag:08x}"),
        };
        (ClientId(id), name)
    }
}

/// Why a request was not read to the end.
pub(crate) enum Unread {
    /// Answer with this, then close.
    Respond(Response),
    /// The client went away (or sent nothing); just close.
    Gone,
}

/// A connection's TLS once its handshake is done: the session, and the
/// ciphertext read and not yet taken (it goes to the reader with it).
pub(crate) type Secured = (tls::Session, tls::Inbound);

/// Serves one TCP connection from start to end.
pub(crate) fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    handshake: HandshakeSlot,
) {
    let timeout = shared.config.handshake_timeout;
    let mut timed = Timed::new(&stream, Instant::now() + timeout);
    if let Some(tls) = &shared.tls {
        // The handshake counts against the request's deadline.
        match timed.start_tls(tls, peer, shared.config.read_buffer_size) {
            Ok(()) => {}
            Err(Unread::Respond(response)) => {
                return respond(&mut timed, &response, false, timeout);
            }
            Err(Unread::Gone) => return,
        }
    }
    let (request, rest) = match read_head(&mut timed, &shared.config) {
        Ok(read) => read,
        Err(Unread::Respond(response)) => {
            return respond(&mut timed, &response, false, timeout);
        }
        Err(Unread::Gone) => return,
    };
    if let Some(response) = foreign_host(&request, shared) {
        return respond(&mut timed, &response, false, timeout);
    }
    if request.header_has_token("upgrade", "websocket") {
        // A client's reader waits as long as it needs: no read timeout.
        if timed.clear().is_ok() {
            let secured = timed.into_tls();
            upgrade::upgrade(stream, secured, peer, request, rest, shared, handshake);
        }
        return;
    }
    let head_only = request.method == "HEAD";
    let response = match api::api(&mut timed, request, rest, shared) {
        Ok(response) | Err(Unread::Respond(response)) => response,
        Err(Unread::Gone) => return,
    };
    respond(&mut timed, &response, head_only, timeout);
}

/// In development mode on loopback, a request naming another host (DNS
/// rebinding: a web page whose domain now points at 127.0.0.1) is refused,
/// so a page cannot read the hub's stats or use it. Requests without a Host
/// (not from a browser) and health checks are let through.
fn foreign_host(request: &Request, shared: &Shared) -> Option<Response> {
    // Health checks reveal nothing and stay open to every prober.
    if request.path == "/health" || request.path == "/ready" {
        return None;
    }
    let host = request.header("host")?;
    if shared.auth.client_auth() || !shared.loopback || crate::auth::is_loopback_host(host) {
        return None;
    }
    shared.meters.refused(Refusal::ForeignHost);
    let message = format!("This development hub answers requests for localhost only, not {host}");
    Some(Response::error(403, "forbidden_host", &message))
}

/// Reads up to the end of the request head, within the deadline and the
/// header size limit. Returns the head and any bytes read past it.
fn read_head(timed: &mut Timed<'_>, config: &Config) -> Result<(Request, Vec<u8>), Unread> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        match http::parse_head(&buf) {
            Ok(Some((request, end))) if end <= config.max_header_size => {
                let rest = buf.split_off(end);
                return Ok((request, rest));
            }
            Ok(Some(_)) | Err(HeadError::TooManyHeaders) => return Err(too_large_head(config)),
            Ok(None) if buf.len() > config.max_header_size => return Err(too_large_head(config)),
            Ok(None) => {}
            Err(HeadError::Bad(bad)) => {
                return Err(Unread::Respond(Response::error(
                    400,
                    "bad_request",
                    &format!("Bad request: {}", bad.0),
                )));
            }
        }
        let n = timed.read(&mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn too_large_head(config: &Config) -> Unread {
    let message = format!("Request head larger than {} bytes", config.max_header_size);
    Unread::Respond(Response::error(431, "header_too_large", &message))
}

/// A connection's socket while its HTTP request is served: every read and
/// write gives up at one deadline. The socket's timeouts are set only when
/// they must change (a `setsockopt` each), and a write the socket takes at
/// once sets none. On a TLS port, reads and writes go through the
/// connection's session once its handshake is done.
pub(crate) struct Timed<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
    /// The read timeout set on the socket, if one is.
    read: Option<Duration>,
    write: Option<Duration>,
    tls: Option<Secured>,
}

impl<'a> Timed<'a> {
    pub(crate) fn new(stream: &'a TcpStream, deadline: Instant) -> Timed<'a> {
        Timed {
            stream,
            deadline,
            read: None,
            write: None,
            tls: None,
        }
    }

    /// The same, for a connection whose TLS handshake is done already.
    pub(crate) fn with_tls(mut self, tls: Option<Secured>) -> Timed<'a> {
        self.tls = tls;
        self
    }

    /// Gives up at a new deadline, `timeout` from now.
    fn renew(&mut self, timeout: Duration) {
        self.deadline = Instant::now() + timeout;
    }

    /// Ends the HTTP phase: the TLS session, if any, for the client's reader.
    pub(crate) fn into_tls(self) -> Option<Secured> {
        self.tls
    }

    /// Runs the TLS handshake, blocking, by the deadline. Plain HTTP gets a
    /// plain 400 that says to use TLS; anything else that is not TLS, or a
    /// failed handshake, ends the connection (with rustls's alert, if it has
    /// one): debug lines, at most one a second, and nothing else spent.
    fn start_tls(&mut self, tls: &Tls, peer: SocketAddr, buffer: usize) -> Result<(), Unread> {
        let session = tls.session().map_err(|err| {
            log::error!("cannot start a TLS session: {err}");
            Unread::Gone
        })?;
        let mut inbound = session.inbound(buffer);
        // Whatever the deadline's reason, a client mid-handshake cannot read
        // an HTTP answer: it is just closed.
        let n = self.read(inbound.space()).map_err(|_| Unread::Gone)?;
        inbound.filled(n);
        let first = inbound.unread();
        if !tls::looks_like_tls(first) {
            if tls::looks_like_http(first) {
                debug_throttled!("{peer} sent plain HTTP to the TLS port: answered 400");
                return Err(Unread::Respond(Response::error(
                    400,
                    "bad_request",
                    "This port speaks TLS only: use https:// or wss://",
                )));
            }
            debug_throttled!("{peer} sent bytes that are not TLS to the TLS port: closed");
            return Err(Unread::Gone);
        }
        let mut out = Vec::new();
        loop {
            let fed = inbound.feed(&session);
            session.records(&mut out);
            if !out.is_empty() {
                let sent = self.write_all(&out);
                out.clear();
                if sent.is_err() {
                    return Err(Unread::Gone);
                }
            }
            if let Err(err) = fed {
                debug_throttled!("TLS handshake with {peer} failed: {err}");
                return Err(Unread::Gone);
            }
            if !session.is_handshaking() {
                break;
            }
            let n = self.read(inbound.space()).map_err(|_| Unread::Gone)?;
            inbound.filled(n);
        }
        log::trace!("TLS with {peer}: {}", session.describe());
        self.tls = Some((session, inbound));
        Ok(())
    }

    /// A timeout for the next blocking call, or `None` past the deadline.
    /// The one set stays while the deadline is at least half of it away: a
    /// call then ends by the deadline plus what is left.
    fn timeout(deadline: Instant, set: Option<Duration>) -> Option<(Duration, bool)> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        match set {
            Some(set) if left >= set / 2 => Some((set, false)),
            _ => Some((left, true)),
        }
    }

    /// One `read` that gives up at the deadline (408) or on EOF: of
    /// plaintext, on a TLS connection.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Result<usize, Unread> {
        let Timed {
            stream,
            deadline,
            read,
            write,
            tls,
        } = self;
        let Some((session, inbound)) = tls else {
            return Self::read_raw(stream, *deadline, read, buf);
        };
        let mut failed = None;
        let result = inbound.read(
            session,
            buf,
            |raw| {
                Self::read_raw(stream, *deadline, read, raw).map_err(|unread| {
                    failed = Some(unread);
                    io::Error::from(io::ErrorKind::Other)
                })
            },
            // Records of the session's own (a KeyUpdate's answer) go out now.
            || {
                let mut out = Vec::new();
                session.records(&mut out);
                let _ = Self::write_raw(stream, *deadline, write, &out);
            },
        );
        match result {
            Ok(0) => Err(Unread::Gone),
            Ok(n) => Ok(n),
            Err(_) => Err(failed.unwrap_or(Unread::Gone)),
        }
    }

    /// One `read` of the socket itself.
    fn read_raw(
        stream: &TcpStream,
        deadline: Instant,
        set: &mut Option<Duration>,
        buf: &mut [u8],
    ) -> Result<usize, Unread> {
        let timeout = || {
            Unread::Respond(Response::error(
                408,
                "timeout",
                "The request took too long to arrive",
            ))
        };
        loop {
            let Some((left, change)) = Self::timeout(deadline, *set) else {
                return Err(timeout());
            };
            if change {
                if stream.set_read_timeout(Some(left)).is_err() {
                    return Err(Unread::Gone);
                }
                *set = Some(left);
            }
            match (&mut &*stream).read(buf) {
                Ok(0) => return Err(Unread::Gone),
                Ok(n) => return Ok(n),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(timeout());
                }
                Err(_) => return Err(Unread::Gone),
            }
        }
    }

    /// Writes all of `bytes` by the deadline, however slowly the client
    /// reads: a client that never reads cannot hold this thread. Sealed
    /// first, on a TLS connection.
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some((session, _)) = &self.tls else {
            return Self::write_raw(self.stream, self.deadline, &mut self.write, bytes);
        };
        let mut sealed = Vec::with_capacity(bytes.len() + 64);
        session.seal_all(bytes, &mut sealed)?;
        Self::write_raw(self.stream, self.deadline, &mut self.write, &sealed)
    }

    /// Writes all of `bytes` to the socket itself, by the deadline.
    fn write_raw(
        stream: &TcpStream,
        deadline: Instant,
        set: &mut Option<Duration>,
        bytes: &[u8],
    ) -> io::Result<()> {
        // Most answers fit the socket's buffer: try without waiting first.
        let mut rest = bytes;
        match SockRef::from(stream).send_with_flags(rest, SEND_NOW) {
            Ok(written) => rest = &rest[written..],
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
        while !rest.is_empty() {
            let Some((left, change)) = Self::timeout(deadline, *set) else {
                return Err(io::ErrorKind::TimedOut.into());
            };
            if change {
                stream.set_write_timeout(Some(left))?;
                *set = Some(left);
            }
            match (&mut &*stream).write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => rest = &rest[written..],
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// On a TLS connection, says it ends (`close_notify`), before the socket
    /// closes.
    fn end_tls(&mut self) {
        let mut out = Vec::new();
        if let Some((session, _)) = &self.tls
            && session.end()
        {
            session.records(&mut out);
        }
        if !out.is_empty() {
            let _ = Self::write_raw(self.stream, self.deadline, &mut self.write, &out);
        }
    }

    /// Clears the timeouts this set, for a socket that becomes a client's:
    /// its reader then waits as long as it needs.
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        if self.read.take().is_some() {
            self.stream.set_read_timeout(None)?;
        }
        if self.write.take().is_some() {
            self.stream.set_write_timeout(None)?;
        }
        Ok(())
    }
}

/// Flags of a send that must not wait: never block, never raise SIGPIPE.
const SEND_NOW: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;

/// Writes an HTTP response (within `timeout`) and closes the connection.
pub(crate) fn respond(
    timed: &mut Timed<'_>,
    response: &Response,
    head_only: bool,
    timeout: Duration,
) {
    timed.renew(timeout);
    if timed.write_all(&response.to_bytes(head_only)).is_err() {
        return;
    }
    timed.end_tls();
    if response.status >= 400 {
        linger(timed.stream);
    }
}

/// Half-closes, then discards what the client still sends for a moment, so
/// the response is not lost to a reset.
fn linger(stream: &TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let mut timed = Timed::new(stream, Instant::now() + LINGER);
    let mut sink = [0u8; 4096];
    let mut budget: usize = 1 << 20;
    while budget > 0 {
        match timed.read(&mut sink) {
            Ok(n) => budget = budget.saturating_sub(n),
            Err(_) => break,
        }
    }
}
