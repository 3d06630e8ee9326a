//! Scale-out: hubs that share one Redis serve one set of clients, as if
//! they were one hub (see `docs/operations.md`, "Running several hubs").
//!
//! Every publication goes through Redis once, whichever hub it starts on,
//! and comes back to every hub on the pubsub bus (a client's own messages
//! to its hub's channel only); each hub delivers it to its own clients,
//! encoded once per envelope there. A publication to a stream (a channel, a
//! session, a user) is numbered and kept in the stream's history by one
//! script in Redis, so every hub sees a stream in the same order and a
//! client can resume on any hub. Presence is counted per user in Redis:
//! online once, at the first connection anywhere, offline once, after the
//! last; a hub that dies is taken out when its lease runs out.
//!
//! The router owns the [`Cluster`] and never waits for Redis: it hands
//! requests ([`Out`]) to the `wshub-cluster-out` thread and hears back
//! ([`In`]) on its cluster [`Lane`], from that thread and from
//! `wshub-cluster-in`, the pubsub reader (see [`redis`]). Dropping the
//! [`Cluster`] ends both.

#[cfg(feature = "redis")]
mod redis;
pub(crate) mod wire;

use std::hash::{BuildHasher, RandomState};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError, bounded};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::history::StreamKey;
use crate::protocol::Status;

/// How often a hub renews its lease and tells the others its numbers.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(2);
/// A hub not heard of for this long is taken for dead: its users go
/// offline (if they have no connection on another hub).
pub(crate) const LEASE: Duration = Duration::from_secs(10);
/// Most requests waiting for the cluster-out thread; past it the router
/// refuses publications to their publishers (nothing is numbered on one
/// hub alone while the others may go on in Redis).
const OUT_QUEUE: usize = 64 * 1024;
/// How long a stream's position outlives its last publication in Redis.
const META_TTL: Duration = Duration::from_secs(24 * 3600);

/// The cluster lane: what the cluster threads tell the router, read by the
/// router beside its other lanes (see [`crate::inbox::Lanes`]). Bounded:
/// past [`LANE`] waiting, the pubsub reader waits, and Redis holds the rest.
pub(crate) type Lane = Sender<In>;

/// Most messages waiting on the cluster lane.
pub(crate) const LANE: usize = 16 * 1024;

/// A request for Redis, from the router.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    /// A publication for the hubs on `channel`; `stream` numbers and keeps
    /// it (its history is on). Answered with [`In::Published`] under its
    /// `ticket`, always: published, refused, or its fate unknown. With an
    /// idempotency key (`once`, the digest) Redis publishes it once and
    /// keeps `reached` as the answer to any retry. `taken` is when the
    /// router took it: one that waited longer than the Redis timeout is
    /// refused unsent.
    Publish {
        ticket: u64,
        channel: String,
        stream: Option<String>,
        body: String,
        once: Option<String>,
        reached: usize,
        taken: Instant,
    },
    /// A framed message as it is, for the hubs on `channel`.
    Send { channel: String, body: String },
    /// Where `stream` stands and what it kept after `since` (all it kept,
    /// if its epoch is no longer `epoch`), after claiming a session for its
    /// user (`claim`): answered with [`In::Head`], and, when the answer
    /// has a position, marked on this hub's channel ([`wire::Wire::Mark`])
    /// behind every publication it counts.
    Head {
        ticket: u64,
        stream: String,
        since: Option<u64>,
        epoch: Option<String>,
        claim: Option<(String, String)>,
        history: bool,
    },
    /// Back after a cut-off, with these users: those Redis still counts on
    /// this hub but who left meanwhile are gone (offline, once, if they
    /// have no connection anywhere).
    Rejoin { users: Vec<String> },
    /// A user has a connection on this hub now...
    Join { user: String },
    /// ...or has none any more.
    Leave { user: String },
    /// A status a user set.
    Status { user: String, status: Status },
    /// Streams published to while Redis was away: their history has a
    /// hole, so they get a new epoch, before Redis numbers anything more of
    /// them (until it did, their publications are refused).
    NewEpochs(Vec<String>),
    /// The lease, the framed [`wire::HubBeat`], and the sessions whose
    /// claims this hub keeps alive.
    Heartbeat { beat: String, sessions: Vec<String> },
    /// Every user's status: answered with [`In::Snapshot`].
    Snapshot,
    /// Is the command connection still good? (The pubsub one broke: this
    /// one may have too, unnoticed.) Answered with [`In::State`] once it is.
    Probe,
}

/// Which connection an [`In::State`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Out,
    In,
}

