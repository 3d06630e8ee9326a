//! The HTTP API on the WebSocket port: health, status, stats, metrics,
//! publishing, and server-side control of clients.
//!
//! Runs on the connection's first thread (see [`super`]), one request per
//! connection. Every endpoint is a row of [`ROUTES`]; each answer that needs
//! the hub's state asks the router on its API lane and waits at most
//! [`ROUTER_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, bounded};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;

use super::http::{Request, Response};
use super::{Shared, Timed, Unread};
use crate::auth::AdminCheck;
use crate::command::{Answer, Command};
use crate::config::Config;
use crate::inbox::{Gate, Input, Offered};
use crate::protocol::{self, AppClose, Topic};
use crate::publish::{Publication, Target, Unpublished};
use crate::stats;

/// How long an HTTP request waits for the router's answer.
const ROUTER_TIMEOUT: Duration = Duration::from_secs(5);

/// One endpoint: where, how, whether it needs the admin token, and what
/// answers it (given the request, with its body read when it has one).
struct Route {
    path: &'static str,
    method: &'static str,
    admin: bool,
    answer: fn(&Request, &Shared) -> Response,
}

/// Every endpoint of the HTTP API.
const ROUTES: &[Route] = &[
    Route {
        path: "/health",
        method: "GET",
        admin: false,
        answer: |_, shared| match ask_stats(shared, false) {
            Some(_) => Response::json(200, &json!({"status": "ok"})),
            None => Response::json(503, &json!({"status": "unavailable"})),
        },
    },
    Route {
        path: "/api/websocket/status",
        method: "GET",
        admin: false,
        answer: |_, shared| match ask_stats(shared, false) {
            Some(stats) => Response::json(200, &stats::status_body(&stats)),
            None => unavailable(),
        },
    },
    Route {
        path: "/api/ws/stats",
        method: "GET",
        admin: true,
        answer: |_, shared| match ask_stats(shared, true) {
            Some(stats) => Response::json(200, &stats::stats_body(&stats)),
            None => unavailable(),
        },
    },
    Route {
        path: "/metrics",
        method: "GET",
        admin: true,
        answer: |_, shared| match ask_stats(shared, false) {
            Some(stats) => {
                Response::text(200, "text/plain; version=0.0.4", stats::prometheus(&stats))
            }
            None => unavailable(),
        },
    },
    Route {
        path: "/api/publish",
        method: "POST",
        admin: true,
        answer: publish,
    },
    Route {
        path: "/api/subscribe",
        method: "POST",
        admin: true,
        answer: |request, shared| subscription(request, shared, true),
    },
    Route {
        path: "/api/unsubscribe",
        method: "POST",
        admin: true,
        answer: |request, shared| subscription(request, shared, false),
    },
    Route {
        path: "/api/disconnect",
        method: "POST",
        admin: true,
        answer: disconnect,
    },
    Route {
        path: "/api/meta",
        method: "POST",
        admin: true,
        answer: set_meta,
    },
    Route {
        path: "/api/subscribers",
        method: "GET",
        admin: true,
        answer: subscribers,
    },
    Route {
        path: "/api/presence",
        method: "GET",
        admin: true,
        answer: |_, shared| match command(shared, Command::Presence) {
            Some(Answer::Presence(users)) => ok(json!({"users": users})),
            _ => unavailable(),
        },
    },
];

