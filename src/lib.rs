//! # wshub
//!
//! A real-time WebSocket hub: a backend pushes events to browsers, CLIs and
//! IDE plugins, and they talk back, over one JSON protocol. Run it as a
//! binary (`cargo run --release`) or embed it in a program that has no async
//! runtime.
//!
//! ## Quick start
//!
//! ```
//! use serde_json::json;
//! use wshub::{Config, Hub, Target};
//!
//! let hub = Hub::with_config(Config::default().port(0))?;
//! let url = format!("ws://{}/ws", hub.local_addr());
//! let server = hub.spawn()?;
//!
//! // Browsers connect to `url` and send {"type":"subscribe","channel":"files"}.
//! // Your program publishes from any thread:
//! let handle = server.handle().clone();
//! handle.publish(Target::channel("files"), "event", json!({"file": "src/main.rs", "event": "change"}))?;
//! handle.publish(Target::session("session_123"), "ai_complete", json!({"chunks": 100}))?;
//! handle.publish(Target::user("user_abc123"), "notification", json!({"level": "success", "message": "All tests passed!"}))?;
//!
//! let stats = handle.stats()?;
//! println!("{} clients on {url}", stats.active_connections);
//! server.shutdown()?; // closes every client with 1001
//! # Ok::<(), wshub::Error>(())
//! ```
//!
//! ## Threads
//!
//! ```text
//!  accept loop ──spawns──▶ connection thread (one per socket: the HTTP request,
//!                               │            then it ends, or becomes…)
//!                               ▼
//!                          reader thread (one per WebSocket client, 64 KiB stack)
//!                               │ lanes: control, api, clients (bounded in bytes)
//!                               ▼
//!  Handle / HTTP ──────────▶ router thread ──per-client queues──▶ writer pool
//!                               ▲   ▲        (one hand-off per       (one per CPU,
//!  timer thread ───ticks────────┘   │         batch and writer)       epoll, non-blocking)
//!  cluster in/out (`--redis`) ◀─────┘ lane: cluster (Redis's answers, other hubs)
//! ```
//!
//! - With `--redis`, two more threads join the hub to the other hubs on
//!   that Redis: one sends what the router asks, pipelined, the other reads
//!   the pubsub bus; the router never waits for either (see the README's
//!   "Running several hubs").
//! - The **router** owns all state (clients, channels, sessions, users,
//!   presence, counters); nothing else touches it, so there are no locks.
//!   It reads its lanes in order: shutdown first, then the timer's tick,
//!   then work in bounded batches, so liveness and shutdown never wait
//!   behind a backlog.
//! - It **never blocks on a client**: each client has its own queue with
//!   limits (`max_queue`, `max_queue_bytes`); a client over them is closed
//!   with 1013 and counted, and everyone else carries on.
//! - A **fan-out serialises once**: the frame is encoded a single time and
//!   every recipient's queue holds a reference to the same bytes. At the end
//!   of a batch each writer is handed its clients at once, and only woken if
//!   it sleeps.
//! - **Writers** send with `MSG_DONTWAIT`, all of a client's queued frames in
//!   one vectored send; a full socket waits for writability while its writer
//!   serves the others. Only one thread writes to a socket at a time.
//! - **Readers** stamp each client as alive themselves, apply its rate limit,
//!   and stop reading while its share of the router's inbox is used: a flood
//!   is held back by TCP, not by the hub's memory.
//!
//! [`Handle`] is `Clone + Send + Sync`; clone it into every thread that
//! publishes. Each call is one message to the router and one answer back.
//!
//! ## Logging
//!
//! wshub logs through the [`log`] facade; the binary installs
//! `simple_logger`. At `info`: start and stop. At `warn`: slow consumers
//! closed, silent clients terminated, refused connections, abusive clients,
//! at most one line a second for each kind (with a count of those held
//! back). At `debug`: each connect and disconnect with the client count,
//! every error sent to a client and how each connection ended.
//!
//! ## The protocol
//!
//! JSON text frames with a `type`; see the README for every message, error
//! code, close code and HTTP endpoint.
//!
//! ## A Rust client
//!
//! [`client`] is a blocking client of the hub for CLIs, IDE plugins and
//! services: it reconnects, recovers what was missed, correlates requests,
//! and runs on the caller's thread only.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod app;
mod auth;
mod budget;
pub mod bus;
pub mod client;
mod command;
// Without the `redis` feature `--redis` is refused at start, so the threads'
// half of the cluster types is never read.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
mod cluster;
mod config;
mod conn;
mod error;
pub mod events;
mod handle;
mod history;
mod hub;
mod idempotency;
mod inbox;
mod jwt;
mod link;
mod protocol;
mod publish;
mod ratelimit;
mod router;
pub mod stats;
mod subscriptions;
mod throttle;
mod timer;
pub mod websocket;
mod writer;

/// Random JSON for the parser's property tests, shared with `tests/`.
#[cfg(test)]
#[path = "../tests/support/json.rs"]
mod test_json;

pub use crate::app::ClientRequest;
pub use crate::auth::{Secret, TokenGrant, load_tokens};
pub use crate::config::{Config, Endpoint};
pub use crate::error::{Error, Result};
pub use crate::handle::Handle;
pub use crate::hub::{Hub, Server};
pub use crate::jwt::sign_jwt;
pub use crate::protocol::{Envelope, ErrorCode, Status, Timestamp, Topic};
pub use crate::publish::{ClientRef, Filter, Target};
pub use crate::stats::Stats;
