//! Delivery: frames into clients' queues, fan-out, slow consumers, and the
//! hand-off of what a batch queued to the writer pool.
//!
//! Runs on the router thread. A fan-out encodes its message once per
//! envelope in use among its recipients; every recipient's queue holds a
//! reference to the same bytes. Clients that agreed to permessage-deflate
//! get the frame's compressed variant instead, made once per frame for all
//! of them (see [`SharedFrame`]). A push that finds
//! a link idle puts it on this batch's list for its writer; at the end of
//! the batch each writer gets its list in one hand-off (one wake-up at
//! most), or, when only a few links wait (a reply to one request), the
//! router writes them itself and spares the wake-up.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::value::RawValue;
use tungstenite::Bytes;

use super::Router;
use super::batches::BatchKey;
use super::publishing::{Key, Publisher};
use crate::config::Config;
use crate::history::{Appended, StreamKey};
use crate::link::{Drained, Link, Push, QueueLimits, Scratch};
use crate::protocol::{
    Close, Envelope, ErrorCode, Kind, Message, Position, Topic, USER_PREFIX, error_data, raw,
};
use crate::publish::{Filter, Publication, Target};
use crate::subscriptions::ClientId;
use crate::throttle::warn_throttled;
use crate::websocket::{Compression, SharedFrame};
use crate::writer::Outlet;

/// At most this many links queued in a batch: the router writes them
/// itself rather than waking a writer (replies, a few deliveries). A wake-up
/// and a switch to a writer cost more than these few non-blocking sends;
/// a fan-out to more goes to the writers, which can run on other cores.
const DIRECT_WRITES: usize = 16;

