//! The cluster's fault handling (`router/cluster.rs`), with the test as
//! Redis and as the other hubs: what the router asks Redis is read from its
//! queue, Redis's answers and the bus come on the cluster lane.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::cluster::wire::{self, HubBeat, Publication, Wire, WireTarget};
use crate::cluster::{HeadReply, In, Kept, LEASE, Out, Side};
use crate::config::Config;
use crate::publish::{Target, Unpublished};
use crate::router::harness::{Harness, Peer};

/// This hub's id, and another's.
const HERE: &str = "here0001";
const THERE: &str = "there002";
const ADMIN: &str = "admin-token";

fn config() -> Config {
    Config::default()
        .admin_token(Some(ADMIN.into()))
        .allow_client_publish(true)
        .presence_grace(Duration::ZERO)
}

/// A hub joined to Redis (both connections up), with what it asked on
/// joining already read; `queue`: what the queue to Redis holds.
fn joined(queue: usize) -> Harness {
    let mut hub = Harness::with_cluster(config(), HERE, queue);
    hub.redis(true);
    hub.asked();
    hub
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A publication of `kind` to the channel `c`, as it crosses Redis.
fn on_c(kind: &str, n: u64) -> Publication {
    Publication {
        hub: THERE.to_owned(),
        to: WireTarget::Channel("c".to_owned()),
        kind: kind.to_owned(),
        data: Some(serde_json::value::to_raw_value(&json!({ "n": n })).expect("JSON")),
        from: None,
        ts: now_ms(),
        batched: false,
        corr: None,
    }
}

/// The heads asked of Redis among `asked`: (ticket, stream, since, epoch).
fn heads(asked: &[Out]) -> Vec<(u64, String, Option<u64>, Option<String>)> {
    asked
        .iter()
        .filter_map(|out| match out {
            Out::Head {
                ticket,
                stream,
                since,
                epoch,
                ..
            } => Some((*ticket, stream.clone(), *since, epoch.clone())),
            _ => None,
        })
        .collect()
}

/// Redis's answer to a head: where `c` stands, and what it kept.
fn answer(ticket: u64, seq: u64, epoch: &str, kept: &[u64]) -> In {
    In::Head {
        ticket,
        reply: Some(HeadReply {
            position: Some((seq, epoch.to_owned())),
            entries: kept
                .iter()
                .map(|n| Kept {
                    seq: *n,
                    ts: now_ms(),
                    publication: on_c("tick", *n),
                })
                .collect(),
            refused: None,
            from: None,
            base: 0,
            prev: None,
        }),
    }
}

/// A client of this hub subscribed to `c`, which Redis says stands at
/// `seq` of `epoch`.
fn following_c(hub: &mut Harness, seq: u64, epoch: &str) -> Peer {
    let client = hub.connect(None);
    hub.send(client, json!({"type": "subscribe", "channel": "c"}));
    let (ticket, ..) = heads(&hub.asked())[0].clone();
    hub.tell(answer(ticket, seq, epoch, &[]));
    hub.bus(None, Wire::Mark(ticket));
    let subscribed = hub.next_message(client);
    assert_eq!(subscribed["data"]["seq"], seq, "{subscribed}");
    client
}

/// `n` of the `tick`s a client got, in order: their `seq`.
fn ticks(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .filter(|m| m["type"] == "tick")
        .map(|m| m["seq"].as_u64().expect("a seq"))
        .collect()
}

/// Mirrors `tests/cluster.rs`, `a_client_resumes_on_another_hub_without_a_gap`
/// and `resuming_on_another_hub_under_load_has_no_gap_and_no_duplicate`:
/// Redis's answer to where a stream stands is used only once its mark has
/// come on the bus behind every publication it counts, and what came
/// meanwhile waits in the client's replay: no gap, no duplicate.
#[test]
fn a_resume_waits_for_redis_and_its_mark_then_has_no_gap_and_no_duplicate() {
    let mut hub = joined(64);
    let client = hub.connect(None);
    hub.send(
        client,
        json!({"type": "subscribe", "channel": "c", "since": {"seq": 2, "epoch": "e1"}}),
    );
    let asked = heads(&hub.asked());
    assert_eq!(asked.len(), 1, "{asked:?}");
    let (ticket, stream, since, _) = asked[0].clone();
    assert_eq!((stream.as_str(), since), ("c:c", Some(2)));
    // Seq 3 comes on the bus before Redis's answer...
    hub.bus(Some((3, "e1")), Wire::Pub(on_c("tick", 3)));
    // ...which says 4, having kept 3 and 4; 4 is still on its way.
    hub.tell(answer(ticket, 4, "e1", &[3, 4]));
    assert_eq!(
        hub.until_pong(client),
        Vec::<Value>::new(),
        "nothing before the mark: the answer counts a publication not here yet"
    );
    hub.bus(Some((4, "e1")), Wire::Pub(on_c("tick", 4)));
    hub.bus(None, Wire::Mark(ticket));
    hub.bus(Some((5, "e1")), Wire::Pub(on_c("tick", 5)));
    let got = hub.until_pong(client);
    assert_eq!(got[0]["type"], "subscribed", "{got:?}");
    assert_eq!(
        got[0]["data"],
        json!({"seq": 4, "epoch": "e1", "recovered": true})
    );
    assert_eq!(ticks(&got), [3, 4, 5], "each once, in order: {got:?}");
}

/// Mirrors `tests/cluster.rs`,
/// `a_stream_published_to_alone_during_a_cut_off_is_not_replayed_again`:
/// a stream numbered here alone while Redis was away gets a new epoch in
/// Redis before Redis numbers anything more of it, and the hub catches up
/// from where it was.
#[test]
fn a_stream_numbered_alone_in_a_cut_off_gets_a_new_epoch_before_anything_else() {
    let mut hub = joined(64);
    let client = following_c(&mut hub, 3, "e1");
    hub.bus(Some((4, "e1")), Wire::Pub(on_c("tick", 4)));
    assert_eq!(hub.next_message(client)["seq"], 4);
    hub.redis(false);
    // Alone: delivered here, numbered by this hub's own history.
    let reached = hub.publish(Target::channel("c"), "alone", json!({}));
    assert_eq!(reached.now(), Some(Ok(1)));
    let alone = hub.next_message(client);
    assert_eq!(alone["type"], "alone", "{alone}");
    assert_ne!(alone["epoch"], "e1", "its own epoch: {alone}");
    // Back: the new epoch goes first, then the catch-up from 4 of e1.
    hub.redis(true);
    let asked = hub.asked();
    let renewed = asked
        .iter()
        .position(|out| matches!(out, Out::NewEpochs(streams) if streams == &["c:c"]))
        .unwrap_or_else(|| panic!("no new epoch asked: {asked:?}"));
    let head = asked
        .iter()
        .position(|out| matches!(out, Out::Head { stream, .. } if stream == "c:c"))
        .unwrap_or_else(|| panic!("no catch-up asked: {asked:?}"));
    assert!(renewed < head, "the new epoch first: {asked:?}");
    let (ticket, _, since, epoch) = heads(&asked)[0].clone();
    assert_eq!((since, epoch.as_deref()), (Some(4), Some("e1")));
    // The other hub published once more, under the new epoch.
    let mut reply = match answer(ticket, 5, "e2", &[5]) {
        In::Head { reply, .. } => reply.expect("an answer"),
        _ => unreachable!(),
    };
    reply.prev = Some("e1".to_owned());
    reply.base = 4;
    hub.tell(In::Head {
        ticket,
        reply: Some(reply),
    });
    hub.bus(None, Wire::Mark(ticket));
    let got = hub.until_pong(client);
    assert_eq!(ticks(&got), [5], "what it missed, once: {got:?}");
    assert!(got.iter().all(|m| m["type"] != "alone"), "{got:?}");
    assert_eq!(got[0]["epoch"], "e2", "{got:?}");
}

/// The chaos-redis bench's seq fault: a publication in flight when Redis
/// stalled (5) was numbered when Redis woke, before this hub's pubsub link
/// was back, so the bus never brought it here. The link came back before
/// the command connection, and the bus brought 6 while the hub was still
/// cut off. 6 must not go out then: delivered, it would pass 5 by (the
/// client would get 6 after 4 in the same epoch, and the catch-up would
/// start after 6). It waits for the catch-up, which reads from where the
/// hub was: 5 and 6, each once, in order.
#[test]
fn what_the_bus_brings_after_the_pubsub_link_was_lost_waits_for_the_catch_up() {
    let mut hub = joined(64);
    let client = following_c(&mut hub, 3, "e1");
    hub.bus(Some((4, "e1")), Wire::Pub(on_c("tick", 4)));
    assert_eq!(ticks(&hub.until_pong(client)), [4]);
    hub.redis(false);
    hub.asked();
    // Redis numbers 5 meanwhile; the pubsub link comes back first, and
    // the bus brings 6.
    hub.tell(In::State(Side::In, true));
    hub.bus(Some((6, "e1")), Wire::Pub(on_c("tick", 6)));
    assert_eq!(
        hub.until_pong(client),
        Vec::<Value>::new(),
        "6 waits: the bus may have missed what came before it"
    );
    // The command connection is back: the catch-up starts where the hub was.
    hub.tell(In::State(Side::Out, true));
    let asked = heads(&hub.asked());
    assert_eq!(asked.len(), 1, "{asked:?}");
    let (ticket, stream, since, epoch) = asked[0].clone();
    assert_eq!(
        (stream.as_str(), since, epoch.as_deref()),
        ("c:c", Some(4), Some("e1"))
    );
    hub.tell(answer(ticket, 6, "e1", &[5, 6]));
    hub.bus(None, Wire::Mark(ticket));
    hub.bus(Some((7, "e1")), Wire::Pub(on_c("tick", 7)));
    assert_eq!(
        ticks(&hub.until_pong(client)),
        [5, 6, 7],
        "each once, in order"
    );
}

/// A client of `c` that got 4, on a hub back from a cut-off (its pubsub
/// link lost too) and catching `c` up from 4: the ticket of that catch-up.
fn catching_up_from_4(hub: &mut Harness) -> (Peer, u64) {
    let client = following_c(hub, 3, "e1");
    hub.bus(Some((4, "e1")), Wire::Pub(on_c("tick", 4)));
    assert_eq!(ticks(&hub.until_pong(client)), [4]);
    hub.redis(false);
    hub.redis(true);
    let asked = heads(&hub.asked());
    assert_eq!(asked.len(), 1, "{asked:?}");
    let (ticket, _, since, epoch) = asked[0].clone();
    assert_eq!((since, epoch.as_deref()), (Some(4), Some("e1")));
    (client, ticket)
}

/// Every message to `client` up to its Close, which is returned; none of
/// them a publication.
fn closed_without_ticks(hub: &mut Harness, client: Peer) -> Value {
    let mut before = Vec::new();
    loop {
        let message = hub.next_message(client);
        if message.get("close").is_some() {
            assert_eq!(ticks(&before), Vec::<u64>::new(), "{before:?}");
            return message;
        }
        before.push(message);
    }
}

/// A catch-up cut short (the hub is cut off again before Redis answers)
/// delivers nothing of what the bus brought meanwhile, which may follow a
/// hole (5, published while the pubsub link was down), nor what the bus
/// brings while the hub is cut off again: when it is back, the stream is
/// caught up from the same place.
#[test]
fn a_catch_up_cut_short_delivers_nothing_past_the_hole_and_is_asked_again() {
    let mut hub = joined(64);
    let (client, _) = catching_up_from_4(&mut hub);
    hub.bus(Some((6, "e1")), Wire::Pub(on_c("tick", 6)));
    // The command connection is lost again; the pubsub link holds.
    hub.tell(In::State(Side::Out, false));
    hub.bus(Some((7, "e1")), Wire::Pub(on_c("tick", 7)));
    assert_eq!(
        hub.until_pong(client),
        Vec::<Value>::new(),
        "nothing past the hole"
    );
    hub.tell(In::State(Side::Out, true));
    let asked = heads(&hub.asked());
    assert_eq!(asked.len(), 1, "{asked:?}");
    let (ticket, _, since, epoch) = asked[0].clone();
    assert_eq!((since, epoch.as_deref()), (Some(4), Some("e1")));
    hub.tell(answer(ticket, 7, "e1", &[5, 6, 7]));
    hub.bus(None, Wire::Mark(ticket));
    assert_eq!(ticks(&hub.until_pong(client)), [5, 6, 7]);
}

/// A catch-up Redis refused while the hub is up (out of memory, say):
/// nothing will fill the hole, so nothing past it goes out and the
/// stream's clients here are closed 1013, to resume from Redis.
#[test]
fn a_catch_up_redis_refuses_closes_its_clients_to_resume() {
    let mut hub = joined(64);
    let (client, ticket) = catching_up_from_4(&mut hub);
    hub.bus(Some((6, "e1")), Wire::Pub(on_c("tick", 6)));
    hub.tell(In::Head {
        ticket,
        reply: None,
    });
    assert_eq!(
        closed_without_ticks(&mut hub, client),
        json!({"close": 1013, "reason": "Could not catch up: resume"})
    );
}

/// A catch-up whose answer has a hole (Redis no longer keeps 5 and 6:
/// more was published meanwhile than its history holds, or it expired):
/// nothing of it goes out, and the stream's clients here are closed 1013,
/// to resume from Redis (which tells them `recovered: false`).
#[test]
fn a_catch_up_redis_kept_only_the_end_of_closes_its_clients_to_resume() {
    let mut hub = joined(64);
    let (client, ticket) = catching_up_from_4(&mut hub);
    hub.tell(answer(ticket, 9, "e1", &[7, 8, 9]));
    hub.bus(None, Wire::Mark(ticket));
    assert_eq!(
        closed_without_ticks(&mut hub, client),
        json!({"close": 1013, "reason": "Could not catch up: resume"})
    );
}

/// The same when what Redis sent stops short of where it stands (it
/// counted 7 to 9 but sent only 5 and 6): the next publication would
/// come after a hole.
#[test]
fn a_catch_up_short_of_where_redis_stands_closes_its_clients_to_resume() {
    let mut hub = joined(64);
    let (client, ticket) = catching_up_from_4(&mut hub);
    hub.tell(answer(ticket, 9, "e1", &[5, 6]));
    hub.bus(None, Wire::Mark(ticket));
    hub.bus(Some((10, "e1")), Wire::Pub(on_c("tick", 10)));
    assert_eq!(
        closed_without_ticks(&mut hub, client),
        json!({"close": 1013, "reason": "Could not catch up: resume"})
    );
}

/// A catch-up the queue to Redis cannot take when the hub is back is
/// never answered: the stream's clients here are closed 1013, to resume
/// from Redis, rather than get what comes next past the hole.
#[test]
fn a_catch_up_the_queue_to_redis_cannot_take_closes_its_clients_to_resume() {
    let mut hub = joined(4);
    let client = following_c(&mut hub, 3, "e1");
    hub.bus(Some((4, "e1")), Wire::Pub(on_c("tick", 4)));
    assert_eq!(ticks(&hub.until_pong(client)), [4]);
    // A probe, then the lease, the rejoin and the statuses fill the queue.
    hub.redis(false);
    hub.redis(true);
    assert!(heads(&hub.asked()).is_empty());
    hub.bus(Some((6, "e1")), Wire::Pub(on_c("tick", 6)));
    assert_eq!(
        closed_without_ticks(&mut hub, client),
        json!({"close": 1013, "reason": "Could not catch up: resume"})
    );
}

/// A client that subscribes while this hub is cut off is answered from
/// the hub's own history and sits a catch-up's older publications out (it
/// may have them from another hub). But once the bus brought it one of
/// Redis's publications (the pubsub link held), it has a place in Redis's
/// numbering like every other client, and what the catch-up brings after
/// that place is its too.
#[test]
fn a_client_that_joined_while_cut_off_and_got_a_publication_is_caught_up_too() {
    let mut hub = joined(64);
    let old = following_c(&mut hub, 3, "e1");
    hub.bus(Some((4, "e1")), Wire::Pub(on_c("tick", 4)));
    assert_eq!(ticks(&hub.until_pong(old)), [4]);
    // Only the command connection is lost.
    hub.tell(In::State(Side::Out, false));
    let new = hub.connect(None);
    hub.send(
        new,
        json!({"type": "subscribe", "channel": "c", "since": {"seq": 4, "epoch": "e1"}}),
    );
    let subscribed = hub.next_message(new);
    assert_eq!(subscribed["data"]["recovered"], false, "{subscribed}");
    hub.bus(Some((5, "e1")), Wire::Pub(on_c("tick", 5)));
    assert_eq!(ticks(&hub.until_pong(new)), [5]);
    hub.tell(In::State(Side::Out, true));
    let asked = heads(&hub.asked());
    assert_eq!(asked.len(), 1, "{asked:?}");
    let (ticket, _, since, _) = asked[0].clone();
    assert_eq!(since, Some(5));
    // Redis numbered 6 before it answered; it is still on its way.
    hub.tell(answer(ticket, 6, "e1", &[6]));
    hub.bus(Some((6, "e1")), Wire::Pub(on_c("tick", 6)));
    hub.bus(None, Wire::Mark(ticket));
    hub.bus(Some((7, "e1")), Wire::Pub(on_c("tick", 7)));
    assert_eq!(ticks(&hub.until_pong(new)), [6, 7], "no hole after 5");
    assert_eq!(ticks(&hub.until_pong(old)), [5, 6, 7]);
}

/// A client subscribed to a quiet stream: Redis answered 3, and nothing
/// of it was delivered here since. Redis numbered 4 while this hub's
/// pubsub link was down; when the hub is back, the stream is caught up
/// from 3 all the same, rather than go on at 5.
#[test]
fn a_quiet_stream_is_caught_up_from_where_redis_answered_its_subscriber() {
    let mut hub = joined(64);
    let client = following_c(&mut hub, 3, "e1");
    hub.redis(false);
    hub.redis(true);
    let asked = heads(&hub.asked());
    assert_eq!(asked.len(), 1, "a catch-up: {asked:?}");
    let (ticket, stream, since, epoch) = asked[0].clone();
    assert_eq!(
        (stream.as_str(), since, epoch.as_deref()),
        ("c:c", Some(3), Some("e1"))
    );
    hub.tell(answer(ticket, 4, "e1", &[4]));
    hub.bus(None, Wire::Mark(ticket));
    hub.bus(Some((5, "e1")), Wire::Pub(on_c("tick", 5)));
    assert_eq!(ticks(&hub.until_pong(client)), [4, 5]);
}

/// Mirrors `tests/cluster.rs`,
/// `a_user_who_leaves_during_a_short_cut_off_goes_offline_everywhere`:
/// back after a cut-off, the hub tells Redis who it has now, so a user who
/// left meanwhile goes offline everywhere.
#[test]
fn back_after_a_cut_off_redis_is_told_who_is_here_now() {
    let mut hub = joined(64);
    let alice = hub.connect(Some("alice"));
    let _bob = hub.connect(Some("bob"));
    let joins: Vec<Out> = hub.asked();
    assert!(
        joins
            .iter()
            .any(|o| matches!(o, Out::Join { user } if user == "alice")),
        "{joins:?}"
    );
    hub.redis(false);
    // A probe of the command connection: it may have broken unnoticed.
    assert!(matches!(hub.asked()[..], [Out::Probe]));
    hub.drop_connection(alice);
    assert!(hub.asked().is_empty(), "nothing for Redis while it is away");
    hub.redis(true);
    let asked = hub.asked();
    let rejoin = asked.iter().find_map(|out| match out {
        Out::Rejoin { users } => Some(users.clone()),
        _ => None,
    });
    assert_eq!(rejoin, Some(vec!["bob".to_owned()]), "{asked:?}");
    let joins: Vec<&str> = asked
        .iter()
        .filter_map(|out| match out {
            Out::Join { user } => Some(user.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(joins, ["bob"], "{asked:?}");
    assert!(
        matches!(asked.first(), Some(Out::Heartbeat { .. })),
        "the lease first: {asked:?}"
    );
    assert!(
        asked.iter().any(|o| matches!(o, Out::Snapshot)),
        "{asked:?}"
    );
}

/// Another hub with a service connection, known from its heartbeat.
fn service_there(hub: &mut Harness, up_since: u64) {
    hub.bus(
        None,
        Wire::Hub(HubBeat {
            hub: THERE.to_owned(),
            services: 1,
            up_since,
            ..HubBeat::default()
        }),
    );
}

/// A client here sends a request that goes to the other hub's service.
fn request_there(hub: &mut Harness) -> Peer {
    let client = hub.connect(None);
    hub.send(
        client,
        json!({"type": "agent:start", "correlationId": "r1"}),
    );
    let asked = hub.asked();
    let forwarded = asked.iter().any(|out| match out {
        Out::Send { channel, body } => {
            channel == &wire::hub_channel("wshub", THERE) && body.contains("agent:start")
        }
        _ => false,
    });
    assert!(forwarded, "the request went to the other hub: {asked:?}");
    client
}

fn assert_busy(message: &Value) {
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(message["data"]["code"], "busy", "{message}");
    assert_eq!(message["correlationId"], "r1", "{message}");
}

/// Mirrors `tests/cluster.rs`, `a_request_sent_to_a_hub_that_dies_is_answered_busy`.
#[test]
fn a_request_sent_to_a_hub_that_dies_is_answered_busy_when_its_lease_ends() {
    let mut hub = joined(64);
    service_there(&mut hub, 1);
    let client = request_there(&mut hub);
    assert_eq!(
        hub.until_pong(client),
        Vec::<Value>::new(),
        "waiting for it"
    );
    hub.tick_at(Instant::now() + LEASE + Duration::from_secs(1));
    assert_busy(&hub.next_message(client));
}

/// Mirrors `tests/cluster.rs`,
/// `a_request_whose_answer_was_lost_in_a_short_cut_off_is_answered_busy`:
/// the other hub's heartbeat says it joined Redis again since.
#[test]
fn a_request_to_a_hub_cut_off_since_is_answered_busy() {
    let mut hub = joined(64);
    service_there(&mut hub, 1);
    let client = request_there(&mut hub);
    service_there(&mut hub, 2);
    assert_busy(&hub.next_message(client));
}

/// This hub is cut off: what it asked of others will not be answered.
#[test]
fn a_request_sent_before_this_hub_is_cut_off_is_answered_busy() {
    let mut hub = joined(64);
    service_there(&mut hub, 1);
    let client = request_there(&mut hub);
    hub.redis(false);
    assert_busy(&hub.next_message(client));
}

/// Mirrors `tests/cluster.rs`,
/// `a_publication_the_queue_to_redis_cannot_take_is_refused_not_delivered_on_one_hub`.
#[test]
fn a_publication_the_queue_to_redis_cannot_take_is_refused_and_delivered_nowhere() {
    let mut hub = joined(4);
    let subscriber = following_c(&mut hub, 0, "e1");
    let answers: Vec<_> = (1..=6)
        .map(|n| hub.publish(Target::channel("c"), "tick", json!({ "n": n })))
        .collect();
    for (n, answer) in answers.iter().enumerate().skip(4) {
        match answer.now() {
            Some(Err(Unpublished::Unavailable(why))) => {
                assert!(why.contains("queue to Redis is full"), "{n}: {why}")
            }
            other => panic!("publication {}: {other:?}", n + 1),
        }
    }
    // A client's own publication is refused the same way, with `busy`.
    let publisher = hub.connect(None);
    hub.send(
        publisher,
        json!({"type": "publish", "channel": "c", "event": "tick", "correlationId": "p"}),
    );
    let refused = hub.next_message(publisher);
    assert_eq!(refused["data"]["code"], "busy", "{refused}");
    // Nothing went out on this hub alone.
    assert_eq!(hub.until_pong(subscriber), Vec::<Value>::new());
    // The four Redis took are delivered as Redis numbered them.
    let asked: Vec<Out> = hub
        .asked()
        .into_iter()
        .filter(|out| matches!(out, Out::Publish { .. }))
        .collect();
    assert_eq!(asked.len(), 4, "{asked:?}");
    for (seq, out) in (1..).zip(&asked) {
        hub.published(out, Some((seq, "e1")));
    }
    for answer in &answers[..4] {
        assert_eq!(answer.now(), Some(Ok(1)));
    }
    assert_eq!(ticks(&hub.until_pong(subscriber)), [1, 2, 3, 4]);
}

/// Mirrors `tests/cluster.rs`,
/// `a_request_whose_service_on_another_hub_leaves_is_answered_busy`, on
/// the service's side: the hub whose service took another hub's request
/// tells that hub when the service leaves without answering.
#[test]
fn a_service_here_that_leaves_owing_another_hubs_client_says_so() {
    let mut hub = joined(64);
    let service = hub.connect_service();
    hub.asked();
    let client = format!("c_9-00000000.{THERE}");
    let message = json!({"type": "agent:start", "correlationId": "r1"});
    hub.bus(
        None,
        Wire::Request(wire::Request {
            client: client.clone(),
            user: None,
            session: None,
            meta: serde_json::Map::new(),
            message: serde_json::value::to_raw_value(&message).expect("JSON"),
            corr: Some(serde_json::value::to_raw_value("r1").expect("JSON")),
        }),
    );
    let taken = hub.next_message(service);
    assert_eq!(taken["type"], "client_message", "{taken}");
    assert_eq!(taken["data"]["clientId"], client.as_str(), "{taken}");
    hub.drop_connection(service);
    let asked = hub.asked();
    let told = asked.iter().any(|out| match out {
        Out::Send { channel, body } => {
            channel == &wire::hub_channel("wshub", THERE)
                && body.contains("unanswered")
                && body.contains(&client)
        }
        _ => false,
    });
    assert!(
        told,
        "the client's hub is told it will not be answered: {asked:?}"
    );
}
