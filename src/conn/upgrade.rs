//! The WebSocket upgrade: checks (path, version, origin, credentials), the
//! 101 answer, refusals, and handing the client to the router and to a
//! reader thread of its own.
//!
//! A browser cannot set `Authorization` on a WebSocket: besides `?token=`
//! it may send its token as a subprotocol, `wshub.bearer.<base64url
//! token>`, offered with `wshub`, which the hub answers with (so the token
//! stays out of the URL, and out of proxies' logs of it). The dashboard's
//! connection (`/admin`) takes its admin token that way or in
//! `Authorization`, never in the URL.
//!
//! Runs on the connection's first thread (see [`super`]). Refusing costs
//! less than admitting: a refused client never gets a reader thread. Its
//! reason and Close go out through the writer pool, which lingers on the
//! socket until the client closes, and it keeps its handshake slot until
//! it is gone, so refusals count against their address's handshakes.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tungstenite::Bytes;
use tungstenite::handshake::derive_accept_key;

use super::http::{Request, Response};
use super::reader;
use super::{Secured, Shared, Timed, respond};
use crate::analytics::Refusal;
use crate::auth::{Denied, Identity};
use crate::budget::HandshakeSlot;
use crate::config::ADMIN_PATH;
use crate::inbox::{Ending, Input, Joining};
use crate::link::{Admission, Link};
use crate::protocol::{self, Close, Envelope, ErrorCode, Kind, MAX_NAME_LEN, Message};
use crate::throttle::warn_refused;
use crate::websocket;

/// Checks the upgrade request, answers 101, and hands the client (with its
/// TLS session, on a TLS port) to the router and to its reader thread.
pub(super) fn upgrade(
    stream: TcpStream,
    secured: Option<Secured>,
    peer: SocketAddr,
    request: Request,
    rest: Vec<u8>,
    shared: &Arc<Shared>,
    handshake: HandshakeSlot,
) {
    let config = &shared.config;
    // Behind a trusted proxy, the client is who the proxy says it serves:
    // its address stands for the peer from here on (limits, logs, stats).
    let proxy = peer;
    let peer = crate::proxy::client_address(
        peer,
        |name| {
            request
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect()
        },
        &config.trusted_proxies,
    );
    if peer != proxy {
        log::debug!("a client at {peer} through the proxy {proxy}");
    }
    let Upgrade {
        identity,
        session_id,
        handles,
        envelope,
        accept,
        protocol,
        console,
    } = match check_upgrade(&request, shared) {
        Ok(checked) => checked,
        Err(response) => {
            shared.meters.refused(match response.status {
                403 => Refusal::Origin,
                _ => Refusal::BadUpgrade,
            });
            // Said where an operator looks, not only to the client (a
            // browser shows its page only close 1006).
            let reason = format!("{} {}", response.status, response.body);
            warn_refused!(peer.ip().to_canonical(), &reason;
                "refused a WebSocket upgrade from {peer} to {}: {reason}",
                request.path
            );
            let mut timed = Timed::new(&stream, Instant::now()).with_tls(secured);
            return respond(&mut timed, &response, false, config.handshake_timeout);
        }
    };
    let protocol = protocol
        .map(|name| format!("Sec-WebSocket-Protocol: {name}\r\n"))
        .unwrap_or_default();
    // permessage-deflate, when the hub offers it and the client asked.
    let deflate = match config.compression {
        true => websocket::negotiate(request.headers_named("sec-websocket-extensions")),
        false => None,
    };
    let extensions = match deflate {
        Some(deflate) => format!("Sec-WebSocket-Extensions: {}\r\n", deflate.response()),
        None => String::new(),
    };
    let switching = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{protocol}{extensions}\r\n"
    );
    let (id, name) = shared.new_client();
    let writer = (id.0 % shared.writers.count() as u64) as usize;
    let (session, inbound) = secured.unzip();
    let link = Arc::new(Link::new(id, stream, writer, session).compressed(deflate));
    // The 101 goes out with the client's first frame (its welcome, or the
    // reason it is refused), in one send: one TCP segment and one wake-up
    // of the client less per connection. From here writes are non-blocking
    // (the writer pool) and reads wait as long as they need: liveness is
    // the router's business.
    link.preamble(Bytes::from(switching.into_bytes()));
    let refuse = |frames: Vec<Bytes>, handshake| {
        // The router sends the frames and lets the client go; no thread
        // waits for it meanwhile, and it keeps its handshake slot.
        let _ = shared.inbox.send(Input::HandshakeRefused {
            link: Arc::clone(&link),
            frames,
            handshake,
        });
    };
    let identity = match identity {
        Ok(identity) => identity,
        Err(denied) => {
            let reason = denied.to_string();
            warn_refused!(peer.ip().to_canonical(), &reason; "refused {peer}: {reason}");
            shared.meters.refused(match console {
                true => Refusal::AdminToken,
                false => Refusal::Unauthorized,
            });
            let data = protocol::error_data(ErrorCode::Unauthorized, &denied.to_string());
            let error = Message::new(Kind::Error.as_str(), Some(&data)).encode(envelope);
            return refuse(vec![error, Close::Unauthorized.frame()], handshake);
        }
    };
    let role = match identity.is_service() {
        true => protocol::Role::Service,
        false => protocol::Role::Client,
    };
    let Some(slot) = shared.threads.reserve() else {
        let reason = "no thread left for its reader";
        warn_refused!(peer.ip().to_canonical(), reason; "refused {peer}: {reason}");
        shared.meters.refused(Refusal::Threads);
        return refuse(vec![Close::ServerFull.frame()], handshake);
    };
    // The router is asked before the reader starts, so its events follow
    // the question in order, and the answer is usually there when the
    // reader looks. This thread is free for the next connection at once;
    // refused, the reader ends without reading.
    let thread_name = reader_thread_name(id);
    let reader_name = name.clone();
    let joining = Joining {
        link: Arc::clone(&link),
        name,
        peer,
        identity,
        session_id,
        handles,
        handshake,
        envelope,
        console,
    };
    if !shared.inbox.send(Input::Joined(Box::new(joining))) {
        return link.cut();
    }
    let reader_link = Arc::clone(&link);
    let reader_shared = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name(thread_name)
        .stack_size(config.thread_stack_size + websocket::stack_needed(link.deflate))
        .spawn(move || {
            let _slot = slot;
            // The router answers on the link, then wakes the thread
            // registered there; park returns at once if that happened first.
            reader_link.wait_for_admission();
            if reader_link.admission() == Admission::Admitted {
                log::debug!(
                    "client {reader_name}'s reader is thread {}",
                    thread::current().name().unwrap_or("?")
                );
                reader::run(
                    reader_link,
                    &reader_name,
                    rest,
                    inbound,
                    &reader_shared,
                    role,
                );
            }
        });
    if let Err(err) = spawned {
        // The router has the client (Joined went first): it closes it 1011.
        log::error!("cannot start a reader thread for {peer}: {err}");
        let _ = shared.inbox.send(Input::Left {
            link,
            why: Ending::NoReader,
        });
    }
}

