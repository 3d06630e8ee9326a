//! Usage analytics: the numbers behind the dashboard (`GET /admin`),
//! `GET /api/stats/history` and the per-source, per-code, per-reason and
//! latency series of `/metrics`.
//!
//! Three parts, by who changes them:
//! - [`Meters`]: what threads other than the router measure, in atomics,
//!   never behind a lock: connection refusals by [`Refusal`] (the accept
//!   loop, connection threads and the router), the delivery latency
//!   histogram and its probe (whoever writes to sockets, see [`latency`])
//!   and the process's resident memory (the timer thread reads it once a
//!   second, so no reader of `/proc` is ever on the router's path).
//! - [`Analytics`]: the router's own, changed on the router thread only:
//!   publications by [`Source`], deliveries and errors by code (a `+= 1`
//!   where each happens), which publications to time, and once a second
//!   the row of every [`Metric`] that goes into the time series
//!   ([`series`]): one-second values for five minutes, one-minute values
//!   for an hour.
//! - [`metrics`]: the one list of every series, its name (as
//!   `/api/stats/history` and the page know it), kind and chart. The
//!   labelled series of `/metrics` are written from the same enums
//!   ([`Source::ALL`], [`Refusal::ALL`], `ErrorCode::ALL`).
//!
//! Its memory is fixed when the hub starts: [`Analytics::series_bytes`]
//! (about 76 KiB for the 54 metrics: 360 values of 4 bytes each, 1.4 KiB a
//! metric), plus at most [`HOT_CHANNELS`] names counted in the current
//! second while a dashboard watches.

pub(crate) mod latency;
pub(crate) mod series;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tungstenite::Bytes;

use crate::protocol::{Close, ErrorCode};
use latency::{BOUNDS_US, BUCKETS, Counts, Latency, percentile};
use series::{MINUTES, Ring, SECONDS};

/// One publication in this many is timed from its arrival to its first
/// write...
const SAMPLE_EVERY: u64 = 64;

/// ...and the first few of every second, so a quiet hub is timed too.
const SAMPLES_PER_SECOND: u32 = 4;

/// A timed frame not written after this long (its recipients were closed
/// first) frees the probe for another.
const PROBE_STALE: Duration = Duration::from_secs(5);

/// Most channels counted in one second for the dashboard's busiest
/// channels; publications to others that second are not counted.
pub(crate) const HOT_CHANNELS: usize = 4096;

/// How many error codes there are.
const ERROR_CODES: usize = ErrorCode::ALL.len();

/// Declares an enum of names, each written once, with `ALL`, `COUNT` and
/// `as_str`.
macro_rules! names {
    (
        $(#[$meta:meta])*
        enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub(crate) const ALL: &'static [$name] = &[$($name::$variant),*];

            /// How many variants there are.
            #[allow(dead_code)]
            pub(crate) const COUNT: usize = Self::ALL.len();

            /// Its name in series names, labels and JSON.
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )*
                }
            }
        }
    };
}

names! {
    /// Where a publication came from.
    enum Source {
        /// A connection's `publish` (a client's, or a service connection's).
        WebSocket = "websocket",
        /// `POST /api/publish`.
        Http = "http",
        /// [`Handle`](crate::Handle) in the embedding program.
        Library = "library",
        /// Another hub of the same Redis.
        Cluster = "cluster",
    }
}

names! {
    /// Why a connection (or an admin request) was refused.
    enum Refusal {
        /// Too many connections still sending their request (503).
        Handshakes = "handshakes",
        /// No thread left for the connection or its reader.
        Threads = "threads",
        /// A development hub asked for another host (403 `forbidden_host`).
        ForeignHost = "foreign_host",
        /// A browser origin that may not connect (403 `forbidden_origin`).
        Origin = "origin",
        /// Not a valid WebSocket upgrade (400, 404, 426).
        BadUpgrade = "bad_upgrade",
        /// No token, or a token that does not verify (close 1008).
        Unauthorized = "unauthorized",
        /// At `max_connections` (close 1013).
        ServerFull = "server_full",
        /// At `max_connections_per_user` (close 1013).
        UserFull = "user_full",
        /// At `max_connections_per_ip` (close 1013).
        AddressFull = "address_full",
        /// The hub is stopping (close 1001).
        ShuttingDown = "shutting_down",
        /// An admin request or the dashboard without the admin token (401, or close 1008).
        AdminToken = "admin_token",
    }
}

impl Refusal {
    /// The refusal a close at admission stands for.
    pub(crate) fn of_close(close: Close) -> Refusal {
        match close {
            Close::GoingAway => Refusal::ShuttingDown,
            Close::UserFull => Refusal::UserFull,
            Close::AddressFull => Refusal::AddressFull,
            Close::Unauthorized => Refusal::Unauthorized,
            _ => Refusal::ServerFull,
        }
    }
}

