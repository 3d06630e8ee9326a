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
//! No async runtime: the hub runs on plain threads, and [`Hub::run`] starts
//! them all. A blocking accept loop hands each socket to a connection
//! thread; each WebSocket client gets a reader thread (64 KiB of stack)
//! that parses its frames into the router's inbox; one **router** thread
//! owns all state (clients, channels, sessions, users, presence, history,
//! counters), so there are no locks around it, and writes out through
//! per-client queues drained by a small **writer pool** with non-blocking
//! sends; a timer thread ticks the router for Pings and deadlines. With
//! Redis (`Config::redis`), two more threads join the hub to the others;
//! with an identity provider's key set (`Config::jwks_url`), one more
//! fetches it and keeps it fresh, and the router never waits for it.
//! `ARCHITECTURE.md`, at the top of the repository, has the thread
//! diagram, the map of every file, the path of a publication from one
//! socket to every subscriber's, and the rules the code keeps:
//!
//! - the router **never blocks on a client**: each client has its own
//!   queue with limits (`max_queue`, `max_queue_bytes`); a client over
//!   them is closed with 1013 and counted, and everyone else carries on;
//! - a **fan-out is encoded once** per envelope in use, and every
//!   recipient's queue holds a reference to the same bytes;
//! - liveness and shutdown never wait behind work, and a flood is held
//!   back by TCP, not by the hub's memory.
//!
//! [`Handle`] is `Clone + Send + Sync`; clone it into every thread that
//! publishes. Each call is one message to the router and one answer back.
//!
//! ## Modules
//!
//! The crate's root holds the hub's API. Besides it: [`events`], typed
//! payloads for the messages the clients of the systems wshub replaces
//! read; [`bus`], an in-process event bus for a program's own domain
//! events; [`stats`], the parts of [`Stats`]; [`client`], a blocking Rust
//! client of the hub for CLIs, IDE plugins and services (it reconnects,
//! recovers what was missed, correlates requests, and runs on the caller's
//! thread only); [`websocket`], the WebSocket layer the hub reads clients
//! with (frames into messages, and permessage-deflate), public so a tool
//! can run the exact code the hub runs (the Autobahn echo example).
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
//! JSON text frames with a `type`; `docs/protocol.md` in the repository has
//! every message, error code, close code and HTTP endpoint, and
//! `docs/embedding.md` more on embedding.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations)]

mod admin;
mod analytics;
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
// Without the `jwks` feature a key set URL is refused at start, so its
// fetcher is never started.
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
mod jwks;
mod jwt;
mod keys;
mod link;
mod protocol;
mod proxy;
mod publish;
mod ratelimit;
mod router;
pub mod stats;
mod subscriptions;
mod throttle;
mod timer;
mod tls;
pub mod websocket;
mod writer;

/// Random JSON for the parser's property tests, shared with `tests/`.
#[cfg(test)]
#[path = "../tests/support/json.rs"]
mod test_json;

pub use crate::app::{ClientRequest, Requests};
pub use crate::auth::{Secret, TokenGrant, load_tokens};
pub use crate::config::{Config, Endpoint};
pub use crate::error::{Error, Result, TlsError};
pub use crate::handle::Handle;
pub use crate::hub::{Hub, Server};
pub use crate::jwt::sign_jwt;
pub use crate::keys::JwtKey;
pub use crate::protocol::{Envelope, ErrorCode, Status, Timestamp, Topic};
pub use crate::publish::{ClientRef, Filter, Target};
pub use crate::stats::Stats;