/// The name of a client's reader thread: `wshub-r-c_1f` for the client
/// `c_1f-9606376f`, so `ps -L`, `top -H` and a debugger tell readers apart.
/// Linux shows 15 bytes of a thread's name: the whole of it up to client
/// `c_fffff`, the first 15 bytes after.
fn reader_thread_name(id: crate::subscriptions::ClientId) -> String {
    format!("wshub-r-c_{:x}", id.0)
}

/// A valid upgrade request: who the client is (or why it may not come in),
/// the session it asked for and the `Sec-WebSocket-Accept` value.
struct Upgrade {
    identity: Result<Identity, Denied>,
    session_id: Option<String>,
    /// The request types a service connection declared (`?handles=`).
    handles: Option<Vec<String>>,
    envelope: Envelope,
    accept: String,
    /// The subprotocol answered, if the client offered it.
    protocol: Option<&'static str>,
    /// The dashboard's connection.
    console: bool,
}

/// The subprotocol the hub answers with, when a client offers it (a
/// browser sending its token as [`BEARER`] must).
pub(crate) const SUBPROTOCOL: &str = "wshub";

/// The prefix of the subprotocol that carries a token, base64url-encoded
/// (without padding): `wshub.bearer.<token>`.
pub(crate) const BEARER: &str = "wshub.bearer.";

/// What a client offered in `Sec-WebSocket-Protocol`.
struct Offered {
    /// [`SUBPROTOCOL`].
    wshub: bool,
    /// The token of a [`BEARER`] subprotocol.
    bearer: Option<String>,
}