names! {
    /// The figures charted of the delivery latency.
    enum Percentile {
        /// The median.
        P50 = "p50",
        P90 = "p90",
        P99 = "p99",
        /// The longest.
        Max = "max",
    }
}

impl Percentile {
    fn fraction(self) -> f64 {
        match self {
            Percentile::P50 => 0.5,
            Percentile::P90 => 0.9,
            Percentile::P99 => 0.99,
            Percentile::Max => 1.0,
        }
    }
}

/// One time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Metric {
    MessagesIn,
    MessagesOut,
    Deliveries,
    Publications(Source),
    Errors(ErrorCode),
    Refusals(Refusal),
    Connects,
    Disconnects,
    SlowConsumers,
    StaleClients,
    RateLimited,
    Recovered,
    RecoveryLost,
    Requests,
    Busy,
    Connections,
    Authenticated,
    Services,
    Users,
    Channels,
    Sessions,
    Threads,
    QueuedMessages,
    ResidentKib,
    RedisUp,
    Latency(Percentile),
    LatencySamples,
}

/// What a metric's values are, and how a minute's value is made of its
/// seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Events in each second; a minute holds their sum.
    Rate,
    /// A level at each second; a minute holds its highest.
    Gauge,
    /// A level whose low matters (a link up or down); a minute holds its lowest.
    Floor,
    /// A figure of the delivery latency, in µs; a minute's is that
    /// minute's, from the minute's histogram.
    Latency,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Rate => "rate",
            Kind::Gauge => "gauge",
            Kind::Floor => "floor",
            Kind::Latency => "latency",
        }
    }
}

/// The chart a metric is drawn in: its title and unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Chart {
    pub title: &'static str,
    pub unit: &'static str,
}

const fn chart(title: &'static str, unit: &'static str) -> Chart {
    Chart { title, unit }
}

impl Metric {
    /// Its name in `/api/stats/history?metric=` and on the page.
    fn name(self) -> String {
        let plain = match self {
            Metric::MessagesIn => "messagesIn",
            Metric::MessagesOut => "messagesOut",
            Metric::Deliveries => "deliveries",
            Metric::Publications(source) => return format!("publications.{}", source.as_str()),
            Metric::Errors(code) => return format!("errors.{}", code.as_str()),
            Metric::Refusals(reason) => return format!("refusals.{}", reason.as_str()),
            Metric::Connects => "connects",
            Metric::Disconnects => "disconnects",
            Metric::SlowConsumers => "slowConsumers",
            Metric::StaleClients => "staleClients",
            Metric::RateLimited => "rateLimited",
            Metric::Recovered => "recovered",
            Metric::RecoveryLost => "recoveryLost",
            Metric::Requests => "requests",
            Metric::Busy => "busy",
            Metric::Connections => "connections",
            Metric::Authenticated => "authenticated",
            Metric::Services => "services",
            Metric::Users => "users",
            Metric::Channels => "channels",
            Metric::Sessions => "sessions",
            Metric::Threads => "threads",
            Metric::QueuedMessages => "queuedMessages",
            Metric::ResidentKib => "residentKiB",
            Metric::RedisUp => "redisUp",
            Metric::Latency(p) => return format!("latency.{}", p.as_str()),
            Metric::LatencySamples => "latency.samples",
        };
        plain.to_owned()
    }

    pub(crate) fn kind(self) -> Kind {
        match self {
            Metric::Connections
            | Metric::Authenticated
            | Metric::Services
            | Metric::Users
            | Metric::Channels
            | Metric::Sessions
            | Metric::Threads
            | Metric::QueuedMessages
            | Metric::ResidentKib
            | Metric::Latency(Percentile::Max) => Kind::Gauge,
            Metric::RedisUp => Kind::Floor,
            Metric::Latency(_) => Kind::Latency,
            _ => Kind::Rate,
        }
    }

    fn chart(self) -> Chart {
        match self {
            Metric::MessagesIn | Metric::MessagesOut | Metric::Deliveries => {
                chart("Messages", "/s")
            }
            Metric::Publications(_) => chart("Publications by source", "/s"),
            Metric::Errors(_) => chart("Errors sent, by code", "/s"),
            Metric::Refusals(_) => chart("Refusals, by reason", "/s"),
            Metric::Connects | Metric::Disconnects => chart("Connects and disconnects", "/s"),
            Metric::SlowConsumers | Metric::StaleClients | Metric::RateLimited => {
                chart("Slow, silent and rate-limited", "/s")
            }
            Metric::Recovered | Metric::RecoveryLost => chart("Recoveries with since", "/s"),
            Metric::Requests | Metric::Busy => chart("Application requests", "/s"),
            Metric::Latency(_) => chart("Delivery latency", "µs"),
            Metric::LatencySamples => chart("Latency samples", "/s"),
            Metric::Connections | Metric::Authenticated | Metric::Services | Metric::Users => {
                chart("Connections and users", "")
            }
            Metric::Channels | Metric::Sessions => chart("Channels and sessions", ""),
            Metric::Threads => chart("Connection threads", ""),
            Metric::QueuedMessages => chart("Messages queued for clients", ""),
            Metric::ResidentKib => chart("Resident memory", "KiB"),
            Metric::RedisUp => chart("Redis link up", ""),
        }
    }

