//! The router's inbox: the messages other threads send the router
//! ([`Input`]), and the lanes they travel on.
//!
//! It sits below the router, the handle and the connection threads, which
//! all send into it (the router only reads), so none of them needs
//! another's module to reach the router.
//!
//! Every [`Input`] goes to the router through an [`Inbox`], on one of three
//! lanes, so that what must not wait never waits behind work:
//! - **control** (shutdown): read before anything else;
//! - **api** (handles and HTTP: publish, stats, disconnect);
//! - **clients** (connection threads: joins, requests, refusals, ends), in
//!   order per connection, bounded by count and by bytes: each connection
//!   may have [`InboxBudget::share`] bytes waiting, all of them together
//!   `max_inbox_bytes`. A reader over either waits before reading more, so
//!   a flood only slows the flooder's own socket (TCP back-pressure).
//!
//! Two more lanes carry their own types: the timer's ticks (see
//! [`crate::timer`]) and, with several hubs, the cluster threads' news
//! ([`crate::cluster::In`]: publications back from Redis, answers, other
//! hubs' news). The router takes control first, then ticks, then work in
//! bounded batches (see [`crate::router`]). Dropping every sender of a
//! lane is how the router learns to stop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, bounded};

use crate::analytics::{History, Source};
use crate::auth::Identity;
use crate::budget::HandshakeSlot;
use crate::command::{Answer, Command};
use crate::link::Link;
use crate::protocol::{Rejection, Request};
use crate::publish::{Publication, Published};
use crate::stats::Stats;

/// Most inputs waiting on the clients lane (each also counts in bytes).
const CLIENT_LANE: usize = 8 * 1024;
/// Most inputs waiting on the api lane: handles wait beyond it.
const API_LANE: usize = 1024;
/// What an input costs in the byte budget beyond its text: the parsed
/// request and the channel slot.
pub(crate) const INPUT_OVERHEAD: usize = 128;
/// How long a reader waits for room before looking again (a safety net:
/// the router wakes it as soon as there is room).
const ROOM_POLL: Duration = Duration::from_millis(100);

/// Everything the router reacts to, one `match` arm each (see
/// [`Router::handle`](crate::router::Router)).
pub(crate) enum Input {
    // --- clients lane, from connection threads, in order per connection ---
    /// A WebSocket handshake is done: admit the client, or refuse it. The
    /// reply says whether it was admitted (only then does it get a reader).
    Joined(Box<Joining>),
    /// A client refused at its handshake (its credentials, or no thread for
    /// its reader): send it `frames`, the last a Close, then let it go.
    HandshakeRefused {
        link: Arc<Link>,
        frames: Vec<tungstenite::Bytes>,
        handshake: HandshakeSlot,
    },
    /// A text frame from a client, parsed. `cost` is what it holds of the
    /// inbox budget.
    Request {
        link: Arc<Link>,
        request: Result<Request, Rejection>,
        cost: usize,
    },
    /// A frame (or a client's frames: a flood) the reader refuses.
    FrameRefused { link: Arc<Link>, why: FrameRefusal },
    /// The reader stopped.
    Left { link: Arc<Link>, why: Ending },

    // --- api lane, from handles and HTTP requests ---
    /// Publish a checked publication, once per idempotency `key` if it has
    /// one; the reply is how it went (with Redis, once Redis answered).
    /// An asker that may give up (HTTP) passes a [`Gate`]: a publication
    /// it gave up on before the router took it is dropped, not published.
    Publish {
        publication: Publication,
        key: Option<Box<str>>,
        reply: Sender<Published>,
        gate: Option<Arc<Gate>>,
        /// Where it comes from (the library or HTTP), for the analytics.
        source: Source,
    },
    /// Close one client with 1000; the reply says whether it existed.
    Disconnect { client: String, reply: Sender<bool> },
    /// Server-side control (handles, HTTP): subscribe others, close,
    /// metadata, listings.
    Command {
        command: Command,
        reply: Sender<Answer>,
    },
    /// A copy of the counters, with the client list if asked.
    Stats { clients: bool, reply: Sender<Stats> },
    /// The time series of the metric at this place of
    /// [`crate::analytics::metrics`].
    History {
        metric: usize,
        reply: Sender<Option<History>>,
    },

