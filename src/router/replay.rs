//! Streams on the router: numbering each publication to a channel, a session
//! or a user (in the history store, [`crate::history`]), answering a
//! `subscribe` with where its stream stands, and replaying what a client
//! missed since its `since`: each client's [`Replaying`] bookkeeping.
//!
//! Runs on the router thread, which is what makes the seam exact: the
//! replay is queued in the same step as the subscription, so every later
//! publication comes after it, with no gap and no duplicate. A replay that
//! does not fit in half of the client's queue limits is paced instead: it
//! is fed as the client reads (the loop pumps it every
//! [`REPLAY_POLL`](super::REPLAY_POLL) while one is under way), and live
//! publications of that stream wait behind it, so the client never becomes
//! a slow consumer for catching up.
//!
//! A catch-up is bounded like any queue. Read from this hub's history it
//! holds nothing but a cursor: what it has still to send, the missed
//! publications and the live ones behind them, is the history's, read as
//! the client reads; if the history forgets what the client has not got
//! yet, the client is a slow consumer (1013) and, resuming, is told
//! `recovered: false`. What only the replay holds (publications Redis
//! numbered: its answer, and what came while it was asked) counts against
//! the client's queue limits with what is queued for it; past them, 1013.
//!
//! A replay outlives no right: whatever ends the client's right to the
//! stream stops it ([`Router::leave`], a refresh), and each step checks
//! again that the client still follows the stream before queueing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde_json::value::RawValue;

use super::Router;
use super::batches::BatchKey;
use super::cluster::Opening;
use crate::history::{Appended, Entry, Recovery, StreamKey};
use crate::link::{Push, QueueLimits};
use crate::protocol::{Kind, Message, Origin, Position, Since, Subscribed, Topic, raw};
use crate::publish::Target;
use crate::subscriptions::ClientId;

/// A replay under way for one client and one stream.
#[derive(Debug)]
pub(super) struct Replaying {
    pub stream: StreamKey,
    topic: Topic,
    /// Still to go from this hub's history: every publication after this
    /// `seq` of this epoch, read as the client's queue has room (the live
    /// ones that come meanwhile are kept there too). `None` once read to
    /// the end, or for a replay of what Redis numbered.
    cursor: Option<(u64, Arc<str>)>,
    /// Held for the client, each in its epoch, after what the cursor still
    /// has to read: publications this hub's history does not keep (Redis
    /// numbered them). Counted against the client's queue limits.
    held: VecDeque<(Arc<Entry>, Arc<str>)>,
    /// Bytes of `held` ([`Entry::size`]).
    held_bytes: usize,
    /// Redis has not said yet where the stream stands (see
    /// [`cluster`](super::cluster)): nothing goes out, live ones gather
    /// until the answer with this ticket comes.
    waiting: Option<u64>,
}

impl Replaying {
    /// A subscription waiting for Redis: its publications wait here.
    pub(super) fn waiting(stream: StreamKey, ticket: u64) -> Replaying {
        Replaying {
            topic: stream.topic(),
            stream,
            cursor: None,
            held: VecDeque::new(),
            held_bytes: 0,
            waiting: Some(ticket),
        }
    }

    /// The answer it waits for, if it waits.
    pub(super) fn ticket(&self) -> Option<u64> {
        self.waiting
    }

    /// Whether it waits for the answer with `ticket`.
    pub(super) fn waits_for(&self, ticket: u64) -> bool {
        self.waiting == Some(ticket)
    }

    /// What it holds: what came while it waited.
    pub(super) fn into_pending(self) -> Vec<(Arc<Entry>, Arc<str>)> {
        self.held.into()
    }

    /// Takes over what an earlier replay of the stream still had to send.
    pub(super) fn extend(&mut self, pending: Vec<(Arc<Entry>, Arc<str>)>) {
        for held in pending {
            self.hold(held);
        }
    }

    fn hold(&mut self, held: (Arc<Entry>, Arc<str>)) {
        self.held_bytes += held.0.size();
        self.held.push_back(held);
    }

    fn is_done(&self) -> bool {
        self.waiting.is_none() && self.cursor.is_none() && self.held.is_empty()
    }
}

/// Messages and bytes held for a client behind its catch-ups.
pub(super) fn held(replays: &[Replaying]) -> (usize, usize) {
    replays.iter().fold((0, 0), |(count, bytes), r| {
        (count + r.held.len(), bytes + r.held_bytes)
    })
}

