//! Streams and their history: every channel, session and user target is a
//! stream whose publications are numbered (`seq`, from 1) within an `epoch`,
//! and the recent ones are kept so that a client that was away can catch up.
//!
//! The router owns the store and is the only one to call it, on the router
//! thread; a store has no thread of its own and ends with the router.
//! [`Store`] is the one interface: [`memory::Memory`] keeps history in this
//! process (an epoch then lives as long as the process). The router's side
//! of streams (numbering what it delivers, answering a `subscribe` with its
//! position, replaying what a client missed) is in `router/replay.rs`.
//!
//! History shared by several hubs lives in Redis, and the router must never
//! wait on the network, so it is not behind this synchronous interface: with
//! `--redis` the router asks Redis through the cluster threads and hears the
//! answer later (see [`crate::cluster`] and `router/cluster.rs`), with the
//! same `seq`, `epoch` and recovery rules. This store then numbers only what
//! the hub delivers alone, while Redis is away.

pub(crate) mod memory;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::value::RawValue;

use crate::auth::Pattern;
use crate::protocol::{Origin, Topic, USER_PREFIX};
use crate::publish::Target;

/// A stream: what a publication is numbered within. Its name is shared:
/// the history keeps a stream's key in several places (its table, its
/// oldest entry's index, its place among the forgotten), each a reference
/// to one copy of the name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum StreamKey {
    Channel(Arc<str>),
    Session(Arc<str>),
    /// A user's own stream: every publication targeted at the user.
    User(Arc<str>),
}

impl StreamKey {
    /// The stream of a target, if it is one (a broadcast, a client or a
    /// filter is not).
    pub(crate) fn of(target: &Target) -> Option<StreamKey> {
        Some(match target {
            Target::Channel(name) => match name.strip_prefix(USER_PREFIX) {
                Some(user) => StreamKey::User(user.into()),
                None => StreamKey::Channel(name.as_str().into()),
            },
            Target::Session(id) => StreamKey::Session(id.as_str().into()),
            Target::User(id) => StreamKey::User(id.as_str().into()),
            _ => return None,
        })
    }

    /// The stream a client subscribes to: a channel `user:<id>` is that
    /// user's stream.
    pub(crate) fn of_topic(topic: &Topic) -> StreamKey {
        match topic {
            Topic::Channel(name) => match name.strip_prefix(USER_PREFIX) {
                Some(user) => StreamKey::User(user.into()),
                None => StreamKey::Channel(name.as_str().into()),
            },
            Topic::Session(id) => StreamKey::Session(id.as_str().into()),
        }
    }

    /// The target whose publications this stream numbers.
    pub(crate) fn target(&self) -> Target {
        match self {
            StreamKey::Channel(name) => Target::channel(&**name),
            StreamKey::Session(id) => Target::session(&**id),
            StreamKey::User(id) => Target::user(&**id),
        }
    }

    /// How deliveries on the stream name it: `channel`, `sessionId`, or the
    /// channel `user:<id>`.
    pub(crate) fn topic(&self) -> Topic {
        match self {
            StreamKey::Channel(name) => Topic::Channel(name.to_string()),
            StreamKey::Session(id) => Topic::Session(id.to_string()),
            StreamKey::User(id) => Topic::Channel(format!("{USER_PREFIX}{id}")),
        }
    }

    /// The name `--history-off` patterns match: the channel's name,
    /// `session:<id>` or `user:<id>`.
    fn matches(&self, pattern: &Pattern) -> bool {
        match self {
            StreamKey::Channel(name) => pattern.matches(name),
            StreamKey::Session(id) => pattern.matches(&format!("session:{id}")),
            StreamKey::User(id) => pattern.matches(&format!("{USER_PREFIX}{id}")),
        }
    }

    /// Bytes the key itself takes, for the history budget.
    fn size(&self) -> usize {
        match self {
            StreamKey::Channel(s) | StreamKey::Session(s) | StreamKey::User(s) => s.len(),
        }
    }
}

/// One publication kept in a stream's history: what it takes to deliver it
/// again, in any envelope, as it was delivered live.
#[derive(Debug)]
pub(crate) struct Entry {
    pub seq: u64,
    pub kind: Box<str>,
    pub data: Option<Box<RawValue>>,
    pub from: Option<Origin>,
    /// When it was published: its `timestamp`, live and replayed.
    pub time: SystemTime,
    /// When it was appended, for `--history-ttl`.
    at: Instant,
    /// Its place among every entry of every stream, oldest first.
    serial: u64,
}

/// What one allocation costs besides its bytes: the allocator's header
/// and rounding (glibc's: 8 to 16 bytes each).
const ALLOCATION: usize = 16;
/// Bookkeeping bytes of an entry besides its contents: the entry with its
/// `Arc`'s counts, the stream's pointer to it, and the allocations of the
/// entry, its type, its data and its origin.
const ENTRY_OVERHEAD: usize =
    size_of::<Entry>() + 2 * size_of::<usize>() + size_of::<usize>() + 4 * ALLOCATION;
