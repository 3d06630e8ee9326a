//! A router without its threads, for the router's unit tests: the test is
//! every other thread.
//!
//! [`Harness`] builds a [`Router`] with in-memory lanes and drives it one
//! [`Router::turn`] at a time on the test's thread, as the router thread's
//! loop would, so a test can feed it inputs and look at everything it did
//! in between. What stands in for the rest of the hub:
//! - **clients**: each is a real TCP connection on 127.0.0.1 whose server
//!   end is the client's [`Link`]; the test reads the other end as a
//!   WebSocket client (tungstenite), so it sees exactly the frames a writer
//!   would have written, decoded. Its requests go through
//!   [`protocol::parse`] and the clients lane like a reader's.
//! - **the writer pool**: [`Capture`], an [`Outlet`] that drains each link
//!   it is handed on the spot. A link whose socket is full (a client that
//!   does not read, with small socket buffers) waits, as with a writer,
//!   until the test reads that client.
//! - **Redis** (with [`Harness::with_cluster`]): a [`Cluster`] link with no
//!   threads. The test reads what the router asks Redis
//!   ([`Harness::asked`]) and answers, or brings bus messages, on the
//!   cluster lane ([`Harness::tell`], [`Harness::bus`]).
//! - **the timer**: [`Harness::tick_at`], with any instant, so deadlines
//!   (a lease, an answer's timeout) pass without waiting for them.
//!
//! Nothing sleeps: a read waits for a frame up to a deadline, and the
//! absence of a message is shown by what comes after it (a `pong`).

use std::collections::HashMap;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, bounded};
use serde_json::{Value, json};
use tungstenite::protocol::Role as WsRole;
use tungstenite::{Message as WsMessage, WebSocket};

use super::{Router, Turn};
use crate::auth::Authenticator;
use crate::budget::{Handshakes, Threads};
use crate::cluster::wire::{Framed, Wire};
use crate::cluster::{Cluster, In, Out, Side};
use crate::config::Config;
use crate::inbox::{self, Ending, INPUT_OVERHEAD, Inbox, InboxBudget, Input, Joining};
use crate::link::{Drained, Link, Scratch};
use crate::protocol::{self, Envelope, Role};
use crate::publish::{Publication, Published, Target};
use crate::subscriptions::ClientId;
use crate::writer::Outlet;

/// How long a read waits for a frame that must come.
const DEADLINE: Duration = Duration::from_secs(5);

/// How long one look at a client's socket waits before the links waiting
/// for room are drained again.
const LOOK: Duration = Duration::from_millis(10);

/// The writer pool's stand-in: drains each link it is handed at once; a
/// link whose socket is full waits here until [`Capture::retry`].
#[derive(Default)]
pub(super) struct Capture {
    blocked: Mutex<Vec<Arc<Link>>>,
}