    /// What it counts, in a line.
    fn help(self) -> String {
        let plain = match self {
            Metric::MessagesIn => "Messages received from clients",
            Metric::MessagesOut => {
                "Messages queued to clients, each recipient once (replies and errors too)"
            }
            Metric::Deliveries => {
                "Recipients of publications (those catching up get it after their replay)"
            }
            Metric::Publications(source) => {
                return format!("Publications taken from {}", source.as_str());
            }
            Metric::Errors(code) => return format!("error messages {} sent", code.as_str()),
            Metric::Refusals(reason) => return format!("Refusals: {}", reason.as_str()),
            Metric::Connects => "WebSocket clients admitted",
            Metric::Disconnects => "WebSocket clients gone, however they ended",
            Metric::SlowConsumers => "Clients closed 1013 for not reading fast enough",
            Metric::StaleClients => "Clients terminated after client_timeout of silence",
            Metric::RateLimited => "Messages refused with rate_limited",
            Metric::Recovered => "Subscribes with since that got every missed publication",
            Metric::RecoveryLost => "Subscribes with since answered recovered: false",
            Metric::Requests => "Application requests handed to the program or a service",
            Metric::Busy => "Application requests answered busy",
            Metric::Connections => "WebSocket clients connected",
            Metric::Authenticated => "Connected clients whose token was verified",
            Metric::Services => "Service connections connected",
            Metric::Users => "Users with a connection here",
            Metric::Channels => "Channels with a subscriber here",
            Metric::Sessions => "Sessions with a subscriber here",
            Metric::Threads => "Connection threads (readers and handshakes)",
            Metric::QueuedMessages => "Messages waiting for clients",
            Metric::ResidentKib => "The process's resident memory",
            Metric::RedisUp => "1 while both connections to Redis are up (0: down or no Redis)",
            Metric::Latency(Percentile::Max) => {
                "The longest time from arrival to the first write, of the timed publications"
            }
            Metric::Latency(p) => {
                return format!(
                    "The {} time from a publication's arrival at the router to its first write to a socket",
                    p.as_str()
                );
            }
            Metric::LatencySamples => "Publications timed from arrival to first write",
        };
        plain.to_owned()
    }
}

/// A metric with its name.
#[derive(Debug)]
pub(crate) struct Named {
    pub metric: Metric,
    pub name: String,
}

/// Every series, in the order of the rows of the time series.
static METRICS: LazyLock<Vec<Named>> = LazyLock::new(|| {
    use Metric::*;
    let mut list = vec![MessagesIn, MessagesOut, Deliveries];
    list.extend(Source::ALL.iter().map(|s| Publications(*s)));
    list.extend([
        Connects,
        Disconnects,
        SlowConsumers,
        StaleClients,
        RateLimited,
        Recovered,
        RecoveryLost,
        Requests,
        Busy,
    ]);
    list.extend(ErrorCode::ALL.iter().map(|c| Errors(*c)));
    list.extend(Refusal::ALL.iter().map(|r| Refusals(*r)));
    list.extend(Percentile::ALL.iter().map(|p| Latency(*p)));
    list.extend([
        LatencySamples,
        Connections,
        Authenticated,
        Services,
        Users,
        Channels,
        Sessions,
        Threads,
        QueuedMessages,
        ResidentKib,
        RedisUp,
    ]);
    list.into_iter()
        .map(|metric| Named {
            metric,
            name: metric.name(),
        })
        .collect()
});

/// Every series, in the order of the time series' rows.
pub(crate) fn metrics() -> &'static [Named] {
    &METRICS
}

/// The place of the metric called `name` in [`metrics`].
pub(crate) fn metric_named(name: &str) -> Option<usize> {
    metrics().iter().position(|m| m.name == name)
}

