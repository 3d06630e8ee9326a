//! `GET /ready`: whether a load balancer or an orchestrator should send
//! this hub new clients, the Kubernetes readiness convention, as soketi
//! and Mercure answer it. `/health` stays liveness (the hub runs and its
//! router answers: restart it if not); `/ready` says whether it should get
//! traffic now.
//!
//! Runs on the connection's thread like the rest of the HTTP API (see
//! [`super::api`]): it reads the draining flag and asks the router for its
//! numbers, waiting at most the API's router timeout.

use serde_json::json;

use super::Shared;
use super::http::{Request, Response};
use crate::stats::Stats;

/// Why a hub is not ready: the `status` of a 503's body, and its `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotReady {
    /// [`Handle::drain`](crate::Handle::drain) or shutdown was called.
    Draining,
    /// The router did not answer in time.
    Unavailable,
    /// `--redis` is set and Redis is unreachable or stalled past
    /// `--redis-timeout`: this hub would serve a world split from the others.
    RedisDown,
    /// At `--max-connections`: a new client would be refused.
    Full,
}

impl NotReady {
    fn status(self) -> &'static str {
        match self {
            NotReady::Draining => "draining",
            NotReady::Unavailable => "unavailable",
            NotReady::RedisDown => "redis_down",
            NotReady::Full => "full",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            NotReady::Draining => "the hub is shutting down: send new clients elsewhere",
            NotReady::Unavailable => "the hub's router did not answer in time",
            NotReady::RedisDown => {
                "Redis (--redis) is unreachable or did not answer within --redis-timeout"
            }
            NotReady::Full => "the hub is at --max-connections",
        }
    }
}

/// The answer to `GET /ready`: 200 `{"status":"ready"}`, or 503 with the
/// first reason the hub is not.
pub(super) fn answer(_: &Request, shared: &Shared) -> Response {
    let stats = match shared.is_draining() {
        true => Err(NotReady::Draining),
        false => super::api::ask_stats(shared, false).ok_or(NotReady::Unavailable),
    };
    match stats.and_then(|stats| check(&stats, shared.config.max_connections)) {
        Ok(()) => Response::json(200, &json!({"status": "ready"})),
        Err(not) => Response::json(
            503,
            &json!({"status": not.status(), "reason": not.reason()}),
        ),
    }
}

fn check(stats: &Stats, max_connections: usize) -> Result<(), NotReady> {
    if stats
        .cluster
        .as_ref()
        .is_some_and(|cluster| !cluster.redis_up)
    {
        return Err(NotReady::RedisDown);
    }
    if stats.active_connections >= max_connections {
        return Err(NotReady::Full);
    }
    Ok(())
}
