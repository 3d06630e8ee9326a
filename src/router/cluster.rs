//! The router's side of scale-out (see [`crate::cluster`]): what it hands
//! Redis, and what it does with what comes back.
//!
//! Runs on the router thread, and never waits: a publication goes to the
//! cluster-out thread and is delivered here when it comes back on the bus,
//! with the position Redis gave it, like on every other hub. A `subscribe`
//! to a stream asks Redis where it stands (and, with `since`, what it
//! kept). The answer comes on the command connection, the publications on
//! the bus, and either can be first; so Redis also puts a mark
//! ([`Wire::Mark`]) on this hub's channel behind every publication the
//! answer counts, and the answer is used once both are in. The
//! publications that arrive meanwhile wait in the client's replay, so the
//! seam has no gap and no duplicate, as on one hub.
//!
//! Nothing asked of another hub is left in silence: a request sent to a
//! hub that dies, or that was cut off since (its heartbeat's `up_since`
//! changes), is answered `busy`.
//!
//! A publication's publisher is answered once Redis has answered: nothing
//! is numbered or delivered here that Redis did not number, so no hub
//! misses what another delivered without seeing it (the queue to Redis
//! full, Redis refusing or too slow: the publisher is told it was not
//! published; Redis silent past its deadline: that it may have been).
//!
//! While either Redis connection is down (lost, or stalled past its
//! deadline), the hub serves its own clients alone, numbering with its own
//! history (its own epochs), and publications with an idempotency key are
//! refused (it cannot be checked across hubs). Publications of a stream it
//! numbered alone that still come on the bus wait for the catch-up; so do,
//! once the pubsub connection was lost, those of every stream it will
//! catch up: the bus brought nothing of what Redis published until the
//! connection was back, so what it brings then may follow a hole, which
//! only the catch-up fills (from Redis's history). When both are back: the
//! streams published to meanwhile get a new epoch in Redis before Redis
//! numbers anything more of them (their history there has a hole), this
//! hub's users are counted again, the statuses are read again, and every
//! stream its clients follow is caught up from where it was delivered
//! last. A catch-up that cannot fill its hole (Redis does not answer it,
//! or no longer keeps all of it) delivers nothing past it: it is asked
//! again, or its clients are closed 1013 to resume from Redis.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Sender;
use serde_json::value::RawValue;

use super::Router;
use super::publishing::Publisher;
use super::replay::Replaying;
use crate::cluster::wire::{self, HubBeat, Wire, WireAnswer, WireCommand, WireOrigin, WireTarget};
use crate::cluster::{Cluster, HEARTBEAT, HeadReply, In, LEASE, Out, Outcome, Side, stream_name};
use crate::command::{Answer, Command};
use crate::config::Config;
use crate::history::{Appended, Entry, StreamKey};
use crate::idempotency::Once;
use crate::protocol::{Close, ErrorCode, Kind, Message, Since, Status, Subscribed, Topic, raw};
use crate::publish::Unpublished;
use crate::publish::{Publication, Target};
use crate::subscriptions::ClientId;

/// How long an answer from another hub is waited for.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// A publication from Redis waiting for its stream's catch-up.
struct Held {
    seq: u64,
    epoch: Arc<str>,
    publication: Publication,
    time: SystemTime,
}

/// What a stream's catch-up holds: bounded by one client's queue limits,
/// since each of the stream's clients would get all of it at once.
#[derive(Default)]
struct Holding {
    held: Vec<Held>,
    /// Bytes of `held`, counted as a client's queue counts them.
    bytes: usize,
}

/// A client's subscription waiting for Redis.
struct Subscription {
    client: ClientId,
    topic: Topic,
    since: Option<Since>,
    correlation: Option<Box<RawValue>>,
    /// It asked, so it is answered `subscribed` (a session joined at
    /// connect is not).
    reply: bool,
    /// Earlier subscribes to the same stream that this one superseded
    /// while they waited: each still gets its answer (the `correlationId`
    /// it asked with), the same as this one's.
    superseded: Vec<Option<Box<RawValue>>>,
}

/// What an [`Out::Head`] was asked for.
enum Awaiting {
    Subscribe(Subscription),
    /// What this hub's clients missed of a stream while Redis was away.
    CatchUp {
        stream: StreamKey,
        after: u64,
        epoch: Arc<str>,
        /// Clients that subscribed while Redis was away: not caught up.
        sit_out: Vec<ClientId>,
    },
}

/// The ticket of no answer: what a client sitting out a catch-up waits for.
const SITTING_OUT: u64 = u64::MAX;

/// How long an answer with a position waits for its [`Wire::Mark`] before
/// it is used anyway: the mark is lost only with the connection, which
/// resolves everything, so this is a last resort, as long as a lease.
const MARK_WAIT: Duration = LEASE;

/// Who waits for another hub's answer to a command.
pub(super) enum Waiter {
    /// A handle or the HTTP API.
    Caller(Sender<Answer>),
    /// [`Handle::disconnect`](crate::Handle::disconnect) and the like.
    Disconnect(Sender<bool>),
    /// A service connection, answered `ack`.
    Service {
        client: ClientId,
        correlation: Option<Box<RawValue>>,
    },
}

/// A publication waiting for Redis's answer.
struct Pending {
    publisher: Publisher,
    /// How many of this hub's clients it reached when it was taken.
    reached: usize,
    once: Option<Once>,
    taken: Instant,
}

/// How a subscription's position is found ([`Router::cluster_open_stream`]).
pub(super) enum Opening {
    /// Redis was asked: the client is answered when it says.
    Asked,
    /// This hub answers (no Redis, Redis away, or nothing to ask).
    Here,
    /// The queue to Redis is full: not done.
    Busy,
}

/// Where a publication goes: Redis will answer its publisher, or it is
/// delivered here alone, or it cannot be published now (its publisher is
/// handed back, to be told why).
pub(super) enum Routed {
    Redis,
    Here(Publication, Publisher),
    Unpublished(Publisher, Unpublished),
}

/// The router's cluster state.
pub(super) struct ClusterState {
    link: Cluster,
    /// Publications sent to Redis, by ticket, oldest first.
    pending: BTreeMap<u64, Pending>,
    next_publish: u64,
    /// Past this, a publication Redis never answered (the out thread's
    /// own deadlines should have) is told it may have been published.
    answer_within: Duration,
    out_up: bool,
    in_up: bool,
    /// Both connections were up when last heard of: the router's mode.
    up: bool,
    /// Streams this hub numbered alone while Redis was away.
    dirty: HashSet<StreamKey>,
    /// The pubsub connection was lost since this hub last came up: the
    /// bus brings nothing of what Redis published until it was back, so
    /// what it brings then may follow a hole. Until the catch-up, which
    /// reads that hole from Redis's history from where this hub was
    /// (`last`), the bus's publications of those streams do not go out.
    bus_gap: bool,
    /// The last position delivered here, per stream with clients here (or
    /// where Redis answered a subscriber, if nothing came since): where a
    /// catch-up starts.
    last: HashMap<StreamKey, (u64, Arc<str>)>,
    /// Streams being caught up: their live publications wait here.
    catching_up: HashMap<StreamKey, Holding>,
    /// Clients that subscribed while Redis was away, by stream: they were
    /// answered from this hub's own history (`recovered: false` for a
    /// `since`), so the catch-up's older publications are not for them,
    /// until one of Redis's publications of the stream is delivered here.
    joined_alone: HashMap<StreamKey, HashSet<ClientId>>,
    heads: HashMap<u64, Awaiting>,
    /// Answers in, waiting for their mark on the bus.
    answered: HashMap<u64, (Awaiting, Option<HeadReply>, Instant)>,
    /// Marks in before their answer.
    marked: HashSet<u64>,
    next_ticket: u64,
    /// Every hub heard of lately (this one too), and when.
    hubs: HashMap<String, (HubBeat, Instant)>,
    commands: HashMap<u64, (Waiter, Instant)>,
    next_command: u64,
    next_beat: Instant,
    /// Round robin over the hubs with service connections.
    turn: usize,
    /// When this hub last joined Redis, told in its heartbeats.
    up_since: u64,
}

