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
//! let hub = Hub::with_config(Config { port: 0, ..Config::default() })?;
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
//!  accept loop ──spawns──▶ connection thread (one per socket: HTTP, or WebSocket reader)
//!                               │ parsed requests                ▲ frames, pongs, closes
//!                               ▼                                │
//!  Handle / HTTP ──events──▶ router thread ──per-client queue──▶ writer thread (one per client)
//!                               ▲
//!  timer thread ───ticks────────┘   (pings, stale clients, close deadlines)
//! ```
//!
//! - The **router** owns all state (clients, channels, sessions, users,
//!   presence, counters); nothing else touches it, so there are no locks.
//! - It **never blocks on a client**: each client has its own queue with a
//!   limit (`max_queue`); a client whose queue is full is closed with 1013
//!   and counted, and everyone else carries on.
//! - A **fan-out serialises once**: the frame is encoded a single time and
//!   every recipient's queue holds a reference to the same bytes.
//! - Each connection's **writer** is the only code that writes to its
//!   socket, so frames never interleave; the reader hands it the pongs and
//!   close replies.
//!
//! [`Handle`] is `Clone + Send + Sync`; clone it into every thread that
//! publishes. Each call is one message to the router (and, for
//! [`Handle::publish`], one answer back).
//!
//! ## Logging
//!
//! wshub logs through the [`log`] facade; the binary installs
//! `simple_logger`. At `info`: start, stop, each connect and disconnect with
//! the client count. At `warn`: slow consumers closed, silent clients
//! terminated, refused connections. At `debug`: every error sent to a client
//! and how each connection ended.
//!
//! ## The protocol
//!
//! JSON text frames with a `type`; see the README for every message, error
//! code, close code and HTTP endpoint.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod budget;
mod config;
mod conn;
mod error;
mod event;
mod hub;
mod jwt;
mod link;
mod protocol;
mod publish;
mod ratelimit;
mod router;
mod stats;
mod subscriptions;
mod timer;
mod writer;

/// Random JSON for the parser's property tests, shared with `tests/`.
#[cfg(test)]
#[path = "../tests/support/json.rs"]
mod test_json;

pub use crate::auth::{Secret, TokenGrant, load_tokens};
pub use crate::config::Config;
pub use crate::error::{Error, Result};
pub use crate::hub::{Handle, Hub, Server};
pub use crate::jwt::sign_jwt;
pub use crate::protocol::{ErrorCode, Status, Timestamp};
pub use crate::publish::{ClientRef, Filter, Target};
pub use crate::stats::{ClientStats, Stats};