    // --- control lane ---
    /// Close everyone with 1001 and stop (handle, signal).
    Shutdown,
}

/// What the router needs to adopt a new client.
pub(crate) struct Joining {
    pub link: Arc<Link>,
    pub name: String,
    pub peer: SocketAddr,
    pub identity: Identity,
    pub session_id: Option<String>,
    /// The request types a service connection handles; `None`: every type.
    pub handles: Option<Vec<String>>,
    /// Kept until the client is admitted; a refused client keeps it until
    /// it is gone, so refusals count against their address's handshakes.
    pub handshake: HandshakeSlot,
    /// How its messages look on the wire.
    pub envelope: crate::protocol::Envelope,
    /// The dashboard's own connection (`/admin`): it gets the stats
    /// stream, and is no service connection for application requests.
    pub console: bool,
}

/// What the reader refuses, each answered in its own way.
#[derive(Debug, Clone)]
pub(crate) enum FrameRefusal {
    /// A binary message: error `unsupported_frame`, the connection stays.
    Binary,
    /// Over the rate limit: error `rate_limited`, the message is dropped.
    RateLimited {
        correlation_id: Option<Box<serde_json::value::RawValue>>,
    },
    /// Far over the rate limit, for long: close 1013.
    Abuse,
    /// Larger than `max_message_size`: error `payload_too_large`, close 1009.
    TooBig,
    /// A text frame that is not UTF-8: close 1007.
    InvalidUtf8,
    /// A broken WebSocket frame: close 1002.
    Protocol,
    /// Pings or Pongs far beyond the control-frame budget: close 1013.
    ControlFlood,
}

impl FrameRefusal {
    /// Whether the client is closed for it (the reader then stops parsing).
    pub(crate) fn closes(&self) -> bool {
        !matches!(
            self,
            FrameRefusal::Binary | FrameRefusal::RateLimited { .. }
        )
    }
}

/// Why a reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The client sent Close (with this code): answer it after what is queued.
    PeerClosed(Option<u16>),
    /// The connection ended without a close handshake, or was cut.
    Gone,
    /// The reader thread could not start: close 1011.
    NoReader,
}

/// Settles, once, whether the router took a request before its asker
/// gave up waiting: so an asker that gives up can say truly that nothing
/// was done, and one that waits longer knows it will be answered.
#[derive(Debug, Default)]
pub(crate) struct Gate(AtomicU8);

const OPEN: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