impl ClusterState {
    pub(super) fn new(link: Cluster, config: &Config) -> ClusterState {
        ClusterState {
            link,
            pending: BTreeMap::new(),
            next_publish: 1,
            // Waiting in the queue, in flight, and a reconnection.
            answer_within: config.redis_timeout * 4 + Duration::from_secs(2),
            out_up: false,
            in_up: false,
            up: false,
            dirty: HashSet::new(),
            bus_gap: false,
            last: HashMap::new(),
            catching_up: HashMap::new(),
            joined_alone: HashMap::new(),
            heads: HashMap::new(),
            answered: HashMap::new(),
            marked: HashSet::new(),
            next_ticket: 1,
            hubs: HashMap::new(),
            commands: HashMap::new(),
            next_command: 1,
            next_beat: Instant::now(),
            turn: 0,
            up_since: 0,
        }
    }

    pub(super) fn hub(&self) -> &str {
        &self.link.hub
    }

    pub(super) fn is_up(&self) -> bool {
        self.up
    }

    /// The hubs heard of within a lease, and their numbers.
    pub(super) fn hubs(&self) -> impl Iterator<Item = &HubBeat> + '_ {
        self.hubs.values().map(|(beat, _)| beat)
    }

    fn bus(&self) -> String {
        wire::bus_channel(&self.link.prefix)
    }

    fn channel_of(&self, hub: &str) -> String {
        wire::hub_channel(&self.link.prefix, hub)
    }
}

/// A router that stops tells the publishers still waiting for Redis that
/// their publications may have gone out.
impl Drop for ClusterState {
    fn drop(&mut self) {
        for (_, pending) in std::mem::take(&mut self.pending) {
            if let Publisher::Caller(reply) = pending.publisher {
                let why = "the hub stopped before Redis answered: it may have been published";
                let _ = reply.try_send(Err(Unpublished::Unconfirmed(why.to_owned())));
            }
        }
    }
}

/// The answer to a publication the queue to Redis cannot take.
fn queue_full() -> Unpublished {
    Unpublished::Unavailable(
        "the queue to Redis is full (Redis is slow or away): not published; try again".to_owned(),
    )
}