/// Every metric's name, comma-separated (for an error naming them).
pub(crate) fn metric_names() -> String {
    metrics()
        .iter()
        .map(|m| m.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What threads other than the router measure; shared by every thread of
/// a hub, written with relaxed atomics, never locked.
#[derive(Debug, Default)]
pub(crate) struct Meters {
    refusals: [AtomicU64; Refusal::COUNT],
    /// The delivery latency histogram and its probe.
    pub(crate) latency: Latency,
    resident_bytes: AtomicU64,
}

impl Meters {
    /// Counts one refusal.
    pub(crate) fn refused(&self, why: Refusal) {
        self.refusals[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals since start, by [`Refusal`].
    pub(crate) fn refusals(&self) -> [u64; Refusal::COUNT] {
        std::array::from_fn(|i| self.refusals[i].load(Ordering::Relaxed))
    }

    /// The timer thread, once a second: reads the process's resident
    /// memory (`/proc/self/statm`; nothing where there is no `/proc`).
    pub(crate) fn read_resident(&self) {
        if let Some(bytes) = resident_bytes() {
            self.resident_bytes.store(bytes, Ordering::Relaxed);
        }
    }

    /// The process's resident memory when last read, in bytes.
    pub(crate) fn resident(&self) -> u64 {
        self.resident_bytes.load(Ordering::Relaxed)
    }
}

/// The process's resident memory: `/proc/self/statm`'s pages.
fn resident_bytes() -> Option<u64> {
    static PAGE: LazyLock<u64> = LazyLock::new(page_size);
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * *PAGE)
}

/// The page size, from the process's auxiliary vector (`AT_PAGESZ`), read
/// once; 4 KiB where it cannot be read.
fn page_size() -> u64 {
    const AT_PAGESZ: u64 = 6;
    const WORD: usize = std::mem::size_of::<usize>();
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return 4096;
    };
    auxv.chunks_exact(2 * WORD)
        .find_map(|pair| {
            let word = |bytes: &[u8]| {
                let mut raw = [0u8; 8];
                raw[..WORD].copy_from_slice(bytes);
                u64::from_ne_bytes(raw)
            };
            (word(&pair[..WORD]) == AT_PAGESZ).then(|| word(&pair[WORD..]))
        })
        .filter(|size| *size > 0)
        .unwrap_or(4096)
}

/// What the router hands over each second: its running totals and its
/// levels now.
#[derive(Debug, Default, Clone)]
pub(crate) struct Reading {
    pub messages_received: u64,
    pub messages_sent: u64,
    pub total_connections: u64,
    pub slow_consumers: u64,
    pub stale_clients: u64,
    pub rate_limited: u64,
    pub recoveries: u64,
    pub recoveries_lost: u64,
    pub requests: u64,
    pub busy: u64,
    pub connections: usize,
    pub authenticated: usize,
    pub services: usize,
    pub users: usize,
    pub channels: usize,
    pub sessions: usize,
    pub threads: usize,
    pub queued_messages: usize,
    /// `None` without Redis.
    pub redis_up: Option<bool>,
}

/// The running totals `/metrics` shows beside the [`Stats`](crate::Stats)
/// numbers, as of one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Totals {
    pub publications: [u64; Source::COUNT],
    pub deliveries: u64,
    pub disconnects: u64,
    pub errors: [u64; ERROR_CODES],
    pub refusals: [u64; Refusal::COUNT],
    pub latency: Counts,
    pub latency_sum_us: u64,
    pub resident_bytes: u64,
}

/// One metric's time series, as `/api/stats/history` answers it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct History {
    pub metric: &'static str,
    pub kind: &'static str,
    pub help: String,
    pub chart: Chart,
    /// One value a second, oldest first.
    pub seconds: Span,
    /// One value a minute, oldest first (a rate: the minute's sum).
    pub minutes: Span,
}

/// Evenly spaced values, the last taken at `end`.
#[derive(Debug, Serialize)]
pub(crate) struct Span {
    /// Seconds between two values.
    pub step: u64,
    /// When the last value was taken, in ms since 1970 (`None`: no value yet).
    pub end: Option<u64>,
    pub values: Vec<u32>,
}

/// The router's analytics: its own tallies, the time series and the
/// sampling of publications to time.
#[derive(Debug)]
pub(crate) struct Analytics {
    publications: [u64; Source::COUNT],
    deliveries: u64,
    errors: [u64; ERROR_CODES],
    /// Each rate metric's running total at the last second, by metric.
    previous: Vec<u64>,
    /// The latency histogram at the last second.
    latency_before: Counts,
    /// This minute's latency histogram so far, and its longest delay.
    minute_latency: Counts,
    minute_max: u64,
    /// This minute's value of each metric so far, and its seconds.
    minute: Vec<u32>,
    minute_seconds: u32,
    seconds: Ring,
    minutes: Ring,
    /// The row of the last second.
    last_second: Vec<u32>,
    /// The row of the last minute, if it ended with the last second.
    last_minute: Option<Vec<u32>>,
    /// Publications seen, and those timed this second.
    published: u64,
    timed: u32,
    /// The frame armed in the probe and when: kept, so that its address is
    /// no other frame's until it is written or given up.
    probe: Option<(Bytes, Instant)>,
    /// The arrival of the publication being delivered, if it is timed.
    stamp: Option<Instant>,
    /// Whether a dashboard watches: only then are channels counted.
    watching: bool,
    /// Publications per channel this second.
    hot: HashMap<Box<str>, u32>,
    /// The busiest channels of the last second.
    hottest: Vec<(Box<str>, u32)>,
}

