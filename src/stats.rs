//! The hub's numbers: counters the router keeps, the [`Stats`] copy it hands
//! out, and the three ways they are shown over HTTP (`/api/websocket/status`,
//! `/api/ws/stats`, `/metrics`).
//!
//! Public: [`Stats`] (also at the crate's root) and its parts,
//! [`ClientStats`] (also what [`Handle::subscribers`] lists),
//! [`PresenceEntry`] (what [`Handle::presence`] lists), [`ClusterStats`]
//! and [`HubStats`].
//!
//! [`Handle::subscribers`]: crate::Handle::subscribers
//! [`Handle::presence`]: crate::Handle::presence
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
    pub requests: u64,
    pub busy: u64,
    pub recoveries: u64,
    pub recoveries_lost: u64,
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
    /// Application requests handed to the embedding program or a service
    /// connection.
    pub requests: u64,
    /// Application requests answered `busy` (a full queue, or a service
    /// connection that left before answering).
    pub busy: u64,
    /// Subscribes with `since` that got every missed publication.
    pub recoveries: u64,
    /// Subscribes with `since` answered `recovered: false`.
    pub recoveries_lost: u64,
    /// Streams the history knows (with publications kept, or subscribers).
    pub history_streams: usize,
    /// Publications kept for recovery.
    pub history_entries: usize,
    /// Bytes of history, against `max_history_bytes`.
    pub history_bytes: usize,
    /// Backends' service connections connected now.
    pub service_connections: usize,
    /// Channels with at least one subscriber.
    pub channels: usize,
    /// Sessions with at least one subscriber.
    pub sessions: usize,
    /// Users with at least one connection.
    pub users: usize,
    /// Connection threads alive (client readers and handshakes).
    pub threads: usize,
    /// The most such threads the hub may run now: its own ceiling, or less
    /// while the process's share of the kernel's mappings, which every hub
    /// of the process draws on, has less room (see `docs/operations.md`, Limits).
    pub thread_limit: usize,
    /// Threads of the writer pool.
    pub writer_threads: usize,
    /// Bytes of client messages waiting for the router.
    pub inbox_bytes: usize,
    /// Messages waiting for clients: in their queues, or held for them
    /// behind a catch-up.
    pub queued_messages: usize,
    /// Bytes of those messages.
    pub queued_bytes: usize,
    /// Time since the hub started.
    pub uptime: Duration,
    /// When a client last sent or was sent a message.
    pub last_activity: Option<SystemTime>,
    /// One entry per connected client, when asked for.
    pub clients: Vec<ClientStats>,
    /// With `--redis`: this hub among the others.
    pub cluster: Option<ClusterStats>,
}

/// A hub among the hubs of a Redis.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterStats {
    /// This hub's id (every `clientId` of it ends with `.<id>`).
    pub hub: String,
    /// Whether both connections to Redis are up (otherwise the hub serves
    /// its own clients alone).
    pub redis_up: bool,
    /// Every hub heard of within a lease, this one included.
    pub hubs: Vec<HubStats>,
}

/// One hub's numbers, as its last heartbeat told them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct HubStats {
    /// Its id.
    pub hub: String,
    /// Its WebSocket clients.
    pub connections: usize,
    /// Users with a connection to it.
    pub users: usize,
    /// Channels with a subscriber on it.
    pub channels: usize,
    /// Sessions with a subscriber on it.
    pub sessions: usize,
    /// Its service connections.
    pub services: usize,
    /// Messages it queued to its clients.
    pub messages_sent: u64,
    /// Messages its clients sent it.
    pub messages_received: u64,
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
    /// Its metadata (its token's `meta`, and what the backend set).
    pub meta: serde_json::Map<String, serde_json::Value>,
    /// Whether it is a backend's service connection.
    pub service: bool,
}

/// One user online, and its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PresenceEntry {
    /// The user.
    pub user_id: String,
    /// Its status.
    pub status: crate::Status,
}

/// `GET /api/websocket/status` (as the Cursor Chat Agent clients expect).
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

/// Whether a number only grows or goes up and down.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// One number the HTTP API shows: its JSON name in `/api/ws/stats`, its
/// Prometheus name and help in `/metrics`, and where it comes from. Both
/// renderings come from [`NUMBERS`], so a name is written once.
struct Number {
    json: &'static str,
    metric: &'static str,
    kind: Kind,
    help: &'static str,
    value: fn(&Stats) -> u64,
}

