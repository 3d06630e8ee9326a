//! The dashboard on the router: once a second the analytics' sample (see
//! [`crate::analytics`]) and, to every dashboard connected, the hub's
//! numbers as one `admin_stats` message; a client's detail
//! (`client_info`); and a log line for every action taken from a
//! dashboard, naming who took it.
//!
//! Runs on the router thread, in its tick: the second's sample and the
//! message are made once, whatever the number of dashboards, and cost the
//! delivery path nothing (the publications counted for it are one `+= 1`
//! each where they happen). A dashboard is a connection on `/admin` with
//! the admin token: a service connection in what it may do (publish
//! anywhere, disconnect, unsubscribe others), but no service for
//! application requests. What it is sent is not counted in the hub's
//! messages: watching does not change what is watched.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::value::RawValue;

use super::{Client, Router};
use crate::analytics::{self, Reading, millis};
use crate::link::Push;
use crate::protocol::{
    ClientMessage, Destination, Envelope, Kind, Message, Status, Topic, Who, raw,
};
use crate::subscriptions::{ClientId, IdSet};

/// How often the analytics take their sample and the dashboards hear.
const SECOND: Duration = Duration::from_secs(1);

/// Most users, clients and channels a dashboard is sent each second (the
/// clients: the newest; the users: those with the most connections here).
const LISTED: usize = 100;
const TOP_CHANNELS: usize = 10;

/// A hub's message rates lapse to 0 when its counters have not moved for
/// this long (heartbeats come every 2 s).
const RATE_LAPSE: Duration = Duration::from_secs(5);

/// The dashboards connected, and what they are shown of the other hubs.
#[derive(Default)]
pub(super) struct Consoles {
    ids: IdSet,
    next_second: Option<Instant>,
    /// Each hub's message counters when they last moved, and its rates.
    hubs: HashMap<String, HubRates>,
}

struct HubRates {
    sent: u64,
    received: u64,
    moved: Instant,
    sent_per_second: f64,
    received_per_second: f64,
}

/// One pass over the clients: what the numbers need beyond the indexes.
#[derive(Default)]
struct Census {
    authenticated: usize,
    consoles: usize,
    by_envelope: [usize; Envelope::COUNT],
    queued_messages: usize,
}

/// The `data` of `admin_stats`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdminStats<'a> {
    /// When, in ms since 1970.
    at: u64,
    /// This hub's id, with Redis.
    hub: Option<&'a str>,
    uptime: u64,
    now: Now,
    /// The last second's value of every metric, in the order of
    /// `admin_history`'s `metrics` (none in the numbers a dashboard gets
    /// as it joins: its history holds that second already).
    #[serde(skip_serializing_if = "Option::is_none")]
    second: Option<&'a [u32]>,
    /// The last minute's, when one ended with that second.
    #[serde(skip_serializing_if = "Option::is_none")]
    minute: Option<&'a [u32]>,
    top_channels: TopChannels<'a>,
    users: Listing<UserRow<'a>>,
    clients: Listing<ClientRow<'a>>,
    cluster: Option<ClusterView<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Now {
    connections: usize,
    by_envelope: HashMap<&'static str, usize>,
    authenticated: usize,
    anonymous: usize,
    services: usize,
    consoles: usize,
    users: usize,
    users_online: usize,
    channels: usize,
    sessions: usize,
    threads: usize,
    thread_limit: usize,
    writer_threads: usize,
    resident_bytes: u64,
    queued_messages: usize,
    latency_p99_us: u32,
    /// `None` without Redis.
    redis_up: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TopChannels<'a> {
    by_subscribers: Vec<ChannelRow<'a>>,
    by_messages: Vec<ChannelRow<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChannelRow<'a> {
    channel: &'a str,
    subscribers: usize,
    per_second: u32,
}

