//! History and recovery: every publication on a channel, a session or a user
//! is numbered, and a client that comes back with `since` gets what it
//! missed, in order, then the live ones, with no gap and no duplicate; or
//! `recovered: false` when that is no longer possible, never silence. A
//! catch-up ends with the client's right to its stream, however that right
//! ends, and costs the hub no more than the client's queue.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Client, TestHub, narrow_client, publish_n, start, until_pong};
use wshub::{Config, Secret, Target, TokenGrant};

fn hub_with(config: Config) -> TestHub {
    start(config)
}

/// Subscribes and returns the `subscribed` reply.
fn subscribe(client: &mut Client, topic: Value, since: Option<Value>) -> Value {
    let mut request = json!({"type": "subscribe"});
    for (key, value) in topic.as_object().expect("a topic object") {
        request[key] = value.clone();
    }
    if let Some(since) = since {
        request["since"] = since;
    }
    let reply = client.request(request, "sub");
    assert_eq!(reply["type"], "subscribed", "{reply}");
    reply
}

/// The position a `subscribed` reply or a delivery carries.
fn position(message: &Value) -> Value {
    let data = match message.get("data").filter(|d| d.get("seq").is_some()) {
        Some(data) => data,
        None => message,
    };
    json!({"seq": data["seq"], "epoch": data["epoch"]})
}

/// The next `kind` messages' `data.n`, `n` of them.
fn numbers(client: &mut Client, kind: &str, n: usize) -> Vec<(u64, u64)> {
    (0..n)
        .map(|_| {
            let message = client.expect(kind);
            (
                message["seq"].as_u64().expect("a seq"),
                message["data"]["n"].as_u64().expect("data.n"),
            )
        })
        .collect()
}

#[test]
fn a_channel_subscriber_that_comes_back_gets_what_it_missed_then_live() {
    let hub = support::start_default();
    let target = Target::channel("files");
    let mut first = hub.client("/ws");
    let reply = subscribe(&mut first, json!({"channel": "files"}), None);
    assert_eq!(reply["data"]["seq"], 0);
    assert!(reply["data"].get("recovered").is_none(), "{reply}");
    publish_n(&hub, &target, 0, 3);
    let seen = numbers(&mut first, "tick", 3);
    assert_eq!(seen, [(1, 0), (2, 1), (3, 2)]);
    let since = json!({"seq": 3, "epoch": reply["data"]["epoch"]});
    drop(first);

    publish_n(&hub, &target, 3, 8);
    let mut back = hub.client("/ws");
    let reply = subscribe(&mut back, json!({"channel": "files"}), Some(since));
    assert_eq!(reply["data"]["recovered"], true, "{reply}");
    assert_eq!(reply["data"]["seq"], 8);
    publish_n(&hub, &target, 8, 10);
    let seen = numbers(&mut back, "tick", 7);
    let expected: Vec<(u64, u64)> = (4..=10).map(|seq| (seq, seq - 1)).collect();
    assert_eq!(seen, expected, "the missed ones, then the live ones");
    back.expect_nothing_pending();
    let stats = hub.handle().stats().unwrap();
    assert_eq!((stats.recoveries, stats.recoveries_lost), (1, 0));
}

#[test]
fn a_replay_looks_exactly_like_the_live_delivery_did() {
    let hub = hub_with(support::config().allow_client_publish(true));
    let mut live = hub.client("/ws");
    let reply = subscribe(&mut live, json!({"channel": "chat"}), None);
    let epoch = reply["data"]["epoch"].clone();
    let mut author = hub.client("/ws?userId=ann");
    author.request(
        json!({"type": "publish", "channel": "chat", "event": "said", "data": {"text": "hi"}}),
        "p",
    );
    let delivered = live.expect_eventually("said");
    let mut back = hub.client("/ws");
    subscribe(
        &mut back,
        json!({"channel": "chat"}),
        Some(json!({"seq": 0, "epoch": epoch})),
    );
    let replayed = back.expect("said");
    assert_eq!(replayed, delivered, "same fields, same timestamp");
    assert_eq!(replayed["from"]["userId"], "ann");
}