/// ms since 1970 and back.
fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn time_of(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl Router {
    /// Whether publications go through Redis now.
    pub(super) fn cluster_up(&self) -> bool {
        self.cluster.as_ref().is_some_and(ClusterState::is_up)
    }

    /// Sends a publication to every hub through Redis, whose answer its
    /// publisher gets ([`Routed::Redis`]). Here alone: without Redis, while
    /// Redis is away (its stream then gets a new epoch when Redis is back),
    /// or for a filter, which is code and cannot cross. Refused when Redis
    /// cannot take it now, or while away for one with an idempotency key.
    pub(super) fn cluster_publish(
        &mut self,
        publication: Publication,
        once: Option<Once>,
        publisher: Publisher,
    ) -> Routed {
        let Some(cluster) = self.cluster.as_ref() else {
            return Routed::Here(publication, publisher);
        };
        let Some(to) = WireTarget::of(&publication.target) else {
            return Routed::Here(publication, publisher);
        };
        if !cluster.up {
            if once.is_some() {
                let why = "Redis is unreachable, so its idempotencyKey cannot be checked across hubs: not published; try again";
                return Routed::Unpublished(publisher, Unpublished::Unavailable(why.to_owned()));
            }
            return Routed::Here(publication, publisher);
        }
        // Streams numbered here alone get their new epoch in Redis before
        // Redis numbers anything more.
        if !self.hand_over_new_epochs() {
            return Routed::Unpublished(publisher, queue_full());
        }
        let Some(cluster) = self.cluster.as_ref() else {
            return Routed::Here(publication, publisher);
        };
        let channel = match &publication.target {
            Target::Client(name) => match wire::hub_of(name) {
                Some(hub) => cluster.channel_of(hub),
                None => cluster.bus(),
            },
            _ => cluster.bus(),
        };
        let stream = StreamKey::of(&publication.target)
            .filter(|s| self.history.keeps(s))
            .map(|s| stream_name(&s));
        let body = Wire::Pub(wire::Publication {
            hub: cluster.hub().to_owned(),
            to,
            kind: publication.kind.to_string(),
            data: publication.data,
            from: publication.from.as_ref().map(WireOrigin::of),
            ts: millis(SystemTime::now()),
            batched: publication.batched,
            corr: publication.correlation_id,
        });
        let Ok(body) = serde_json::to_string(&body) else {
            let why = "its data could not be framed for Redis: not published";
            return Routed::Unpublished(publisher, Unpublished::Unavailable(why.to_owned()));
        };
        let reached = self.audience_size(&publication.target);
        let Some(cluster) = self.cluster.as_mut() else {
            return Routed::Unpublished(publisher, queue_full());
        };
        let ticket = cluster.next_publish;
        let taken = Instant::now();
        let sent = cluster.link.send(Out::Publish {
            ticket,
            channel,
            stream,
            body,
            once: once.as_ref().map(Once::hex),
            reached,
            taken,
        });
        if !sent {
            crate::throttle::warn_throttled!(
                "the queue to Redis is full (Redis is slow or away): publications are refused to their publishers"
            );
            return Routed::Unpublished(publisher, queue_full());
        }
        cluster.next_publish += 1;
        cluster.pending.insert(
            ticket,
            Pending {
                publisher,
                reached,
                once,
                taken,
            },
        );
        Routed::Redis
    }

    /// Hands the streams numbered here alone to the out thread, which
    /// gives them a new epoch before anything it is handed after;
    /// `false` if its queue is full (they are kept, to try again).
    fn hand_over_new_epochs(&mut self) -> bool {
        let Some(cluster) = &mut self.cluster else {
            return true;
        };
        if cluster.dirty.is_empty() {
            return true;
        }
        let streams: Vec<String> = cluster.dirty.iter().map(stream_name).collect();
        let count = streams.len();
        if !cluster.link.send(Out::NewEpochs(streams)) {
            return false;
        }
        log::info!(
            "{count} streams were published to on this hub alone while Redis was away: they start a new epoch"
        );
        cluster.dirty.clear();
        true
    }

    /// How publications went in Redis: their publishers are told.
    fn published(&mut self, outcomes: Vec<(u64, Outcome)>) {
        let now = Instant::now();
        for (ticket, outcome) in outcomes {
            let Some(pending) = self
                .cluster
                .as_mut()
                .and_then(|c| c.pending.remove(&ticket))
            else {
                continue;
            };
            let answer = match outcome {
                Outcome::Done(first) => {
                    let delivered = first.unwrap_or(pending.reached);
                    if let Some(once) = pending.once {
                        self.recent.remember(once, delivered, now);
                    }
                    Ok(delivered)
                }
                Outcome::NotSent(why) => Err(Unpublished::Unavailable(why)),
                Outcome::Unknown(why) => Err(Unpublished::Unconfirmed(why)),
            };
            self.tell_publisher(pending.publisher, answer);
        }
    }

    /// Publications Redis never answered in time (a last resort: the out
    /// thread's deadlines answer them first) are told they may have gone.
    fn overdue_publications(&mut self, now: Instant) {
        loop {
            let Some(cluster) = &mut self.cluster else {
                return;
            };
            let limit = cluster.answer_within;
            let overdue = cluster
                .pending
                .first_key_value()
                .is_some_and(|(_, p)| now.saturating_duration_since(p.taken) >= limit);
            if !overdue {
                return;
            }
            let Some((_, pending)) = cluster.pending.pop_first() else {
                return;
            };
            let why = format!(
                "no answer from Redis within {limit:?}: it may have been published; retry with the same idempotencyKey"
            );
            self.tell_publisher(pending.publisher, Err(Unpublished::Unconfirmed(why)));
        }
    }

    /// A streamed publication numbered here while Redis is away: its
    /// stream's history in Redis will have a hole.
    pub(super) fn numbered_alone(&mut self, stream: &StreamKey) {
        if let Some(cluster) = &mut self.cluster
            && !cluster.up
        {
            cluster.dirty.insert(stream.clone());
        }
    }

    /// One event from the cluster threads.
    pub(super) fn cluster_event(&mut self, event: In) {
        match event {
            In::State(side, up) => self.cluster_state(side, up),
            In::Message(framed) => {
                let framed = *framed;
                match framed.wire {
                    Wire::Pub(publication) => {
                        self.remote_publication(framed.seq, framed.epoch, publication)
                    }
                    Wire::Presence { user, status } => self.remote_presence(&user, status),
                    Wire::Cmd { from, id, cmd } => self.remote_command(&from, id, cmd),
                    Wire::Reply { id, answer } => self.remote_answer(id, answer.answer()),
                    Wire::Request(request) => self.remote_request(request),
                    Wire::Unanswered { client, corr } => self.unanswered(&client, corr),
                    Wire::Mark(ticket) => self.marked(ticket),
                    Wire::Left { client } => self.remote_client_left(&client),
                    Wire::Hub(beat) => self.remote_beat(beat),
                }
            }
            In::Head { ticket, reply } => {
                let Some(cluster) = &mut self.cluster else {
                    return;
                };
                let marked = cluster.marked.remove(&ticket);
                let Some(awaiting) = cluster.heads.remove(&ticket) else {
                    return;
                };
                // An answer with a position is used once its mark is in:
                // what it counts may still be on its way on the bus.
                if reply.as_ref().is_some_and(|r| r.position.is_some()) && !marked {
                    cluster
                        .answered
                        .insert(ticket, (awaiting, reply, Instant::now()));
                    return;
                }
                self.resolve_head(ticket, awaiting, reply);
            }
            In::Snapshot(statuses) => self.presence_snapshot(statuses),
            In::Published(outcomes) => self.published(outcomes),
        }
    }

    /// A hub's heartbeat; if it joined Redis again since the last one, it
    /// was cut off, and what it was asked meanwhile may be lost.
    fn remote_beat(&mut self, beat: HubBeat) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let hub = beat.hub.clone();
        let rejoined = hub != cluster.hub()
            && cluster
                .hubs
                .get(&hub)
                .is_some_and(|(last, _)| last.up_since != beat.up_since);
        cluster.hubs.insert(hub.clone(), (beat, Instant::now()));
        if rejoined {
            self.hubs_lost(Some(&[hub]));
        }
    }

    /// The bus has brought everything an answer counts.
    fn marked(&mut self, ticket: u64) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        if let Some((awaiting, reply, _)) = cluster.answered.remove(&ticket) {
            self.resolve_head(ticket, awaiting, reply);
        } else if cluster.heads.contains_key(&ticket) {
            cluster.marked.insert(ticket);
        }
    }

    fn resolve_head(&mut self, ticket: u64, awaiting: Awaiting, reply: Option<HeadReply>) {
        match awaiting {
            Awaiting::Subscribe(subscription) => {
                self.resolve_subscribe(ticket, subscription, reply)
            }
            Awaiting::CatchUp {
                stream,
                after,
                epoch,
                sit_out,
            } => self.resolve_catch_up(stream, after, &epoch, &sit_out, reply),
        }
    }

    /// Answers that waited too long for their mark are used as they are.
    fn overdue_answers(&mut self, now: Instant) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let overdue: Vec<u64> = cluster
            .answered
            .iter()
            .filter(|(_, (_, _, at))| now.saturating_duration_since(*at) >= MARK_WAIT)
            .map(|(ticket, _)| *ticket)
            .collect();
        for ticket in overdue {
            let Some((awaiting, reply, _)) = self
                .cluster
                .as_mut()
                .and_then(|c| c.answered.remove(&ticket))
            else {
                continue;
            };
            crate::throttle::warn_throttled!(
                "Redis's mark for a stream's position did not come in time: used as it is"
            );
            self.resolve_head(ticket, awaiting, reply);
        }
    }

    /// One connection up or down; the mode changes when both agree.
    fn cluster_state(&mut self, side: Side, up: bool) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        match side {
            Side::Out => cluster.out_up = up,
            Side::In => {
                cluster.in_up = up;
                if !up {
                    cluster.bus_gap = true;
                    // Whatever broke the pubsub connection may have broken
                    // the other one unnoticed: trust it again once it
                    // answers.
                    cluster.out_up = false;
                    cluster.link.send(Out::Probe);
                }
            }
        }
        let now_up = cluster.out_up && cluster.in_up;
        if now_up == cluster.up {
            return;
        }
        cluster.up = now_up;
        if now_up {
            self.cluster_came_up();
        } else {
            log::warn!("cut off from the other hubs: serving this hub's clients alone");
            // What was asked and will not be answered is answered now, and
            // what was answered is used without its mark.
            cluster.marked.clear();
            let heads: Vec<u64> = cluster.heads.keys().copied().collect();
            let answered: Vec<u64> = cluster.answered.keys().copied().collect();
            for ticket in heads {
                self.cluster_event(In::Head {
                    ticket,
                    reply: None,
                });
            }
            for ticket in answered {
                if let Some((awaiting, reply, _)) = self
                    .cluster
                    .as_mut()
                    .and_then(|c| c.answered.remove(&ticket))
                {
                    self.resolve_head(ticket, awaiting, reply);
                }
            }
            // Nor will what other hubs were asked to answer.
            self.hubs_lost(None);
        }
    }

    /// Both connections are back (or up for the first time).
    fn cluster_came_up(&mut self) {
        if let Some(cluster) = &mut self.cluster {
            cluster.up_since = millis(SystemTime::now());
        }
        // The lease first: the users counted below are swept with it if
        // this hub dies.
        self.heartbeat(Instant::now());
        // Users in their grace period are still here, as far as the others
        // know: their offline is told when it ends.
        let users: Vec<String> = self
            .users
            .names()
            .chain(self.presence.in_grace())
            .map(str::to_owned)
            .collect();
        // First of all: the streams numbered here alone get a new epoch
        // (kept to try again if the queue is full: nothing of them goes to
        // Redis before it).
        self.hand_over_new_epochs();
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        // Who left while it was away is gone from Redis, then who is here
        // is counted again.
        cluster.link.send(Out::Rejoin {
            users: users.clone(),
        });
        for user in users {
            cluster.link.send(Out::Join { user });
        }
        cluster.link.send(Out::Snapshot);
        cluster.next_beat = Instant::now();
        // What this hub's clients missed meanwhile: each stream is caught
        // up from where it was, and what the bus brings from now on waits
        // in its catch-up.
        let last: Vec<(StreamKey, u64, Arc<str>)> = cluster
            .last
            .iter()
            .map(|(stream, (seq, epoch))| (stream.clone(), *seq, Arc::clone(epoch)))
            .collect();
        cluster.bus_gap = false;
        let mut joined_alone = self
            .cluster
            .as_mut()
            .map(|c| std::mem::take(&mut c.joined_alone))
            .unwrap_or_default();
        for (stream, after, epoch) in last {
            let Some(cluster) = &mut self.cluster else {
                return;
            };
            let sit_out = joined_alone
                .remove(&stream)
                .map(|ids| ids.into_iter().collect())
                .unwrap_or_default();
            let ticket = cluster.next_ticket;
            cluster.next_ticket += 1;
            let name = stream_name(&stream);
            cluster
                .catching_up
                .insert(stream.clone(), Holding::default());
            let sent = cluster.link.send(Out::Head {
                ticket,
                stream: name,
                since: Some(after),
                epoch: Some(epoch.to_string()),
                claim: None,
                history: true,
            });
            if sent {
                let catch_up = Awaiting::CatchUp {
                    stream,
                    after,
                    epoch,
                    sit_out,
                };
                cluster.heads.insert(ticket, catch_up);
            } else {
                // Not asked, so nothing will fill what its clients missed.
                let why = "could not be asked (the queue to Redis is full)";
                let target = stream.target();
                self.abandon_catch_up(&stream, &target, Close::CatchUpFailed, why);
            }
        }
    }

    /// A wire publication as this hub delivers it; `None` for a client
    /// that is not here.
    fn local_publication(&self, p: wire::Publication) -> Option<Publication> {
        let target = p.to.target();
        if let Target::Client(name) = &target
            && !self.names.contains_key(name.as_str())
        {
            return None;
        }
        Some(Publication {
            target,
            kind: p.kind.into(),
            data: p.data,
            correlation_id: p.corr,
            batched: p.batched,
            from: p.from.as_ref().map(WireOrigin::origin),
        })
    }

    /// A publication back from Redis, with its position if it is on a stream.
    fn remote_publication(
        &mut self,
        seq: Option<u64>,
        epoch: Option<String>,
        p: wire::Publication,
    ) {
        let time = time_of(p.ts);
        let foreign = self.cluster.as_ref().is_some_and(|c| c.hub() != p.hub);
        let Some(publication) = self.local_publication(p) else {
            return;
        };
        if foreign {
            self.analytics.published(crate::analytics::Source::Cluster);
        }
        if let (Target::Client(name), Some(corr)) =
            (&publication.target, &publication.correlation_id)
            && let Some(id) = self.names.get(name.as_str()).copied()
        {
            // Perhaps the answer to a request sent to another hub.
            self.forwarded_done(id, corr);
        }
        let position = match (seq, epoch, StreamKey::of(&publication.target)) {
            (Some(seq), Some(epoch), Some(stream)) => Some((stream, seq, Arc::<str>::from(epoch))),
            _ => None,
        };
        if let Some((stream, seq, epoch)) = position {
            // Cut off, Redis's publications of a stream wait for its
            // catch-up when Redis is back (which reads them from Redis's
            // history) rather than go out now: of a stream numbered here
            // alone meanwhile, behind its new epoch, not between this
            // hub's own; and, once the pubsub link was lost, of a stream
            // this hub will catch up, since what the bus brings may follow
            // a hole (what Redis published before the link was back):
            // delivered, it would pass the hole by, and the catch-up would
            // start after it.
            if self.cluster.as_ref().is_some_and(|c| {
                !c.up && (c.dirty.contains(&stream) || (c.bus_gap && c.last.contains_key(&stream)))
            }) {
                return;
            }
            let limits = self.delivery.limits(&self.config);
            if let Some(holding) = self
                .cluster
                .as_mut()
                .and_then(|c| c.catching_up.get_mut(&stream))
            {
                holding.bytes += Entry::size_of(
                    &publication.kind,
                    publication.data.as_deref(),
                    publication.from.as_ref(),
                );
                let target = publication.target.clone();
                holding.held.push(Held {
                    seq,
                    epoch,
                    publication,
                    time,
                });
                if holding.held.len() > limits.messages || holding.bytes > limits.bytes {
                    let why = "outgrew a client's queue";
                    self.abandon_catch_up(&stream, &target, Close::CatchUpTooLarge, why);
                }
                return;
            }
            self.deliver_numbered(&stream, seq, epoch, publication, time);
        } else {
            self.publish_here(publication, None, time);
        }
    }

    /// Delivers a publication Redis numbered, to this hub's clients.
    fn deliver_numbered(
        &mut self,
        stream: &StreamKey,
        seq: u64,
        epoch: Arc<str>,
        publication: Publication,
        time: SystemTime,
    ) {
        let entry = Arc::new(Entry::new(
            seq,
            &publication.kind,
            publication.data.as_deref(),
            publication.from.as_ref(),
            time,
        ));
        let appended = Appended { entry, epoch };
        self.feed_replays(stream, &appended, false);
        if self.audience_size(&publication.target) > 0
            && let Some(cluster) = &mut self.cluster
        {
            cluster
                .last
                .insert(stream.clone(), (seq, Arc::clone(&appended.epoch)));
            // Those who subscribed while Redis was away have a place in
            // Redis's numbering now, like the others: what a catch-up
            // brings after it is theirs too, not to be sat out.
            cluster.joined_alone.remove(stream);
        }
        self.publish_here(publication, Some(appended), time);
    }

    /// Asks Redis where `topic` stands before the client hears of it; its
    /// publications wait in its replay meanwhile ([`Opening::Asked`]).
    /// [`Opening::Here`] when the subscription is to be answered here (no
    /// Redis, Redis away, or nothing to ask); [`Opening::Busy`] when Redis
    /// is up but the queue to it is full: as a publication then is, the
    /// subscribe is refused rather than answered from this hub's history,
    /// which is not the stream's (nor checks a session's owner).
    pub(super) fn cluster_open_stream(
        &mut self,
        id: ClientId,
        topic: &Topic,
        since: &Option<Since>,
        correlation: Option<&RawValue>,
        reply: bool,
    ) -> Opening {
        if !self.cluster_up() {
            if let Some(cluster) = &mut self.cluster {
                let stream = StreamKey::of_topic(topic);
                cluster.joined_alone.entry(stream).or_default().insert(id);
            }
            return Opening::Here;
        }
        let stream = StreamKey::of_topic(topic);
        let history = self.history.keeps(&stream);
        let claim = match (topic, self.clients.get(&id)) {
            (Topic::Session(session), Some(client)) => client
                .session_owner()
                .map(|user| (session.clone(), user.to_owned())),
            _ => None,
        };
        if !history && claim.is_none() {
            return Opening::Here;
        }
        // An earlier subscribe to this stream still waiting is superseded
        // by this one, but owed its answer all the same.
        let earlier = self.clients.get(&id).and_then(|client| {
            let replay = client.replays.iter().find(|r| r.stream == stream)?;
            replay.ticket()
        });
        let Some(cluster) = &mut self.cluster else {
            return Opening::Here;
        };
        let ticket = cluster.next_ticket;
        let sent = cluster.link.send(Out::Head {
            ticket,
            stream: stream_name(&stream),
            since: since.as_ref().map(|s| s.seq),
            epoch: None,
            claim,
            history,
        });
        if !sent {
            crate::throttle::warn_throttled!(
                "the queue to Redis is full (Redis is slow or away): subscribes are refused busy"
            );
            return Opening::Busy;
        }
        cluster.next_ticket += 1;
        let mut superseded = Vec::new();
        let old = earlier.and_then(|t| {
            cluster.marked.remove(&t);
            let answered = cluster.answered.remove(&t).map(|(awaiting, _, _)| awaiting);
            cluster.heads.remove(&t).or(answered)
        });
        if let Some(Awaiting::Subscribe(mut old)) = old {
            superseded.append(&mut old.superseded);
            if old.reply {
                superseded.push(old.correlation);
            }
        }
        cluster.heads.insert(
            ticket,
            Awaiting::Subscribe(Subscription {
                client: id,
                topic: topic.clone(),
                since: since.clone(),
                correlation: correlation.map(RawValue::to_owned),
                reply,
                superseded,
            }),
        );
        if let Some(client) = self.clients.get_mut(&id) {
            // A later subscribe to the same stream supersedes an earlier
            // one still waiting, and takes over what it gathered.
            let earlier = client.replays.iter().position(|r| r.stream == stream);
            let pending = earlier.map(|at| client.replays.remove(at).into_pending());
            let mut replay = Replaying::waiting(stream, ticket);
            replay.extend(pending.unwrap_or_default());
            client.replays.push(replay);
            self.replaying.insert(id);
        }
        Opening::Asked
    }

    /// A subscribe that waited for Redis (the answer with `ticket`) was
    /// ended by an unsubscribe first: each request it answers (itself and
    /// those it superseded) gets the error `unsubscribed` now, and Redis's
    /// answer, when it comes, is for nobody.
    pub(super) fn subscribe_withdrawn(&mut self, id: ClientId, ticket: u64) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        cluster.marked.remove(&ticket);
        let answered = cluster
            .answered
            .remove(&ticket)
            .map(|(awaiting, _, _)| awaiting);
        let Some(Awaiting::Subscribe(subscription)) = cluster.heads.remove(&ticket).or(answered)
        else {
            return;
        };
        let owed = subscription
            .superseded
            .into_iter()
            .chain(subscription.reply.then_some(subscription.correlation));
        let message = format!(
            "Unsubscribed from {} before this subscribe was complete: not subscribed",
            topic_name(&subscription.topic)
        );
        for correlation in owed.collect::<Vec<_>>() {
            self.error(
                id,
                ErrorCode::Unsubscribed,
                &message,
                correlation.as_deref(),
            );
        }
    }

    /// Redis answered where a stream stands: the client gets `subscribed`
    /// (if it asked), then what it missed and what came meanwhile.
    fn resolve_subscribe(
        &mut self,
        ticket: u64,
        subscription: Subscription,
        reply: Option<HeadReply>,
    ) {
        let Subscription {
            client: id,
            topic,
            since,
            correlation,
            reply: wants_reply,
            superseded,
        } = subscription;
        let (topic, correlation) = (&topic, correlation.as_deref());
        let stream = StreamKey::of_topic(topic);
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let Some(at) = client.replays.iter().position(|r| r.waits_for(ticket)) else {
            return;
        };
        if !client.follows(&stream) {
            // Its right ended while Redis was asked (it was told
            // `unsubscribed`): nothing of the stream goes to it.
            client.replays.remove(at);
            if client.replays.is_empty() {
                self.replaying.remove(&id);
            }
            return;
        }
        let pending: Vec<(Arc<Entry>, Arc<str>)> = client.replays.remove(at).into_pending();
        if client.replays.is_empty() {
            self.replaying.remove(&id);
        }
        // Redis did not answer: the position is not known here.
        let reply = reply.unwrap_or_default();
        if let Some(owner) = reply.refused {
            self.leave(id, Some(topic));
            let message = format!("Session {} belongs to another user", topic_name(topic));
            log::debug!("session claim refused: it is {owner}'s");
            for earlier in &superseded {
                self.error(id, ErrorCode::Forbidden, &message, earlier.as_deref());
            }
            return self.error(id, ErrorCode::Forbidden, &message, correlation);
        }
        // A catch-up after a cut-off starts where this hub's clients of the
        // stream are: where Redis answered, if nothing of it was delivered
        // here yet (a quiet stream), since this client is there now.
        if let (Some((head, epoch)), Some(cluster)) = (&reply.position, &mut self.cluster) {
            cluster
                .last
                .entry(stream.clone())
                .or_insert_with(|| (*head, Arc::from(epoch.as_str())));
        }
        let ttl = self.config.history_ttl;
        let now = SystemTime::now();
        let (position, recovered, replay) = match reply.position {
            None => {
                let recovered = since.as_ref().map(|_| false);
                (None, recovered, pending)
            }
            Some((head, epoch)) => {
                let epoch: Arc<str> = epoch.into();
                let kept: Vec<(Arc<Entry>, Arc<str>)> = reply
                    .entries
                    .into_iter()
                    .filter(|k| {
                        now.duration_since(time_of(k.ts))
                            .map_or(true, |age| age < ttl)
                    })
                    .filter_map(|k| {
                        let p = self.local_publication_any(k.publication)?;
                        let entry = Entry::new(
                            k.seq,
                            &p.kind,
                            p.data.as_deref(),
                            p.from.as_ref(),
                            time_of(k.ts),
                        );
                        Some((Arc::new(entry), Arc::clone(&epoch)))
                    })
                    .collect();
                match &since {
                    Some(since) => {
                        let merged = merge(kept, pending.clone());
                        let contiguous = *since.epoch == *epoch
                            && since.seq <= head
                            && is_run(&merged, since.seq, head, &epoch);
                        let replay: Vec<_> = match contiguous {
                            true => merged
                                .into_iter()
                                .filter(|(e, _)| e.seq > since.seq)
                                .collect(),
                            false => Vec::new(),
                        };
                        // The replay holds what Redis sent: more than the
                        // client's queue limits is not recovered (the
                        // client reloads), as in Centrifugo.
                        if contiguous && self.fits_held(id, &replay) {
                            (Some((head, epoch)), Some(true), replay)
                        } else {
                            let live = pending.into_iter().filter(|(e, _)| e.seq > head);
                            (Some((head, epoch)), Some(false), live.collect())
                        }
                    }
                    None => {
                        // Live from here: from before the first that came
                        // meanwhile, so none of those looks already seen.
                        let from = pending
                            .first()
                            .map_or(head, |(e, _)| head.min(e.seq.saturating_sub(1)));
                        (Some((from, epoch)), None, pending)
                    }
                }
            }
        };
        match recovered {
            Some(true) => self.counters.recoveries += 1,
            Some(false) => self.counters.recoveries_lost += 1,
            None => {}
        }
        let asked = superseded.iter().map(Option::as_deref);
        let asked: Vec<Option<&RawValue>> =
            asked.chain(wants_reply.then_some(correlation)).collect();
        if !asked.is_empty() {
            let data = raw(&Subscribed {
                seq: position.as_ref().map(|(seq, _)| *seq),
                epoch: position.as_ref().map(|(_, epoch)| &**epoch),
                recovered,
            });
            let named = stream.topic();
            for correlation in asked {
                let message = Message::new(Kind::Subscribed.as_str(), Some(&data))
                    .topic(Some(&named))
                    .correlation(correlation);
                self.send_message(id, &message);
            }
        }
        if !replay.is_empty() {
            self.start_replay(id, stream, None, replay);
        }
    }

    /// A wire publication as an entry, whoever its target is here.
    fn local_publication_any(&self, p: wire::Publication) -> Option<Publication> {
        Some(Publication {
            target: p.to.target(),
            kind: p.kind.into(),
            data: p.data,
            correlation_id: None,
            batched: false,
            from: p.from.as_ref().map(WireOrigin::origin),
        })
    }

    /// What a stream's clients here missed while Redis was away, then what
    /// came meanwhile; or, if that has a hole no client could see (Redis
    /// no longer keeps all it missed), nothing: the catch-up is abandoned.
    fn resolve_catch_up(
        &mut self,
        stream: StreamKey,
        after: u64,
        known: &str,
        sit_out: &[ClientId],
        reply: Option<HeadReply>,
    ) {
        let held = self
            .cluster
            .as_mut()
            .and_then(|c| c.catching_up.remove(&stream))
            .unwrap_or_default()
            .held;
        let Some((reply, head, epoch)) =
            reply.and_then(|r| r.position.clone().map(|(head, epoch)| (r, head, epoch)))
        else {
            // What the bus brought meanwhile may follow a hole that only
            // Redis's answer fills: none of it goes out.
            return self.catch_up_unanswered(&stream, sit_out);
        };
        let mut last = after;
        // The kept publications up to where a new epoch began belong to the
        // epoch before it: the one known here, if that is the one the new
        // epoch was set over.
        let mut older: Option<(u64, Arc<str>)> = None;
        if epoch != known {
            if reply.prev.as_deref() == Some(known) {
                older = Some((reply.base, Arc::from(known)));
            } else {
                // Redis lost the stream (its numbering began again: all it
                // kept is new to us), or its epoch changed more than once:
                // the clients learn of the hole from the new epoch, and get
                // only what is surely of it.
                last = reply.from.unwrap_or(0).max(reply.base);
            }
        }
        let epoch: Arc<str> = epoch.into();
        let mut kept = Vec::new();
        for entry in reply.entries {
            if entry.seq <= last {
                continue;
            }
            let labelled = match &older {
                Some((base, known)) if entry.seq <= *base => Arc::clone(known),
                _ => Arc::clone(&epoch),
            };
            if let Some(publication) = self.local_publication(entry.publication) {
                last = entry.seq;
                kept.push(Held {
                    seq: entry.seq,
                    epoch: labelled,
                    publication,
                    time: time_of(entry.ts),
                });
            }
        }
        let mut came = Vec::new();
        for entry in held {
            if entry.seq > last {
                last = entry.seq;
                came.push(entry);
            }
        }
        if !is_whole(after, known, kept.iter().chain(&came), head, &epoch) {
            let why = "found a hole in what Redis still keeps";
            return self.abandon_catch_up(&stream, &stream.target(), Close::CatchUpFailed, why);
        }
        // What Redis kept from before is for the clients that were here
        // through the outage; those that came meanwhile sit it out (they
        // may have it already, from another hub), behind a replay of their
        // own that is dropped after.
        let sitting = self.sit_out(&stream, sit_out);
        self.deliver_held(&stream, kept);
        self.stand_up(&stream, &sitting);
        self.deliver_held(&stream, came);
    }

    /// Delivers publications a catch-up gathered, in their order.
    fn deliver_held(&mut self, stream: &StreamKey, entries: Vec<Held>) {
        for entry in entries {
            self.deliver_numbered(
                stream,
                entry.seq,
                entry.epoch,
                entry.publication,
                entry.time,
            );
        }
    }

    /// Redis did not answer a stream's catch-up. Cut off again, the next
    /// return catches the stream up from where it is, and until then the
    /// bus's publications wait as after the pubsub link's loss (what it
    /// brought meanwhile is read again from Redis's history); the clients
    /// that sat this one out sit that one out. Still up (Redis refused the
    /// question), nothing will fill the hole: the catch-up is abandoned.
    fn catch_up_unanswered(&mut self, stream: &StreamKey, sit_out: &[ClientId]) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        if !cluster.up {
            cluster.bus_gap = true;
            if !sit_out.is_empty() {
                let sitting = cluster.joined_alone.entry(stream.clone()).or_default();
                sitting.extend(sit_out.iter().copied());
            }
            return;
        }
        let why = "was not answered by Redis";
        self.abandon_catch_up(stream, &stream.target(), Close::CatchUpFailed, why);
    }

    /// A catch-up that cannot be done: one that holds more than a client's
    /// queue may, or that Redis did not take or answer. It ends here,
    /// honestly. What it held is dropped and Redis's answer forgotten, and
    /// every client here that follows the stream (or waits for Redis on
    /// it) is closed with 1013 (`close`): each of them would have been a
    /// slow consumer once given what was held, or left with a hole it
    /// cannot see, and reconnecting it resumes from Redis's history
    /// (`recovered: false` if Redis no longer keeps it).
    fn abandon_catch_up(&mut self, stream: &StreamKey, target: &Target, close: Close, why: &str) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        cluster.catching_up.remove(stream);
        cluster.last.remove(stream);
        let of_stream = |awaiting: &Awaiting| matches!(awaiting, Awaiting::CatchUp { stream: s, .. } if s == stream);
        let marked = &mut cluster.marked;
        cluster.heads.retain(|ticket, awaiting| {
            let keep = !of_stream(awaiting);
            if !keep {
                // Its mark, if in first, waits for nothing now.
                marked.remove(ticket);
            }
            keep
        });
        cluster
            .answered
            .retain(|_, (awaiting, _, _)| !of_stream(awaiting));
        let mut closing: HashSet<ClientId> = self.audience(target).into_iter().collect();
        closing.extend(
            self.clients
                .iter()
                .filter(|(_, c)| c.replays.iter().any(|r| r.stream == *stream))
                .map(|(id, _)| *id),
        );
        log::warn!(
            "the catch-up of {:?} after a Redis cut-off {why}: closing its {} client(s) here with 1013, to resume from Redis",
            stream.topic(),
            closing.len()
        );
        for id in closing {
            self.close(id, close, true);
        }
    }

    /// Puts clients behind a replay of `stream` that nothing resolves, so
    /// deliveries skip them; those it did so for.
    fn sit_out(&mut self, stream: &StreamKey, ids: &[ClientId]) -> Vec<ClientId> {
        let mut sitting = Vec::new();
        for id in ids {
            let Some(client) = self.clients.get_mut(id) else {
                continue;
            };
            // Already waiting for Redis on this stream: its own answer
            // decides what it gets.
            if client.replays.iter().any(|r| r.stream == *stream) {
                continue;
            }
            client
                .replays
                .push(Replaying::waiting(stream.clone(), SITTING_OUT));
            self.replaying.insert(*id);
            sitting.push(*id);
        }
        sitting
    }

    /// Ends [`sit_out`](Router::sit_out): what they skipped is dropped.
    fn stand_up(&mut self, stream: &StreamKey, ids: &[ClientId]) {
        for id in ids {
            let Some(client) = self.clients.get_mut(id) else {
                continue;
            };
            client
                .replays
                .retain(|r| !(r.stream == *stream && r.waits_for(SITTING_OUT)));
            if client.replays.is_empty() {
                self.replaying.remove(id);
            }
        }
    }

    /// A client joined a session at connect: its claim is checked in Redis
    /// before it hears anything of it. If the queue to Redis cannot take
    /// the question, it is not in the session, and is told `busy`.
    pub(super) fn cluster_claim(&mut self, id: ClientId, session: &str) {
        let topic = Topic::Session(session.to_owned());
        if let Opening::Busy = self.cluster_open_stream(id, &topic, &None, None, false) {
            let why = self.not_opened(id, &topic, false);
            self.error(id, ErrorCode::Busy, &why, None);
        }
    }

    // --- presence ----------------------------------------------------------

    /// A user has a first connection here; `false` when presence is this
    /// hub's alone.
    pub(super) fn cluster_user_here(&mut self, user: &str) -> bool {
        match &self.cluster {
            Some(cluster) if cluster.up => cluster.link.send(Out::Join {
                user: user.to_owned(),
            }),
            _ => false,
        }
    }

    /// A user's last connection here is gone.
    pub(super) fn cluster_user_gone(&mut self, user: &str) -> bool {
        match &self.cluster {
            Some(cluster) if cluster.up => cluster.link.send(Out::Leave {
                user: user.to_owned(),
            }),
            _ => false,
        }
    }

    /// A status a user set here.
    pub(super) fn cluster_status(&mut self, user: &str, status: Status) -> bool {
        match &self.cluster {
            Some(cluster) if cluster.up => cluster.link.send(Out::Status {
                user: user.to_owned(),
                status,
            }),
            _ => false,
        }
    }

    // --- commands across hubs ----------------------------------------------

    /// A command for a client of another hub goes there, and its answer
    /// comes back to `waiter`; a close of many goes to every hub. Returns
    /// the command if it is this hub's to carry out.
    pub(super) fn route_command(
        &mut self,
        command: Command,
        waiter: Waiter,
    ) -> Option<(Command, Waiter)> {
        let Some(cluster) = self.cluster.as_ref().filter(|c| c.up) else {
            return Some((command, waiter));
        };
        let client = match &command {
            Command::Subscribe { client, .. }
            | Command::Unsubscribe { client, .. }
            | Command::SetMeta { client, .. } => Some(client.as_str()),
            Command::Close {
                target: Target::Client(client),
                ..
            } => Some(client.as_str()),
            Command::Close { .. } => None,
            Command::Subscribers { .. } | Command::Presence => return Some((command, waiter)),
        };
        match client {
            Some(name) if self.names.contains_key(name) => Some((command, waiter)),
            Some(name) => {
                let Some(hub) = wire::hub_of(name).filter(|h| *h != cluster.hub()) else {
                    return Some((command, waiter));
                };
                let Some(cmd) = WireCommand::of(&command) else {
                    return Some((command, waiter));
                };
                let channel = cluster.channel_of(hub);
                let id = cluster.next_command;
                let message = Wire::Cmd {
                    from: cluster.hub().to_owned(),
                    id,
                    cmd,
                };
                let Ok(body) = wire::frame(&message) else {
                    return Some((command, waiter));
                };
                if !cluster.link.send(Out::Send { channel, body }) {
                    return Some((command, waiter));
                }
                if let Some(cluster) = &mut self.cluster {
                    cluster.next_command += 1;
                    cluster
                        .commands
                        .insert(id, (waiter, Instant::now() + ANSWER_TIMEOUT));
                }
                None
            }
            None => {
                // Every hub closes its own; this one answers with its count.
                if let Some(cmd) = WireCommand::of(&command) {
                    let message = Wire::Cmd {
                        from: cluster.hub().to_owned(),
                        id: 0,
                        cmd,
                    };
                    if let Ok(body) = wire::frame(&message) {
                        cluster.link.send(Out::Send {
                            channel: cluster.bus(),
                            body,
                        });
                    }
                }
                Some((command, waiter))
            }
        }
    }

    /// Answers a waiter, here or on another hub.
    pub(super) fn answer(&mut self, waiter: Waiter, answer: Answer) {
        match waiter {
            Waiter::Caller(reply) => {
                let _ = reply.try_send(answer);
            }
            Waiter::Disconnect(reply) => {
                let found = matches!(answer, Answer::Count(n) if n > 0)
                    || matches!(answer, Answer::Done(true));
                let _ = reply.try_send(found);
            }
            Waiter::Service {
                client,
                correlation,
            } => self.service_answer(client, correlation.as_deref(), answer),
        }
    }

    /// A command from another hub, for this hub's clients.
    fn remote_command(&mut self, from: &str, id: u64, cmd: WireCommand) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        if from == cluster.hub() {
            return;
        }
        let answer = match cmd.command() {
            Ok(command) => self.command(command),
            Err(why) => Answer::Refused(why),
        };
        if id == 0 {
            return;
        }
        let Some(cluster) = &self.cluster else {
            return;
        };
        let message = Wire::Reply {
            id,
            answer: WireAnswer::of(&answer),
        };
        if let Ok(body) = wire::frame(&message) {
            cluster.link.send(Out::Send {
                channel: cluster.channel_of(from),
                body,
            });
        }
    }

    fn remote_answer(&mut self, id: u64, answer: Answer) {
        let waiter = self
            .cluster
            .as_mut()
            .and_then(|c| c.commands.remove(&id))
            .map(|(waiter, _)| waiter);
        if let Some(waiter) = waiter {
            self.answer(waiter, answer);
        }
    }

    // --- application requests ----------------------------------------------

    /// A request nobody here can answer goes to a hub with a service
    /// connection that handles its type, in turn: the hub it went to,
    /// `None` if there is none.
    pub(super) fn forward_request(
        &mut self,
        id: ClientId,
        kind: &str,
        message: &RawValue,
        correlation: Option<&RawValue>,
    ) -> Option<String> {
        let client = self.clients.get(&id)?;
        let cluster = self.cluster.as_mut().filter(|c| c.up)?;
        let own = cluster.hub().to_owned();
        let mut hubs: Vec<&String> = cluster
            .hubs
            .iter()
            .filter(|(hub, (beat, _))| beat.serves(kind) && **hub != own)
            .map(|(hub, _)| hub)
            .collect();
        if hubs.is_empty() {
            return None;
        }
        hubs.sort();
        let hub = hubs[cluster.turn % hubs.len()].clone();
        cluster.turn = cluster.turn.wrapping_add(1);
        let request = Wire::Request(wire::Request {
            client: client.name.to_string(),
            user: client.identity.user_id.clone(),
            session: client.sessions.first().map(|s| s.to_string()),
            meta: client.meta.clone(),
            message: message.to_owned(),
            corr: correlation.map(RawValue::to_owned),
        });
        let body = wire::frame(&request).ok()?;
        let channel = cluster.channel_of(&hub);
        cluster
            .link
            .send(Out::Send { channel, body })
            .then_some(hub)
    }

    /// One message for one other hub; `false` if it could not be queued.
    pub(super) fn cluster_send(&mut self, hub: &str, message: &Wire) -> bool {
        let Some(cluster) = self.cluster.as_mut().filter(|c| c.up) else {
            return false;
        };
        let Ok(body) = wire::frame(message) else {
            return false;
        };
        let channel = cluster.channel_of(hub);
        cluster.link.send(Out::Send { channel, body })
    }

    // --- the heartbeat -----------------------------------------------------

    /// Every tick: the heartbeat when due, answers that will not come.
    pub(super) fn cluster_tick(&mut self, now: Instant) {
        self.overdue_answers(now);
        self.overdue_publications(now);
        if self.cluster_up() {
            self.hand_over_new_epochs();
        }
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let expired: Vec<u64> = cluster
            .commands
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        let mut gone = Vec::new();
        cluster.hubs.retain(|hub, (_, seen)| {
            let alive = now.saturating_duration_since(*seen) < LEASE;
            if !alive {
                gone.push(hub.clone());
            }
            alive
        });
        let due = cluster.up && now >= cluster.next_beat;
        for id in expired {
            if let Some((waiter, _)) = self.cluster.as_mut().and_then(|c| c.commands.remove(&id)) {
                // The other hub did not answer in time: as if not found.
                self.answer(waiter, Answer::Done(false));
            }
        }
        if !gone.is_empty() {
            // Requests sent there will not be answered.
            self.hubs_lost(Some(&gone));
        }
        if due {
            self.heartbeat(now);
        }
        // Positions of streams nobody here follows any more are forgotten,
        // and clients gone.
        let channels = &self.channels;
        let sessions = &self.sessions;
        let users = &self.users;
        let clients = &self.clients;
        if let Some(cluster) = &mut self.cluster {
            cluster.joined_alone.retain(|_, ids| {
                ids.retain(|id| clients.contains_key(id));
                !ids.is_empty()
            });
            cluster.last.retain(|stream, _| match stream {
                StreamKey::Channel(name) => channels.count(name) > 0,
                StreamKey::Session(id) => sessions.members(id).next().is_some(),
                StreamKey::User(id) => users.count(id) > 0,
            });
        }
    }

    /// A service connection came or went: the other hubs hear of it now,
    /// not at the next heartbeat, so their requests go where one is.
    pub(super) fn services_changed(&mut self) {
        // Other hubs ask whether there is one, and which types they handle.
        if self.services.news() && self.cluster_up() {
            self.heartbeat(Instant::now());
        }
    }

    fn heartbeat(&mut self, now: Instant) {
        let sessions: Vec<String> = self.sessions.owned_in_use().map(str::to_owned).collect();
        let Some(cluster) = &self.cluster else {
            return;
        };
        let beat = HubBeat {
            hub: cluster.hub().to_owned(),
            connections: self.clients.len(),
            users: self.users.len(),
            channels: self.channels.len(),
            sessions: self.sessions.len(),
            services: self.services.count(),
            messages_sent: self.counters.messages_sent,
            messages_received: self.counters.messages_received,
            up_since: cluster.up_since,
            handles: self.services.declared(),
        };
        let Ok(framed) = wire::frame(&Wire::Hub(beat)) else {
            return;
        };
        let sent = cluster.link.send(Out::Heartbeat {
            beat: framed,
            sessions,
        });
        // Not sent (the queue to Redis is full): tried again at the next tick.
        if sent && let Some(cluster) = &mut self.cluster {
            cluster.next_beat = now + HEARTBEAT;
        }
    }
}

