//! Batching: publications marked batched are held per target and go out
//! together as one `batch_update`.
//!
//! Runs on the router thread. The first held message of a target starts
//! its window (`batch_window`); the batch goes out when the window ends,
//! when it holds `batch_max` messages, or just before an unbatched
//! publication to the same target, so a target's messages are never
//! reordered. The router's loop wakes for the earliest window's end.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::Serialize;
use serde_json::value::RawValue;

use super::Router;
use crate::history::Appended;
use crate::protocol::{Message, Origin, Topic, raw};
use crate::publish::{Publication, Target};
use crate::subscriptions::ClientId;

/// The targets a batch can be held for (a filter has no identity to hold by).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum BatchKey {
    Broadcast,
    Authenticated,
    Channel(Box<str>),
    Session(Box<str>),
    User(Box<str>),
    Client(Box<str>),
}

impl BatchKey {
    /// The key of a target, if it can be batched.
    pub(super) fn of(target: &Target) -> Option<BatchKey> {
        Some(match target {
            Target::Broadcast => BatchKey::Broadcast,
            Target::Authenticated => BatchKey::Authenticated,
            Target::Channel(name) => BatchKey::Channel(name.as_str().into()),
            Target::Session(id) => BatchKey::Session(id.as_str().into()),
            Target::User(id) => BatchKey::User(id.as_str().into()),
            Target::Client(id) => BatchKey::Client(id.as_str().into()),
            Target::Filter(_) => return None,
        })
    }

    fn target(&self) -> Target {
        match self {
            BatchKey::Broadcast => Target::Broadcast,
            BatchKey::Authenticated => Target::Authenticated,
            BatchKey::Channel(name) => Target::channel(&**name),
            BatchKey::Session(id) => Target::session(&**id),
            BatchKey::User(id) => Target::user(&**id),
            BatchKey::Client(id) => Target::client(&**id),
        }
    }
}

/// One message held in a batch, numbered in its stream when it was held.
struct Item {
    kind: Box<str>,
    data: Option<Box<RawValue>>,
    from: Option<Origin>,
    position: Option<(u64, Arc<str>)>,
}

/// One target's batch.
struct Held {
    due: Instant,
    items: Vec<Item>,
}

/// Every held batch, and when each is due.
#[derive(Default)]
pub(super) struct Batches {
    held: HashMap<BatchKey, Held>,
    /// Windows in the order they end (all windows are as long): entries of
    /// batches that went out early are skipped when met.
    due: VecDeque<(Instant, BatchKey)>,
}

impl Batches {
    /// When the earliest batch is due, if any is held.
    pub(super) fn next_due(&mut self) -> Option<Instant> {
        while let Some((due, key)) = self.due.front() {
            match self.held.get(key) {
                Some(held) if held.due == *due => return Some(*due),
                _ => {
                    self.due.pop_front();
                }
            }
        }
        None
    }

    pub(super) fn is_held(&self, key: &BatchKey) -> bool {
        self.held.contains_key(key)
    }
}

/// The data of a batch: `{"messages": [{"type", "data"?, "from"?}...]}`.
#[derive(Serialize)]
struct BatchData<'a> {
    messages: Vec<BatchItem<'a>>,
}

#[derive(Serialize)]
struct BatchItem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a Origin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<&'a str>,
}

impl Router {
    /// Holds a batched publication; returns how many clients the batch will
    /// reach (as of now).
    pub(super) fn hold(
        &mut self,
        key: BatchKey,
        publication: Publication,
        numbered: Option<Appended>,
    ) -> usize {
        let audience = self.audience_size(&publication.target);
        let numbered = match numbered {
            Some(numbered) => Some(numbered),
            None => self.record(
                &publication.target,
                &publication.kind,
                publication.data.as_deref(),
                publication.from.as_ref(),
                SystemTime::now(),
            ),
        };
        let position = numbered.map(|a| (a.entry.seq, a.epoch));
        let now = Instant::now();
        let window = self.config.batch_window;
        let held = self
            .batches
            .held
            .entry(key.clone())
            .or_insert_with(|| Held {
                due: now + window,
                items: Vec::new(),
            });
        if held.items.is_empty() {
            self.batches.due.push_back((held.due, key.clone()));
        }
        held.items.push(Item {
            kind: publication.kind,
            data: publication.data,
            from: publication.from,
            position,
        });
        if held.items.len() >= self.config.batch_max {
            self.flush_batch(&key);
        }
        audience
    }

    /// Sends a target's held batch now, if it has one.
    pub(super) fn flush_batch(&mut self, key: &BatchKey) {
        let Some(held) = self.batches.held.remove(key) else {
            return;
        };
        let target = key.target();
        let topic: Option<Topic> = target.topic();
        let messages = held
            .items
            .iter()
            .map(|item| BatchItem {
                kind: &item.kind,
                data: item.data.as_deref(),
                from: item.from.as_ref(),
                seq: item.position.as_ref().map(|(seq, _)| *seq),
                epoch: item.position.as_ref().map(|(_, epoch)| &**epoch),
            })
            .collect();
        let data = raw(&BatchData { messages });
        let kind = self.config.batch_type.clone();
        let message = Message::new(&kind, Some(&data)).topic(topic.as_ref());
        self.deliver(&target, &message);
    }

    /// Sends every held batch now (the hub is stopping).
    pub(super) fn flush_all_batches(&mut self) {
        let keys: Vec<BatchKey> = self.batches.held.keys().cloned().collect();
        for key in keys {
            self.flush_batch(&key);
        }
        self.batches.due.clear();
    }

    /// Sends now every held batch that would reach client `id` (it is being
    /// closed), so a batch counted as reaching it does.
    pub(super) fn flush_batches_reaching(&mut self, id: ClientId) {
        if self.batches.held.is_empty() {
            return;
        }
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let reaching: Vec<BatchKey> = self
            .batches
            .held
            .keys()
            .filter(|key| match key {
                BatchKey::Broadcast => true,
                BatchKey::Authenticated => client.identity.sees_private_events(),
                BatchKey::Channel(name) => client.channels.contains(name),
                BatchKey::Session(session) => client.sessions.contains(session),
                BatchKey::User(user) => client.identity.user_id.as_deref() == Some(&**user),
                BatchKey::Client(name) => *client.name == **name,
            })
            .cloned()
            .collect();
        for key in reaching {
            self.flush_batch(&key);
        }
    }

    /// Sends every batch whose window has ended.
    pub(super) fn flush_due_batches(&mut self, now: Instant) {
        while let Some(due) = self.batches.next_due() {
            if due > now {
                break;
            }
            if let Some((_, key)) = self.batches.due.pop_front() {
                self.flush_batch(&key);
            }
        }
    }
}