/// Some of a list, and how long it is in all.
#[derive(Serialize)]
struct Listing<T> {
    total: usize,
    list: Vec<T>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserRow<'a> {
    user_id: &'a str,
    status: Status,
    /// Its connections to this hub.
    connections: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClientRow<'a> {
    id: &'a str,
    user_id: Option<&'a str>,
    envelope: Envelope,
    address: String,
    authenticated: bool,
    service: bool,
    console: bool,
    channels: usize,
    sessions: usize,
    connected_at: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterView<'a> {
    hub: &'a str,
    redis_up: bool,
    hubs: Vec<HubRow<'a>>,
    total: HubTotal,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HubRow<'a> {
    hub: &'a str,
    this: bool,
    connections: usize,
    users: usize,
    channels: usize,
    sessions: usize,
    services: usize,
    messages_sent: u64,
    messages_received: u64,
    sent_per_second: f64,
    received_per_second: f64,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct HubTotal {
    hubs: usize,
    connections: usize,
    /// Users online anywhere (presence is the cluster's).
    users_online: usize,
    services: usize,
    sent_per_second: f64,
    received_per_second: f64,
}

/// The `data` of `admin_history`: every metric and its series.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdminHistory {
    metrics: Vec<analytics::History>,
    /// What the series take in memory (fixed at start).
    series_bytes: usize,
}

/// One client in detail (`client_info`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClientDetail<'a> {
    id: &'a str,
    address: String,
    user_id: Option<&'a str>,
    envelope: Envelope,
    authenticated: bool,
    service: bool,
    console: bool,
    channels: &'a [Box<str>],
    sessions: &'a [Box<str>],
    queue: Queue,
    meta: &'a serde_json::Map<String, serde_json::Value>,
    connected_at: u64,
    connected_for_secs: u64,
    is_alive: bool,
    /// Streams it is catching up on.
    catching_up: Vec<String>,
    /// Its requests a service connection owes an answer.
    pending_requests: usize,
}

#[derive(Serialize)]
struct Queue {
    messages: usize,
    bytes: usize,
}

fn topic_text(topic: &Topic) -> String {
    match topic {
        Topic::Channel(name) => format!("channel {name:?}"),
        Topic::Session(id) => format!("session {id:?}"),
    }
}

impl Router {
    /// Every tick: once a second, the analytics' sample and the dashboards'
    /// `admin_stats`.
    pub(super) fn console_tick(&mut self, now: Instant) {
        // Half a tick early is on time: ticks of a second stay a second.
        let slack = self.config.tick() / 2;
        if self.console.next_second.is_some_and(|at| now + slack < at) {
            return;
        }
        self.console.next_second = Some(match self.console.next_second {
            Some(at) if at + SECOND > now => at + SECOND,
            _ => now + SECOND,
        });
        let census = self.census();
        let reading = self.reading(&census);
        self.analytics
            .second(&reading, &self.meters, SystemTime::now());
        self.hub_rates(now);
        if !self.console.ids.is_empty() {
            let ids: Vec<ClientId> = self.console.ids.iter().copied().collect();
            self.push_admin_stats(&ids, &census, &reading, true);
        }
    }

    /// A dashboard connected: its history, then its first numbers at once.
    pub(super) fn console_joined(&mut self, id: ClientId) {
        self.console.ids.insert(id);
        self.analytics.watch(true);
        let history = raw(&AdminHistory {
            metrics: self.analytics.histories(),
            series_bytes: self.analytics.series_bytes(),
        });
        let message = Message::new(Kind::AdminHistory.as_str(), Some(&history));
        self.push_console(&[id], message.encode(Envelope::Standard));
        let census = self.census();
        let reading = self.reading(&census);
        self.push_admin_stats(&[id], &census, &reading, false);
    }

    /// A dashboard left.
    pub(super) fn console_left(&mut self, id: ClientId) {
        self.console.ids.remove(&id);
        if self.console.ids.is_empty() {
            self.analytics.watch(false);
        }
    }

    /// One pass over every client.
    fn census(&self) -> Census {
        let mut census = Census::default();
        for client in self.clients.values() {
            census.authenticated += usize::from(client.identity.authenticated());
            census.consoles += usize::from(client.console);
            census.by_envelope[client.envelope.index()] += 1;
            census.queued_messages += client.link.queued();
        }
        census
    }

