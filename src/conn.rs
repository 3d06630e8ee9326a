//! One connection's thread: read the HTTP request, then either answer it
//! (the HTTP API) or upgrade to WebSocket and read frames until the end.
//!
//! Spawned by the accept loop for each TCP connection. It blocks on the
//! socket: with a deadline while reading the request, then without one
//! (liveness is the router's business, through heartbeats). After an upgrade
//! it spawns the client's writer and becomes the client's reader: it parses
//! every text frame into a typed request and sends it to the router. It
//! never writes to the socket once the writer exists; pongs and close
//! replies go to the writer. It ends on the client's Close, a read error, or
//! when the router or writer shuts the socket down.

use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Sender, bounded, unbounded};
use serde::Deserialize;
use serde_json::value::RawValue;
use tungstenite::error::{Error as WsError, ProtocolError};
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tungstenite::{Bytes, Message};

use crate::auth::{AdminCheck, Authenticator, Denied, Identity};
use crate::budget::{HandshakeSlot, Threads};
use crate::config::Config;
use crate::event::{Control, Event, Joining, Refusal};
use crate::http::{self, Request, Response};
use crate::protocol::{self, Close, ErrorCode, MAX_NAME_LEN};
use crate::publish::{Publication, Target};
use crate::ratelimit::{RateLimiter, Verdict};
use crate::stats;
use crate::subscriptions::ClientId;
use crate::writer;

/// How many control messages (pongs, closes) may wait for a writer. A client
/// that floods pings without reading blocks its own reader, nobody else.
const CONTROL_QUEUE: usize = 16;

/// How long an HTTP request waits for the router's answer.
const ROUTER_TIMEOUT: Duration = Duration::from_secs(5);

/// After an error response, how long to read and discard what the client is
/// still sending, so that closing does not reset the connection before the
/// client has read the response.
const LINGER: Duration = Duration::from_secs(1);

/// What every connection thread shares: read-only settings and the router's
/// inbox.
pub(crate) struct Shared {
    pub config: Arc<Config>,
    /// Whether the hub listens on a loopback address only.
    pub loopback: bool,
    pub auth: Arc<Authenticator>,
    pub threads: Arc<Threads>,
    pub events: Sender<Event>,
    next_id: AtomicU64,
    /// Keyed per process, so `clientId`s from before a restart match nobody.
    id_key: RandomState,
}

impl Shared {
    pub(crate) fn new(
        config: Arc<Config>,
        auth: Arc<Authenticator>,
        threads: Arc<Threads>,
        events: Sender<Event>,
    ) -> Shared {
        Shared {
            config,
            loopback: false,
            auth,
            threads,
            events,
            next_id: AtomicU64::new(1),
            id_key: RandomState::new(),
        }
    }

    fn new_client(&self) -> (ClientId, String) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let tag = self.id_key.hash_one(id) as u32;
        (ClientId(id), format!("c_{id:x}-{tag:08x}"))
    }
}

/// Why a request was not read to the end.
enum Unread {
    /// Answer with this, then close.
    Respond(Response),
    /// The client went away (or sent nothing); just close.
    Gone,
}