#[test]
fn a_session_recovers_the_same_way() {
    let hub = support::start_default();
    let target = Target::session("s1");
    let mut client = hub.client("/ws?sessionId=s1");
    let reply = subscribe(&mut client, json!({"sessionId": "s1"}), None);
    publish_n(&hub, &target, 0, 2);
    let seen = numbers(&mut client, "tick", 2);
    assert_eq!(seen, [(1, 0), (2, 1)]);
    drop(client);
    publish_n(&hub, &target, 2, 5);
    let mut back = hub.client("/ws");
    let reply = subscribe(
        &mut back,
        json!({"sessionId": "s1"}),
        Some(json!({"seq": 2, "epoch": reply["data"]["epoch"]})),
    );
    assert_eq!(reply["sessionId"], "s1");
    assert_eq!(reply["data"]["recovered"], true);
    let seen = numbers(&mut back, "tick", 3);
    assert_eq!(seen, [(3, 2), (4, 3), (5, 4)]);
    back.expect_nothing_pending();
}

fn user_hub() -> TestHub {
    hub_with(support::config().tokens(HashMap::from([
        (Secret::new("alice-token"), TokenGrant::user("alice")),
        (Secret::new("bob-token"), TokenGrant::user("bob")),
    ])))
}

#[test]
fn a_user_who_was_offline_catches_up_on_its_notifications() {
    let hub = user_hub();
    let target = Target::user("alice");
    let mut alice = hub.client("/ws?token=alice-token");
    let reply = subscribe(&mut alice, json!({"channel": "user:alice"}), None);
    assert_eq!(reply["channel"], "user:alice");
    publish_n(&hub, &target, 0, 1);
    let note = alice.expect("tick");
    assert_eq!(note["channel"], "user:alice", "{note}");
    assert_eq!(note["seq"], 1);
    let since = position(&note);
    drop(alice);
    hub.wait_stats("alice gone", |s| s.active_connections == 0);

    // Offline: nobody of hers is connected, the stream keeps them.
    publish_n(&hub, &target, 1, 4);
    let mut alice = hub.client("/ws?token=alice-token");
    let reply = subscribe(&mut alice, json!({"channel": "user:alice"}), Some(since));
    assert_eq!(reply["data"]["recovered"], true, "{reply}");
    assert_eq!(numbers(&mut alice, "tick", 3), [(2, 1), (3, 2), (4, 3)]);
    // Live ones still come once, not twice (she is not a channel member).
    publish_n(&hub, &target, 4, 5);
    assert_eq!(numbers(&mut alice, "tick", 1), [(5, 4)]);
    alice.expect_nothing_pending();
}

#[test]
fn a_user_stream_is_its_users_alone() {
    let hub = user_hub();
    let mut bob = hub.client("/ws?token=bob-token");
    let error = bob.request(
        json!({"type": "subscribe", "channel": "user:alice"}),
        "peek",
    );
    assert_eq!(error["data"]["code"], "forbidden", "{error}");
    let error = bob.request(
        json!({"type": "publish", "channel": "user:bob", "data": 1}),
        "self",
    );
    assert_eq!(error["data"]["code"], "forbidden", "{error}");
}

#[test]
fn a_since_older_than_the_history_is_recovered_false() {
    let hub = hub_with(support::config().history_size(3));
    let target = Target::channel("c");
    let mut client = hub.client("/ws");
    let reply = subscribe(&mut client, json!({"channel": "c"}), None);
    let epoch = reply["data"]["epoch"].clone();
    drop(client);
    publish_n(&hub, &target, 0, 10);
    let mut back = hub.client("/ws");
    let reply = subscribe(
        &mut back,
        json!({"channel": "c"}),
        Some(json!({"seq": 0, "epoch": epoch})),
    );
    assert_eq!(reply["data"]["recovered"], false, "{reply}");
    assert_eq!(reply["data"]["seq"], 10);
    // Nothing replayed; live from here.
    back.expect_nothing_pending();
    publish_n(&hub, &target, 10, 11);
    assert_eq!(numbers(&mut back, "tick", 1), [(11, 10)]);
    assert_eq!(hub.handle().stats().unwrap().recoveries_lost, 1);
}