/// Most publications a paced replay reads from the history at once.
const READ_AT_ONCE: usize = 256;

/// Whether what is queued for a client and what its replays hold together
/// pass its queue limits (one message alone may be larger than the byte
/// limit, as in its queue).
fn over_limits(client: &super::Client, limits: QueueLimits) -> bool {
    let (frames, bytes) = client.link.backlog();
    let (count, held_bytes) = held(&client.replays);
    frames + count > limits.messages || (frames + count > 1 && bytes + held_bytes > limits.bytes)
}

/// The message a kept publication is delivered as, live or replayed.
pub(super) fn entry_message<'a>(entry: &'a Entry, topic: &'a Topic, epoch: &'a str) -> Message<'a> {
    Message::new(&entry.kind, entry.data.as_deref())
        .topic(Some(topic))
        .origin(entry.from.as_ref())
        .position(Some(Position {
            seq: entry.seq,
            epoch,
        }))
        .at(entry.time)
}

impl Router {
    /// Numbers a publication to `target` and keeps it, if `target` is a
    /// stream that keeps history; clients replaying that stream get it
    /// after what they are catching up on.
    pub(super) fn record(
        &mut self,
        target: &Target,
        kind: &str,
        data: Option<&RawValue>,
        from: Option<&Origin>,
        time: SystemTime,
    ) -> Option<Appended> {
        let stream = StreamKey::of(target)?;
        let appended = self.history.append(&stream, kind, data, from, time)?;
        self.numbered_alone(&stream);
        self.feed_replays(&stream, &appended, true);
        if self.history.wants_sweep() {
            self.sweep_history(Instant::now());
        }
        Some(appended)
    }

    /// Clients catching up on `stream` get `appended` after what they are
    /// catching up on, if they still follow it. `kept`: it is in this hub's
    /// history, where a replay reading it finds it in its turn; otherwise
    /// (Redis numbered it) the replay holds it, and a client that is then
    /// held more than its queue limits is a slow consumer.
    pub(super) fn feed_replays(&mut self, stream: &StreamKey, appended: &Appended, kept: bool) {
        if self.replaying.is_empty() {
            return;
        }
        let limits = self.delivery.limits(&self.config);
        let history = &self.history;
        let clients = &mut self.clients;
        let mut slow = Vec::new();
        for id in &self.replaying {
            let Some(client) = clients.get_mut(id) else {
                continue;
            };
            if !client.follows(stream) {
                client.replays.retain(|r| r.stream != *stream);
                continue;
            }
            let mut fed = false;
            let mut lost = false;
            for replay in &mut client.replays {
                if replay.stream != *stream || (kept && replay.cursor.is_some()) {
                    continue;
                }
                if let Some((after, epoch)) = replay.cursor.take() {
                    // Redis numbers the stream again: what the cursor had
                    // still to read goes first, held like this one.
                    match history.since(stream, after, &epoch) {
                        Recovery::Recovered(entries) => {
                            for entry in entries {
                                replay.hold((entry, Arc::clone(&epoch)));
                            }
                        }
                        Recovery::Lost => lost = true,
                    }
                }
                replay.hold((Arc::clone(&appended.entry), Arc::clone(&appended.epoch)));
                fed = true;
            }
            if lost || (fed && over_limits(client, limits)) {
                slow.push(*id);
            }
        }
        for id in slow {
            self.mark_slow(id);
        }
    }

    /// Whether a client is catching up on `stream` (its live publications
    /// then go into its replay, not straight to its queue).
    pub(super) fn is_replaying(&self, stream: &StreamKey) -> bool {
        !self.replaying.is_empty()
            && self.replaying.iter().any(|id| {
                self.clients
                    .get(id)
                    .is_some_and(|c| c.replays.iter().any(|r| r.stream == *stream))
            })
    }