/// Serves one TCP connection from start to end.
pub(crate) fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    handshake: HandshakeSlot,
) {
    let stream = Arc::new(stream);
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let (request, rest) = match read_head(&stream, &shared.config, deadline) {
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
        return upgrade(stream, peer, request, rest, shared, handshake);
    }
    let head_only = request.method == "HEAD";
    let response = match api(&stream, request, rest, deadline, shared) {
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
    if request.path == "/health" {
        return None;
    }
    let host = request.header("host")?;
    if shared.auth.client_auth() || !shared.loopback || crate::auth::is_loopback_host(host) {
        return None;
    }
    let message = format!("This development hub answers requests for localhost only, not {host}");
    Some(Response::error(403, "forbidden_host", &message))
}

/// Reads up to the end of the request head, within the deadline and the
/// header size limit. Returns the head and any bytes read past it.
fn read_head(
    stream: &TcpStream,
    config: &Config,
    deadline: Instant,
) -> Result<(Request, Vec<u8>), Unread> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let end = loop {
        if let Some(end) = http::head_end(&buf) {
            break end;
        }
        if buf.len() > config.max_header_size {
            return Err(too_large_head(config));
        }
        let n = read_before(stream, &mut chunk, deadline)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    if end > config.max_header_size {
        return Err(too_large_head(config));
    }
    let request = http::parse_head(&buf[..end]).map_err(|bad| {
        Unread::Respond(Response::error(
            400,
            "bad_request",
            &format!("Bad request: {}", bad.0),
        ))
    })?;
    let rest = buf.split_off(end);
    Ok((request, rest))
}

fn too_large_head(config: &Config) -> Unread {
    let message = format!("Request head larger than {} bytes", config.max_header_size);
    Unread::Respond(Response::error(431, "header_too_large", &message))
}

/// One `read` that gives up at `deadline` (408) or on EOF.
fn read_before(stream: &TcpStream, buf: &mut [u8], deadline: Instant) -> Result<usize, Unread> {
    let timeout = || {
        Unread::Respond(Response::error(
            408,
            "timeout",
            "The request took too long to arrive",
        ))
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timeout());
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            return Err(Unread::Gone);
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

/// Writes all of `bytes` by `deadline`, however slowly the client reads:
/// a client that never reads cannot hold this thread.
fn write_before(stream: &TcpStream, bytes: &[u8], deadline: Instant) -> io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match (&mut &*stream).write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => rest = &rest[written..],
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Writes an HTTP response (within `timeout`) and closes the connection.
fn respond(stream: &TcpStream, response: &Response, head_only: bool, timeout: Duration) {
    if write_before(
        stream,
        &response.to_bytes(head_only),
        Instant::now() + timeout,
    )
    .is_err()
    {
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
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    let mut budget: usize = 1 << 20;
    while budget > 0 {
        match read_before(stream, &mut sink, deadline) {
            Ok(n) => budget = budget.saturating_sub(n),
            Err(_) => break,
        }
    }
}

// ---------------------------------------------------------------------------
// The HTTP API

fn api(
    stream: &TcpStream,
    mut request: Request,
    rest: Vec<u8>,
    deadline: Instant,
    shared: &Shared,
) -> Result<Response, Unread> {
    let config = &shared.config;
    let method = match request.method.as_str() {
        "HEAD" => "GET",
        other => other,
    };
    let path = request.path.as_str();
    let allowed = match path {
        "/health" | "/api/websocket/status" | "/api/ws/stats" | "/metrics" => "GET, HEAD",
        "/api/publish" => "POST",
        p if p == config.path || p == "/" => {
            let message = format!("{p} speaks WebSocket: connect with a WebSocket client");
            return Ok(Response::error(426, "upgrade_required", &message)
                .with_header("Upgrade", "websocket"));
        }
        _ => {
            let message = format!("Nothing at {path}");
            return Ok(Response::error(404, "not_found", &message));
        }
    };
    if !allowed.split(", ").any(|m| m == method) {
        let message = format!("{path} accepts {allowed}, not {}", request.method);
        return Ok(
            Response::error(405, "method_not_allowed", &message).with_header("Allow", allowed)
        );
    }
    if matches!(path, "/api/ws/stats" | "/metrics" | "/api/publish") {
        match shared.auth.admin(request.header("authorization")) {
            AdminCheck::Allowed => {}
            AdminCheck::Refused => {
                let message = "Send the admin token: Authorization: Bearer <token>";
                return Ok(Response::error(401, "unauthorized", message)
                    .with_header("WWW-Authenticate", "Bearer"));
            }
            AdminCheck::Locked => {
                let message = "Client auth is on, so this endpoint needs an admin token: start the hub with --admin-token";
                return Ok(Response::error(401, "unauthorized", message)
                    .with_header("WWW-Authenticate", "Bearer"));
            }
        }
    }
    if path == "/api/publish"
        && let Some(origin) = request.header("origin")
        && !shared.auth.origin_listed(origin)
    {
        // A browser page elsewhere must not publish through a user's machine.
        let message = format!("Cross-origin publishing from {origin} is refused");
        return Ok(Response::error(403, "forbidden_origin", &message));
    }
    let response = match path {
        "/health" => match ask_stats(shared, false) {
            Some(_) => Response::json(200, &serde_json::json!({"status": "ok"})),
            None => Response::json(503, &serde_json::json!({"status": "unavailable"})),
        },
        "/api/websocket/status" => match ask_stats(shared, false) {
            Some(stats) => Response::json(200, &stats::status_body(&stats)),
            None => unavailable(),
        },
        "/api/ws/stats" => match ask_stats(shared, true) {
            Some(stats) => Response::json(200, &stats::stats_body(&stats)),
            None => unavailable(),
        },
        "/metrics" => match ask_stats(shared, false) {
            Some(stats) => {
                Response::text(200, "text/plain; version=0.0.4", stats::prometheus(&stats))
            }
            None => unavailable(),
        },
        _ => {
            read_body(stream, &mut request, rest, config, deadline)?;
            publish(&request.body, shared)
        }
    };
    Ok(response)
}

fn unavailable() -> Response {
    Response::error(503, "unavailable", "The hub is shutting down")
}

fn ask_stats(shared: &Shared, clients: bool) -> Option<stats::Stats> {
    let (reply, answer) = bounded(1);
    shared.events.send(Event::Stats { clients, reply }).ok()?;
    answer.recv_timeout(ROUTER_TIMEOUT).ok()
}

/// Reads a `Content-Length` body within the deadline and `max_body_size`.
fn read_body(
    stream: &TcpStream,
    request: &mut Request,
    mut body: Vec<u8>,
    config: &Config,
    deadline: Instant,
) -> Result<(), Unread> {
    let respond =
        |status, code, message: &str| Unread::Respond(Response::error(status, code, message));
    if request.header("transfer-encoding").is_some() {
        return Err(respond(
            411,
            "length_required",
            "Send the body with a Content-Length",
        ));
    }
    let length = request
        .content_length()
        .map_err(|bad| respond(400, "bad_request", bad.0))?
        .ok_or_else(|| {
            respond(
                411,
                "length_required",
                "Send the body with a Content-Length",
            )
        })?;
    if length > config.max_body_size {
        let message = format!("Body larger than {} bytes", config.max_body_size);
        return Err(respond(413, "payload_too_large", &message));
    }
    if request.header_has_token("expect", "100-continue")
        && write_before(stream, b"HTTP/1.1 100 Continue\r\n\r\n", deadline).is_err()
    {
        return Err(Unread::Gone);
    }
    let mut chunk = [0u8; 8192];
    while body.len() < length {
        let n = read_before(stream, &mut chunk, deadline)?;
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    request.body = body;
    Ok(())
}

/// The body of `POST /api/publish`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody<'a> {
    channel: Option<String>,
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
    #[serde(rename = "userId")]
    user_id: Option<String>,
    #[serde(rename = "clientId")]
    client_id: Option<String>,
    broadcast: Option<bool>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

fn publish(body: &[u8], shared: &Shared) -> Response {
    let bad = |message: &str| Response::error(400, "bad_request", message);
    let body: PublishBody<'_> = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(err) => return bad(&format!("Body is not a valid publish request: {err}")),
    };
    let mut targets = Vec::with_capacity(1);
    targets.extend(body.channel.map(Target::Channel));
    targets.extend(body.session_id.map(Target::Session));
    targets.extend(body.user_id.map(Target::User));
    targets.extend(body.client_id.map(Target::Client));
    if body.broadcast == Some(true) {
        targets.push(Target::Broadcast);
    }
    let target = match targets.pop() {
        Some(target) if targets.is_empty() => target,
        _ => {
            return bad(
                "Give exactly one of channel, sessionId, userId, clientId or \"broadcast\": true",
            );
        }
    };
    let kind = body.kind.as_deref().unwrap_or("event");
    let publication = match Publication::new(target, kind, body.data) {
        Ok(publication) => publication,
        Err(err) => return bad(&err.to_string()),
    };
    let (reply, answer) = bounded(1);
    let sent = shared.events.send(Event::Publish {
        publication,
        reply: Some(reply),
    });
    match sent
        .ok()
        .and_then(|()| answer.recv_timeout(ROUTER_TIMEOUT).ok())
    {
        Some(delivered) => Response::json(
            200,
            &serde_json::json!({"success": true, "data": {"delivered": delivered}}),
        ),
        None => unavailable(),
    }
}

// ---------------------------------------------------------------------------
// WebSocket

/// The socket as the reader sees it: reads go to the socket, writes vanish.
///
/// tungstenite's `read` queues pong and close replies and writes them to
/// its stream. Here they are dropped: the reader forwards pings and closes
/// to the writer instead, so the writer stays the only thread that writes.
struct ReadHalf(Arc<TcpStream>);

impl Read for ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&mut &*self.0).read(buf)
    }
}