impl Default for Analytics {
    fn default() -> Analytics {
        let count = metrics().len();
        Analytics {
            publications: [0; Source::COUNT],
            deliveries: 0,
            errors: [0; ERROR_CODES],
            previous: vec![0; count],
            latency_before: [0; BUCKETS],
            minute_latency: [0; BUCKETS],
            minute_max: 0,
            minute: vec![0; count],
            minute_seconds: 0,
            seconds: Ring::new(count, SECONDS),
            minutes: Ring::new(count, MINUTES),
            last_second: Vec::with_capacity(count),
            last_minute: None,
            published: 0,
            timed: 0,
            probe: None,
            stamp: None,
            watching: false,
            hot: HashMap::new(),
            hottest: Vec::new(),
        }
    }
}

impl Analytics {
    /// A publication taken from `source`.
    pub(crate) fn published(&mut self, source: Source) {
        self.publications[source as usize] += 1;
    }

    /// A publication delivered (or held for a batch) to `recipients`.
    pub(crate) fn delivered(&mut self, recipients: usize) {
        self.deliveries += recipients as u64;
    }

    /// An `error` message sent to a client.
    pub(crate) fn error(&mut self, code: ErrorCode) {
        self.errors[code as usize] += 1;
    }

    /// A publication is about to be delivered: one in [`SAMPLE_EVERY`]
    /// (and the first few of each second) is timed from now, if the probe
    /// is free. The fan-out takes the stamp ([`Analytics::take_stamp`]).
    pub(crate) fn stamp_publication(&mut self, latency: &Latency) {
        self.published += 1;
        if !self.published.is_multiple_of(SAMPLE_EVERY) && self.timed >= SAMPLES_PER_SECOND {
            return;
        }
        let now = Instant::now();
        let busy = latency.is_armed()
            && self
                .probe
                .as_ref()
                .is_some_and(|(_, at)| now.saturating_duration_since(*at) < PROBE_STALE);
        if !busy {
            self.timed += 1;
            self.stamp = Some(now);
        }
    }

    /// The arrival of the publication being delivered, if it is timed
    /// (taken: only its first frame is armed).
    pub(crate) fn take_stamp(&mut self) -> Option<Instant> {
        self.stamp.take()
    }

    /// Drops a stamp the delivery did not take (it reached nobody).
    pub(crate) fn clear_stamp(&mut self) {
        self.stamp = None;
    }

    /// `frame` is armed in the probe: it is kept until the next.
    pub(crate) fn armed(&mut self, frame: Bytes, at: Instant) {
        self.probe = Some((frame, at));
    }

    /// Whether a dashboard watches (channels are counted only then).
    pub(crate) fn watch(&mut self, watching: bool) {
        self.watching = watching;
        if !watching {
            self.hot.clear();
            self.hottest.clear();
        }
    }

    /// A publication to channel `name` (counted while a dashboard watches).
    pub(crate) fn channel_published(&mut self, name: &str) {
        if !self.watching {
            return;
        }
        if let Some(count) = self.hot.get_mut(name) {
            *count += 1;
        } else if self.hot.len() < HOT_CHANNELS {
            self.hot.insert(name.into(), 1);
        }
    }

    /// The busiest channels of the last second, busiest first.
    pub(crate) fn hottest(&self) -> &[(Box<str>, u32)] {
        &self.hottest
    }

    /// The running totals `/metrics` shows.
    pub(crate) fn totals(&self, meters: &Meters, disconnects: u64) -> Totals {
        Totals {
            publications: self.publications,
            deliveries: self.deliveries,
            disconnects,
            errors: self.errors,
            refusals: meters.refusals(),
            latency: meters.latency.counts(),
            latency_sum_us: meters.latency.sum_us(),
            resident_bytes: meters.resident(),
        }
    }

    /// A metric's running total (a rate's) or level now (the others').
    fn value(
        &self,
        metric: Metric,
        reading: &Reading,
        refusals: &[u64; Refusal::COUNT],
        counts: &Counts,
        resident_kib: u64,
    ) -> u64 {
        let level = |n: usize| n as u64;
        match metric {
            Metric::MessagesIn => reading.messages_received,
            Metric::MessagesOut => reading.messages_sent,
            Metric::Deliveries => self.deliveries,
            Metric::Publications(source) => self.publications[source as usize],
            Metric::Errors(code) => self.errors[code as usize],
            Metric::Refusals(reason) => refusals[reason as usize],
            Metric::Connects => reading.total_connections,
            Metric::Disconnects => reading
                .total_connections
                .saturating_sub(reading.connections as u64),
            Metric::SlowConsumers => reading.slow_consumers,
            Metric::StaleClients => reading.stale_clients,
            Metric::RateLimited => reading.rate_limited,
            Metric::Recovered => reading.recoveries,
            Metric::RecoveryLost => reading.recoveries_lost,
            Metric::Requests => reading.requests,
            Metric::Busy => reading.busy,
            Metric::Connections => level(reading.connections),
            Metric::Authenticated => level(reading.authenticated),
            Metric::Services => level(reading.services),
            Metric::Users => level(reading.users),
            Metric::Channels => level(reading.channels),
            Metric::Sessions => level(reading.sessions),
            Metric::Threads => level(reading.threads),
            Metric::QueuedMessages => level(reading.queued_messages),
            Metric::ResidentKib => resident_kib,
            Metric::RedisUp => u64::from(reading.redis_up == Some(true)),
            // This second's, from its histogram: see `second`.
            Metric::Latency(_) => 0,
            Metric::LatencySamples => counts.iter().sum(),
        }
    }