/// What the cluster threads tell the router.
#[derive(Debug)]
pub(crate) enum In {
    /// One of the two connections is up, or down.
    State(Side, bool),
    /// A message from another hub (or this one, back from Redis).
    Message(Box<wire::Framed>),
    /// The answer to an [`Out::Head`]; `None` when Redis could not answer.
    Head {
        ticket: u64,
        reply: Option<HeadReply>,
    },
    /// The answer to an [`Out::Snapshot`].
    Snapshot(Vec<(String, Status)>),
    /// How publications went, by ticket.
    Published(Vec<(u64, Outcome)>),
}

/// What became of an [`Out::Publish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Redis numbered and published it; or, `Some`, had already published
    /// one with its idempotency key, which reached that many.
    Done(Option<usize>),
    /// It never reached Redis (or Redis refused it): nothing was delivered.
    NotSent(String),
    /// It went to Redis, which did not answer: it may have been published.
    Unknown(String),
}

/// Where a stream stands in Redis, and what it kept.
#[derive(Debug, Default)]
pub(crate) struct HeadReply {
    /// `(seq, epoch)`, for a stream that keeps history.
    pub position: Option<(u64, String)>,
    /// What it kept after the `since` asked, oldest first.
    pub entries: Vec<Kept>,
    /// The session is another user's (its owner).
    pub refused: Option<String>,
    /// The `since` the entries follow (lower than asked when the stream's
    /// epoch is not the one known and its numbering began again).
    pub from: Option<u64>,
    /// The seq the epoch began after: the entries up to it are older...
    pub base: u64,
    /// ...of this epoch, if the stream had one before (a new epoch set
    /// over it, not a stream Redis lost).
    pub prev: Option<String>,
}

/// A publication a stream kept in Redis.
#[derive(Debug)]
pub(crate) struct Kept {
    pub seq: u64,
    /// When it was kept, in ms since 1970 (for `--history-ttl`).
    pub ts: u64,
    pub publication: wire::Publication,
}

/// What the cluster threads need to know, read-only.
#[derive(Debug)]
pub(crate) struct Settings {
    pub hub: Arc<str>,
    pub prefix: String,
    /// The Redis URL without its password, for logs.
    pub shown_url: String,
    pub history_size: usize,
    pub history_ttl_ms: u64,
    pub meta_ttl_ms: u64,
    pub claim_ttl_ms: u64,
    pub lease_ms: u64,
    /// How long Redis may take to answer (`--redis-timeout`).
    pub deadline: Duration,
    /// A Redis that does not answer at start stops the start
    /// (`--redis-required`).
    pub required: bool,
}

/// The router's side of the cluster: where requests go, and the stop of
/// the pubsub reader.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub hub: Arc<str>,
    pub prefix: String,
    out: Sender<Out>,
    stop: Arc<AtomicBool>,
}