/// Reads `Sec-WebSocket-Protocol`: whether [`SUBPROTOCOL`] is offered, and
/// the token of a [`BEARER`] one (other names are not ours, and ignored).
fn offered(request: &Request) -> Result<Offered, Response> {
    let bad = |message: &str| Response::error(400, "bad_request", message);
    let mut offered = Offered {
        wshub: false,
        bearer: None,
    };
    let names = request
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim);
    for name in names {
        if name == SUBPROTOCOL {
            offered.wshub = true;
        } else if let Some(encoded) = name.strip_prefix(BEARER) {
            let token = URL_SAFE_NO_PAD
                .decode(encoded)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .filter(|token| !token.is_empty())
                .ok_or_else(|| {
                    bad("The subprotocol wshub.bearer.<token> needs a base64url token (no padding)")
                })?;
            offered.bearer = Some(token);
        }
    }
    if offered.bearer.is_some() && !offered.wshub {
        return Err(bad(
            "Offer the subprotocol wshub beside wshub.bearer.<token>: it is the one the hub answers with",
        ));
    }
    Ok(offered)
}

/// Whether a browser `origin` is the page's own host (the dashboard's
/// page, served by this hub, opening its stream).
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let origin = origin.to_ascii_lowercase();
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    authority.is_some_and(|authority| authority == host.to_ascii_lowercase())
}

/// Validates a WebSocket upgrade request. An HTTP error for a request that
/// is not a valid upgrade or comes from a refused browser origin; an
/// unauthorized client is refused after the handshake instead, so that a
/// browser can see why (as the AI Canvas clients expect).
fn check_upgrade(request: &Request, shared: &Shared) -> Result<Upgrade, Response> {
    let config = &shared.config;
    let bad = |message: &str| Response::error(400, "bad_request", message);
    let console = request.path == ADMIN_PATH;
    if console && !config.admin_ui {
        let message = "The dashboard is off (--no-admin-ui)";
        return Err(Response::error(404, "not_found", message));
    }
    let endpoint = match console {
        true => Some(Envelope::Standard),
        false => config.endpoint_envelope(&request.path),
    };
    let Some(endpoint_envelope) = endpoint else {
        let message = format!(
            "No WebSocket endpoint at {}: use {}",
            request.path, config.path
        );
        return Err(Response::error(404, "not_found", &message));
    };
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
    // The dashboard's page opens its stream from the hub's own origin.
    let own_page = console && origin.is_some_and(|o| same_origin(o, request.header("host")));
    if !own_page && !shared.auth.origin_allowed(origin) {
        let message = format!(
            "Origin {} may not connect here: allow it with --allowed-origin (WSHUB_ALLOWED_ORIGINS)",
            origin.unwrap_or_default()
        );
        return Err(Response::error(403, "forbidden_origin", &message));
    }
    let query = |name| request.query_param(name).map_err(|b| bad(b.0));
    let offered = offered(request)?;
    let protocol = offered.wshub.then_some(SUBPROTOCOL);
    let header_token = request
        .header("authorization")
        .and_then(crate::auth::bearer)
        .map(str::to_owned);
    if console {
        if query("token")?.is_some() {
            return Err(bad(
                "The dashboard's token never goes in the URL: send it as the subprotocol wshub.bearer.<base64url token> (with wshub), or in Authorization: Bearer",
            ));
        }
        let token = header_token.or(offered.bearer);
        return Ok(Upgrade {
            identity: shared.auth.console(token.as_deref()),
            session_id: None,
            handles: None,
            envelope: Envelope::Standard,
            accept: derive_accept_key(key.as_bytes()),
            protocol,
            console,
        });
    }
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
    let envelope = match query("envelope")?.filter(|e| !e.is_empty()) {
        None => endpoint_envelope,
        Some(name) => name.parse::<Envelope>().map_err(|reason| bad(&reason))?,
    };
    let session_id = query("sessionId")?.filter(|s| !s.is_empty());
    if let Some(session) = &session_id {
        protocol::check_name(session, "sessionId").map_err(|(_, message)| bad(&message))?;
    }
    let token = match header_token.or(offered.bearer) {
        Some(token) => Some(token),
        None => query("token")?.filter(|t| !t.is_empty()),
    };
    let identity =
        shared
            .auth
            .authenticate(token.as_deref(), user_id.as_deref(), SystemTime::now());
    let handles = match query("handles")? {
        None => None,
        Some(list) => Some(protocol::request_types(&list).map_err(|why| bad(&why))?),
    };
    if handles.is_some() && identity.as_ref().is_ok_and(|i| !i.is_service()) {
        return Err(bad(
            "handles is for service connections (the admin token or a token with the service grant)",
        ));
    }
    Ok(Upgrade {
        identity,
        session_id,
        handles,
        envelope,
        accept: derive_accept_key(key.as_bytes()),
        protocol,
        console,
    })
}