/// `kept` then `pending`, by `seq`, each once.
fn merge(
    kept: Vec<(Arc<Entry>, Arc<str>)>,
    pending: Vec<(Arc<Entry>, Arc<str>)>,
) -> Vec<(Arc<Entry>, Arc<str>)> {
    let mut all: Vec<(Arc<Entry>, Arc<str>)> = kept.into_iter().chain(pending).collect();
    all.sort_by_key(|(e, _)| e.seq);
    all.dedup_by_key(|(e, _)| e.seq);
    all
}

/// Whether `entries`, delivered after `after` of `known`, leave no hole a
/// client cannot see: within an epoch each follows the one before (a new
/// epoch tells of a hole), up to Redis's `head` if they end in its `epoch`.
fn is_whole<'a>(
    after: u64,
    known: &'a str,
    entries: impl Iterator<Item = &'a Held>,
    head: u64,
    epoch: &str,
) -> bool {
    let (mut seq, mut at) = (after, known);
    for entry in entries {
        if *entry.epoch == *at && entry.seq != seq + 1 {
            return false;
        }
        (seq, at) = (entry.seq, &entry.epoch);
    }
    at != epoch || seq >= head
}

/// Whether `entries` hold every publication after `after` up to `head` at
/// least, in `epoch`, without a hole.
fn is_run(entries: &[(Arc<Entry>, Arc<str>)], after: u64, head: u64, epoch: &str) -> bool {
    let mut next = after + 1;
    for (entry, entry_epoch) in entries {
        if entry.seq < next {
            continue;
        }
        if entry.seq != next || **entry_epoch != *epoch {
            return false;
        }
        next += 1;
    }
    next > head
}

fn topic_name(topic: &Topic) -> &str {
    match topic {
        Topic::Channel(name) => name,
        Topic::Session(id) => id,
    }
}
