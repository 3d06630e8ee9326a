//! Streams on the router: numbering each publication to a channel, a session
//! or a user, answering a `subscribe` with where its stream stands, and
//! replaying what a client missed since its `since`.
//!
//! Runs on the router thread, which is what makes the seam exact: the
//! replay is queued in the same step as the subscription, so every later
//! publication comes after it, with no gap and no duplicate. A replay that
//! does not fit in half of the client's queue limits is paced instead: it
//! is fed as the client reads (the loop pumps it every
//! [`REPLAY_POLL`](super::REPLAY_POLL) while one is under way), and live
//! publications of that stream wait behind it in the same queue, so the
//! client never becomes a slow consumer for catching up.
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
use crate::engine::{Appended, Entry, Recovery, StreamKey};
use crate::link::Push;
use crate::protocol::{ErrorCode, Kind, Message, Position, Since, Subscribed, Topic, raw};
use crate::publish::{Origin, Target};
use crate::subscriptions::ClientId;

/// A replay under way for one client and one stream.
#[derive(Debug)]
pub(super) struct Replaying {
    pub stream: StreamKey,
    topic: Topic,
    /// What is still to go, each in its epoch: the missed publications,
    /// then the live ones that came meanwhile.
    pending: VecDeque<(Arc<Entry>, Arc<str>)>,
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
            pending: VecDeque::new(),
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

    /// What came while it waited.
    pub(super) fn into_pending(self) -> Vec<(Arc<Entry>, Arc<str>)> {
        self.pending.into()
    }

    /// Takes over what an earlier replay of the stream still had to send.
    pub(super) fn extend(&mut self, pending: Vec<(Arc<Entry>, Arc<str>)>) {
        self.pending.extend(pending);
    }
}

