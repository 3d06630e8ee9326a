//! Catching up: a replay is paced as the client reads, and ends with the
//! client's right to its stream.

use serde_json::{Value, json};

use crate::config::Config;
use crate::publish::Target;
use crate::router::harness::{Connect, Harness, Peer};

/// Subscribes `client` to the channel `x` (from `since`, if given); the
/// answer.
fn subscribe(hub: &mut Harness, client: Peer, since: Option<Value>) -> Value {
    let mut request = json!({"type": "subscribe", "channel": "x", "correlationId": "sub"});
    if let Some(since) = since {
        request["since"] = since;
    }
    hub.send(client, request);
    hub.next_of(client, "subscribed")
}

/// Mirrors `tests/recovery.rs`, `a_catch_up_ends_at_the_clients_own_unsubscribe`:
/// once the client is told `unsubscribed`, nothing of the stream reaches
/// it, neither what was left of its catch-up nor what is published after.
#[test]
fn an_unsubscribe_ends_a_catch_up_under_way() {
    let mut hub = Harness::new(Config::default().max_queue(16).history_size(5_000));
    let client = hub.connect_with(Connect {
        narrow: true,
        ..Connect::default()
    });
    let epoch = subscribe(&mut hub, client, None)["data"]["epoch"].clone();
    hub.send(client, json!({"type": "unsubscribe", "channel": "x"}));
    assert_eq!(hub.next_message(client)["type"], "unsubscribed");
    let pad = "x".repeat(4_000);
    for n in 0..500 {
        let reached = hub.publish(Target::channel("x"), "tick", json!({"n": n, "pad": pad}));
        assert_eq!(reached.now(), Some(Ok(0)));
    }
    let answer = subscribe(&mut hub, client, Some(json!({"seq": 0, "epoch": epoch})));
    assert_eq!(answer["data"]["recovered"], true, "{answer}");
    // Under way: paced, half its queue at a time, far from done.
    for n in 0..5 {
        let tick = hub.next_of(client, "tick");
        assert_eq!(tick["data"]["n"], n, "{tick}");
    }
    assert!(hub.is_replaying(client));
    hub.send(
        client,
        json!({"type": "unsubscribe", "channel": "x", "correlationId": "off"}),
    );
    for n in 500..520 {
        let reached = hub.publish(Target::channel("x"), "tick", json!({"n": n}));
        assert_eq!(
            reached.now(),
            Some(Ok(0)),
            "the client is no audience any more"
        );
    }
    let mut told = false;
    let mut leaked = Vec::new();
    for _ in 0..3 {
        for message in hub.until_pong(client) {
            if message["type"] == "unsubscribed" {
                told = true;
            } else if told && message["channel"] == "x" {
                leaked.push(message["seq"].clone());
            }
        }
    }
    assert!(told, "never told `unsubscribed`");
    assert!(leaked.is_empty(), "after `unsubscribed`: {leaked:?}");
    assert!(!hub.is_replaying(client), "the replay is gone");
}

/// Mirrors `tests/recovery.rs`,
/// `a_replay_larger_than_the_queue_is_paced_not_a_slow_consumer`.
#[test]
fn a_catch_up_larger_than_the_queue_is_paced_not_a_slow_consumer() {
    let mut hub = Harness::new(Config::default().max_queue(16));
    let client = hub.connect(None);
    let epoch = subscribe(&mut hub, client, None)["data"]["epoch"].clone();
    hub.send(client, json!({"type": "unsubscribe", "channel": "x"}));
    assert_eq!(hub.next_message(client)["type"], "unsubscribed");
    for n in 0..100 {
        hub.publish(Target::channel("x"), "tick", json!({ "n": n }));
    }
    let answer = subscribe(&mut hub, client, Some(json!({"seq": 0, "epoch": epoch})));
    assert_eq!(answer["data"]["recovered"], true, "{answer}");
    // Live publications wait behind the catch-up.
    hub.publish(Target::channel("x"), "tick", json!({"n": 100}));
    for n in 0..=100 {
        let tick = hub.next_of(client, "tick");
        assert_eq!(
            (tick["data"]["n"].clone(), tick["seq"].clone()),
            (json!(n), json!(n + 1))
        );
    }
    assert_eq!(hub.router().counters.slow_consumers, 0);
    assert_eq!(hub.until_pong(client), Vec::<Value>::new());
}