    /// Once a second (the router's tick): every metric's value for the
    /// second that ended `at` goes into the series, and, each 60th
    /// second, every metric's value for the minute.
    pub(crate) fn second(&mut self, reading: &Reading, meters: &Meters, at: SystemTime) {
        let counts = meters.latency.counts();
        let mut second_latency = [0; BUCKETS];
        for (i, count) in counts.iter().enumerate() {
            second_latency[i] = count.saturating_sub(self.latency_before[i]);
            self.minute_latency[i] += second_latency[i];
        }
        self.latency_before = counts;
        let longest = meters.latency.take_max();
        self.minute_max = self.minute_max.max(longest);
        let refusals = meters.refusals();
        let resident_kib = meters.resident() / 1024;
        let mut row = std::mem::take(&mut self.last_second);
        row.clear();
        for (i, named) in metrics().iter().enumerate() {
            let value = match (named.metric.kind(), named.metric) {
                (_, Metric::Latency(p)) => {
                    percentile(&second_latency, p.fraction(), longest.max(1)).min(longest)
                }
                (Kind::Rate, metric) => {
                    let total = self.value(metric, reading, &refusals, &counts, resident_kib);
                    let delta = total.saturating_sub(self.previous[i]);
                    self.previous[i] = total;
                    delta
                }
                (_, metric) => self.value(metric, reading, &refusals, &counts, resident_kib),
            };
            row.push(u32::try_from(value).unwrap_or(u32::MAX));
        }
        self.seconds.push(&row, at);
        self.fold_minute(&row, at);
        self.last_second = row;
        self.timed = 0;
        // The busiest channels of this second.
        let mut hot: Vec<(Box<str>, u32)> = self.hot.drain().collect();
        hot.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        hot.truncate(10);
        self.hottest = hot;
    }

    /// Adds a second's row to this minute's; at its 60th second the
    /// minute goes into the series.
    fn fold_minute(&mut self, row: &[u32], at: SystemTime) {
        let first = self.minute_seconds == 0;
        for ((acc, value), named) in self.minute.iter_mut().zip(row).zip(metrics()) {
            *acc = match named.metric.kind() {
                _ if first => *value,
                Kind::Rate => acc.saturating_add(*value),
                Kind::Gauge => (*acc).max(*value),
                Kind::Floor => (*acc).min(*value),
                Kind::Latency => 0,
            };
        }
        self.minute_seconds += 1;
        if self.minute_seconds < 60 {
            self.last_minute = None;
            return;
        }
        let longest = self.minute_max;
        for (acc, named) in self.minute.iter_mut().zip(metrics()) {
            if let (Kind::Latency, Metric::Latency(p)) = (named.metric.kind(), named.metric) {
                let value = percentile(&self.minute_latency, p.fraction(), longest.max(1));
                *acc = u32::try_from(value.min(longest)).unwrap_or(u32::MAX);
            }
        }
        self.minutes.push(&self.minute, at);
        self.last_minute = Some(self.minute.clone());
        self.minute_seconds = 0;
        self.minute_latency = [0; BUCKETS];
        self.minute_max = 0;
    }

    /// The last second's value of every metric, in [`metrics`]' order.
    pub(crate) fn last_second(&self) -> &[u32] {
        &self.last_second
    }

    /// The last minute's values, if it ended with the last second.
    pub(crate) fn last_minute(&self) -> Option<&[u32]> {
        self.last_minute.as_deref()
    }

    /// The time series of the metric at `index` of [`metrics`].
    pub(crate) fn history(&self, index: usize) -> Option<History> {
        let named = metrics().get(index)?;
        let span = |ring: &Ring, step: u64| Span {
            step,
            end: ring.last().map(millis),
            values: ring.series(index),
        };
        Some(History {
            metric: &named.name,
            kind: named.metric.kind().as_str(),
            help: named.metric.help(),
            chart: named.metric.chart(),
            seconds: span(&self.seconds, 1),
            minutes: span(&self.minutes, 60),
        })
    }

    /// Every metric's time series, in [`metrics`]' order.
    pub(crate) fn histories(&self) -> Vec<History> {
        (0..metrics().len())
            .filter_map(|i| self.history(i))
            .collect()
    }

