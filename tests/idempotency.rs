//! Idempotency keys on one hub: a publish retried with the same
//! `idempotencyKey` (HTTP, WebSocket, the library) gets the first answer
//! and is delivered once; keys are scoped by publisher and target; a bad
//! key is refused. (Across hubs, with Redis: tests/cluster.rs.)

mod support;

use serde_json::{Value, json};
use support::{Client, post, start};
use wshub::{Error, Target};

fn hub() -> support::TestHub {
    start(support::config().allow_client_publish(true))
}

fn follower(hub: &support::TestHub, channel: &str) -> Client {
    let mut client = hub.client("/ws");
    let reply = client.request(json!({"type": "subscribe", "channel": channel}), "s");
    assert_eq!(reply["type"], "subscribed", "{reply}");
    client
}

/// Publishes `marker` from the backend, then reads `client` up to it:
/// every publication on `channel` before it, in order.
fn up_to_marker(hub: &support::TestHub, client: &mut Client, channel: &str) -> Vec<Value> {
    hub.handle()
        .publish(Target::channel(channel), "marker", json!({}))
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let message = client.recv("the marker");
        if message["type"] == "marker" {
            return seen;
        }
        if message["channel"] == channel {
            seen.push(message);
        }
    }
}

#[test]
fn a_retried_http_publish_with_the_same_key_is_answered_alike_and_delivered_once() {
    let hub = hub();
    let mut follower = follower(&hub, "orders");
    let body = json!({"channel": "orders", "type": "order", "data": {"id": 42},
                      "idempotencyKey": "order-42"})
    .to_string();
    let first = post(hub.addr, "/api/publish", &body);
    assert_eq!(first.0, 200, "{first:?}");
    assert_eq!(first.1["data"]["delivered"], 1);
    // The retry (the answer was lost, say): same answer, nothing delivered.
    let again = post(hub.addr, "/api/publish", &body);
    assert_eq!(again, first);
    let seen = up_to_marker(&hub, &mut follower, "orders");
    let kinds: Vec<&Value> = seen.iter().map(|m| &m["type"]).collect();
    assert_eq!(kinds, [&json!("order")], "{seen:?}");
    // Another key is another publication.
    let other = json!({"channel": "orders", "type": "order", "data": {"id": 43},
                       "idempotencyKey": "order-43"});
    assert_eq!(post(hub.addr, "/api/publish", &other.to_string()).0, 200);
    assert_eq!(up_to_marker(&hub, &mut follower, "orders").len(), 1);
}

#[test]
fn a_retried_websocket_publish_with_the_same_key_is_delivered_once() {
    let hub = hub();
    let mut follower = follower(&hub, "chat");
    let mut alice = hub.client("/ws?userId=alice");
    let publish = |correlation: &str| {
        json!({"type": "publish", "channel": "chat", "event": "said",
               "data": {"text": "hi"}, "idempotencyKey": "m-1",
               "correlationId": correlation})
    };
    let first = alice.request(publish("p1"), "p1");
    assert_eq!(first["type"], "published", "{first}");
    assert_eq!(first["data"]["delivered"], 1);
    // Alice's other connection retries (she reconnected): the same answer.
    let mut again = hub.client("/ws?userId=alice");
    let second = again.request(publish("p2"), "p2");
    assert_eq!(second["type"], "published", "{second}");
    assert_eq!(second["data"], first["data"]);
    let seen = up_to_marker(&hub, &mut follower, "chat");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0]["data"],
        json!({"text": "hi"}),
        "the key is not data"
    );
}

#[test]
fn keys_are_scoped_by_publisher_and_target() {
    let hub = hub();
    let mut news = follower(&hub, "news");
    let mut other = follower(&hub, "other");
    let mut alice = hub.client("/ws?userId=alice");
    let mut bob = hub.client("/ws?userId=bob");
    let publish = |channel: &str| json!({"type": "publish", "channel": channel, "event": "e", "idempotencyKey": "k"});
    for (client, channel) in [(&mut alice, "news"), (&mut bob, "news")] {
        let reply = client.request(publish(channel), "p");
        assert_eq!(reply["type"], "published", "{reply}");
    }
    let reply = alice.request(publish("other"), "p");
    assert_eq!(reply["type"], "published", "{reply}");
    // Alice and Bob each once on news; Alice on other is another target.
    assert_eq!(up_to_marker(&hub, &mut news, "news").len(), 2);
    assert_eq!(up_to_marker(&hub, &mut other, "other").len(), 1);
    // The library and the HTTP API publish as the backend: one scope.
    let handle = hub.handle();
    let first = handle
        .publish_idempotent(Target::channel("news"), "e", json!({}), "backend-1")
        .unwrap();
    let body = json!({"channel": "news", "type": "e", "idempotencyKey": "backend-1"});
    let (status, answer) = post(hub.addr, "/api/publish", &body.to_string());
    assert_eq!(status, 200);
    assert_eq!(answer["data"]["delivered"], first);
    assert_eq!(up_to_marker(&hub, &mut news, "news").len(), 1);
}

#[test]
fn a_bad_idempotency_key_is_refused_with_a_reason() {
    let hub = hub();
    let long = "k".repeat(256);
    for key in [json!(""), json!(long), json!(7)] {
        let body = json!({"channel": "c", "idempotencyKey": key}).to_string();
        let (status, answer) = post(hub.addr, "/api/publish", &body);
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["code"], "bad_request");
        if key.is_string() {
            let why = answer["error"].as_str().unwrap();
            assert!(
                why.contains("idempotencyKey must be 1 to 255 bytes"),
                "{why}"
            );
        }
        let mut client = hub.client("/ws");
        let reply = client.request(
            json!({"type": "publish", "channel": "c", "idempotencyKey": key}),
            "p",
        );
        assert_eq!(reply["data"]["code"], "invalid_message", "{reply}");
        assert!(
            reply["data"]["error"]
                .as_str()
                .unwrap()
                .contains("idempotencyKey"),
            "{reply}"
        );
    }
    let err = hub
        .handle()
        .publish_idempotent(Target::channel("c"), "e", 1, "")
        .unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
}
