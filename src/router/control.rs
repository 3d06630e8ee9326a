//! Server-side control, on the router thread: the backend subscribes and
//! unsubscribes clients, closes them with a code and a reason, sets their
//! metadata, and lists who listens to what.
//!
//! The same functions serve the library ([`Handle`](crate::Handle)), the
//! HTTP API and service connections, through [`Router::command`]. The
//! backend is trusted: a server-side subscription skips the client's
//! permissions (its subscription limit still holds).

use super::Router;
use crate::command::{Answer, Command};
use crate::protocol::{AppClose, Empty, Kind, Topic, USER_PREFIX};
use crate::publish::Target;
use crate::stats::{ClientStats, PresenceEntry};
use crate::subscriptions::ClientId;

/// Most keys of one client's metadata.
const MAX_META_KEYS: usize = 64;
/// Most bytes of one client's metadata, as JSON.
const MAX_META_BYTES: usize = 16 * 1024;

impl Router {
    /// One server-side command, one answer.
    pub(super) fn command(&mut self, command: Command) -> Answer {
        match command {
            Command::Subscribe { client, topic } => self.subscribe_other(&client, &topic),
            Command::Unsubscribe { client, topic } => self.unsubscribe_other(&client, topic),
            Command::Close { target, close } => Answer::Count(self.close_target(&target, &close)),
            Command::SetMeta { client, meta } => self.set_meta(&client, meta),
            Command::Subscribers { topic } => Answer::Clients(self.subscribers(&topic)),
            Command::Presence => Answer::Presence(self.presence_list()),
        }
    }

    /// Subscribes client `name` to `topic`; it is told with `subscribed`.
    pub(super) fn subscribe_other(&mut self, name: &str, topic: &Topic) -> Answer {
        let Some(id) = self.names.get(name).copied() else {
            return Answer::Done(false);
        };
        let had = self.has_topic(id, topic);
        let joined = match topic {
            // Its user's deliveries reach it already.
            Topic::Channel(channel) if channel.starts_with(USER_PREFIX) => {
                self.may_follow_user(id, &channel[USER_PREFIX.len()..])
            }
            Topic::Channel(channel) => self.join_channel(id, channel, true),
            Topic::Session(session) => self.join_session(id, session, true),
        };
        match joined {
            Ok(()) => match self.open_stream(id, topic, None, None) {
                true => Answer::Done(true),
                false => Answer::Busy(self.not_opened(id, topic, had)),
            },
            Err((_, why)) => Answer::Refused(why),
        }
    }

    /// Unsubscribes client `name`; it is told with `unsubscribed`.
    pub(super) fn unsubscribe_other(&mut self, name: &str, topic: Option<Topic>) -> Answer {
        let Some(id) = self.names.get(name).copied() else {
            return Answer::Done(false);
        };
        self.leave(id, topic.as_ref());
        self.reply(id, Kind::Unsubscribed, topic.as_ref(), Some(Empty {}), None);
        Answer::Done(true)
    }

    /// Closes every client of `target` with `close`'s code and reason.
    pub(super) fn close_target(&mut self, target: &Target, close: &AppClose) -> usize {
        let ids = self.audience(target);
        for id in &ids {
            self.close_with(*id, close.frame(), false);
        }
        ids.len()
    }

    /// Merges `meta` into client `name`'s metadata; `null` removes a key.
    fn set_meta(&mut self, name: &str, meta: serde_json::Map<String, serde_json::Value>) -> Answer {
        let Some(client) = self
            .names
            .get(name)
            .copied()
            .and_then(|id| self.clients.get_mut(&id))
        else {
            return Answer::Done(false);
        };
        let mut merged = client.meta.clone();
        for (key, value) in meta {
            match value {
                serde_json::Value::Null => merged.remove(&key),
                value => merged.insert(key, value),
            };
        }
        let bytes = serde_json::to_vec(&merged).map_or(usize::MAX, |b| b.len());
        if merged.len() > MAX_META_KEYS || bytes > MAX_META_BYTES {
            return Answer::Refused(format!(
                "metadata is limited to {MAX_META_KEYS} keys and {MAX_META_BYTES} bytes"
            ));
        }
        client.meta = merged;
        Answer::Done(true)
    }

    /// The clients subscribed to `topic`.
    pub(super) fn subscribers(&self, topic: &Topic) -> Vec<ClientStats> {
        let members: Vec<ClientId> = match topic {
            Topic::Channel(name) => self.channels.members(name).collect(),
            Topic::Session(id) => self.sessions.members(id).collect(),
        };
        let mut list: Vec<ClientStats> = members
            .iter()
            .filter_map(|id| self.clients.get(id))
            .map(|c| c.stats())
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    /// Every user online and its status, by user.
    pub(super) fn presence_list(&self) -> Vec<PresenceEntry> {
        let mut list: Vec<PresenceEntry> = self
            .presence
            .statuses()
            .map(|(user, status)| PresenceEntry {
                user_id: user.to_owned(),
                status,
            })
            .collect();
        list.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        list
    }
}