impl Capture {
    /// Drains the links whose socket was full; `true` if any was.
    fn retry(&self) -> bool {
        let waiting = std::mem::take(&mut *self.lock());
        let any = !waiting.is_empty();
        let mut scratch = Scratch::default();
        for link in waiting {
            if link.drain(&mut scratch) == Drained::Blocked {
                self.lock().push(link);
            }
        }
        any
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Link>>> {
        self.blocked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Outlet for Capture {
    fn count(&self) -> usize {
        1
    }

    fn hand_off(&self, _: usize, links: &mut Vec<Arc<Link>>) {
        let mut scratch = Scratch::default();
        for link in links.drain(..) {
            if link.drain(&mut scratch) == Drained::Blocked {
                self.lock().push(link);
            }
        }
    }

    fn stop(&self) {}
}

/// A client of the harness: its number among the harness's clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Peer(u64);

/// What the test holds of one client: the far end of its socket.
struct Remote {
    name: String,
    link: Arc<Link>,
    socket: WebSocket<TcpStream>,
    role: Role,
}

/// How a client connects.
#[derive(Debug, Default, Clone)]
pub(super) struct Connect<'a> {
    pub user: Option<&'a str>,
    pub token: Option<&'a str>,
    /// Small socket buffers: a client that stops reading is soon one
    /// whose socket is full.
    pub narrow: bool,
}

/// A router and everything around it, on the test's thread.
pub(super) struct Harness {
    router: Router,
    inbox: Inbox,
    ticks: Sender<Instant>,
    cluster_lane: crate::cluster::Lane,
    redis: Option<Receiver<Out>>,
    capture: Arc<Capture>,
    auth: Arc<Authenticator>,
    listener: TcpListener,
    handshakes: Handshakes,
    /// This hub's id, with a cluster.
    hub: Option<String>,
    remotes: HashMap<Peer, Remote>,
    next: u64,
}

impl Harness {
    /// A hub on its own.
    pub(super) fn new(config: Config) -> Harness {
        Harness::build(config, None)
    }

    /// A hub joined to others through a Redis the test plays: `hub` is its
    /// id, `queue` how many requests the queue to Redis holds.
    pub(super) fn with_cluster(config: Config, hub: &str, queue: usize) -> Harness {
        Harness::build(config, Some((hub, queue)))
    }

    fn build(config: Config, cluster: Option<(&str, usize)>) -> Harness {
        config.validate().expect("a valid config");
        let auth = Arc::new(config.authenticator());
        let (ticks, timer) = bounded(1);
        let share = (4 * config.max_message_size).max(64 * 1024);
        let (inbox, lanes, cluster_lane) =
            inbox::open(InboxBudget::new(config.max_inbox_bytes, share), timer);
        let capture = Arc::new(Capture::default());
        let (link, redis) = match cluster {
            Some((hub, queue)) => {
                let (link, redis) = Cluster::detached(hub, &config.redis_prefix, queue);
                (Some(link), Some(redis))
            }
            None => (None, None),
        };
        let handshakes = Handshakes::new(1 << 20, 1 << 20, Vec::new());
        let config = Arc::new(config);
        let router = Router::new(
            Arc::clone(&config),
            Arc::clone(&auth),
            Threads::new(1 << 20, 0),
            lanes,
            Arc::clone(&capture) as Arc<dyn Outlet>,
            None,
            link,
        );
        Harness {
            router,
            inbox,
            ticks,
            cluster_lane,
            redis,
            capture,
            auth,
            listener: TcpListener::bind("127.0.0.1:0").expect("a listener on loopback"),
            handshakes,
            hub: cluster.map(|(hub, _)| hub.to_owned()),
            remotes: HashMap::new(),
            next: 1,
        }
    }

    /// The router itself, to look at its state.
    pub(super) fn router(&self) -> &Router {
        &self.router
    }

    /// Turns the router until it has nothing left to do.
    pub(super) fn step(&mut self) {
        while self.router.turn() == Turn::Worked {}
    }

    /// A client connects (in development mode: as `user`, if given), and
    /// is welcomed; its welcome is read.
    pub(super) fn connect(&mut self, user: Option<&str>) -> Peer {
        self.connect_with(Connect {
            user,
            ..Connect::default()
        })
    }

    /// A client connects as the router's `Joined` input says.
    pub(super) fn connect_with(&mut self, how: Connect<'_>) -> Peer {
        let addr = self.listener.local_addr().expect("the listener's address");
        let near = TcpStream::connect(addr).expect("a loopback connection");
        let (far, peer) = self.listener.accept().expect("accepted");
        if how.narrow {
            // The smallest buffers the kernel allows: a few frames fill them.
            let _ = socket2::SockRef::from(&far).set_send_buffer_size(1);
            let _ = socket2::SockRef::from(&near).set_recv_buffer_size(1);
        }
        near.set_read_timeout(Some(LOOK)).expect("a read timeout");
        let id = self.next;
        self.next += 1;
        let name = match &self.hub {
            Some(hub) => format!("c_{id:x}-00000000.{hub}"),
            None => format!("c_{id:x}"),
        };
        let link = Arc::new(Link::new(ClientId(id), far, 0));
        let identity = self
            .auth
            .authenticate(how.token, how.user, SystemTime::now())
            .expect("let in");
        let role = match identity.is_service() {
            true => Role::Service,
            false => Role::Client,
        };
        let handshake = self.handshakes.admit(peer.ip()).expect("a handshake slot");
        self.inbox.send(Input::Joined(Box::new(Joining {
            link: Arc::clone(&link),
            name: name.clone(),
            peer,
            identity,
            session_id: None,
            handshake,
            envelope: Envelope::Standard,
        })));
        let socket = WebSocket::from_raw_socket(near, WsRole::Client, None);
        let peer = Peer(id);
        self.remotes.insert(
            peer,
            Remote {
                name,
                link,
                socket,
                role,
            },
        );
        self.step();
        let welcome = self.next_message(peer);
        assert_eq!(welcome["type"], "connection", "{welcome}");
        // The standard envelope's second message: how the token went.
        let auth = self.next_message(peer);
        assert_eq!(auth["type"], "auth", "{auth}");
        peer
    }

    /// A service connection (the admin token), welcomed.
    pub(super) fn connect_service(&mut self) -> Peer {
        let token = self
            .router
            .config
            .admin_token
            .as_ref()
            .expect("an admin token in the config")
            .expose()
            .to_owned();
        self.connect_with(Connect {
            token: Some(&token),
            ..Connect::default()
        })
    }

    /// The client's `clientId`.
    pub(super) fn name(&self, peer: Peer) -> &str {
        &self.remote(peer).name
    }

    fn remote(&self, peer: Peer) -> &Remote {
        self.remotes.get(&peer).expect("a client of this harness")
    }

    /// A client sends a text frame, as its reader would hand it over.
    pub(super) fn send(&mut self, peer: Peer, message: Value) {
        let text = message.to_string();
        let remote = self.remote(peer);
        let link = Arc::clone(&remote.link);
        let request = protocol::parse(&text, remote.role);
        let cost = text.len() + INPUT_OVERHEAD;
        self.inbox.budget.charge(&link, cost);
        self.inbox.send(Input::Request {
            link,
            request,
            cost,
        });
        self.step();
    }

    /// A client's connection ends without a close handshake (its reader
    /// stopped).
    pub(super) fn drop_connection(&mut self, peer: Peer) {
        let remote = self
            .remotes
            .remove(&peer)
            .expect("a client of this harness");
        self.inbox.send(Input::Left {
            link: remote.link,
            why: Ending::Gone,
        });
        self.step();
    }

    /// Whether the router is replaying a stream to `peer`.
    pub(super) fn is_replaying(&self, peer: Peer) -> bool {
        self.router.replaying.contains(&ClientId(peer.0))
    }

    /// The backend publishes; its answer, if the router gave one yet.
    pub(super) fn publish(&mut self, target: Target, kind: &str, data: Value) -> Answer<Published> {
        let data = serde_json::value::to_raw_value(&data).expect("JSON");
        let publication = Publication::new(target, kind, Some(&data)).expect("a valid publication");
        let (reply, answer) = bounded(1);
        self.inbox.send(Input::Publish {
            publication,
            key: None,
            reply,
            gate: None,
        });
        self.step();
        Answer(answer)
    }

    /// The timer ticks, at `now` (which may be in the future).
    pub(super) fn tick_at(&mut self, now: Instant) {
        self.ticks.try_send(now).expect("room for a tick");
        self.step();
    }

    /// The next message to `peer`, waiting up to [`DEADLINE`] for it; a
    /// Close reads as `{"close": code, "reason": ...}`. Pings are skipped.
    pub(super) fn next_message(&mut self, peer: Peer) -> Value {
        self.read(peer, DEADLINE)
            .unwrap_or_else(|| panic!("{} got nothing within {DEADLINE:?}", self.name(peer)))
    }

    /// The client's next message, or `None` if none comes within `wait`.
    fn read(&mut self, peer: Peer, wait: Duration) -> Option<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let remote = self
                .remotes
                .get_mut(&peer)
                .expect("a client of this harness");
            match remote.socket.read() {
                Ok(WsMessage::Text(text)) => {
                    return Some(serde_json::from_str(&text).expect("JSON from the hub"));
                }
                Ok(WsMessage::Close(frame)) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    });
                    return Some(json!({"close": code, "reason": reason}));
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(err))
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    // Nothing yet: whatever waits for room may go now, and
                    // the router takes its turn, as it would when its
                    // replays' poll or a batch's window ends.
                    let retried = self.capture.retry();
                    let worked = self.router.turn() == Turn::Worked;
                    if !retried && !worked && Instant::now() >= deadline {
                        return None;
                    }
                }
                Err(
                    tungstenite::Error::ConnectionClosed
                    | tungstenite::Error::AlreadyClosed
                    | tungstenite::Error::Protocol(_),
                ) => return Some(json!({"gone": true})),
                Err(err) => panic!("reading {}: {err}", self.name(peer)),
            }
        }
    }

    /// Every message to `peer` up to the answer to a `ping` it sends now:
    /// what the router queued for it before, and nothing else.
    pub(super) fn until_pong(&mut self, peer: Peer) -> Vec<Value> {
        self.send(peer, json!({"type": "ping", "correlationId": "until-pong"}));
        let mut before = Vec::new();
        loop {
            let message = self.next_message(peer);
            if message["type"] == "pong" && message["correlationId"] == "until-pong" {
                return before;
            }
            before.push(message);
        }
    }

    /// Reads messages until one of `kind` (skipping the others).
    pub(super) fn next_of(&mut self, peer: Peer, kind: &str) -> Value {
        loop {
            let message = self.next_message(peer);
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// Whether the client's connection was closed, and how: its Close,
    /// after whatever came before it.
    pub(super) fn closed(&mut self, peer: Peer) -> Value {
        loop {
            let message = self.next_message(peer);
            if message.get("close").is_some() || message.get("gone").is_some() {
                return message;
            }
        }
    }

    // --- the cluster ---------------------------------------------------

    /// What the router asked Redis since the last look, in order.
    pub(super) fn asked(&mut self) -> Vec<Out> {
        let redis = self.redis.as_ref().expect("a harness with a cluster");
        redis.try_iter().collect()
    }

    /// The cluster threads tell the router something.
    pub(super) fn tell(&mut self, news: In) {
        self.cluster_lane.send(news).expect("the cluster lane");
        self.step();
    }

    /// Both Redis connections come up (or go down).
    pub(super) fn redis(&mut self, up: bool) {
        self.tell(In::State(Side::Out, up));
        self.tell(In::State(Side::In, up));
    }

    /// A message on the bus (or this hub's channel), with the position
    /// Redis gave it, if any.
    pub(super) fn bus(&mut self, position: Option<(u64, &str)>, wire: Wire) {
        let framed = Framed {
            seq: position.map(|(seq, _)| seq),
            epoch: position.map(|(_, epoch)| epoch.to_owned()),
            wire,
        };
        self.tell(In::Message(Box::new(framed)));
    }

    /// Redis publishes `out` (an [`Out::Publish`]) as numbered `position`:
    /// the publisher's answer, then the publication back on the bus.
    pub(super) fn published(&mut self, out: &Out, position: Option<(u64, &str)>) {
        let Out::Publish { ticket, body, .. } = out else {
            panic!("not a publication: {out:?}");
        };
        self.tell(In::Published(vec![(
            *ticket,
            crate::cluster::Outcome::Done(None),
        )]));
        let wire: Wire = serde_json::from_str(body).expect("a framed publication");
        self.bus(position, wire);
    }
}

/// An answer the router may give later.
pub(super) struct Answer<T>(Receiver<T>);

impl<T> Answer<T> {
    /// The answer, if it was given.
    pub(super) fn now(&self) -> Option<T> {
        self.0.try_recv().ok()
    }
}