impl Write for ReadHalf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Checks the upgrade request, answers 101 and runs the client until it ends.
fn upgrade(
    stream: Arc<TcpStream>,
    peer: SocketAddr,
    request: Request,
    rest: Vec<u8>,
    shared: &Shared,
    handshake: HandshakeSlot,
) {
    let config = &shared.config;
    let Upgrade {
        identity,
        session_id,
        accept,
    } = match check_upgrade(&request, shared) {
        Ok(checked) => checked,
        Err(response) => return respond(&stream, &response, false, config.handshake_timeout),
    };
    let switching = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    // From here the writer owns every write, with no timeout: slow clients
    // are the router's business.
    let deadline = Instant::now() + config.handshake_timeout;
    if write_before(&stream, switching.as_bytes(), deadline).is_err()
        || stream.set_read_timeout(None).is_err()
        || stream.set_write_timeout(None).is_err()
    {
        return;
    }
    let identity = match identity {
        Ok(identity) => identity,
        Err(denied) => {
            log::warn!("refused {peer}: {denied}");
            let _ = shared.events.send(Event::Rejected);
            let error = protocol::error_frame(ErrorCode::Unauthorized, &denied.to_string(), None);
            // The handshake slot is kept until the refusal is over, so
            // refused clients count against their address meanwhile.
            return refuse(&stream, rest, &[error, Close::Unauthorized.frame()], config);
        }
    };
    // Admitted: the handshake slot goes back to the accept loop.
    drop(handshake);

    let Some(slot) = shared.threads.reserve() else {
        log::warn!("refused {peer}: no thread left for its writer");
        let _ = shared.events.send(Event::Rejected);
        return refuse(&stream, rest, &[Close::ServerFull.frame()], config);
    };
    let (id, name) = shared.new_client();
    let (outbound, outbound_rx) = unbounded();
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let writer_queued = Arc::clone(&queued_bytes);
    let (control, control_rx) = bounded(CONTROL_QUEUE);
    let writer_stream = Arc::clone(&stream);
    let writer_name = name.clone();
    let spawned = thread::Builder::new()
        .name(format!("wshub-w-{:x}", id.0))
        .stack_size(config.thread_stack_size)
        .spawn(move || {
            let _slot = slot;
            writer::run(
                &writer_name,
                writer_stream,
                outbound_rx,
                control_rx,
                writer_queued,
            )
        });
    if let Err(err) = spawned {
        log::error!("cannot start a writer thread for {peer}: {err}");
        let _ = shared.events.send(Event::Rejected);
        return refuse(&stream, rest, &[Close::Internal.frame()], config);
    }
    let joining = Joining {
        id,
        name,
        peer,
        identity,
        session_id,
        stream: Arc::clone(&stream),
        outbound,
        queued_bytes,
        control: control.clone(),
    };
    if shared
        .events
        .send(Event::Joined(Box::new(joining)))
        .is_err()
    {
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }

    let ws_config = WebSocketConfig::default()
        .read_buffer_size(config.read_buffer_size)
        .write_buffer_size(0)
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size));
    let mut ws =
        WebSocket::from_partially_read(ReadHalf(stream), rest, Role::Server, Some(ws_config));
    let last = read_loop(&mut ws, id, config, &shared.events, &control);
    // The router first, so it can cut the socket if the writer is stuck.
    let _ = shared.events.send(Event::Left(id));
    let _ = control.send(last);
}