const NUMBERS: &[Number] = &[
    Number {
        json: "totalConnections",
        metric: "wshub_connections_total",
        kind: Kind::Counter,
        help: "WebSocket connections accepted since start.",
        value: |s| s.total_connections,
    },
    Number {
        json: "activeConnections",
        metric: "wshub_connections_active",
        kind: Kind::Gauge,
        help: "WebSocket clients connected now.",
        value: |s| s.active_connections as u64,
    },
    Number {
        json: "authenticatedConnections",
        metric: "wshub_connections_authenticated",
        kind: Kind::Gauge,
        help: "Connected clients whose token was verified.",
        value: |s| s.authenticated_connections as u64,
    },
    Number {
        json: "rejectedConnections",
        metric: "wshub_connections_rejected_total",
        kind: Kind::Counter,
        help: "Connections refused after the handshake (server full, unauthorized).",
        value: |s| s.rejected_connections,
    },
    Number {
        json: "messagesReceived",
        metric: "wshub_messages_received_total",
        kind: Kind::Counter,
        help: "Messages received from clients.",
        value: |s| s.messages_received,
    },
    Number {
        json: "messagesSent",
        metric: "wshub_messages_sent_total",
        kind: Kind::Counter,
        help: "Messages queued to clients, per recipient.",
        value: |s| s.messages_sent,
    },
    Number {
        json: "slowConsumers",
        metric: "wshub_slow_consumers_total",
        kind: Kind::Counter,
        help: "Clients closed with 1013 for not reading fast enough.",
        value: |s| s.slow_consumers,
    },
    Number {
        json: "staleClients",
        metric: "wshub_stale_clients_total",
        kind: Kind::Counter,
        help: "Clients terminated after client_timeout of silence.",
        value: |s| s.stale_clients,
    },
    Number {
        json: "rateLimited",
        metric: "wshub_rate_limited_total",
        kind: Kind::Counter,
        help: "Messages refused with rate_limited.",
        value: |s| s.rate_limited,
    },
    Number {
        json: "errorsSent",
        metric: "wshub_errors_sent_total",
        kind: Kind::Counter,
        help: "error messages sent to clients.",
        value: |s| s.errors_sent,
    },
    Number {
        json: "requests",
        metric: "wshub_requests_total",
        kind: Kind::Counter,
        help: "Application requests handed to the program or a service connection.",
        value: |s| s.requests,
    },
    Number {
        json: "busy",
        metric: "wshub_requests_busy_total",
        kind: Kind::Counter,
        help: "Application requests answered busy.",
        value: |s| s.busy,
    },
    Number {
        json: "recoveries",
        metric: "wshub_recoveries_total",
        kind: Kind::Counter,
        help: "Subscribes with since that got every missed publication.",
        value: |s| s.recoveries,
    },
    Number {
        json: "recoveriesLost",
        metric: "wshub_recoveries_lost_total",
        kind: Kind::Counter,
        help: "Subscribes with since answered recovered: false.",
        value: |s| s.recoveries_lost,
    },
    Number {
        json: "historyStreams",
        metric: "wshub_history_streams",
        kind: Kind::Gauge,
        help: "Streams the history knows.",
        value: |s| s.history_streams as u64,
    },
    Number {
        json: "historyEntries",
        metric: "wshub_history_entries",
        kind: Kind::Gauge,
        help: "Publications kept for recovery.",
        value: |s| s.history_entries as u64,
    },
    Number {
        json: "historyBytes",
        metric: "wshub_history_bytes",
        kind: Kind::Gauge,
        help: "Bytes of history kept.",
        value: |s| s.history_bytes as u64,
    },
    Number {
        json: "serviceConnections",
        metric: "wshub_service_connections",
        kind: Kind::Gauge,
        help: "Backends' service connections connected now.",
        value: |s| s.service_connections as u64,
    },
    Number {
        json: "channels",
        metric: "wshub_channels",
        kind: Kind::Gauge,
        help: "Channels with at least one subscriber.",
        value: |s| s.channels as u64,
    },
    Number {
        json: "sessions",
        metric: "wshub_sessions",
        kind: Kind::Gauge,
        help: "Sessions with at least one subscriber.",
        value: |s| s.sessions as u64,
    },
    Number {
        json: "users",
        metric: "wshub_users",
        kind: Kind::Gauge,
        help: "Users with at least one connection.",
        value: |s| s.users as u64,
    },
    Number {
        json: "threads",
        metric: "wshub_threads",
        kind: Kind::Gauge,
        help: "Connection threads alive (client readers and handshakes).",
        value: |s| s.threads as u64,
    },
    Number {
        json: "threadLimit",
        metric: "wshub_thread_limit",
        kind: Kind::Gauge,
        help: "The most connection threads the hub will run.",
        value: |s| s.thread_limit as u64,
    },
    Number {
        json: "writerThreads",
        metric: "wshub_writer_threads",
        kind: Kind::Gauge,
        help: "Threads of the writer pool.",
        value: |s| s.writer_threads as u64,
    },
    Number {
        json: "inboxBytes",
        metric: "wshub_inbox_bytes",
        kind: Kind::Gauge,
        help: "Bytes of client messages waiting for the router.",
        value: |s| s.inbox_bytes as u64,
    },
    Number {
        json: "queuedMessages",
        metric: "wshub_queued_messages",
        kind: Kind::Gauge,
        help: "Messages waiting for clients, queued or held behind a catch-up.",
        value: |s| s.queued_messages as u64,
    },
    Number {
        json: "queuedBytes",
        metric: "wshub_queued_bytes",
        kind: Kind::Gauge,
        help: "Bytes of messages waiting for clients.",
        value: |s| s.queued_bytes as u64,
    },
    Number {
        json: "clusterHubs",
        metric: "wshub_cluster_hubs",
        kind: Kind::Gauge,
        help: "Hubs sharing this hub's Redis, this one included (0: no Redis).",
        value: |s| s.cluster.as_ref().map_or(0, |c| c.hubs.len() as u64),
    },
    Number {
        json: "clusterConnections",
        metric: "wshub_cluster_connections",
        kind: Kind::Gauge,
        help: "WebSocket clients of every hub, as their last heartbeats said.",
        value: |s| {
            s.cluster
                .as_ref()
                .map_or(0, |c| c.hubs.iter().map(|h| h.connections as u64).sum())
        },
    },
    Number {
        json: "redisUp",
        metric: "wshub_redis_up",
        kind: Kind::Gauge,
        help: "1 when both connections to Redis are up.",
        value: |s| u64::from(s.cluster.as_ref().is_some_and(|c| c.redis_up)),
    },
    Number {
        json: "uptime",
        metric: "wshub_uptime_seconds",
        kind: Kind::Gauge,
        help: "Seconds since the hub started.",
        value: |s| s.uptime.as_secs(),
    },
];