/// Bookkeeping bytes of a stream besides its key's and epoch's bytes: its
/// slot in the table (twice its size: a table is at most half empty after
/// it grows), its place in the index of oldest entries and in the list of
/// emptied streams, and its name's and epoch's allocations with their
/// counts.
const STREAM_OVERHEAD: usize = 2 * (size_of::<StreamKey>() + memory::STREAM_SIZE)
    + 2 * size_of::<StreamKey>()
    + size_of::<u64>()
    + 2 * (2 * size_of::<usize>() + ALLOCATION);
/// Bookkeeping bytes of a forgotten stream's remembered position, besides
/// its key's and epoch's bytes: its slot in the table (twice its size), its
/// place in the order of burial (twice), and its name's and epoch's
/// allocations with their counts.
const TOMBSTONE_OVERHEAD: usize = 2 * (size_of::<StreamKey>() + memory::TOMBSTONE_SIZE)
    + 2 * (size_of::<u64>() + size_of::<StreamKey>())
    + 2 * (2 * size_of::<usize>() + ALLOCATION);

impl Entry {
    /// A publication numbered elsewhere (by Redis), to deliver or replay.
    pub(crate) fn new(
        seq: u64,
        kind: &str,
        data: Option<&RawValue>,
        from: Option<&Origin>,
        time: SystemTime,
    ) -> Entry {
        Entry {
            seq,
            kind: kind.into(),
            data: data.map(RawValue::to_owned),
            from: from.cloned(),
            time,
            at: Instant::now(),
            serial: 0,
        }
    }

    /// Bytes it takes, for the history budget (and, held for a client, for
    /// its queue's).
    pub(crate) fn size(&self) -> usize {
        ENTRY_OVERHEAD
            + self.kind.len()
            + self.data.as_ref().map_or(0, |d| d.get().len())
            + self.from.as_ref().map_or(0, |f| {
                f.client_id.len() + f.user_id.as_ref().map_or(0, |u| u.len())
            })
    }
}

/// What a publication appended to a stream became.
#[derive(Debug, Clone)]
pub(crate) struct Appended {
    pub entry: Arc<Entry>,
    pub epoch: Arc<str>,
}

/// Where a stream stands: its latest `seq` (0 before any publication) and
/// its epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub seq: u64,
    pub epoch: Arc<str>,
}

/// What a client that saw up to some position can get back.
#[derive(Debug)]
pub(crate) enum Recovery {
    /// Every publication after that position, in order (maybe none).
    Recovered(Vec<Arc<Entry>>),
    /// Some are gone (older than the history, or another epoch): the client
    /// missed data and must be told.
    Lost,
}

/// How much history is kept (see `docs/protocol.md`, Recovery).
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Most publications kept per stream.
    pub size: usize,
    /// How long a publication is kept.
    pub ttl: Duration,
    /// Most bytes of history, every stream together.
    pub bytes: usize,
    /// Streams that keep none.
    pub off: Vec<Pattern>,
}

impl Limits {
    /// Whether `stream` keeps history (and so numbers its publications).
    pub(crate) fn keeps(&self, stream: &StreamKey) -> bool {
        self.size > 0
            && !self.ttl.is_zero()
            && self.bytes > 0
            && !self.off.iter().any(|p| stream.matches(p))
    }
}

/// What the history holds, for stats and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub streams: usize,
    pub entries: usize,
    pub bytes: usize,
}

/// A history store: numbers each stream's publications and keeps the
/// recent ones. Called by the router only.
pub(crate) trait Store: Send {
    /// Numbers a publication and keeps it; `None` if `stream` keeps no
    /// history (its deliveries then carry no position).
    fn append(
        &mut self,
        stream: &StreamKey,
        kind: &str,
        data: Option<&RawValue>,
        from: Option<&Origin>,
        time: SystemTime,
    ) -> Option<Appended>;

    /// Where `stream` stands, opening it (with a new epoch) if it is not
    /// known, so that the position a subscriber starts from stays valid;
    /// `None` if it keeps no history.
    fn head(&mut self, stream: &StreamKey) -> Option<Head>;

    /// The first `most` publications of `stream` after `seq` of `epoch`
    /// (fewer when there are fewer), or [`Recovery::Lost`] if any
    /// publication after `seq` is gone: a paced catch-up reads its stream
    /// bit by bit, as the client reads.
    fn read(&self, stream: &StreamKey, seq: u64, epoch: &str, most: usize) -> Recovery;

    /// Every publication of `stream` after `seq` of `epoch`, or
    /// [`Recovery::Lost`] if any of them is gone.
    fn since(&self, stream: &StreamKey, seq: u64, epoch: &str) -> Recovery {
        self.read(stream, seq, epoch, usize::MAX)
    }

    /// Drops what is older than the TTL, and streams with nothing kept that
    /// nobody is subscribed to (`in_use` says who is).
    fn expire(&mut self, now: Instant, in_use: &dyn Fn(&StreamKey) -> bool);

    /// Whether `stream` keeps history (and so numbers its publications).
    fn keeps(&self, stream: &StreamKey) -> bool;

    /// Whether enough streams have emptied that [`expire`](Store::expire)
    /// should run before the next tick.
    fn wants_sweep(&self) -> bool;

    fn usage(&self) -> Usage;
}