impl StreamKey {
    /// The target whose publications this stream numbers.
    pub(super) fn target(&self) -> Target {
        match self {
            StreamKey::Channel(name) => Target::channel(&**name),
            StreamKey::Session(id) => Target::session(&**id),
            StreamKey::User(id) => Target::user(&**id),
        }
    }
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
        self.feed_replays(&stream, &appended);
        if self.history.wants_sweep() {
            self.sweep_history(Instant::now());
        }
        Some(appended)
    }

    /// Clients catching up on `stream` get `appended` after what they are
    /// catching up on, if they still follow it.
    pub(super) fn feed_replays(&mut self, stream: &StreamKey, appended: &Appended) {
        if self.replaying.is_empty() {
            return;
        }
        for id in &self.replaying {
            let Some(client) = self.clients.get_mut(id) else {
                continue;
            };
            if !client.follows(stream) {
                client.replays.retain(|r| r.stream != *stream);
                continue;
            }
            for replay in &mut client.replays {
                if replay.stream == *stream {
                    replay
                        .pending
                        .push_back((Arc::clone(&appended.entry), Arc::clone(&appended.epoch)));
                }
            }
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

    /// A client may follow its own user stream (a service, anyone's).
    pub(super) fn may_follow_user(
        &self,
        id: ClientId,
        user: &str,
    ) -> Result<(), (ErrorCode, String)> {
        let Some(client) = self.clients.get(&id) else {
            return Ok(());
        };
        if client.identity.is_service() || client.identity.user_id.as_deref() == Some(user) {
            return Ok(());
        }
        Err((
            ErrorCode::Forbidden,
            format!("user:{user} is another user's stream"),
        ))
    }

    /// A subscription is in place: `subscribed` with where its stream
    /// stands, then, for a `since`, what the client missed.
    pub(super) fn open_stream(
        &mut self,
        id: ClientId,
        topic: &Topic,
        since: Option<Since>,
        correlation: Option<&RawValue>,
    ) {
        let stream = StreamKey::of_topic(topic);
        // A held batch has its positions already: out it goes, so the
        // position below counts only what this client is sent.
        if let Some(key) = BatchKey::of(&stream.target())
            && self.batches.is_held(&key)
        {
            self.flush_batch(&key);
        }
        // With other hubs, Redis says where the stream stands.
        if self.cluster_open_stream(id, topic, &since, correlation, true) {
            return;
        }
        let head = self.history.head(&stream);
        let recovery = match (&since, &head) {
            (None, _) => None,
            (Some(_), None) => Some(Recovery::Lost),
            (Some(since), Some(_)) => Some(self.history.since(&stream, since.seq, &since.epoch)),
        };
        let recovered = recovery
            .as_ref()
            .map(|r| matches!(r, Recovery::Recovered(_)));
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
        if let (Some(Recovery::Recovered(entries)), Some(head)) = (recovery, head)
            && !entries.is_empty()
        {
            let entries = entries
                .into_iter()
                .map(|e| (e, Arc::clone(&head.epoch)))
                .collect();
            self.start_replay(id, stream, entries);
        }
    }

    /// Queues `entries` for a client, paced if they do not fit now.
    pub(super) fn start_replay(
        &mut self,
        id: ClientId,
        stream: StreamKey,
        entries: Vec<(Arc<Entry>, Arc<str>)>,
    ) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        // A second `since` for the same stream starts over from it.
        client.replays.retain(|r| r.stream != stream);
        if !client.follows(&stream) {
            return;
        }
        client.replays.push(Replaying {
            topic: stream.topic(),
            stream,
            pending: entries.into(),
            waiting: None,
        });
        self.replaying.insert(id);
        self.pump_replay(id);
    }

    /// Feeds every replay under way as far as its client's queue allows.
    pub(super) fn pump_replays(&mut self) {
        let ids: Vec<ClientId> = self.replaying.iter().copied().collect();
        for id in ids {
            self.pump_replay(id);
        }
    }

    /// Feeds one client's replays up to half its queue limits; a replay
    /// that is done is dropped, and its stream is live for the client again.
    fn pump_replay(&mut self, id: ClientId) {
        let limits = self.delivery.limits(&self.config);
        let Some(client) = self.clients.get_mut(&id) else {
            self.replaying.remove(&id);
            return;
        };
        // Where data leaves: only what the client still follows.
        let mut replays = std::mem::take(&mut client.replays);
        replays.retain(|r| client.follows(&r.stream));
        client.replays = replays;
        let (mut frames, mut bytes) = client.link.backlog();
        let mut sent = 0u64;
        let mut gone = false;
        'replays: for replay in &mut client.replays {
            if replay.waiting.is_some() {
                continue;
            }
            while let Some((entry, epoch)) = replay.pending.front() {
                if frames >= limits.messages / 2 || bytes >= limits.bytes / 2 {
                    break 'replays;
                }
                let frame = entry_message(entry, &replay.topic, epoch).encode(client.envelope);
                let len = frame.len();
                match self.delivery.push(&client.link, frame, limits) {
                    Push::Queued { .. } => {
                        frames += 1;
                        bytes += len;
                        sent += 1;
                        replay.pending.pop_front();
                    }
                    // Half the limits are free: only a Close stops it.
                    Push::Slow | Push::Gone => {
                        gone = true;
                        break 'replays;
                    }
                }
            }
        }
        client
            .replays
            .retain(|r| !gone && (r.waiting.is_some() || !r.pending.is_empty()));
        if client.replays.is_empty() {
            self.replaying.remove(&id);
        }
        self.counters.messages_sent += sent;
        if sent > 0 {
            self.last_activity = Some(SystemTime::now());
        }
    }

    /// Stops a client's replay of `stream` (it unsubscribed), or of every
    /// stream (`None`: it left every session).
    pub(super) fn stop_replay(&mut self, id: ClientId, stream: Option<&StreamKey>) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        match stream {
            Some(stream) => client.replays.retain(|r| r.stream != *stream),
            None => client
                .replays
                .retain(|r| !matches!(r.stream, StreamKey::Session(_))),
        }
        if client.replays.is_empty() {
            self.replaying.remove(&id);
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
