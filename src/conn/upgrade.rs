//! The WebSocket upgrade: checks (path, version, origin, credentials), the
//! 101 answer, refusals, and handing the client to the router and to a
//! reader thread of its own.
//!
//! Runs on the connection's first thread (see [`super`]). Refusing costs
//! less than admitting: a refused client never gets a reader thread. Its
//! reason and Close go out through the writer pool, which lingers on the
//! socket until the client closes, and it keeps its handshake slot until
//! it is gone, so refusals count against their address's handshakes.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::SystemTime;

use tungstenite::Bytes;
use tungstenite::handshake::derive_accept_key;

use super::http::{Request, Response};
use super::reader;
use super::{Shared, respond};
use crate::auth::{Denied, Identity};
use crate::budget::HandshakeSlot;
use crate::inbox::{Ending, Input, Joining};
use crate::link::{Admission, Link};
use crate::protocol::{self, Close, Envelope, ErrorCode, Kind, MAX_NAME_LEN, Message};
use crate::throttle::warn_throttled;
use crate::websocket;

/// Checks the upgrade request, answers 101, and hands the client to the
/// router and to its reader thread.
pub(super) fn upgrade(
    stream: TcpStream,
    peer: SocketAddr,
    request: Request,
    rest: Vec<u8>,
    shared: &Arc<Shared>,
    handshake: HandshakeSlot,
) {
    let config = &shared.config;
    let Upgrade {
        identity,
        session_id,
        envelope,
        accept,
    } = match check_upgrade(&request, shared) {
        Ok(checked) => checked,
        Err(response) => return respond(&stream, &response, false, config.handshake_timeout),
    };
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
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{extensions}\r\n"
    );
    let (id, name) = shared.new_client();
    let writer = (id.0 % shared.writers.count() as u64) as usize;
    let link = Arc::new(Link::new(id, stream, writer).compressed(deflate));
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
            warn_throttled!("refused {peer}: {denied}");
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
        warn_throttled!("refused {peer}: no thread left for its reader");
        return refuse(vec![Close::ServerFull.frame()], handshake);
    };
    // The router is asked before the reader starts, so its events follow
    // the question in order, and the answer is usually there when the
    // reader looks. This thread is free for the next connection at once;
    // refused, the reader ends without reading.
    let joining = Joining {
        link: Arc::clone(&link),
        name,
        peer,
        identity,
        session_id,
        handshake,
        envelope,
    };
    if !shared.inbox.send(Input::Joined(Box::new(joining))) {
        return link.cut();
    }
    let reader_link = Arc::clone(&link);
    let reader_shared = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name("wshub-reader".into())
        .stack_size(config.thread_stack_size + websocket::stack_needed(link.deflate))
        .spawn(move || {
            let _slot = slot;
            // The router answers on the link, then wakes the thread
            // registered there; park returns at once if that happened first.
            reader_link.wait_for_admission();
            if reader_link.admission() == Admission::Admitted {
                reader::run(reader_link, rest, &reader_shared, role);
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

/// A valid upgrade request: who the client is (or why it may not come in),
/// the session it asked for and the `Sec-WebSocket-Accept` value.
struct Upgrade {
    identity: Result<Identity, Denied>,
    session_id: Option<String>,
    envelope: Envelope,
    accept: String,
}

/// Validates a WebSocket upgrade request. An HTTP error for a request that
/// is not a valid upgrade or comes from a refused browser origin; an
/// unauthorized client is refused after the handshake instead, so that a
/// browser can see why (as the AI Canvas clients expect).
fn check_upgrade(request: &Request, shared: &Shared) -> Result<Upgrade, Response> {
    let config = &shared.config;
    let bad = |message: &str| Response::error(400, "bad_request", message);
    let Some(endpoint_envelope) = config.endpoint_envelope(&request.path) else {
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
    let envelope = match query("envelope")?.filter(|e| !e.is_empty()) {
        None => endpoint_envelope,
        Some(name) => name.parse::<Envelope>().map_err(|reason| bad(&reason))?,
    };
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
        envelope,
        accept: derive_accept_key(key.as_bytes()),
    })
}