    /// What the time series take in memory.
    pub(crate) fn series_bytes(&self) -> usize {
        self.seconds.bytes() + self.minutes.bytes()
    }
}

/// Milliseconds since 1970.
pub(crate) fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One labelled counter family of `/metrics`.
fn family(out: &mut String, name: &str, help: &str, label: &str, values: &[(&str, u64)]) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n");
    for (value_of, value) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{value_of}\"}} {value}");
    }
}

/// The series of `/metrics` that come from here: publications by source,
/// deliveries, disconnects, errors by code, refusals by reason, the
/// delivery latency histogram and the resident memory.
pub(crate) fn prometheus(totals: &Totals, out: &mut String) {
    let by_source: Vec<(&str, u64)> = Source::ALL
        .iter()
        .map(|s| (s.as_str(), totals.publications[*s as usize]))
        .collect();
    family(
        out,
        "wshub_publications_total",
        "Publications taken, by where they came from.",
        "source",
        &by_source,
    );
    let _ = write!(
        out,
        "# HELP wshub_deliveries_total Recipients of publications, each once.\n\
         # TYPE wshub_deliveries_total counter\nwshub_deliveries_total {}\n\
         # HELP wshub_disconnects_total WebSocket clients gone since start, however they ended.\n\
         # TYPE wshub_disconnects_total counter\nwshub_disconnects_total {}\n",
        totals.deliveries, totals.disconnects
    );
    let by_code: Vec<(&str, u64)> = ErrorCode::ALL
        .iter()
        .map(|c| (c.as_str(), totals.errors[*c as usize]))
        .collect();
    family(
        out,
        "wshub_errors_total",
        "error messages sent to clients, by code.",
        "code",
        &by_code,
    );
    let by_reason: Vec<(&str, u64)> = Refusal::ALL
        .iter()
        .map(|r| (r.as_str(), totals.refusals[*r as usize]))
        .collect();
    family(
        out,
        "wshub_refusals_total",
        "Connections and admin requests refused, by reason.",
        "reason",
        &by_reason,
    );
    let name = "wshub_delivery_latency_seconds";
    let _ = write!(
        out,
        "# HELP {name} From a publication's arrival at the router to its first write to a socket, on a sample.\n\
         # TYPE {name} histogram\n"
    );
    let mut cumulative = 0;
    for (i, count) in totals.latency.iter().enumerate() {
        cumulative += count;
        let le = match BOUNDS_US.get(i) {
            Some(us) => format!("{}", *us as f64 / 1e6),
            None => "+Inf".to_owned(),
        };
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    let _ = write!(
        out,
        "{name}_sum {}\n{name}_count {cumulative}\n\
         # HELP wshub_resident_memory_bytes The process's resident memory.\n\
         # TYPE wshub_resident_memory_bytes gauge\nwshub_resident_memory_bytes {}\n",
        totals.latency_sum_us as f64 / 1e6,
        totals.resident_bytes
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_metric_has_one_name() {
        let names: HashSet<&str> = metrics().iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names.len(), metrics().len());
        assert_eq!(
            metric_named("messagesOut").map(|i| metrics()[i].metric),
            Some(Metric::MessagesOut)
        );
        assert_eq!(
            metric_named("errors.rate_limited").map(|i| metrics()[i].metric),
            Some(Metric::Errors(ErrorCode::RateLimited))
        );
        assert_eq!(metric_named("nope"), None);
        assert!(metric_names().contains("latency.p99"));
    }

    #[test]
    fn the_series_take_a_few_kib_per_metric_fixed_at_start() {
        let analytics = Analytics::default();
        let per_metric = analytics.series_bytes() / metrics().len();
        assert_eq!(per_metric, (SECONDS + MINUTES) * 4);
        assert!(
            analytics.series_bytes() < 100 * 1024,
            "{}",
            analytics.series_bytes()
        );
    }

    fn reading(sent: u64, connections: usize) -> Reading {
        Reading {
            messages_sent: sent,
            total_connections: connections as u64 + 1,
            connections,
            redis_up: Some(connections > 0),
            ..Reading::default()
        }
    }

    #[test]
    fn rates_are_per_second_deltas_and_minutes_fold_their_seconds() {
        let meters = Meters::default();
        let mut analytics = Analytics::default();
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(1_000 + s);
        let out = metric_named("messagesOut").unwrap();
        let connections = metric_named("connections").unwrap();
        let redis = metric_named("redisUp").unwrap();
        let disconnects = metric_named("disconnects").unwrap();
        analytics.published(Source::Http);
        analytics.second(&reading(10, 3), &meters, at(1));
        assert_eq!(analytics.last_second()[out], 10);
        assert_eq!(analytics.last_second()[connections], 3);
        assert_eq!(analytics.last_second()[disconnects], 1);
        analytics.second(&reading(25, 5), &meters, at(2));
        assert_eq!(analytics.last_second()[out], 15, "a delta, not a total");
        assert_eq!(
            analytics.last_second()[metric_named("publications.http").unwrap()],
            0
        );
        for s in 3..=59 {
            analytics.second(
                &reading(25 + s, if s == 30 { 0 } else { 4 }),
                &meters,
                at(s),
            );
            assert!(analytics.last_minute().is_none());
        }
        analytics.second(&reading(100, 4), &meters, at(60));
        let minute = analytics.last_minute().expect("a minute ended").to_vec();
        assert_eq!(minute[out], 100, "a rate's minute is its sum");
        assert_eq!(minute[connections], 5, "a gauge's minute is its highest");
        assert_eq!(minute[redis], 0, "a floor's minute is its lowest");
        let history = analytics.history(out).unwrap();
        assert_eq!(history.seconds.values.len(), 60);
        assert_eq!(history.minutes.values, vec![100]);
        assert_eq!(history.seconds.end, Some(1_060_000));
        assert_eq!(history.kind, "rate");
    }

    #[test]
    fn latency_figures_come_from_each_seconds_histogram() {
        let meters = Meters::default();
        let mut analytics = Analytics::default();
        for us in [100, 150, 180, 5_000] {
            meters.latency.record(us);
        }
        analytics.second(&Reading::default(), &meters, UNIX_EPOCH);
        let value =
            |analytics: &Analytics, name| analytics.last_second()[metric_named(name).unwrap()];
        assert_eq!(value(&analytics, "latency.samples"), 4);
        assert_eq!(value(&analytics, "latency.max"), 5_000);
        let p50 = value(&analytics, "latency.p50");
        assert!((100..=200).contains(&p50), "{p50}");
        let p99 = value(&analytics, "latency.p99");
        assert!(p99 > 2_000 && p99 <= 5_000, "{p99}");
        analytics.second(&Reading::default(), &meters, UNIX_EPOCH);
        assert_eq!(
            value(&analytics, "latency.samples"),
            0,
            "the next second has none"
        );
        assert_eq!(value(&analytics, "latency.p99"), 0);
    }

    #[test]
    fn a_quiet_hub_times_its_first_publications_and_a_busy_one_one_in_64() {
        let latency = Latency::default();
        let mut analytics = Analytics::default();
        let mut timed = 0;
        for _ in 0..640 {
            analytics.stamp_publication(&latency);
            if analytics.take_stamp().is_some() {
                timed += 1;
            }
        }
        assert_eq!(timed, SAMPLES_PER_SECOND as u64 + 10);
    }

    #[test]
    fn channels_are_counted_only_while_watched_and_ranked_each_second() {
        let meters = Meters::default();
        let mut analytics = Analytics::default();
        analytics.channel_published("quiet");
        analytics.second(&Reading::default(), &meters, UNIX_EPOCH);
        assert!(analytics.hottest().is_empty());
        analytics.watch(true);
        for _ in 0..3 {
            analytics.channel_published("busy");
        }
        analytics.channel_published("quiet");
        analytics.second(&Reading::default(), &meters, UNIX_EPOCH);
        assert_eq!(
            analytics.hottest(),
            &[("busy".into(), 3), ("quiet".into(), 1)]
        );
    }

    #[test]
    fn metrics_text_has_a_series_per_source_code_reason_and_bucket() {
        let meters = Meters::default();
        meters.refused(Refusal::Origin);
        meters.latency.record(15);
        let mut analytics = Analytics::default();
        analytics.error(ErrorCode::Forbidden);
        analytics.published(Source::WebSocket);
        let mut out = String::new();
        prometheus(&analytics.totals(&meters, 2), &mut out);
        for line in [
            "wshub_refusals_total{reason=\"origin\"} 1",
            "wshub_errors_total{code=\"forbidden\"} 1",
            "wshub_publications_total{source=\"websocket\"} 1",
            "wshub_disconnects_total 2",
            "wshub_delivery_latency_seconds_bucket{le=\"0.00001\"} 0",
            "wshub_delivery_latency_seconds_bucket{le=\"0.00002\"} 1",
            "wshub_delivery_latency_seconds_bucket{le=\"+Inf\"} 1",
            "wshub_delivery_latency_seconds_count 1",
        ] {
            assert!(out.contains(&format!("{line}\n")), "{line} in\n{out}");
        }
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with("wshub_errors_total{"))
                .count(),
            ErrorCode::ALL.len()
        );
    }

    #[test]
    fn resident_memory_is_read_from_proc() {
        let meters = Meters::default();
        meters.read_resident();
        if std::path::Path::new("/proc/self/statm").exists() {
            assert!(meters.resident() > 1024 * 1024, "{}", meters.resident());
        }
        assert!(page_size() >= 4096);
    }
}
