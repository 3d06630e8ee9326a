//! The hub's numbers: counters the router keeps, the [`Stats`] copy it hands
//! out, and the three ways they are shown over HTTP (`/api/websocket/status`,
//! `/api/ws/stats`, `/metrics`).
//!
//! Counting happens on the router thread; rendering happens on the thread
//! that asked (an HTTP connection or a [`Handle`](crate::Handle) user), so a
//! big client list never holds up the router.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::protocol::Timestamp;

/// Running totals, owned by the router.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counters {
    pub total_connections: u64,
    pub messages_received: u64,
    pub messages_sent: u64,
    pub slow_consumers: u64,
    pub stale_clients: u64,
    pub rejected_connections: u64,
    pub rate_limited: u64,
    pub errors_sent: u64,
}

/// A copy of the hub's numbers at one moment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Stats {
    /// WebSocket connections accepted since start.
    pub total_connections: u64,
    /// WebSocket clients connected now.
    pub active_connections: usize,
    /// Connected clients whose token was verified.
    pub authenticated_connections: usize,
    /// Messages received from clients.
    pub messages_received: u64,
    /// Messages queued to clients (each recipient counts once).
    pub messages_sent: u64,
    /// Clients closed with 1013 because they did not read fast enough.
    pub slow_consumers: u64,
    /// Clients terminated after `client_timeout` of silence.
    pub stale_clients: u64,
    /// Connections refused after the handshake (server full, unauthorized).
    pub rejected_connections: u64,
    /// Messages refused with `rate_limited`.
    pub rate_limited: u64,
    /// `error` messages sent to clients.
    pub errors_sent: u64,
    /// Channels with at least one subscriber.
    pub channels: usize,
    /// Sessions with at least one subscriber.
    pub sessions: usize,
    /// Users with at least one connection.
    pub users: usize,
    /// Connection and writer threads alive.
    pub threads: usize,
    /// The most such threads the hub will run (see the README's limits).
    pub thread_limit: usize,
    /// Time since the hub started.
    pub uptime: Duration,
    /// When a client last sent or was sent a message.
    pub last_activity: Option<SystemTime>,
    /// One entry per connected client, when asked for.
    pub clients: Vec<ClientStats>,
}

/// One connected client, as `/api/ws/stats` shows it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientStats {
    /// Its `clientId`.
    pub id: String,
    /// Its user, if any.
    pub user_id: Option<String>,
    /// The first session it is subscribed to, if any.
    pub session_id: Option<String>,
    /// Whether it answered the last protocol Ping (or was heard from since).
    pub is_alive: bool,
    /// Whether its token was verified.
    pub authenticated: bool,
    /// Its channels.
    pub channels: Vec<String>,
    /// Its sessions.
    pub sessions: Vec<String>,
}

/// `GET /api/websocket/status` (`000_*.txt`).
pub(crate) fn status_body(stats: &Stats) -> impl Serialize + '_ {
    #[derive(Serialize)]
    struct Body {
        success: bool,
        data: Data,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        connected: bool,
        clients: usize,
        last_activity: Option<Timestamp>,
        uptime: u64,
        message_count: u64,
    }
    Body {
        success: true,
        data: Data {
            connected: true,
            clients: stats.active_connections,
            last_activity: stats.last_activity.map(Timestamp::at),
            uptime: stats.uptime.as_secs(),
            message_count: stats.messages_received + stats.messages_sent,
        },
    }
}

