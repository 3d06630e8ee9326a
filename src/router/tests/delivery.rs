//! Fan-out and slow consumers.

use serde_json::json;

use crate::config::Config;
use crate::publish::Target;
use crate::router::harness::{Connect, Harness};

/// Mirrors `tests/delivery.rs`, `a_fan_out_to_50_clients_loses_and_reorders_nothing`.
#[test]
fn a_fan_out_reaches_every_subscriber_once_in_order() {
    let mut hub = Harness::new(Config::default());
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let client = hub.connect(None);
            hub.send(client, json!({"type": "subscribe", "channel": "fan"}));
            assert_eq!(hub.next_message(client)["type"], "subscribed");
            client
        })
        .collect();
    const COUNT: u64 = 200;
    for n in 0..COUNT {
        let reached = hub.publish(
            Target::channel("fan"),
            "event",
            json!({"n": n, "pad": "x".repeat(200)}),
        );
        assert_eq!(reached.now(), Some(Ok(50)), "publication {n}");
    }
    for client in clients {
        for n in 0..COUNT {
            let event = hub.next_message(client);
            assert_eq!(event["data"]["n"], n, "lost or reordered: {event}");
            assert_eq!(event["seq"], n + 1, "numbered in order: {event}");
        }
        assert_eq!(hub.until_pong(client), Vec::<serde_json::Value>::new());
    }
    assert_eq!(hub.router().counters.slow_consumers, 0);
}

/// Mirrors `tests/delivery.rs`,
/// `a_client_that_never_reads_is_closed_with_1013_and_holds_nobody_up`.
#[test]
fn a_client_that_stops_reading_is_closed_1013_at_its_limits_and_holds_nobody_up() {
    let mut hub = Harness::new(Config::default().max_queue(16));
    let stuck = hub.connect_with(Connect {
        narrow: true,
        ..Connect::default()
    });
    hub.send(stuck, json!({"type": "subscribe", "channel": "flood"}));
    assert_eq!(hub.next_message(stuck)["type"], "subscribed");
    let healthy: Vec<_> = (0..3)
        .map(|_| {
            let client = hub.connect(None);
            hub.send(client, json!({"type": "subscribe", "channel": "flood"}));
            assert_eq!(hub.next_message(client)["type"], "subscribed");
            client
        })
        .collect();
    let pad = "x".repeat(16 * 1024);
    // Until the stuck client's socket and then its queue are full; the
    // healthy ones read as they go.
    let mut sent = 0u64;
    loop {
        let reached = hub.publish(
            Target::channel("flood"),
            "event",
            json!({"n": sent, "pad": pad}),
        );
        for client in &healthy {
            assert_eq!(hub.next_message(*client)["data"]["n"], sent);
        }
        sent += 1;
        match reached.now() {
            Some(Ok(3)) => break,
            Some(Ok(4)) => assert!(sent < 1_000, "the stuck client was never found slow"),
            other => panic!("publication {sent}: {other:?}"),
        }
    }
    for _ in 0..20 {
        let reached = hub.publish(Target::channel("flood"), "event", json!({"n": sent}));
        assert_eq!(
            reached.now(),
            Some(Ok(3)),
            "nobody waits for the stuck client"
        );
        for client in &healthy {
            assert_eq!(hub.next_message(*client)["data"]["n"], sent);
        }
        sent += 1;
    }
    assert_eq!(hub.router().counters.slow_consumers, 1);
    assert_eq!(hub.router().clients.len(), 3);
    // When it reads at last: what was queued before its limit, then 1013.
    let close = hub.closed(stuck);
    assert_eq!(close, json!({"close": 1013, "reason": "Client too slow"}));
}