    /// A subscription is in place: `subscribed` with where its stream
    /// stands, then, for a `since`, what the client missed. `false` (and
    /// nothing sent) when, with other hubs, the queue to Redis cannot take
    /// the question now: the caller undoes it and says `busy`.
    #[must_use]
    pub(super) fn open_stream(
        &mut self,
        id: ClientId,
        topic: &Topic,
        since: Option<Since>,
        correlation: Option<&RawValue>,
    ) -> bool {
        let stream = StreamKey::of_topic(topic);
        // A held batch has its positions already: out it goes, so the
        // position below counts only what this client is sent.
        if let Some(key) = BatchKey::of(&stream.target())
            && self.batches.is_held(&key)
        {
            self.flush_batch(&key);
        }
        // With other hubs, Redis says where the stream stands.
        match self.cluster_open_stream(id, topic, &since, correlation, true) {
            Opening::Asked => return true,
            Opening::Busy => return false,
            Opening::Here => {}
        }
        let head = self.history.head(&stream);
        let recovered = match (&since, &head) {
            (None, _) => None,
            (Some(_), None) => Some(false),
            (Some(since), Some(_)) => Some(matches!(
                self.history.read(&stream, since.seq, &since.epoch, 0),
                Recovery::Recovered(_)
            )),
        };
        match recovered {
            Some(true) => self.counters.recoveries += 1,
            Some(false) => self.counters.recoveries_lost += 1,
            None => {}
        }
        let data = raw(&Subscribed {
            seq: head.as_ref().map(|h| h.seq),
            epoch: head.as_ref().map(|h| &*h.epoch),
            recovered,
        });
        // Named as its deliveries name it (`user:<id>` for a user stream).
        let named = stream.topic();
        let reply = Message::new(Kind::Subscribed.as_str(), Some(&data))
            .topic(Some(&named))
            .correlation(correlation);
        self.send_message(id, &reply);
        if let (Some(true), Some(since), Some(head)) = (recovered, since, head)
            && head.seq > since.seq
        {
            // What it missed is read from the history as it reads.
            self.start_replay(id, stream, Some((since.seq, head.epoch)), Vec::new());
        }
        true
    }

    /// Starts a client's replay of `stream`: what the history keeps after
    /// `cursor`, then `held` (publications Redis numbered, which the replay
    /// holds). Queued now as far as half its queue limits allow, the rest
    /// as it reads.
    pub(super) fn start_replay(
        &mut self,
        id: ClientId,
        stream: StreamKey,
        cursor: Option<(u64, Arc<str>)>,
        held: Vec<(Arc<Entry>, Arc<str>)>,
    ) {
        let limits = self.delivery.limits(&self.config);
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        // A second `since` for the same stream starts over from it.
        client.replays.retain(|r| r.stream != stream);
        if !client.follows(&stream) {
            return;
        }
        let mut replay = Replaying {
            topic: stream.topic(),
            stream,
            cursor,
            held: VecDeque::new(),
            held_bytes: 0,
            waiting: None,
        };
        replay.extend(held);
        client.replays.push(replay);
        self.replaying.insert(id);
        self.pump_replay(id);
        if self
            .clients
            .get(&id)
            .is_some_and(|client| over_limits(client, limits))
        {
            self.mark_slow(id);
        }
    }

    /// Whether `entries` (a catch-up Redis sent) fit in what client `id`
    /// may be held, with what is queued for it.
    pub(super) fn fits_held(&self, id: ClientId, entries: &[(Arc<Entry>, Arc<str>)]) -> bool {
        let limits = self.delivery.limits(&self.config);
        let Some(client) = self.clients.get(&id) else {
            return true;
        };
        let (frames, bytes) = client.link.backlog();
        let size: usize = entries.iter().map(|(e, _)| e.size()).sum();
        frames + entries.len() <= limits.messages && bytes + size <= limits.bytes
    }

    /// Feeds every replay under way as far as its client's queue allows;
    /// then closes the clients it found too slow.
    pub(super) fn pump_replays(&mut self) {
        let ids: Vec<ClientId> = self.replaying.iter().copied().collect();
        for id in ids {
            self.pump_replay(id);
        }
        self.close_slow_consumers();
    }