pub(super) fn api(
    timed: &mut Timed<'_>,
    mut request: Request,
    rest: Vec<u8>,
    shared: &Shared,
) -> Result<Response, Unread> {
    let config = &shared.config;
    let method = match request.method.as_str() {
        "HEAD" => "GET",
        other => other,
    };
    let path = request.path.as_str();
    let routes: Vec<&Route> = ROUTES.iter().filter(|r| r.path == path).collect();
    if routes.is_empty() {
        if path == config.path || path == "/" {
            let message = format!("{path} speaks WebSocket: connect with a WebSocket client");
            return Ok(Response::error(426, "upgrade_required", &message)
                .with_header("Upgrade", "websocket"));
        }
        let message = format!("Nothing at {path}");
        return Ok(Response::error(404, "not_found", &message));
    }
    let Some(route) = routes.iter().find(|r| r.method == method) else {
        let allowed = routes
            .iter()
            .flat_map(|r| match r.method {
                "GET" => ["GET", "HEAD"].as_slice(),
                _ => std::slice::from_ref(&r.method),
            })
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let message = format!("{path} accepts {allowed}, not {}", request.method);
        return Ok(
            Response::error(405, "method_not_allowed", &message).with_header("Allow", allowed)
        );
    };
    if route.admin {
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
    if route.method == "POST" {
        // A browser page elsewhere must not act through a user's machine.
        if let Some(origin) = request.header("origin")
            && !shared.auth.origin_listed(origin)
        {
            let message = format!("Cross-origin requests from {origin} are refused");
            return Ok(Response::error(403, "forbidden_origin", &message));
        }
        read_body(timed, &mut request, rest, config)?;
    }
    Ok((route.answer)(&request, shared))
}

fn unavailable() -> Response {
    Response::error(503, "unavailable", "The hub is shutting down")
}

fn bad(message: &str) -> Response {
    Response::error(400, "bad_request", message)
}

fn no_client(client: &str) -> Response {
    Response::error(404, "not_found", &format!("No client {client}"))
}

fn ask_stats(shared: &Shared, clients: bool) -> Option<stats::Stats> {
    shared.inbox.ask(
        |reply| Input::Stats { clients, reply },
        Some(ROUTER_TIMEOUT),
    )
}

fn command(shared: &Shared, command: Command) -> Option<Answer> {
    shared.inbox.ask(
        |reply| Input::Command { command, reply },
        Some(ROUTER_TIMEOUT),
    )
}

/// A JSON body, or the 400 that says why it is not one.
fn body<T: DeserializeOwned>(request: &Request, what: &str) -> Result<T, Response> {
    serde_json::from_slice(&request.body)
        .map_err(|err| bad(&format!("Body is not a valid {what} request: {err}")))
}

/// Reads a `Content-Length` body within the deadline and `max_body_size`.
fn read_body(
    timed: &mut Timed<'_>,
    request: &mut Request,
    mut body: Vec<u8>,
    config: &Config,
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
        && timed.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err()
    {
        return Err(Unread::Gone);
    }
    let mut chunk = [0u8; 8192];
    while body.len() < length {
        let n = timed.read(&mut chunk)?;
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    request.body = body;
    Ok(())
}

/// The body of `POST /api/publish`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    channel: Option<String>,
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
    #[serde(rename = "userId")]
    user_id: Option<String>,
    #[serde(rename = "clientId")]
    client_id: Option<String>,
    broadcast: Option<bool>,
    authenticated: Option<bool>,
    #[serde(rename = "type")]
    kind: Option<String>,
    data: Option<Box<RawValue>>,
    batched: Option<bool>,
    #[serde(rename = "idempotencyKey")]
    idempotency_key: Option<String>,
}

fn publish(request: &Request, shared: &Shared) -> Response {
    let body: PublishBody = match body(request, "publish") {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut targets = Vec::with_capacity(1);
    targets.extend(body.channel.map(Target::Channel));
    targets.extend(body.session_id.map(Target::Session));
    targets.extend(body.user_id.map(Target::User));
    targets.extend(body.client_id.map(Target::Client));
    if body.broadcast == Some(true) {
        targets.push(Target::Broadcast);
    }
    if body.authenticated == Some(true) {
        targets.push(Target::Authenticated);
    }
    let target = match targets.pop() {
        Some(target) if targets.is_empty() => target,
        _ => {
            return bad(
                "Give exactly one of channel, sessionId, userId, clientId, \"broadcast\": true or \"authenticated\": true",
            );
        }
    };
    let kind = body.kind.as_deref().unwrap_or("event");
    let publication = match Publication::new(target, kind, body.data.as_deref()) {
        Ok(publication) => publication.batched(body.batched == Some(true)),
        Err(err) => return bad(&err.to_string()),
    };
    if let Some(key) = &body.idempotency_key
        && let Err(why) = protocol::check_idempotency_key(key)
    {
        return bad(&format!("idempotencyKey {why}"));
    }
    match publish_taken(shared, publication, body.idempotency_key) {
        Ok(delivered) => ok(json!({"delivered": delivered})),
        Err(why) => not_published(why.reason()),
    }
}

/// Hands a publication to the router and waits for how it went, never
/// saying more than is known: one the router did not take within
/// [`ROUTER_TIMEOUT`] is given up (and then never delivered); one it took
/// is waited for until Redis answered (the router answers within its
/// deadlines, see `--redis-timeout`).
fn publish_taken(
    shared: &Shared,
    publication: Publication,
    key: Option<String>,
) -> Result<usize, Unpublished> {
    let refused = |why: &str| Err(Unpublished::Unavailable(why.to_owned()));
    let gate = Arc::new(Gate::default());
    let (reply, answer) = bounded(1);
    let event = Input::Publish {
        publication,
        key: key.map(Into::into),
        reply,
        gate: Some(Arc::clone(&gate)),
    };
    match shared.inbox.offer(event, ROUTER_TIMEOUT) {
        Offered::Sent => {}
        Offered::Full => {
            return refused(
                "The hub is too busy to take the publication: not published; try again",
            );
        }
        Offered::Gone => return refused("The hub is shutting down: not published"),
    }
    match answer.recv_timeout(ROUTER_TIMEOUT) {
        Ok(published) => published,
        Err(RecvTimeoutError::Disconnected) => refused("The hub is shutting down: not published"),
        Err(RecvTimeoutError::Timeout) if gate.abandon() => refused(
            "The hub did not take the publication within 5 s (it is overloaded): not published; try again",
        ),
        // Taken: the answer is coming.
        Err(RecvTimeoutError::Timeout) => {
            let wait = shared.config.redis_timeout * 4 + Duration::from_secs(5);
            answer.recv_timeout(wait).unwrap_or_else(|_| {
                Err(Unpublished::Unconfirmed(
                    "The hub took the publication but had no answer from Redis in time: it may have been published; retry with the same idempotencyKey".to_owned(),
                ))
            })
        }
    }
}

/// A 503 for a publication that was not (surely) published, and why.
fn not_published(why: &str) -> Response {
    Response::error(503, "unavailable", why).with_header("Retry-After", "1")
}

/// The body of `POST /api/subscribe` and `/api/unsubscribe`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SubscriptionBody {
    client_id: String,
    channel: Option<String>,
    session_id: Option<String>,
}

fn topic_of(channel: Option<String>, session: Option<String>) -> Result<Option<Topic>, Response> {
    let topic = match (channel, session) {
        (Some(_), Some(_)) => return Err(bad("Give channel or sessionId, not both")),
        (Some(channel), None) => Topic::Channel(channel),
        (None, Some(session)) => Topic::Session(session),
        (None, None) => return Ok(None),
    };
    topic.validate().map_err(|err| bad(&err.to_string()))?;
    Ok(Some(topic))
}

/// `POST /api/subscribe` (`subscribe`) and `/api/unsubscribe`.
fn subscription(request: &Request, shared: &Shared, subscribe: bool) -> Response {
    let body: SubscriptionBody = match body(request, "subscription") {
        Ok(body) => body,
        Err(response) => return response,
    };
    let topic = match topic_of(body.channel, body.session_id) {
        Ok(topic) => topic,
        Err(response) => return response,
    };
    let client = body.client_id;
    let order = match (subscribe, topic) {
        (true, Some(topic)) => Command::Subscribe {
            client: client.clone(),
            topic,
        },
        (true, None) => return bad("Give the channel or sessionId to subscribe to"),
        (false, topic) => Command::Unsubscribe {
            client: client.clone(),
            topic,
        },
    };
    match command(shared, order) {
        Some(Answer::Done(true)) => ok(json!({})),
        Some(Answer::Done(false)) => no_client(&client),
        Some(Answer::Refused(why)) => Response::error(409, "refused", &why),
        _ => unavailable(),
    }
}

/// The body of `POST /api/disconnect`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DisconnectBody {
    client_id: Option<String>,
    user_id: Option<String>,
    code: Option<u16>,
    reason: Option<String>,
}