/// `GET /api/ws/stats` (`004_*.txt`, with more counters).
pub(crate) fn stats_body(stats: &Stats) -> impl Serialize + '_ {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a> {
        total_connections: u64,
        active_connections: usize,
        authenticated_connections: usize,
        messages_received: u64,
        messages_sent: u64,
        slow_consumers: u64,
        stale_clients: u64,
        rejected_connections: u64,
        rate_limited: u64,
        channels: usize,
        sessions: usize,
        users: usize,
        threads: usize,
        thread_limit: usize,
        uptime: u64,
        clients: Vec<Client<'a>>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Client<'a> {
        id: &'a str,
        user_id: Option<&'a str>,
        session_id: Option<&'a str>,
        is_alive: bool,
        /// WebSocket readyState: every listed client is OPEN (1).
        state: u8,
        authenticated: bool,
        channels: &'a [String],
        sessions: &'a [String],
    }
    Body {
        total_connections: stats.total_connections,
        active_connections: stats.active_connections,
        authenticated_connections: stats.authenticated_connections,
        messages_received: stats.messages_received,
        messages_sent: stats.messages_sent,
        slow_consumers: stats.slow_consumers,
        stale_clients: stats.stale_clients,
        rejected_connections: stats.rejected_connections,
        rate_limited: stats.rate_limited,
        channels: stats.channels,
        sessions: stats.sessions,
        users: stats.users,
        threads: stats.threads,
        thread_limit: stats.thread_limit,
        uptime: stats.uptime.as_secs(),
        clients: stats
            .clients
            .iter()
            .map(|c| Client {
                id: &c.id,
                user_id: c.user_id.as_deref(),
                session_id: c.session_id.as_deref(),
                is_alive: c.is_alive,
                state: 1,
                authenticated: c.authenticated,
                channels: &c.channels,
                sessions: &c.sessions,
            })
            .collect(),
    }
}

/// `GET /metrics`: the Prometheus text format.
pub(crate) fn prometheus(stats: &Stats) -> String {
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    metric(
        "wshub_connections_active",
        "gauge",
        "WebSocket clients connected now.",
        stats.active_connections as f64,
    );
    metric(
        "wshub_connections_authenticated",
        "gauge",
        "Connected clients whose token was verified.",
        stats.authenticated_connections as f64,
    );
    metric(
        "wshub_connections_total",
        "counter",
        "WebSocket connections accepted since start.",
        stats.total_connections as f64,
    );
    metric(
        "wshub_connections_rejected_total",
        "counter",
        "Connections refused after the handshake (server full, unauthorized).",
        stats.rejected_connections as f64,
    );
    metric(
        "wshub_messages_received_total",
        "counter",
        "Messages received from clients.",
        stats.messages_received as f64,
    );
    metric(
        "wshub_messages_sent_total",
        "counter",
        "Messages queued to clients, per recipient.",
        stats.messages_sent as f64,
    );
    metric(
        "wshub_slow_consumers_total",
        "counter",
        "Clients closed with 1013 for not reading fast enough.",
        stats.slow_consumers as f64,
    );
    metric(
        "wshub_stale_clients_total",
        "counter",
        "Clients terminated after client_timeout of silence.",
        stats.stale_clients as f64,
    );
    metric(
        "wshub_rate_limited_total",
        "counter",
        "Messages refused with rate_limited.",
        stats.rate_limited as f64,
    );
    metric(
        "wshub_errors_sent_total",
        "counter",
        "error messages sent to clients.",
        stats.errors_sent as f64,
    );
    metric(
        "wshub_channels",
        "gauge",
        "Channels with at least one subscriber.",
        stats.channels as f64,
    );
    metric(
        "wshub_sessions",
        "gauge",
        "Sessions with at least one subscriber.",
        stats.sessions as f64,
    );
    metric(
        "wshub_users",
        "gauge",
        "Users with at least one connection.",
        stats.users as f64,
    );
    metric(
        "wshub_threads",
        "gauge",
        "Connection and writer threads alive.",
        stats.threads as f64,
    );
    metric(
        "wshub_thread_limit",
        "gauge",
        "The most connection and writer threads the hub will run.",
        stats.thread_limit as f64,
    );
    metric(
        "wshub_uptime_seconds",
        "gauge",
        "Seconds since the hub started.",
        stats.uptime.as_secs_f64(),
    );
    out
}