#[test]
fn another_epoch_is_recovered_false() {
    let hub = support::start_default();
    let mut client = hub.client("/ws");
    publish_n(&hub, &Target::channel("c"), 0, 2);
    let reply = subscribe(
        &mut client,
        json!({"channel": "c"}),
        Some(json!({"seq": 1, "epoch": "not-this-one"})),
    );
    assert_eq!(reply["data"]["recovered"], false);
    assert_ne!(reply["data"]["epoch"], "not-this-one");
    client.expect_nothing_pending();
}

#[test]
fn a_restarted_hub_has_new_epochs_so_clients_know_they_missed_data() {
    let first = support::start_default();
    let addr = first.addr;
    let mut client = first.client("/ws");
    let reply = subscribe(&mut client, json!({"channel": "c"}), None);
    let since = position(&reply);
    drop(client);
    first.server.shutdown().unwrap();

    let again = hub_with(support::config().port(addr.port()));
    let mut client = again.client("/ws");
    let reply = subscribe(&mut client, json!({"channel": "c"}), Some(since.clone()));
    assert_eq!(reply["data"]["recovered"], false, "{reply} after {since}");
}

#[test]
fn streams_with_history_off_carry_no_position_and_recover_nothing() {
    let hub = hub_with(support::config().history_off(vec!["typing-*".into()]));
    let mut client = hub.client("/ws");
    let reply = subscribe(&mut client, json!({"channel": "typing-1"}), None);
    assert_eq!(reply["data"], json!({}), "{reply}");
    publish_n(&hub, &Target::channel("typing-1"), 0, 1);
    let tick = client.expect("tick");
    assert!(
        tick.get("seq").is_none() && tick.get("epoch").is_none(),
        "{tick}"
    );
    let reply = subscribe(
        &mut client,
        json!({"channel": "typing-1"}),
        Some(json!({"seq": 0, "epoch": "x"})),
    );
    assert_eq!(reply["data"], json!({"recovered": false}));

    // And with no history at all, nothing is numbered.
    let none = hub_with(support::config().history_size(0));
    let mut client = none.client("/ws");
    subscribe(&mut client, json!({"channel": "files"}), None);
    publish_n(&none, &Target::channel("files"), 0, 1);
    assert!(client.expect("tick").get("seq").is_none());
}

#[test]
fn a_malformed_since_is_a_clear_error() {
    let hub = support::start_default();
    let mut client = hub.client("/ws");
    for since in [
        json!(5),
        json!({"seq": -1, "epoch": "e"}),
        json!({"seq": 1}),
        json!({"seq": 1, "epoch": "e", "extra": true}),
        json!({"seq": 1, "epoch": "e".repeat(100)}),
    ] {
        let reply = client.request(
            json!({"type": "subscribe", "channel": "c", "since": since}),
            "bad",
        );
        assert_eq!(reply["type"], "error", "{since}: {reply}");
        assert_eq!(reply["data"]["code"], "invalid_message", "{since}: {reply}");
    }
    client.expect_nothing_pending();
}