/// One client as the HTTP API shows it (`/api/ws/stats`, `/api/subscribers`).
pub(crate) fn client_body(c: &ClientStats) -> impl Serialize + '_ {
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
        service: bool,
        channels: &'a [String],
        sessions: &'a [String],
        meta: &'a serde_json::Map<String, serde_json::Value>,
    }
    Client {
        id: &c.id,
        user_id: c.user_id.as_deref(),
        session_id: c.session_id.as_deref(),
        is_alive: c.is_alive,
        state: 1,
        authenticated: c.authenticated,
        service: c.service,
        channels: &c.channels,
        sessions: &c.sessions,
        meta: &c.meta,
    }
}

/// `GET /api/ws/stats` (as the AI Canvas clients expect, with every number
/// of [`NUMBERS`]).
pub(crate) fn stats_body(stats: &Stats) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    for number in NUMBERS {
        body.insert(number.json.into(), (number.value)(stats).into());
    }
    let clients: Vec<_> = stats.clients.iter().map(client_body).collect();
    body.insert(
        "clients".into(),
        serde_json::to_value(clients).unwrap_or_default(),
    );
    if let Some(cluster) = &stats.cluster {
        body.insert("hub".into(), cluster.hub.clone().into());
        body.insert(
            "hubs".into(),
            serde_json::to_value(&cluster.hubs).unwrap_or_default(),
        );
    }
    serde_json::Value::Object(body)
}

/// `GET /metrics`: the Prometheus text format, every number of [`NUMBERS`].
pub(crate) fn prometheus(stats: &Stats) -> String {
    let mut out = String::with_capacity(4096);
    for number in NUMBERS {
        let kind = match number.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n",
            name = number.metric,
            help = number.help,
            value = (number.value)(stats),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_number_has_one_json_and_one_metric_name() {
        let json: HashSet<_> = NUMBERS.iter().map(|n| n.json).collect();
        let metrics: HashSet<_> = NUMBERS.iter().map(|n| n.metric).collect();
        assert_eq!(json.len(), NUMBERS.len());
        assert_eq!(metrics.len(), NUMBERS.len());
        for number in NUMBERS {
            assert!(number.metric.starts_with("wshub_"));
            let counter = matches!(number.kind, Kind::Counter);
            assert_eq!(
                counter,
                number.metric.ends_with("_total"),
                "{}",
                number.metric
            );
        }
    }
}