impl Gate {
    /// The router: `true` if it may act on the request (its asker waits).
    pub(crate) fn take(&self) -> bool {
        self.0
            .compare_exchange(OPEN, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The asker: `true` if it gave up before the router took the request,
    /// which then does nothing with it.
    pub(crate) fn abandon(&self) -> bool {
        self.0
            .compare_exchange(OPEN, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// What became of an input offered with a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    Sent,
    /// Its lane stayed full until the deadline: the router is overloaded.
    Full,
    /// The router is gone.
    Gone,
}

/// The byte budget of the clients lane.
#[derive(Debug)]
pub(crate) struct InboxBudget {
    total: AtomicUsize,
    limit: usize,
    share: usize,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    room: Condvar,
    closed: AtomicBool,
}

impl InboxBudget {
    pub(crate) fn new(limit: usize, share: usize) -> InboxBudget {
        InboxBudget {
            total: AtomicUsize::new(0),
            limit,
            share,
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            room: Condvar::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Bytes waiting now, all connections together.
    pub(crate) fn used(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Counts `cost` bytes of `link`'s against the budget.
    pub(crate) fn charge(&self, link: &Link, cost: usize) {
        link.inbox_share.fetch_add(cost, Ordering::SeqCst);
        self.total.fetch_add(cost, Ordering::SeqCst);
    }

    /// Gives back what an input held (the router, once it is handled).
    pub(crate) fn release(&self, link: &Link, cost: usize) {
        link.inbox_share.fetch_sub(cost, Ordering::SeqCst);
        self.total.fetch_sub(cost, Ordering::SeqCst);
    }

    /// Wakes the readers waiting for room (the router, after a batch).
    pub(crate) fn wake_waiters(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.room.notify_all();
        }
    }

    /// The router is gone: nobody waits any more.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.room.notify_all();
    }

    fn full_for(&self, link: &Link) -> bool {
        !self.closed.load(Ordering::SeqCst)
            && (link.inbox_share.load(Ordering::SeqCst) >= self.share
                || self.total.load(Ordering::SeqCst) >= self.limit)
    }

    /// Blocks the reader of `link` while its share, or the whole budget, is
    /// used up. The router wakes it when a batch frees room.
    pub(crate) fn wait_for_room(&self, link: &Link) {
        if !self.full_for(link) {
            return;
        }
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        // Counted before looking again, so a release after the look sees a
        // waiter and notifies (it takes the lock, which `wait` releases).
        self.waiters.fetch_add(1, Ordering::SeqCst);
        while self.full_for(link) {
            guard = match self.room.wait_timeout(guard, ROOM_POLL) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The sending side of the router's lanes; cheap to clone.
#[derive(Clone)]
pub(crate) struct Inbox {
    control: Sender<Input>,
    api: Sender<Input>,
    clients: Sender<Input>,
    pub(crate) budget: Arc<InboxBudget>,
}

/// The receiving side, owned by the router.
pub(crate) struct Lanes {
    pub control: Receiver<Input>,
    pub api: Receiver<Input>,
    /// The cluster threads' own lane, of their own type.
    pub cluster: Receiver<crate::cluster::In>,
    pub clients: Receiver<Input>,
    pub ticks: Receiver<Instant>,
    pub budget: Arc<InboxBudget>,
}

/// A new inbox and its lanes, with the sending side of the cluster lane
/// (for the cluster threads, if any). `ticks` is the timer's lane.
pub(crate) fn open(
    budget: InboxBudget,
    ticks: Receiver<Instant>,
) -> (Inbox, Lanes, crate::cluster::Lane) {
    let (control, control_rx) = bounded(16);
    let (api, api_rx) = bounded(API_LANE);
    let (cluster, cluster_rx) = bounded(crate::cluster::LANE);
    let (clients, clients_rx) = bounded(CLIENT_LANE);
    let budget = Arc::new(budget);
    let inbox = Inbox {
        control,
        api,
        clients,
        budget: Arc::clone(&budget),
    };
    let lanes = Lanes {
        control: control_rx,
        api: api_rx,
        cluster: cluster_rx,
        clients: clients_rx,
        ticks,
        budget,
    };
    (inbox, lanes, cluster)
}

impl Inbox {
    /// Sends on the lane the input belongs to. `false` when the router is gone.
    pub(crate) fn send(&self, input: Input) -> bool {
        self.lane(&input).send(input).is_ok()
    }

    /// The lane an input travels on.
    fn lane(&self, input: &Input) -> &Sender<Input> {
        match input {
            Input::Shutdown => &self.control,
            Input::Publish { .. }
            | Input::Disconnect { .. }
            | Input::Stats { .. }
            | Input::History { .. }
            | Input::Command { .. } => &self.api,
            _ => &self.clients,
        }
    }

    /// Sends on the lane the input belongs to, waiting at most `wait` for
    /// room in it.
    pub(crate) fn offer(&self, input: Input, wait: Duration) -> Offered {
        match self.lane(&input).send_timeout(input, wait) {
            Ok(()) => Offered::Sent,
            Err(SendTimeoutError::Timeout(_)) => Offered::Full,
            Err(SendTimeoutError::Disconnected(_)) => Offered::Gone,
        }
    }

    /// Asks the router something and waits for the answer, at most
    /// `timeout` when one is given. `None` when the router is gone or too
    /// slow to answer.
    pub(crate) fn ask<T>(
        &self,
        input: impl FnOnce(Sender<T>) -> Input,
        timeout: Option<Duration>,
    ) -> Option<T> {
        // A fresh one-slot channel: the router's answer never blocks it.
        let (reply, answer) = bounded(1);
        if !self.send(input(reply)) {
            return None;
        }
        match timeout {
            Some(timeout) => answer.recv_timeout(timeout).ok(),
            None => answer.recv().ok(),
        }
    }
}