/// A valid upgrade request: who the client is (or why it may not come in),
/// the session it asked for and the `Sec-WebSocket-Accept` value.
struct Upgrade {
    identity: Result<Identity, Denied>,
    session_id: Option<String>,
    accept: String,
}

/// Validates a WebSocket upgrade request. An HTTP error for a request that
/// is not a valid upgrade or comes from a refused browser origin; an
/// unauthorized client is refused after the handshake instead, so that a
/// browser can see why (`004_*.txt`).
fn check_upgrade(request: &Request, shared: &Shared) -> Result<Upgrade, Response> {
    let config = &shared.config;
    let bad = |message: &str| Response::error(400, "bad_request", message);
    if request.path != config.path && request.path != "/" {
        let message = format!(
            "No WebSocket endpoint at {}: use {}",
            request.path, config.path
        );
        return Err(Response::error(404, "not_found", &message));
    }
    if request.method != "GET" {
        return Err(bad("A WebSocket upgrade must be a GET request"));
    }
    if !request.header_has_token("connection", "upgrade") {
        return Err(bad(
            "A WebSocket upgrade needs the header Connection: Upgrade",
        ));
    }
    if request.header("sec-websocket-version") != Some("13") {
        let message = "Only WebSocket version 13 is supported";
        return Err(Response::error(426, "upgrade_required", message)
            .with_header("Sec-WebSocket-Version", "13"));
    }
    let key = match request.header("sec-websocket-key") {
        Some(key) if key.len() == 24 => key,
        _ => return Err(bad("A WebSocket upgrade needs a valid Sec-WebSocket-Key")),
    };
    let origin = request.header("origin");
    if !shared.auth.origin_allowed(origin) {
        let message = format!("Origin {} may not connect here", origin.unwrap_or_default());
        return Err(Response::error(403, "forbidden_origin", &message));
    }
    let query = |name| request.query_param(name).map_err(|b| bad(b.0));
    let user_id = query("userId")?.filter(|u| !u.is_empty());
    if user_id.as_ref().is_some_and(|u| u.len() > MAX_NAME_LEN) {
        return Err(bad("userId is longer than 255 bytes"));
    }
    if user_id
        .as_ref()
        .is_some_and(|u| u.chars().any(char::is_control))
    {
        return Err(bad("userId must not contain control characters"));
    }
    let session_id = query("sessionId")?.filter(|s| !s.is_empty());
    if let Some(session) = &session_id {
        protocol::check_name(session, "sessionId").map_err(|(_, message)| bad(&message))?;
    }
    let header_token = request
        .header("authorization")
        .and_then(crate::auth::bearer);
    let token = match header_token {
        Some(token) => Some(token.to_owned()),
        None => query("token")?.filter(|t| !t.is_empty()),
    };
    let identity =
        shared
            .auth
            .authenticate(token.as_deref(), user_id.as_deref(), SystemTime::now());
    Ok(Upgrade {
        identity,
        session_id,
        accept: derive_accept_key(key.as_bytes()),
    })
}

