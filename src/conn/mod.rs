//! One connection's first thread: read the HTTP request, then either answer
//! it (the HTTP API, [`api`]) or upgrade it to WebSocket ([`upgrade`]),
//! which hands the socket to a reader thread of its own ([`reader`]).
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

/// Serves one TCP connection from start to end.
pub(crate) fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    handshake: HandshakeSlot,
) {
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let mut timed = Timed::new(&stream, deadline);
    let (request, rest) = match read_head(&mut timed, &shared.config) {
        Ok(read) => read,
        Err(Unread::Respond(response)) => {
            return respond(&stream, &response, false, shared.config.handshake_timeout);
        }
        Err(Unread::Gone) => return,
    };
    if let Some(response) = foreign_host(&request, shared) {
        return respond(&stream, &response, false, shared.config.handshake_timeout);
    }
    if request.header_has_token("upgrade", "websocket") {
        // A client's reader waits as long as it needs: no read timeout.
        if timed.clear().is_ok() {
            upgrade::upgrade(stream, peer, request, rest, shared, handshake);
        }
        return;
    }
    let head_only = request.method == "HEAD";
    let response = match api::api(&mut timed, request, rest, shared) {
        Ok(response) | Err(Unread::Respond(response)) => response,
        Err(Unread::Gone) => return,
    };
    respond(
        &stream,
        &response,
        head_only,
        shared.config.handshake_timeout,
    );
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
/// once sets none.
pub(crate) struct Timed<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
    /// The read timeout set on the socket, if one is.
    read: Option<Duration>,
    write: Option<Duration>,
}

impl<'a> Timed<'a> {
    pub(crate) fn new(stream: &'a TcpStream, deadline: Instant) -> Timed<'a> {
        Timed {
            stream,
            deadline,
            read: None,
            write: None,
        }
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

    /// One `read` that gives up at the deadline (408) or on EOF.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Result<usize, Unread> {
        let timeout = || {
            Unread::Respond(Response::error(
                408,
                "timeout",
                "The request took too long to arrive",
            ))
        };
        loop {
            let Some((left, change)) = Self::timeout(self.deadline, self.read) else {
                return Err(timeout());
            };
            if change {
                if self.stream.set_read_timeout(Some(left)).is_err() {
                    return Err(Unread::Gone);
                }
                self.read = Some(left);
            }
            match (&mut &*self.stream).read(buf) {
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
    /// reads: a client that never reads cannot hold this thread.
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        // Most answers fit the socket's buffer: try without waiting first.
        let mut rest = bytes;
        match SockRef::from(self.stream).send_with_flags(rest, SEND_NOW) {
            Ok(written) => rest = &rest[written..],
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
        while !rest.is_empty() {
            let Some((left, change)) = Self::timeout(self.deadline, self.write) else {
                return Err(io::ErrorKind::TimedOut.into());
            };
            if change {
                self.stream.set_write_timeout(Some(left))?;
                self.write = Some(left);
            }
            match (&mut &*self.stream).write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => rest = &rest[written..],
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
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
pub(crate) fn respond(stream: &TcpStream, response: &Response, head_only: bool, timeout: Duration) {
    let mut timed = Timed::new(stream, Instant::now() + timeout);
    if timed.write_all(&response.to_bytes(head_only)).is_err() {
        return;
    }
    if response.status >= 400 {
        linger(stream);
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