    /// What the analytics need of the router this second.
    fn reading(&self, census: &Census) -> Reading {
        let c = &self.counters;
        Reading {
            messages_received: c.messages_received,
            messages_sent: c.messages_sent,
            total_connections: c.total_connections,
            slow_consumers: c.slow_consumers,
            stale_clients: c.stale_clients,
            rate_limited: c.rate_limited,
            recoveries: c.recoveries,
            recoveries_lost: c.recoveries_lost,
            requests: c.requests,
            busy: c.busy,
            connections: self.clients.len(),
            authenticated: census.authenticated,
            services: self.services.count(),
            users: self.users.len(),
            channels: self.channels.len(),
            sessions: self.sessions.len(),
            threads: self.threads.live(),
            queued_messages: census.queued_messages,
            redis_up: self.cluster.as_ref().map(|c| c.is_up()),
        }
    }

    /// Follows each hub's message counters from its heartbeats: a rate is
    /// how far they moved since they last did, over that time.
    fn hub_rates(&mut self, now: Instant) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let rates = &mut self.console.hubs;
        rates.retain(|hub, _| cluster.hubs().any(|beat| beat.hub == *hub));
        for beat in cluster.hubs() {
            let entry = rates.entry(beat.hub.clone()).or_insert(HubRates {
                sent: beat.messages_sent,
                received: beat.messages_received,
                moved: now,
                sent_per_second: 0.0,
                received_per_second: 0.0,
            });
            let elapsed = now.saturating_duration_since(entry.moved).as_secs_f64();
            if (beat.messages_sent, beat.messages_received) != (entry.sent, entry.received)
                && elapsed > 0.0
            {
                entry.sent_per_second =
                    beat.messages_sent.saturating_sub(entry.sent) as f64 / elapsed;
                entry.received_per_second =
                    beat.messages_received.saturating_sub(entry.received) as f64 / elapsed;
                entry.sent = beat.messages_sent;
                entry.received = beat.messages_received;
                entry.moved = now;
            } else if elapsed > RATE_LAPSE.as_secs_f64() {
                entry.sent_per_second = 0.0;
                entry.received_per_second = 0.0;
            }
        }
    }

    /// Queues one encoded frame for each of `ids` (dashboards), uncounted;
    /// a dashboard that does not read is a slow consumer like any client.
    fn push_console(&mut self, ids: &[ClientId], frame: tungstenite::Bytes) {
        let limits = self.delivery.limits(&self.config);
        for id in ids {
            let Some(client) = self.clients.get(id) else {
                continue;
            };
            if self.delivery.push_data(&client.link, frame.clone(), limits) == Push::Slow {
                self.mark_slow(*id);
            }
        }
    }

    /// `admin_stats` to the dashboards `ids`, with the last second's row
    /// if `new_second` (it was just taken).
    fn push_admin_stats(
        &mut self,
        ids: &[ClientId],
        census: &Census,
        reading: &Reading,
        new_second: bool,
    ) {
        let data = raw(&self.admin_stats(census, reading, new_second));
        let message = Message::new(Kind::AdminStats.as_str(), Some(&data));
        self.push_console(ids, message.encode(Envelope::Standard));
    }

    /// Everything a dashboard shows, now.
    fn admin_stats<'a>(
        &'a self,
        census: &Census,
        reading: &Reading,
        new_second: bool,
    ) -> AdminStats<'a> {
        let statuses: Vec<(&str, Status)> = self.presence.statuses().collect();
        let second = self.analytics.last_second();
        let p99 = analytics::metric_named("latency.p99")
            .and_then(|i| second.get(i).copied())
            .unwrap_or(0);
        let by_envelope = Envelope::ALL
            .iter()
            .map(|e| (e.as_str(), census.by_envelope[e.index()]))
            .collect();
        let now = Now {
            connections: reading.connections,
            by_envelope,
            authenticated: census.authenticated,
            anonymous: reading.connections - census.authenticated,
            services: reading.services,
            consoles: census.consoles,
            users: reading.users,
            users_online: statuses.len(),
            channels: reading.channels,
            sessions: reading.sessions,
            threads: reading.threads,
            thread_limit: self.threads.most(),
            writer_threads: self.delivery.writers(),
            resident_bytes: self.meters.resident(),
            queued_messages: census.queued_messages,
            latency_p99_us: p99,
            redis_up: reading.redis_up,
        };
        let hottest = self.analytics.hottest();
        let by_messages = hottest
            .iter()
            .map(|(channel, per_second)| ChannelRow {
                channel,
                subscribers: self.channels.count(channel),
                per_second: *per_second,
            })
            .collect();
        let mut by_subscribers: Vec<(&str, usize)> = Vec::with_capacity(TOP_CHANNELS + 1);
        for (channel, subscribers) in self.channels.counts() {
            if by_subscribers.len() < TOP_CHANNELS
                || by_subscribers
                    .last()
                    .is_some_and(|(_, least)| subscribers > *least)
            {
                by_subscribers.push((channel, subscribers));
                by_subscribers.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                by_subscribers.truncate(TOP_CHANNELS);
            }
        }
        let by_subscribers = by_subscribers
            .into_iter()
            .map(|(channel, subscribers)| ChannelRow {
                channel,
                subscribers,
                per_second: hottest
                    .iter()
                    .find(|(name, _)| **name == *channel)
                    .map_or(0, |(_, n)| *n),
            })
            .collect();
        let mut users: Vec<UserRow<'_>> = statuses
            .iter()
            .map(|(user, status)| UserRow {
                user_id: user,
                status: *status,
                connections: self.users.count(user),
            })
            .collect();
        let users_total = users.len();
        users.sort_by(|a, b| {
            b.connections
                .cmp(&a.connections)
                .then_with(|| a.user_id.cmp(b.user_id))
        });
        users.truncate(LISTED);
        let mut newest: Vec<(&ClientId, &Client)> = self.clients.iter().collect();
        if newest.len() > LISTED {
            newest.select_nth_unstable_by(LISTED - 1, |a, b| b.0.cmp(a.0));
            newest.truncate(LISTED);
        }
        newest.sort_by(|a, b| b.0.cmp(a.0));
        let clients = newest
            .into_iter()
            .map(|(_, c)| ClientRow {
                id: &c.name,
                user_id: c.identity.user_id.as_deref(),
                envelope: c.envelope,
                address: c.peer.to_string(),
                authenticated: c.identity.authenticated(),
                service: c.identity.is_service() && !c.console,
                console: c.console,
                channels: c.channels.len(),
                sessions: c.sessions.len(),
                connected_at: millis(c.since),
            })
            .collect();
        AdminStats {
            at: millis(SystemTime::now()),
            hub: self.cluster.as_ref().map(|c| c.hub()),
            uptime: self.started.elapsed().as_secs(),
            now,
            second: new_second.then_some(second),
            minute: self.analytics.last_minute().filter(|_| new_second),
            top_channels: TopChannels {
                by_subscribers,
                by_messages,
            },
            users: Listing {
                total: users_total,
                list: users,
            },
            clients: Listing {
                total: self.clients.len(),
                list: clients,
            },
            cluster: self.cluster_view(statuses.len()),
        }
    }

    /// Each hub of the Redis and the cluster's totals.
    fn cluster_view(&self, users_online: usize) -> Option<ClusterView<'_>> {
        let cluster = self.cluster.as_ref()?;
        let own = cluster.hub();
        let mut hubs: Vec<HubRow<'_>> = cluster
            .hubs()
            .map(|beat| {
                let rates = self.console.hubs.get(&beat.hub);
                HubRow {
                    hub: &beat.hub,
                    this: beat.hub == own,
                    connections: beat.connections,
                    users: beat.users,
                    channels: beat.channels,
                    sessions: beat.sessions,
                    services: beat.services,
                    messages_sent: beat.messages_sent,
                    messages_received: beat.messages_received,
                    sent_per_second: rates.map_or(0.0, |r| r.sent_per_second),
                    received_per_second: rates.map_or(0.0, |r| r.received_per_second),
                }
            })
            .collect();
        hubs.sort_by(|a, b| a.hub.cmp(b.hub));
        let total = hubs.iter().fold(
            HubTotal {
                users_online,
                ..HubTotal::default()
            },
            |mut total, hub| {
                total.hubs += 1;
                total.connections += hub.connections;
                total.services += hub.services;
                total.sent_per_second += hub.sent_per_second;
                total.received_per_second += hub.received_per_second;
                total
            },
        );
        Some(ClusterView {
            hub: own,
            redis_up: cluster.is_up(),
            hubs,
            total,
        })
    }

    /// `client_info`: one client of this hub in detail, or `found: false`
    /// (with the hub it is on, when its id names another).
    pub(super) fn client_info(&mut self, id: ClientId, name: &str, correlation: Option<&RawValue>) {
        let detail = self
            .names
            .get(name)
            .and_then(|other| self.clients.get(other))
            .map(|c| {
                let (frames, bytes) = c.link.backlog();
                let (held, held_bytes) = super::replay::held(&c.replays);
                ClientDetail {
                    id: &c.name,
                    address: c.peer.to_string(),
                    user_id: c.identity.user_id.as_deref(),
                    envelope: c.envelope,
                    authenticated: c.identity.authenticated(),
                    service: c.identity.is_service() && !c.console,
                    console: c.console,
                    channels: &c.channels,
                    sessions: &c.sessions,
                    queue: Queue {
                        messages: frames + held,
                        bytes: bytes + held_bytes,
                    },
                    meta: &c.meta,
                    connected_at: millis(c.since),
                    connected_for_secs: SystemTime::now()
                        .duration_since(c.since)
                        .map_or(0, |d| d.as_secs()),
                    is_alive: c.is_alive(),
                    catching_up: c
                        .replays
                        .iter()
                        .map(|r| topic_text(&r.stream.topic()))
                        .collect(),
                    pending_requests: c.pending,
                }
            });
        let data = match detail {
            Some(detail) => raw(&serde_json::json!({ "found": true, "client": detail })),
            None => {
                let elsewhere = self.cluster.as_ref().and_then(|cluster| {
                    crate::cluster::wire::hub_of(name).filter(|hub| *hub != cluster.hub())
                });
                raw(&serde_json::json!({
                    "found": false,
                    "clientId": name,
                    "hub": elsewhere,
                }))
            }
        };
        let reply = Message::new(Kind::ClientInfo.as_str(), Some(&data)).correlation(correlation);
        self.send_message(id, &reply);
    }

    /// Logs an action a dashboard takes (publish, disconnect, unsubscribe
    /// and the other commands on clients), with the dashboard's client id
    /// and address: never its token.
    pub(super) fn log_console_action(&self, id: ClientId, message: &ClientMessage) {
        let acts = matches!(
            message,
            ClientMessage::Publish { .. }
                | ClientMessage::Disconnect { .. }
                | ClientMessage::Send { .. }
                | ClientMessage::SetMeta { .. }
                | ClientMessage::Subscribe {
                    client: Some(_),
                    ..
                }
                | ClientMessage::Unsubscribe {
                    client: Some(_),
                    ..
                }
        );
        if !acts {
            return;
        }
        let Some(console) = self.clients.get(&id).filter(|c| c.console) else {
            return;
        };
        let what = match message {
            ClientMessage::Publish { to, event, .. } => {
                let target = match to {
                    Destination::Topic(topic) => topic_text(topic),
                    Destination::User(user) => format!("user {user:?}"),
                    Destination::Client(client) => format!("client {client}"),
                    Destination::Broadcast => "everyone".to_owned(),
                    Destination::Authenticated => "every authenticated client".to_owned(),
                };
                format!("publishes {event:?} to {target}")
            }
            ClientMessage::Disconnect { who, close } => {
                let who = match who {
                    Who::Client(client) => format!("client {client}"),
                    Who::User(user) => format!("every connection of user {user:?}"),
                };
                format!("disconnects {who} ({} {:?})", close.code(), close.reason())
            }
            ClientMessage::Unsubscribe {
                client: Some(client),
                topic,
            } => {
                let from = topic
                    .as_ref()
                    .map_or("every session".to_owned(), topic_text);
                format!("unsubscribes client {client} from {from}")
            }
            ClientMessage::Subscribe {
                client: Some(client),
                topic,
                ..
            } => format!("subscribes client {client} to {}", topic_text(topic)),
            ClientMessage::SetMeta { client, .. } => format!("sets metadata of client {client}"),
            ClientMessage::Send { client, message } => {
                format!("sends {:?} to client {client}", message.kind)
            }
            _ => return,
        };
        log::info!("dashboard {} from {}: {what}", console.name, console.peer);
    }
}
