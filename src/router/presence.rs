//! Presence: each user's status, and telling the others when it changes.
//!
//! Runs on the router thread. A broadcast costs one frame per trusted
//! client, so presence costs no more than the information it carries:
//! - a status the others were already told is not told again;
//! - each user has a budget of [`BURST`] broadcasts, refilled at one a
//!   second; changes beyond it wait, and only the latest is told when the
//!   budget allows (checked every tick);
//! - a user whose last connection leaves is told `offline` only after the
//!   grace period, unless it comes back (a page reload is not news).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use super::Router;
use super::delivery::Audience;
use crate::protocol::{Empty, ErrorCode, Kind, Message, PresenceData, PresenceList, Status, raw};
use crate::ratelimit::TokenBucket;
use crate::subscriptions::ClientId;

/// Presence broadcasts one user may cause at once...
pub(crate) const BURST: u32 = 5;
/// ...refilled at one per this period.
pub(crate) const REFILL: Duration = Duration::from_secs(1);

/// The router's presence state.
pub(super) struct Presence {
    grace: Duration,
    /// Users with a connection (or in their grace period), and their status.
    statuses: HashMap<Box<str>, Status>,
    /// What the others were last told of each user; absent means offline.
    announced: HashMap<Box<str>, Status>,
    /// Users whose last connection left, and when to announce them offline.
    pending_offline: HashMap<Box<str>, Instant>,
    /// Each user's broadcast budget.
    budgets: HashMap<Box<str>, TokenBucket>,
    /// Users whose change waits for budget.
    waiting: HashSet<Box<str>>,
}

impl Presence {
    pub(super) fn new(grace: Duration) -> Presence {
        Presence {
            grace,
            statuses: HashMap::new(),
            announced: HashMap::new(),
            pending_offline: HashMap::new(),
            budgets: HashMap::new(),
            waiting: HashSet::new(),
        }
    }

    /// Every user online (or in its grace period) and its status.
    pub(super) fn statuses(&self) -> impl Iterator<Item = (&str, Status)> + '_ {
        self.statuses
            .iter()
            .map(|(user, status)| (&**user, *status))
    }

    /// Takes one broadcast from `user`'s budget; `false` when it is spent.
    fn spend(&mut self, user: &str, now: Instant) -> bool {
        self.budgets
            .entry(user.into())
            .or_insert_with(|| TokenBucket::new(BURST, REFILL * BURST, now))
            .take(now)
    }
}

impl Presence {
    /// Users whose last connection left but who are not offline yet.
    pub(super) fn in_grace(&self) -> impl Iterator<Item = &str> + '_ {
        self.pending_offline.keys().map(|user| &**user)
    }
}

impl Router {
    /// A connection of `user` joined: the first one makes it `online`,
    /// unless it is back within its grace period.
    pub(super) fn user_connected(&mut self, id: ClientId, user: &str) {
        let first = self.users.count(user) == 0;
        self.users.add(user, id);
        let returning = self.presence.pending_offline.remove(user).is_some();
        if first && !returning {
            // With other hubs, Redis says whether it is news.
            if self.cluster_user_here(user) {
                return;
            }
            self.presence.statuses.insert(user.into(), Status::Online);
            self.announce(user);
        }
    }

    /// The last connection of `user` left.
    pub(super) fn user_disconnected(&mut self, user: &str, now: Instant) {
        if self.stopping.is_some() {
            // The other hubs hear of it at once, not when the lease ends.
            if !self.cluster_user_gone(user) {
                self.presence.statuses.remove(user);
            }
        } else if self.presence.grace.is_zero() {
            self.went_offline(user);
        } else {
            self.presence
                .pending_offline
                .insert(user.into(), now + self.presence.grace);
        }
    }

    /// A user's last connection is gone (and its grace period over).
    fn went_offline(&mut self, user: &str) {
        // With other hubs, offline only once the last one anywhere is gone.
        if self.cluster_user_gone(user) {
            return;
        }
        self.presence.statuses.remove(user);
        self.announce(user);
    }