#[test]
fn batched_items_are_numbered_and_replayed_one_by_one() {
    // The three go as one batch once the third is in: the default 100 ms
    // window can pass between two calls on a busy machine.
    let hub = hub_with(
        support::config()
            .batch_window(Duration::from_secs(60))
            .batch_max(3),
    );
    let target = Target::session("s1");
    let mut client = hub.client("/ws?sessionId=s1");
    let reply = subscribe(&mut client, json!({"sessionId": "s1"}), None);
    let epoch = reply["data"]["epoch"].clone();
    for n in 0..3 {
        hub.handle()
            .publish_batched(target.clone(), "tick", json!({ "n": n }))
            .unwrap();
    }
    let batch = client.expect("batch_update");
    let items = batch["data"]["messages"].as_array().unwrap();
    let seqs: Vec<_> = items.iter().map(|i| i["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(items.iter().all(|i| i["epoch"] == epoch), "{batch}");

    let mut back = hub.client("/ws");
    subscribe(
        &mut back,
        json!({"sessionId": "s1"}),
        Some(json!({"seq": 1, "epoch": epoch})),
    );
    assert_eq!(numbers(&mut back, "tick", 2), [(2, 1), (3, 2)]);
}

#[test]
fn a_batch_held_when_a_client_resumes_is_neither_lost_nor_doubled() {
    let hub = hub_with(support::config().batch_window(Duration::from_secs(60)));
    let target = Target::channel("c");
    let mut client = hub.client("/ws");
    let reply = subscribe(&mut client, json!({"channel": "c"}), None);
    let epoch = reply["data"]["epoch"].clone();
    for n in 0..2 {
        hub.handle()
            .publish_batched(target.clone(), "tick", json!({ "n": n }))
            .unwrap();
    }
    let mut back = hub.client("/ws");
    subscribe(
        &mut back,
        json!({"channel": "c"}),
        Some(json!({"seq": 0, "epoch": epoch})),
    );
    // The held batch went out first (to the one already subscribed)...
    assert_eq!(
        client.expect("batch_update")["data"]["messages"][1]["seq"],
        2
    );
    // ...and the one resuming got both once, replayed.
    assert_eq!(numbers(&mut back, "tick", 2), [(1, 0), (2, 1)]);
    back.expect_nothing_pending();
}

#[test]
fn a_replay_larger_than_the_queue_is_paced_not_a_slow_consumer() {
    let hub = hub_with(support::config().max_queue(16).history_size(2_000));
    let target = Target::channel("big");
    let mut client = hub.client("/ws");
    let reply = subscribe(&mut client, json!({"channel": "big"}), None);
    let epoch = reply["data"]["epoch"].clone();
    drop(client);
    publish_n(&hub, &target, 0, 1_000);
    let mut back = hub.client("/ws");
    subscribe(
        &mut back,
        json!({"channel": "big"}),
        Some(json!({"seq": 0, "epoch": epoch})),
    );
    // Live publications while the replay is under way wait behind it.
    publish_n(&hub, &target, 1_000, 1_010);
    let seen = numbers(&mut back, "tick", 1_010);
    let expected: Vec<(u64, u64)> = (1..=1_010).map(|seq| (seq, seq - 1)).collect();
    assert_eq!(seen, expected);
    back.expect_nothing_pending();
    assert_eq!(hub.handle().stats().unwrap().slow_consumers, 0);
}

#[test]
fn resuming_while_a_publisher_runs_flat_out_leaves_no_gap_and_no_duplicate() {
    let hub = hub_with(support::config().history_size(100_000));
    let mut first = hub.client("/ws");
    let reply = subscribe(&mut first, json!({"channel": "race"}), None);
    let epoch = reply["data"]["epoch"].clone();
    drop(first);
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let handle = hub.handle().clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0u64;
            // Bounded: it stops when told, or after this many.
            while !stop.load(Ordering::Relaxed) && n < 200_000 {
                handle
                    .publish(Target::channel("race"), "tick", json!({ "n": n }))
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    // Several clients resume again and again from where they left off,
    // each time reading a different number of messages before dropping.
    let mut since: Vec<u64> = vec![0; 4];
    for round in 0..6usize {
        for (i, seen) in since.iter_mut().enumerate() {
            let mut client = hub.client("/ws");
            let reply = subscribe(
                &mut client,
                json!({"channel": "race"}),
                Some(json!({"seq": *seen, "epoch": epoch})),
            );
            assert_eq!(reply["data"]["recovered"], true, "{reply}");
            for _ in 0..(50 + 37 * (round + i)) {
                let tick = client.expect("tick");
                let seq = tick["seq"].as_u64().unwrap();
                assert_eq!(
                    seq,
                    *seen + 1,
                    "client {i} round {round}: a gap or a duplicate"
                );
                assert_eq!(tick["data"]["n"], seq - 1);
                *seen = seq;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let published = publisher.join().unwrap();
    assert!(published > 0);
}

#[test]
fn history_stays_within_its_byte_budget_under_a_flood_of_new_streams() {
    let budget = 256 * 1024;
    let hub = hub_with(support::config().max_history_bytes(budget));
    let mut watcher = hub.client("/ws");
    subscribe(&mut watcher, json!({"channel": "kept"}), None);
    let payload = "x".repeat(200);
    for n in 0..20_000 {
        hub.handle()
            .publish(
                Target::channel(format!("flood-{n}")),
                "tick",
                json!({ "p": payload }),
            )
            .unwrap();
        if n % 1000 == 0 {
            let stats = hub.handle().stats().unwrap();
            assert!(
                stats.history_bytes <= budget + 64 * 1024,
                "{} bytes of history at {n}",
                stats.history_bytes
            );
        }
    }
    let stats = hub.handle().stats().unwrap();
    assert!(stats.history_bytes <= budget + 64 * 1024);
    assert!(
        stats.history_streams < 5_000,
        "{} streams",
        stats.history_streams
    );
    // The stream with a subscriber is still known, positioned as before.
    let reply = subscribe(&mut watcher, json!({"channel": "kept"}), None);
    assert_eq!(reply["data"]["seq"], 0);
}

#[test]
fn history_figures_are_in_the_stats_and_metrics() {
    let hub = support::start_default();
    publish_n(&hub, &Target::channel("c"), 0, 3);
    let stats = hub.handle().stats().unwrap();
    assert_eq!(stats.history_entries, 3);
    assert_eq!(stats.history_streams, 1);
    assert!(stats.history_bytes > 0);
    let (status, _, body) = support::http_raw(hub.addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(body.contains("wshub_history_entries 3"), "{body}");
    assert!(body.contains("wshub_recoveries_total 0"));
}

// --- access withdrawn during a catch-up -------------------------------------

const ADMIN: &str = "recovery-admin";

/// A hub where `ann-full` may read `private-x` and `ann-less` (the same
/// user) may not, with queues so short that a catch-up of 1000 is paced.
fn private_hub() -> TestHub {
    hub_with(
        support::config()
            .tokens(HashMap::from([
                (
                    Secret::new("ann-full"),
                    TokenGrant {
                        channels: Some(vec!["private-x".into()]),
                        ..TokenGrant::user("ann")
                    },
                ),
                (
                    Secret::new("ann-less"),
                    TokenGrant {
                        channels: Some(vec![]),
                        ..TokenGrant::user("ann")
                    },
                ),
            ]))
            .admin_token(Some(ADMIN.into()))
            .max_queue(16)
            .history_size(5_000),
    )
}

/// How a client's right to a stream is withdrawn.
#[derive(Debug, Clone, Copy)]
enum Withdrawal {
    OwnUnsubscribe,
    HttpUnsubscribe,
    /// `/api/unsubscribe` with neither channel nor session: every session.
    HttpLeaveEverySession,
    HandleUnsubscribe,
    ServiceUnsubscribe,
    Refresh,
}

/// An admin HTTP request; its status and body.
fn admin_post(hub: &TestHub, path: &str, body: &Value) -> (u16, String) {
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        hub.addr,
        body.len()
    );
    let (status, _, body) = support::http_raw(hub.addr, request.as_bytes());
    (status, body)
}

/// Withdraws `client`'s right to `topic` the way `how` says, once the hub
/// has done it (each way answers only then).
fn withdraw(hub: &TestHub, client: &mut Client, topic: &Value, how: Withdrawal) {
    let id = client.id();
    let mut body = topic.clone();
    body["clientId"] = json!(id);
    match how {
        Withdrawal::OwnUnsubscribe => {
            let mut request = topic.clone();
            request["type"] = json!("unsubscribe");
            request["correlationId"] = json!("own");
            client.send(request);
        }
        Withdrawal::HttpUnsubscribe => {
            let (status, body) = admin_post(hub, "/api/unsubscribe", &body);
            assert_eq!(status, 200, "{body}");
        }
        Withdrawal::HttpLeaveEverySession => {
            let (status, body) = admin_post(hub, "/api/unsubscribe", &json!({ "clientId": id }));
            assert_eq!(status, 200, "{body}");
        }
        Withdrawal::HandleUnsubscribe => {
            let topic = match topic.get("channel") {
                Some(channel) => Some(wshub::Topic::Channel(channel.as_str().unwrap().into())),
                None => topic
                    .get("sessionId")
                    .map(|s| wshub::Topic::Session(s.as_str().unwrap().into())),
            };
            assert!(hub.handle().unsubscribe(&id, topic).unwrap());
        }
        Withdrawal::ServiceUnsubscribe => {
            let mut service = hub.client(&format!("/ws?token={ADMIN}"));
            body["type"] = json!("unsubscribe");
            let ack = service.request(body, "svc");
            assert_eq!(ack["type"], "ack", "{ack}");
            assert_eq!(ack["data"]["done"], true, "{ack}");
        }
        Withdrawal::Refresh => client.send(json!({
            "type": "refresh", "data": {"token": "ann-less"}, "correlationId": "refresh"
        })),
    }
}

/// A client resumes `topic` from its start, with 2000 publications of
/// 4 KB to catch up on (more than its socket holds) and queues that hold
/// 16, reads a few, then loses its right to the stream `how`, after which
/// 200 more are published: after its `unsubscribed`, nothing of the stream
/// may reach it, neither what was left of the catch-up nor the live ones.
fn a_catch_up_ends_with_access(topic: Value, target: Target, how: Withdrawal) {
    let hub = private_hub();
    let mut client = narrow_client(&hub, "/ws?token=ann-full");
    let reply = subscribe(&mut client, topic.clone(), None);
    let epoch = reply["data"]["epoch"].clone();
    let mut away = topic.clone();
    away["type"] = json!("unsubscribe");
    client.request(away, "away");
    let pad = "x".repeat(4_000);
    for n in 0..2_000 {
        hub.handle()
            .publish(target.clone(), "tick", json!({ "n": n, "pad": pad }))
            .unwrap();
    }
    subscribe(
        &mut client,
        topic.clone(),
        Some(json!({"seq": 0, "epoch": epoch})),
    );
    // The catch-up is under way: paced, 8 queued at a time.
    assert_eq!(numbers(&mut client, "tick", 5).len(), 5);
    withdraw(&hub, &mut client, &topic, how);
    for n in 2_000..2_200 {
        let reached = hub
            .handle()
            .publish(target.clone(), "tick", json!({ "n": n }))
            .unwrap();
        // A client whose right was withdrawn is not its audience (the own
        // unsubscribe may not be handled yet).
        if !matches!(how, Withdrawal::OwnUnsubscribe | Withdrawal::Refresh) {
            assert_eq!(reached, 0, "{how:?}: published to the withdrawn client");
        }
    }
    let name = topic
        .get("channel")
        .or_else(|| topic.get("sessionId"))
        .unwrap()
        .clone();
    let mut told = false;
    let mut leaked = Vec::new();
    for round in 0..3 {
        for message in until_pong(&mut client, &format!("after-{round}")) {
            if message["type"] == "unsubscribed" {
                told = true;
            } else if told
                && (message["channel"] == name || message["sessionId"] == name)
                && message["type"] != "unsubscribed"
            {
                leaked.push(message["seq"].clone());
            }
        }
    }
    assert!(told, "{how:?}: the client was never told `unsubscribed`");
    assert!(
        leaked.is_empty(),
        "{how:?}: {} messages of the stream reached the client after its `unsubscribed`, seq {:?}...",
        leaked.len(),
        &leaked[..leaked.len().min(5)]
    );
    client.expect_nothing_pending();
}

fn private_x() -> (Value, Target) {
    (
        json!({"channel": "private-x"}),
        Target::channel("private-x"),
    )
}

#[test]
fn a_catch_up_ends_at_the_clients_own_unsubscribe() {
    let (topic, target) = private_x();
    a_catch_up_ends_with_access(topic, target, Withdrawal::OwnUnsubscribe);
}

#[test]
fn a_catch_up_ends_at_an_unsubscribe_over_http() {
    let (topic, target) = private_x();
    a_catch_up_ends_with_access(topic, target, Withdrawal::HttpUnsubscribe);
}

#[test]
fn a_catch_up_ends_at_the_librarys_unsubscribe() {
    let (topic, target) = private_x();
    a_catch_up_ends_with_access(topic, target, Withdrawal::HandleUnsubscribe);
}

#[test]
fn a_catch_up_ends_at_a_services_unsubscribe() {
    let (topic, target) = private_x();
    a_catch_up_ends_with_access(topic, target, Withdrawal::ServiceUnsubscribe);
}

#[test]
fn a_catch_up_ends_at_a_refresh_to_a_token_without_the_channel() {
    let (topic, target) = private_x();
    a_catch_up_ends_with_access(topic, target, Withdrawal::Refresh);
}

#[test]
fn a_session_catch_up_ends_when_the_backend_takes_the_client_off_every_session() {
    a_catch_up_ends_with_access(
        json!({"sessionId": "s-ann"}),
        Target::session("s-ann"),
        Withdrawal::HttpLeaveEverySession,
    );
}

// --- a catch-up is bounded like any queue -----------------------------------

/// `/api/ws/stats`'s count of messages waiting for clients.
fn queued_messages(hub: &TestHub) -> u64 {
    let (status, body) = support::get(hub.addr, "/api/ws/stats");
    assert_eq!(status, 200, "{body}");
    body["queuedMessages"]
        .as_u64()
        .unwrap_or_else(|| panic!("no queuedMessages in {body}"))
}

#[test]
fn a_client_that_stops_reading_mid_catch_up_is_a_slow_consumer_holding_no_more_than_its_queue() {
    const QUEUE: usize = 64;
    // 2000 of 8 KB to catch up on: far more than the sockets hold.
    const MISSED: u64 = 2_000;
    let hub = hub_with(support::config().max_queue(QUEUE).history_size(3_000));
    let target = Target::channel("big");
    let pad = "x".repeat(8_000);
    let publish = |n: u64| {
        hub.handle()
            .publish(target.clone(), "tick", json!({ "n": n, "pad": pad }))
            .unwrap()
    };
    let mut client = narrow_client(&hub, "/ws");
    let reply = subscribe(&mut client, json!({"channel": "big"}), None);
    let epoch = reply["data"]["epoch"].clone();
    client.request(json!({"type": "unsubscribe", "channel": "big"}), "away");
    for n in 0..MISSED {
        publish(n);
    }
    subscribe(
        &mut client,
        json!({"channel": "big"}),
        Some(json!({"seq": 0, "epoch": epoch})),
    );
    let got = numbers(&mut client, "tick", 5);
    let last = got[4].0;
    // It stops reading; publications go on, past what the history keeps.
    let mut n = MISSED;
    while hub.handle().stats().unwrap().slow_consumers == 0 {
        assert!(
            n < 4 * MISSED,
            "{n} publications, the catch-up's client never read again and was never closed"
        );
        for _ in 0..500 {
            publish(n);
            n += 1;
        }
        let queued = queued_messages(&hub);
        assert!(
            queued <= QUEUE as u64,
            "{queued} messages queued or held for a client whose queue holds {QUEUE}"
        );
    }
    assert_eq!(client.expect_close(), (1013, "Client too slow".to_owned()));
    // It lost data, and is told so when it comes back.
    let mut back = hub.client("/ws");
    let reply = subscribe(
        &mut back,
        json!({"channel": "big"}),
        Some(json!({"seq": last, "epoch": epoch})),
    );
    assert_eq!(reply["data"]["recovered"], false, "{reply}");
    assert_eq!(queued_messages(&hub), 0);
}