impl Cluster {
    /// Hands a request to the cluster-out thread; `false` if it cannot
    /// take it now (its queue is full).
    pub(crate) fn send(&self, out: Out) -> bool {
        match self.out.try_send(out) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

impl Cluster {
    /// A cluster link with no threads behind it, for the router's unit
    /// tests: the test reads what the router asks Redis from the receiver
    /// (whose capacity is the queue's) and answers on the cluster lane.
    #[cfg(test)]
    pub(crate) fn detached(
        hub: &str,
        prefix: &str,
        queue: usize,
    ) -> (Cluster, crossbeam_channel::Receiver<Out>) {
        let (out, requests) = bounded(queue);
        let cluster = Cluster {
            hub: hub.into(),
            prefix: prefix.to_owned(),
            out,
            stop: Arc::new(AtomicBool::new(false)),
        };
        (cluster, requests)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// A stream's name in Redis keys: `c:<channel>`, `s:<session>`, `u:<user>`.
pub(crate) fn stream_name(stream: &StreamKey) -> String {
    match stream {
        StreamKey::Channel(name) => format!("c:{name}"),
        StreamKey::Session(id) => format!("s:{id}"),
        StreamKey::User(id) => format!("u:{id}"),
    }
}

/// A new hub id: short, and new in every process.
pub(crate) fn new_hub_id() -> Arc<str> {
    let hash = RandomState::new().hash_one(std::process::id());
    format!("{:08x}", hash as u32).into()
}

/// A fresh epoch for a stream Redis has none for.
pub(crate) fn fresh_epoch() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hash = RandomState::new().hash_one((std::process::id(), n));
    format!("{:012x}", hash & 0xffff_ffff_ffff)
}

/// The URL without a password, for logs.
fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Joins the hubs of `config.redis`: starts the two cluster threads.
///
/// # Errors
///
/// [`Error::Config`] for a URL the Redis client cannot read (or without the
/// `redis` feature), [`Error::Io`] if a thread cannot start. Redis being
/// away is no error: the hub serves its own clients until it is back.
pub(crate) fn start(
    config: &Config,
    url: &str,
    hub: Arc<str>,
    lane: Lane,
) -> Result<(Cluster, Vec<JoinHandle<()>>)> {
    let settings = Arc::new(Settings {
        hub: Arc::clone(&hub),
        prefix: config.redis_prefix.clone(),
        shown_url: shown(url),
        history_size: config.history_size,
        history_ttl_ms: millis(config.history_ttl),
        meta_ttl_ms: millis(META_TTL.max(config.history_ttl)),
        claim_ttl_ms: millis(config.session_retention),
        lease_ms: millis(LEASE),
        deadline: config.redis_timeout,
        required: config.redis_required,
    });
    let (out, requests) = bounded(OUT_QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    let threads = spawn(
        url,
        config.redis_ca.as_deref(),
        &settings,
        requests,
        lane,
        &stop,
    )?;
    Ok((
        Cluster {
            hub,
            prefix: config.redis_prefix.clone(),
            out,
            stop,
        },
        threads,
    ))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(feature = "redis")]
fn spawn(
    url: &str,
    ca: Option<&Path>,
    settings: &Arc<Settings>,
    requests: crossbeam_channel::Receiver<Out>,
    lane: Lane,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<()>>> {
    let client = client(url, ca)?;
    // Said once at start, plainly: a hub that cannot reach its Redis serves
    // a world split from the others until it can.
    match redis::probe(&client, settings.deadline) {
        Ok(()) => log::info!("Redis at {} answers", settings.shown_url),
        Err(err) if settings.required => {
            return Err(Error::Config {
                field: "redis_required",
                reason: format!(
                    "Redis at {} does not answer ({err}), and --redis-required is set",
                    settings.shown_url
                ),
            });
        }
        Err(err) => log::warn!(
            "Redis at {} does not answer ({err}): until it does, this hub serves only its own \
             clients and GET /ready answers 503 (--redis-required refuses to start instead)",
            settings.shown_url
        ),
    }
    let out = {
        let (client, settings, lane) = (client.clone(), Arc::clone(settings), lane.clone());
        std::thread::Builder::new()
            .name("wshub-cluster-out".into())
            .spawn(move || redis::run_out(client, settings, requests, lane))?
    };
    let reader = {
        let (settings, stop) = (Arc::clone(settings), Arc::clone(stop));
        std::thread::Builder::new()
            .name("wshub-cluster-in".into())
            .spawn(move || redis::run_in(client, settings, lane, stop))?
    };
    Ok(vec![out, reader])
}

/// The Redis client of `url`: over TLS for `rediss://`, trusting the CAs
/// of `ca` alone when it is given (the system's otherwise).
#[cfg(feature = "redis")]
fn client(url: &str, ca: Option<&Path>) -> Result<::redis::Client> {
    let not_a_url = |err: ::redis::RedisError| Error::Config {
        field: "redis",
        reason: format!("not a Redis URL ({err})"),
    };
    #[cfg(feature = "redis-tls")]
    if let Some(ca) = ca {
        let root_cert = crate::config::read_redis_ca(ca).map_err(|reason| Error::Config {
            field: "redis_ca",
            reason,
        })?;
        let certificates = ::redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        };
        return ::redis::Client::build_with_tls(url, certificates).map_err(not_a_url);
    }
    #[cfg(not(feature = "redis-tls"))]
    if ca.is_some() {
        return Err(Error::Config {
            field: "redis_ca",
            reason: "this build has no TLS for Redis (the `redis-tls` feature)".to_owned(),
        });
    }
    ::redis::Client::open(url).map_err(not_a_url)
}

#[cfg(not(feature = "redis"))]
fn spawn(
    _: &str,
    _: Option<&Path>,
    _: &Arc<Settings>,
    _: crossbeam_channel::Receiver<Out>,
    _: Lane,
    _: &Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<()>>> {
    Err(Error::Config {
        field: "redis",
        reason: "this build has no Redis support (the `redis` feature)".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_never_show_a_redis_password() {
        assert_eq!(
            shown("redis://:s3cret@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(shown("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn hub_ids_and_epochs_differ() {
        assert_ne!(fresh_epoch(), fresh_epoch());
        assert_eq!(new_hub_id().len(), 8);
    }
}