/// `POST /api/disconnect`: a client, or every connection of a user.
fn disconnect(request: &Request, shared: &Shared) -> Response {
    let body: DisconnectBody = match body(request, "disconnect") {
        Ok(body) => body,
        Err(response) => return response,
    };
    let target = match (body.client_id, body.user_id) {
        (Some(client), None) => Target::Client(client),
        (None, Some(user)) => Target::User(user),
        _ => return bad("Give exactly one of clientId or userId"),
    };
    let close = match AppClose::or_default(body.code, body.reason) {
        Ok(close) => close,
        Err(broken) => return bad(&format!("{} {}", broken.field(), broken.rule())),
    };
    match command(shared, Command::Close { target, close }) {
        Some(Answer::Count(count)) => ok(json!({"disconnected": count})),
        _ => unavailable(),
    }
}

/// The body of `POST /api/meta`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MetaBody {
    client_id: String,
    meta: serde_json::Map<String, serde_json::Value>,
}

/// `POST /api/meta`: merges key/values into a client's metadata.
fn set_meta(request: &Request, shared: &Shared) -> Response {
    let body: MetaBody = match body(request, "meta") {
        Ok(body) => body,
        Err(response) => return response,
    };
    let client = body.client_id;
    match command(
        shared,
        Command::SetMeta {
            client: client.clone(),
            meta: body.meta,
        },
    ) {
        Some(Answer::Done(true)) => ok(json!({})),
        Some(Answer::Done(false)) => no_client(&client),
        Some(Answer::Refused(why)) => Response::error(409, "refused", &why),
        _ => unavailable(),
    }
}

/// `GET /api/subscribers?channel=X` (or `?sessionId=X`).
fn subscribers(request: &Request, shared: &Shared) -> Response {
    let query = |name| request.query_param(name).map_err(|b| bad(b.0));
    let (channel, session) = match (query("channel"), query("sessionId")) {
        (Ok(channel), Ok(session)) => (channel, session),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let topic = match topic_of(channel, session) {
        Ok(Some(topic)) => topic,
        Ok(None) => return bad("Give ?channel= or ?sessionId="),
        Err(response) => return response,
    };
    match command(shared, Command::Subscribers { topic }) {
        Some(Answer::Clients(clients)) => {
            let clients: Vec<_> = clients.iter().map(stats::client_body).collect();
            ok(json!({"clients": clients}))
        }
        _ => unavailable(),
    }
}

/// `{"success":true,"data":...}`, `success` first as `docs/protocol.md` shows it.
fn ok(data: serde_json::Value) -> Response {
    #[derive(Serialize)]
    struct Success {
        success: bool,
        data: serde_json::Value,
    }
    Response::json(
        200,
        &Success {
            success: true,
            data,
        },
    )
}