/// Who a fan-out reaches.
pub(super) enum Audience<'a> {
    All,
    /// Clients allowed to see user-level events (presence).
    Trusted,
    Channel(&'a str),
    Session(&'a str),
    User(&'a str),
    Client(&'a str),
    Filter(&'a Filter),
}

/// The links this batch scheduled, per writer, and the pool.
pub(super) struct Delivery {
    writers: Arc<dyn Outlet>,
    scheduled: Vec<Vec<Arc<Link>>>,
    count: usize,
    scratch: Scratch,
    /// Compressed variants of data frames for the clients that agreed to
    /// permessage-deflate (see [`SharedFrame`]).
    compression: Compression,
}

impl Push {
    pub(super) fn is_slow(self) -> bool {
        matches!(self, Push::Slow)
    }
}

impl Delivery {
    pub(super) fn new(writers: Arc<dyn Outlet>, config: &Config) -> Delivery {
        let meters = Arc::clone(writers.meters());
        Delivery {
            scheduled: (0..writers.count()).map(|_| Vec::new()).collect(),
            writers,
            count: 0,
            scratch: Scratch::timed(meters),
            compression: Compression::new(config.compression_min_size),
        }
    }

    pub(super) fn limits(&self, config: &Config) -> QueueLimits {
        QueueLimits {
            messages: config.max_queue,
            bytes: config.max_queue_bytes,
        }
    }

    /// How many writers the pool has.
    pub(super) fn writers(&self) -> usize {
        self.writers.count()
    }

    /// Queues a data frame shared by a fan-out for `link`: compressed if
    /// the client agreed to permessage-deflate (the variant is made once,
    /// for the first client that needs it), else the plain bytes.
    pub(super) fn push_shared(
        &mut self,
        link: &Arc<Link>,
        frame: &mut SharedFrame,
        limits: QueueLimits,
    ) -> Push {
        let frame = self.frame_for(link, frame);
        self.push(link, frame, limits)
    }

    /// The bytes of a fan-out's `frame` that `link` gets: compressed if the
    /// client agreed to permessage-deflate (made once, for the first client
    /// that needs it), else the plain frame.
    pub(super) fn frame_for(&mut self, link: &Link, frame: &mut SharedFrame) -> Bytes {
        self.compression.frame_for(frame, link.deflate)
    }

    /// Queues a data frame for `link` alone, compressed if it agreed.
    pub(super) fn push_data(
        &mut self,
        link: &Arc<Link>,
        frame: Bytes,
        limits: QueueLimits,
    ) -> Push {
        match link.deflate {
            Some(_) => self.push_shared(link, &mut SharedFrame::new(frame), limits),
            None => self.push(link, frame, limits),
        }
    }

    /// Queues `frame` as it is (a control frame, or a data frame already
    /// chosen) for `link`, scheduling the link if it was idle.
    pub(super) fn push(&mut self, link: &Arc<Link>, frame: Bytes, limits: QueueLimits) -> Push {
        let pushed = link.push(frame, limits);
        if let Push::Queued { schedule: true } = pushed {
            self.schedule(link);
        }
        pushed
    }

    /// Queues a protocol Ping, noting where it is in the queue (see
    /// [`Link::push_ping`]).
    pub(super) fn push_ping(&mut self, link: &Arc<Link>, limits: QueueLimits) -> Push {
        let pushed = link.push_ping(crate::protocol::ping_frame(), limits);
        if let Push::Queued { schedule: true } = pushed {
            self.schedule(link);
        }
        pushed
    }

    /// Queues a Close as `link`'s last frame (see [`Link::close`]).
    pub(super) fn close(&mut self, link: &Arc<Link>, close: Close, abort: bool) {
        self.close_with(link, close.frame(), abort);
    }

    /// Queues an encoded Close frame as `link`'s last frame.
    pub(super) fn close_with(&mut self, link: &Arc<Link>, frame: Bytes, abort: bool) {
        if link.close(frame, abort) {
            self.schedule(link);
        }
    }

    /// Queues a refused client's last frames (see [`Link::refuse`]).
    pub(super) fn refuse(&mut self, link: &Arc<Link>, frames: Vec<Bytes>) {
        if link.refuse(frames) {
            self.schedule(link);
        }
    }

    /// Puts an idle link that now has frames on its writer's list.
    fn schedule(&mut self, link: &Arc<Link>) {
        let lists = self.scheduled.len();
        self.scheduled[link.writer % lists].push(Arc::clone(link));
        self.count += 1;
    }

    /// The end of a batch: every scheduled link goes to its writer, each
    /// writer woken at most once; a few are written right here instead.
    pub(super) fn flush(&mut self) {
        if self.count == 0 {
            return;
        }
        let direct = self.count <= DIRECT_WRITES;
        let Delivery {
            writers,
            scheduled,
            scratch,
            ..
        } = self;
        for (writer, links) in scheduled.iter_mut().enumerate() {
            if direct {
                // The router holds these links (it scheduled them), so it
                // may drain them; only what the socket refuses goes on.
                links.retain(|link| link.drain(scratch) == Drained::Blocked);
            }
            writers.hand_off(writer, links);
        }
        self.count = 0;
    }

    pub(super) fn stop_writers(&mut self) {
        self.flush();
        self.writers.stop();
    }
}

impl Router {
    /// Sends one encoded data frame to one client (compressed if it agreed).
    pub(super) fn send(&mut self, id: ClientId, frame: Bytes) {
        let limits = self.delivery.limits(&self.config);
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        match self.delivery.push_data(&client.link, frame, limits) {
            Push::Queued { .. } => {
                self.counters.messages_sent += 1;
                self.last_activity = Some(SystemTime::now());
            }
            Push::Slow => self.mark_slow(id),
            Push::Gone => {}
        }
    }

    /// Sends one message to one client, in its envelope.
    pub(super) fn send_message(&mut self, id: ClientId, message: &Message<'_>) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let frame = message.encode(client.envelope);
        self.send(id, frame);
    }

    pub(super) fn reply<D: Serialize>(
        &mut self,
        id: ClientId,
        kind: Kind,
        topic: Option<&Topic>,
        data: Option<D>,
        correlation: Option<&RawValue>,
    ) {
        let data = data.map(|d| raw(&d));
        let message = Message::new(kind.as_str(), data.as_deref())
            .topic(topic)
            .correlation(correlation);
        self.send_message(id, &message);
    }

    pub(super) fn error(
        &mut self,
        id: ClientId,
        code: ErrorCode,
        message: &str,
        correlation: Option<&RawValue>,
    ) {
        self.counters.errors_sent += 1;
        self.analytics.error(code);
        if let Some(client) = self.clients.get(&id) {
            log::debug!("error {code} to client {}: {message}", client.name);
        }
        let data = error_data(code, message);
        let message = Message::new(Kind::Error.as_str(), Some(&data)).correlation(correlation);
        self.send_message(id, &message);
    }

    /// Publishes: into its target's batch when batched, otherwise now
    /// (after the target's held batch, so nothing is reordered), once per
    /// idempotency `key`; `publisher` is told how many clients it reaches,
    /// or why it was not published (see [`publishing`](super::publishing)).
    pub(super) fn publish(
        &mut self,
        mut publication: Publication,
        key: Option<Key>,
        publisher: Publisher,
    ) {
        // The channel `user:<id>` is that user's own stream.
        if let Target::Channel(name) = &publication.target
            && let Some(user) = name.strip_prefix(USER_PREFIX)
        {
            publication.target = Target::User(user.to_owned());
        }
        // With other hubs, it goes through Redis and is delivered when it
        // comes back, like on every hub.
        self.route_publication(publication, key, publisher);
    }

    /// Delivers to this hub's clients: into its target's batch when
    /// batched, otherwise now. A publication to a stream is numbered here,
    /// unless Redis numbered it (`numbered`).
    pub(super) fn publish_here(
        &mut self,
        publication: Publication,
        numbered: Option<Appended>,
        time: SystemTime,
    ) -> usize {
        if let Target::Channel(name) = &publication.target {
            self.analytics.channel_published(name);
        }
        let reached = self.deliver_publication(publication, numbered, time);
        self.analytics.delivered(reached);
        reached
    }

    /// [`publish_here`](Router::publish_here) once counted: held for a
    /// batch, or numbered and delivered now (timed, if it is sampled).
    fn deliver_publication(
        &mut self,
        publication: Publication,
        numbered: Option<Appended>,
        time: SystemTime,
    ) -> usize {
        if let Some(key) = BatchKey::of(&publication.target) {
            // A client catching up on the stream gets it after its replay,
            // one by one: a batch would overtake the replay.
            let replaying =
                StreamKey::of(&publication.target).is_some_and(|s| self.is_replaying(&s));
            if publication.batched && !replaying {
                return self.hold(key, publication, numbered);
            }
            if self.batches.is_held(&key) {
                self.flush_batch(&key);
            }
        }
        let appended = match numbered {
            Some(numbered) => Some(numbered),
            None => self.record(
                &publication.target,
                &publication.kind,
                publication.data.as_deref(),
                publication.from.as_ref(),
                time,
            ),
        };
        let topic = publication.target.topic();
        let position = appended.as_ref().map(|a| Position {
            seq: a.entry.seq,
            epoch: &a.epoch,
        });
        let message = Message::new(&publication.kind, publication.data.as_deref())
            .topic(topic.as_ref())
            .origin(publication.from.as_ref())
            .correlation(publication.correlation_id.as_deref())
            .position(position)
            .at(time);
        self.analytics.stamp_publication(&self.meters.latency);
        let reached = self.deliver(&publication.target, &message);
        self.analytics.clear_stamp();
        reached
    }

    /// Offers a message to every client of `target`.
    /// Clients catching up on the target's stream are skipped: what is
    /// published there goes into their replay (see [`replay`](super::replay)).
    pub(super) fn deliver(&mut self, target: &Target, message: &Message<'_>) -> usize {
        let replaying = match self.replaying.is_empty() {
            true => None,
            false => StreamKey::of(target),
        };
        let skip = replaying.as_ref();
        match target {
            Target::Broadcast => self.fan_out(Audience::All, message, None),
            Target::Authenticated => self.fan_out(Audience::Trusted, message, None),
            Target::Channel(name) => self.fan_out(Audience::Channel(name), message, skip),
            Target::Session(id) => self.fan_out(Audience::Session(id), message, skip),
            Target::User(id) => self.fan_out(Audience::User(id), message, skip),
            Target::Client(name) => self.fan_out(Audience::Client(name), message, None),
            Target::Filter(filter) => self.fan_out(Audience::Filter(filter), message, None),
        }
    }

    /// How many clients `target` reaches now (a filter: every client it
    /// might accept, without running it).
    pub(super) fn audience_size(&self, target: &Target) -> usize {
        match target {
            Target::Broadcast | Target::Filter(_) => self.clients.len(),
            Target::Authenticated => self
                .clients
                .values()
                .filter(|c| c.identity.sees_private_events())
                .count(),
            Target::Channel(name) => self.channels.count(name),
            Target::Session(id) => self.sessions.members(id).count(),
            Target::User(id) => self.users.count(id),
            Target::Client(name) => usize::from(self.names.contains_key(name.as_str())),
        }
    }

    /// The clients `target` reaches now (server-side control; not a hot path).
    pub(super) fn audience(&self, target: &Target) -> Vec<ClientId> {
        match target {
            Target::Broadcast => self.clients.keys().copied().collect(),
            Target::Authenticated => self
                .clients
                .iter()
                .filter(|(_, c)| c.identity.sees_private_events())
                .map(|(id, _)| *id)
                .collect(),
            Target::Channel(name) => self.channels.members(name).collect(),
            Target::Session(id) => self.sessions.members(id).collect(),
            Target::User(id) => self.users.members(id).collect(),
            Target::Client(name) => self.names.get(name.as_str()).copied().into_iter().collect(),
            Target::Filter(filter) => self
                .clients
                .iter()
                .filter(|(_, c)| {
                    panic::catch_unwind(AssertUnwindSafe(|| (filter.0)(&c.as_ref())))
                        .unwrap_or(false)
                })
                .map(|(id, _)| *id)
                .collect(),
        }
    }

    /// Offers one message to every client of `audience`: it is encoded once
    /// per envelope in use among them, and each recipient's queue shares
    /// those bytes. Clients whose queue is full are closed afterwards; the
    /// count is of clients it was queued for (or, replaying `skip`, will get
    /// it after their replay: counted as sent when the replay sends it).
    /// A publication being timed (see [`crate::analytics`]) arms the
    /// latency probe with its first frame before that frame is queued.
    pub(super) fn fan_out(
        &mut self,
        audience: Audience<'_>,
        message: &Message<'_>,
        skip: Option<&StreamKey>,
    ) -> usize {
        let limits = self.delivery.limits(&self.config);
        let clients = &self.clients;
        let delivery = &mut self.delivery;
        let latency = &self.meters.latency;
        let mut stamp = self.analytics.take_stamp();
        let mut armed = None;
        let mut queued = 0;
        let mut deferred = 0;
        let mut slow = Vec::new();
        let mut frames: [Option<SharedFrame>; Envelope::COUNT] = Default::default();
        let mut offer = |id: ClientId| {
            if let Some(client) = clients.get(&id) {
                if let Some(stream) = skip
                    && client.replays.iter().any(|r| r.stream == *stream)
                {
                    deferred += 1;
                    return;
                }
                let frame = frames[client.envelope.index()]
                    .get_or_insert_with(|| SharedFrame::new(message.encode(client.envelope)));
                let frame = delivery.frame_for(&client.link, frame);
                if let Some(born) = stamp.take() {
                    latency.arm(&frame, born);
                    armed = Some((frame.clone(), born));
                }
                match delivery.push(&client.link, frame, limits) {
                    Push::Queued { .. } => queued += 1,
                    Push::Slow => slow.push(id),
                    Push::Gone => {}
                }
            }
        };
        match audience {
            Audience::All => clients.keys().copied().for_each(&mut offer),
            Audience::Channel(name) => self.channels.members(name).for_each(&mut offer),
            Audience::Session(name) => self.sessions.members(name).for_each(&mut offer),
            Audience::User(name) => self.users.members(name).for_each(&mut offer),
            Audience::Client(name) => self
                .names
                .get(name)
                .copied()
                .into_iter()
                .for_each(&mut offer),
            Audience::Trusted => clients
                .iter()
                .filter(|(_, c)| c.identity.sees_private_events())
                .for_each(|(id, _)| offer(*id)),
            Audience::Filter(filter) => {
                let mut panicked = false;
                for (id, client) in clients {
                    // The application's code, on the router thread: a panic
                    // in it must not take the hub down.
                    let accepted =
                        panic::catch_unwind(AssertUnwindSafe(|| (filter.0)(&client.as_ref())));
                    match accepted {
                        Ok(true) => offer(*id),
                        Ok(false) => {}
                        Err(_) => panicked = true,
                    }
                }
                if panicked {
                    log::error!(
                        "a publish filter panicked; the clients it panicked on were skipped"
                    );
                }
            }
        }
        if let Some((frame, born)) = armed {
            match queued {
                // Queued for nobody: never written, the probe is free.
                0 => latency.disarm(&frame),
                _ => self.analytics.armed(frame, born),
            }
        }
        // Only what was queued is sent; what a replay holds counts when sent.
        self.counters.messages_sent += queued as u64;
        if queued > 0 {
            self.last_activity = Some(SystemTime::now());
        }
        for id in slow {
            self.mark_slow(id);
        }
        queued + deferred
    }

    /// Puts a client on the list of slow consumers to close after this event.
    pub(super) fn mark_slow(&mut self, id: ClientId) {
        if let Some(client) = self.clients.get_mut(&id)
            && !client.slow
        {
            client.slow = true;
            self.slow.push(id);
        }
    }

    /// Closes the clients found slow while handling the last event.
    ///
    /// Closing one may tell the others its user went offline, which may find
    /// more slow clients: they join the list, and this loop (not recursion)
    /// works through them, however many there are.
    pub(super) fn close_slow_consumers(&mut self) {
        while let Some(id) = self.slow.pop() {
            if let Some(client) = self.clients.get(&id) {
                warn_throttled!(
                    "client {} is too slow ({} messages queued): closing it with 1013",
                    client.name,
                    client.link.queued()
                );
                self.counters.slow_consumers += 1;
            }
            self.close(id, Close::TooSlow, true);
        }
    }
}