/// Refuses a client right after its handshake: sends `frames` (the reason
/// and a Close), then waits a little for the client's Close, so the reason
/// is read before the socket goes. No writer exists for this connection,
/// so this thread writes.
fn refuse(stream: &Arc<TcpStream>, rest: Vec<u8>, frames: &[Bytes], config: &Config) {
    let out = frames.concat();
    let deadline = Instant::now() + config.close_timeout;
    if write_before(stream, &out, deadline).is_ok() {
        // Nothing more will come: the client sees the end after our Close.
        let _ = stream.shutdown(Shutdown::Write);
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(1024)
            .write_buffer_size(0)
            .max_message_size(Some(config.max_message_size))
            .max_frame_size(Some(config.max_message_size));
        let mut ws = WebSocket::from_partially_read(
            ReadHalf(Arc::clone(stream)),
            rest,
            Role::Server,
            Some(ws_config),
        );
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match ws.read() {
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// Reads frames until the connection ends; returns what to tell the writer.
fn read_loop(
    ws: &mut WebSocket<ReadHalf>,
    id: ClientId,
    config: &Config,
    events: &Sender<Event>,
    control: &Sender<Control>,
) -> Control {
    let mut pings = ControlBudget::new(config);
    loop {
        let refused = |why| Event::Refused { client: id, why };
        let event = match ws.read() {
            Ok(Message::Text(text)) => Event::Request {
                client: id,
                request: protocol::parse(text.as_str()),
            },
            Ok(Message::Binary(_)) => refused(Refusal::Binary),
            Ok(message @ (Message::Ping(_) | Message::Pong(_))) => match pings.check() {
                ControlVerdict::Forward { alive } => {
                    if let Message::Ping(payload) = message
                        && control.send(Control::Pong(payload)).is_err()
                    {
                        return Control::ReaderDone;
                    }
                    match alive {
                        true => Event::Alive(id),
                        false => continue,
                    }
                }
                ControlVerdict::Drop => continue,
                ControlVerdict::Flood => refused(Refusal::ControlFlood),
            },
            Ok(Message::Close(frame)) => return Control::PeerClosed(frame),
            Ok(Message::Frame(_)) => continue,
            Err(err) => {
                let why = match err {
                    WsError::Capacity(_) => Refusal::TooBig,
                    WsError::Utf8(_) => Refusal::InvalidUtf8,
                    WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                        return Control::ReaderDone;
                    }
                    WsError::Protocol(_) => Refusal::Protocol,
                    _ => return Control::ReaderDone,
                };
                log::debug!("client {id:?} sent a bad frame: {err}");
                refused(why)
            }
        };
        let ends = matches!(&event, Event::Refused { why, .. } if why.closes());
        if events.send(event).is_err() {
            return Control::ReaderDone;
        }
        if ends {
            // The router closes this client; read nothing more from it.
            drain(ws.get_mut());
            return Control::ReaderDone;
        }
    }
}

/// Most Pings and Pongs a client may send in a burst.
const CONTROL_BURST: u32 = 100;

/// What to do with a client's Ping or Pong.
enum ControlVerdict {
    /// Answer a Ping; tell the router the client is alive if `alive`.
    Forward { alive: bool },
    /// Over the budget: ignore it.
    Drop,
    /// Far over the budget, again and again: the client is closed (1008).
    Flood,
}

/// Control frames are not messages, so the router's rate limit does not see
/// them; this budget does, in the reader, so that a flood of Pings or Pongs
/// costs the router nothing. It allows a burst of [`CONTROL_BURST`] and then
/// two per second, or four per heartbeat when heartbeats are faster, so that
/// a client answering every Ping is never refused. The router hears that a
/// client is alive at most once per tick: enough for heartbeats.
struct ControlBudget {
    rate: Option<RateLimiter>,
    alive_every: Duration,
    last_alive: Option<Instant>,
}

impl ControlBudget {
    fn new(config: &Config) -> ControlBudget {
        let per_second = (4.0 / config.heartbeat_interval.as_secs_f64()).max(2.0);
        let window = Duration::from_secs_f64(f64::from(CONTROL_BURST) / per_second);
        ControlBudget {
            rate: RateLimiter::new(CONTROL_BURST, window, Instant::now()),
            alive_every: config.tick(),
            last_alive: None,
        }
    }

    fn check(&mut self) -> ControlVerdict {
        let now = Instant::now();
        match self
            .rate
            .as_mut()
            .map_or(Verdict::Allowed, |rate| rate.check(now))
        {
            Verdict::Allowed => {
                let alive = self
                    .last_alive
                    .is_none_or(|last| now.saturating_duration_since(last) >= self.alive_every);
                if alive {
                    self.last_alive = Some(now);
                }
                ControlVerdict::Forward { alive }
            }
            Verdict::Limited => ControlVerdict::Drop,
            Verdict::Abusive => ControlVerdict::Flood,
        }
    }
}

/// After a frame that breaks the stream, reads and discards until the
/// client or the router closes the socket, so the Close we send is not
/// lost to a reset caused by unread data.
fn drain(stream: &mut ReadHalf) {
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