    /// Feeds one client's replays up to half its queue limits: first what
    /// the history keeps, read as far as there is room, then what the
    /// replay holds. A replay that is done is dropped, and its stream is
    /// live for the client again. A client whose next publication the
    /// history no longer has is a slow consumer: it missed data, and is
    /// told so when it resumes.
    fn pump_replay(&mut self, id: ClientId) {
        let limits = self.delivery.limits(&self.config);
        let Router {
            clients,
            history,
            delivery,
            replaying,
            counters,
            ..
        } = self;
        let Some(client) = clients.get_mut(&id) else {
            replaying.remove(&id);
            return;
        };
        // Where data leaves: only what the client still follows.
        let mut replays = std::mem::take(&mut client.replays);
        replays.retain(|r| client.follows(&r.stream));
        let (mut frames, mut bytes) = client.link.backlog();
        let half = QueueLimits {
            messages: limits.messages / 2,
            bytes: limits.bytes / 2,
        };
        let mut sent = 0u64;
        let mut gone = false;
        let mut lost = false;
        'replays: for replay in &mut replays {
            if replay.waiting.is_some() {
                continue;
            }
            while let Some((after, epoch)) = replay.cursor.as_mut() {
                let most = match bytes < half.bytes {
                    true => half.messages.saturating_sub(frames).min(READ_AT_ONCE),
                    false => 0,
                };
                // With no room, it still looks whether the history has
                // forgotten what the client is to get next.
                let entries = match history.read(&replay.stream, *after, epoch, most) {
                    Recovery::Recovered(entries) => entries,
                    Recovery::Lost => {
                        lost = true;
                        break 'replays;
                    }
                };
                if most == 0 {
                    break 'replays;
                }
                if entries.is_empty() {
                    replay.cursor = None;
                    break;
                }
                for entry in entries {
                    if bytes >= half.bytes {
                        break 'replays;
                    }
                    let frame = entry_message(&entry, &replay.topic, epoch).encode(client.envelope);
                    let len = frame.len();
                    match delivery.push_data(&client.link, frame, limits) {
                        Push::Queued { .. } => {
                            frames += 1;
                            bytes += len;
                            sent += 1;
                            *after = entry.seq;
                        }
                        // Half the limits are free: only a Close stops it.
                        Push::Slow | Push::Gone => {
                            gone = true;
                            break 'replays;
                        }
                    }
                }
            }
            while let Some((entry, epoch)) = replay.held.front() {
                if frames >= half.messages || bytes >= half.bytes {
                    break 'replays;
                }
                let frame = entry_message(entry, &replay.topic, epoch).encode(client.envelope);
                let len = frame.len();
                match delivery.push_data(&client.link, frame, limits) {
                    Push::Queued { .. } => {
                        frames += 1;
                        bytes += len;
                        sent += 1;
                        replay.held_bytes -= entry.size();
                        replay.held.pop_front();
                    }
                    Push::Slow | Push::Gone => {
                        gone = true;
                        break 'replays;
                    }
                }
            }
        }
        replays.retain(|r| !gone && !r.is_done());
        client.replays = replays;
        if client.replays.is_empty() {
            replaying.remove(&id);
        }
        counters.messages_sent += sent;
        if sent > 0 {
            self.last_activity = Some(SystemTime::now());
        }
        if lost {
            self.mark_slow(id);
        }
    }

    /// Stops a client's replay of `stream` (it unsubscribed), or of every
    /// stream (`None`: it left every session).
    /// A subscribe of it still waiting for Redis is answered now (the error
    /// `unsubscribed`), ahead of whatever ended it: every request gets one
    /// answer, and Redis's, when it comes, is for nobody.
    pub(super) fn stop_replay(&mut self, id: ClientId, stream: Option<&StreamKey>) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let ends = |r: &Replaying| match stream {
            Some(stream) => r.stream == *stream,
            None => matches!(r.stream, StreamKey::Session(_)),
        };
        let waiting: Vec<u64> = client
            .replays
            .iter()
            .filter(|r| ends(r))
            .filter_map(Replaying::ticket)
            .collect();
        client.replays.retain(|r| !ends(r));
        if client.replays.is_empty() {
            self.replaying.remove(&id);
        }
        for ticket in waiting {
            self.subscribe_withdrawn(id, ticket);
        }
    }

    /// Drops expired history and the streams nobody uses any more.
    pub(super) fn sweep_history(&mut self, now: Instant) {
        let channels = &self.channels;
        let sessions = &self.sessions;
        let users = &self.users;
        let in_use = |stream: &StreamKey| match stream {
            StreamKey::Channel(name) => channels.count(name) > 0,
            StreamKey::Session(id) => sessions.members(id).next().is_some(),
            StreamKey::User(id) => users.count(id) > 0,
        };
        self.history.expire(now, &in_use);
    }
}