    /// A user's status changed cluster-wide (Redis said so).
    pub(super) fn remote_presence(&mut self, user: &str, status: Status) {
        match status {
            Status::Offline => {
                self.presence.statuses.remove(user);
            }
            status => {
                self.presence.statuses.insert(user.into(), status);
            }
        }
        self.announce(user);
    }

    /// Every user's status as Redis has it, after (re)joining the hubs.
    pub(super) fn presence_snapshot(&mut self, statuses: Vec<(String, Status)>) {
        let mut users: Vec<Box<str>> = self.presence.statuses.keys().cloned().collect();
        self.presence.statuses = statuses
            .into_iter()
            .map(|(user, status)| (user.into_boxed_str(), status))
            .collect();
        users.extend(self.presence.statuses.keys().cloned());
        users.sort();
        users.dedup();
        for user in users {
            self.announce(&user);
        }
    }

    /// `user_presence` from a client.
    pub(super) fn set_presence(
        &mut self,
        id: ClientId,
        status: Status,
        correlation: Option<&RawValue>,
    ) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        let Some(user) = client.identity.user_id.clone() else {
            let message = "Presence needs a user: connect with ?userId= or a token";
            return self.error(id, ErrorCode::Forbidden, message, correlation);
        };
        if !self.cluster_status(&user, status) {
            self.presence.statuses.insert(user.as_str().into(), status);
            self.announce(&user);
        }
        if correlation.is_some() {
            self.reply(id, Kind::Ack, None, None::<Empty>, correlation);
        }
    }

    /// Tells the trusted clients `user`'s status, if it is news and the
    /// user's budget allows; otherwise it waits for the next tick.
    fn announce(&mut self, user: &str) {
        let status = self
            .presence
            .statuses
            .get(user)
            .copied()
            .unwrap_or(Status::Offline);
        let told = self
            .presence
            .announced
            .get(user)
            .copied()
            .unwrap_or(Status::Offline);
        if status == told {
            self.presence.waiting.remove(user);
            return;
        }
        if !self.presence.spend(user, Instant::now()) {
            self.presence.waiting.insert(user.into());
            return;
        }
        self.presence.waiting.remove(user);
        match status {
            Status::Offline if !self.presence.statuses.contains_key(user) => {
                self.presence.announced.remove(user);
            }
            status => {
                self.presence.announced.insert(user.into(), status);
            }
        }
        let data = raw(&PresenceData {
            user_id: user,
            status,
        });
        let message = Message::new(Kind::UserPresence.as_str(), Some(&data));
        self.fan_out(Audience::Trusted, &message, None);
    }

    /// Every tick: grace periods that ended, changes whose budget came back.
    pub(super) fn presence_tick(&mut self, now: Instant) {
        let gone: Vec<Box<str>> = self
            .presence
            .pending_offline
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(user, _)| user.clone())
            .collect();
        for user in gone {
            self.presence.pending_offline.remove(&user);
            self.went_offline(&user);
        }
        let waiting: Vec<Box<str>> = self.presence.waiting.iter().cloned().collect();
        for user in waiting {
            self.announce(&user);
        }
        // Budgets of users nobody hears of any more are forgotten once full.
        let presence = &mut self.presence;
        presence.budgets.retain(|user, budget| {
            presence.statuses.contains_key(user)
                || presence.announced.contains_key(user)
                || presence.waiting.contains(user)
                || !budget.is_full(now)
        });
    }

    /// `presence`: who is online, for clients allowed to know.
    pub(super) fn presence_query(&mut self, id: ClientId, correlation: Option<&RawValue>) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        if !client.identity.sees_private_events() {
            let message = "Anonymous clients cannot see presence";
            return self.error(id, ErrorCode::Forbidden, message, correlation);
        }
        let mut users: Vec<PresenceData<'_>> = self
            .presence
            .statuses
            .iter()
            .map(|(user, status)| PresenceData {
                user_id: user,
                status: *status,
            })
            .collect();
        users.sort_by(|a, b| a.user_id.cmp(b.user_id));
        let data = raw(&PresenceList { users });
        let message = Message::new(Kind::Presence.as_str(), Some(&data)).correlation(correlation);
        self.send_message(id, &message);
    }
}
