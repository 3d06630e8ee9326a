//! The HTTP API on the WebSocket port: health, status, stats, metrics and
//! publishing.
//!
//! Runs on the connection's first thread (see [`super`]), one request per
//! connection. Each answer that needs the hub's state asks the router on
//! its API lane and waits at most [`ROUTER_TIMEOUT`].

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::http::{Request, Response};
use super::{Shared, Unread, read_before, write_before};
use crate::auth::AdminCheck;
use crate::config::Config;
use crate::event::Event;
use crate::publish::{Publication, Target};
use crate::stats;

/// How long an HTTP request waits for the router's answer.
const ROUTER_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn api(
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
    shared.inbox.ask(
        |reply| Event::Stats { clients, reply },
        Some(ROUTER_TIMEOUT),
    )
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
    let delivered = shared.inbox.ask(
        |reply| Event::Publish {
            publication,
            reply: Some(reply),
        },
        Some(ROUTER_TIMEOUT),
    );
    match delivered {
        Some(delivered) => Response::json(
            200,
            &serde_json::json!({"success": true, "data": {"delivered": delivered}}),
        ),
        None => unavailable(),
    }
}
