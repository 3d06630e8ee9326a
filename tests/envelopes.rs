//! Envelopes: one hub serves clients that expect different message shapes
//! (`standard`, `flat`, `payload`), chosen per endpoint or with
//! `?envelope=`, and every delivery and reply reaches each client in its own.

mod support;

use std::collections::HashMap;
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};
use support::{DEADLINE, TestHub, read_json};
use tungstenite::{Message, WebSocket};
use wshub::{Config, Endpoint, Envelope, Secret, Target, TokenGrant};

/// A client in any envelope: the raw socket and its first message.
struct Shaped {
    ws: WebSocket<TcpStream>,
    welcome: Value,
}

impl Shaped {
    fn connect(hub: &TestHub, path: &str) -> Shaped {
        let mut ws = support::Client::open(hub.addr, path)
            .unwrap_or_else(|err| panic!("connect {path}: {err}"));
        let welcome = read_json(&mut ws, DEADLINE).expect("a welcome");
        Shaped { ws, welcome }
    }

    fn send(&mut self, value: Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .expect("send");
    }

    fn recv(&mut self, what: &str) -> Value {
        read_json(&mut self.ws, DEADLINE).unwrap_or_else(|err| panic!("expected {what}: {err}"))
    }

    /// Skips messages until one of type `kind`.
    fn expect_eventually(&mut self, kind: &str) -> Value {
        loop {
            let message = self.recv(kind);
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// Sends `request` and returns the message answering it.
    fn request(&mut self, mut request: Value, correlation: &str) -> Value {
        request["correlationId"] = json!(correlation);
        self.send(request);
        loop {
            let message = self.recv(correlation);
            if message["correlationId"] == correlation {
                return message;
            }
        }
    }
}

fn hub_with(config: Config) -> TestHub {
    support::start(config)
}

#[test]
fn each_envelope_greets_its_clients_the_way_they_expect() {
    let hub = support::start_default();

    let mut standard = Shaped::connect(&hub, "/ws");
    assert_eq!(standard.welcome["type"], "connection");
    assert!(standard.welcome["data"]["clientId"].is_string());
    assert!(standard.welcome["timestamp"].is_string());
    let auth = standard.recv("auth");
    assert_eq!(auth["type"], "auth");
    assert_eq!(auth["data"]["success"], true);
    assert_eq!(auth["data"]["userId"], Value::Null);

    let flat = Shaped::connect(&hub, "/ws?envelope=flat&sessionId=s9");
    let welcome = &flat.welcome;
    assert_eq!(welcome["type"], "connection");
    assert_eq!(welcome["status"], "connected");
    assert!(welcome["clientId"].is_string(), "{welcome}");
    assert_eq!(welcome["sessionId"], "s9", "{welcome}");
    assert!(welcome.get("data").is_none(), "{welcome}");
    assert!(welcome["timestamp"].is_string());

    let payload = Shaped::connect(&hub, "/ws?envelope=payload");
    let welcome = &payload.welcome;
    assert_eq!(welcome["type"], "connection:established");
    assert!(welcome["payload"]["clientId"].is_string(), "{welcome}");
    assert!(welcome["timestamp"].is_u64(), "{welcome}");
    assert!(welcome.get("data").is_none(), "{welcome}");
}

#[test]
fn one_fan_out_reaches_each_subscriber_in_its_own_envelope() {
    let hub = support::start_default();
    let mut clients: Vec<Shaped> = ["standard", "flat", "payload"]
        .iter()
        .map(|name| Shaped::connect(&hub, &format!("/ws?envelope={name}")))
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let reply = client.request(
            json!({"type": "subscribe", "sessionId": "s1"}),
            &format!("sub-{i}"),
        );
        assert_eq!(reply["type"], "subscribed", "{reply}");
    }
    let data = json!({"progress": {"chunksReceived": 3}, "task": "t1"});
    let reached = hub
        .handle()
        .publish(Target::session("s1"), "ai_progress", &data)
        .unwrap();
    assert_eq!(reached, 3);

    let standard = clients[0].expect_eventually("ai_progress");
    assert_eq!(standard["sessionId"], "s1");
    assert_eq!(standard["data"], data);
    assert!(standard["timestamp"].is_string());

    let flat = clients[1].expect_eventually("ai_progress");
    assert_eq!(flat["sessionId"], "s1");
    assert_eq!(flat["progress"]["chunksReceived"], 3, "{flat}");
    assert_eq!(flat["task"], "t1");
    assert!(flat.get("data").is_none(), "{flat}");
    assert!(flat["timestamp"].is_string());

    let payload = clients[2].expect_eventually("ai_progress");
    assert_eq!(payload["payload"], data, "{payload}");
    assert!(payload["timestamp"].is_u64(), "{payload}");
    assert!(payload.get("data").is_none(), "{payload}");
}

#[test]
fn a_flat_payload_that_is_not_an_object_or_collides_stays_under_data() {
    let hub = support::start_default();
    let mut flat = Shaped::connect(&hub, "/ws?envelope=flat");
    let id = flat.welcome["clientId"].as_str().unwrap().to_owned();
    hub.handle()
        .publish(Target::client(&id), "note", json!([1, 2]))
        .unwrap();
    let list = flat.expect_eventually("note");
    assert_eq!(list["data"], json!([1, 2]));
    // `type` inside the data would overwrite the message's own.
    let data = json!({"type": "mine", "x": 1});
    hub.handle()
        .publish(Target::client(&id), "note", &data)
        .unwrap();
    let kept = flat.expect_eventually("note");
    assert_eq!(kept["data"], data, "{kept}");
}

#[test]
fn replies_and_errors_use_the_requesters_envelope() {
    let hub = support::start_default();

    let mut payload = Shaped::connect(&hub, "/ws?envelope=payload");
    let pong = payload.request(json!({"type": "ping"}), "p1");
    assert_eq!(pong["type"], "pong");
    assert!(pong["timestamp"].is_u64());
    // Publishing is off by default: the error is in the payload shape.
    let error = payload.request(json!({"type": "publish", "channel": "c"}), "p2");
    assert_eq!(error["type"], "error");
    assert_eq!(error["payload"]["code"], "forbidden", "{error}");
    assert!(error["payload"]["message"].is_string(), "{error}");

    let mut flat = Shaped::connect(&hub, "/ws?envelope=flat");
    let error = flat.request(json!({"type": "publish", "channel": "c"}), "f1");
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "forbidden", "{error}");
    assert!(error["error"].is_string(), "{error}");
    assert_eq!(error["message"], error["error"], "{error}");

    let mut standard = Shaped::connect(&hub, "/ws");
    standard.recv("auth");
    let error = standard.request(json!({"type": "publish", "channel": "c"}), "s1");
    assert_eq!(error["data"]["code"], "forbidden", "{error}");
    assert!(error["data"]["error"].is_string(), "{error}");
}

#[test]
fn client_messages_are_read_in_every_shape_on_every_endpoint() {
    let hub = hub_with(support::config().allow_client_publish(true));
    let mut listener = hub.client("/ws");
    listener.request(json!({"type": "subscribe", "channel": "c"}), "sub");
    // A standard-envelope endpoint, publishing in the three shapes.
    let mut publisher = Shaped::connect(&hub, "/ws?envelope=payload");
    for (i, request) in [
        json!({"type": "publish", "channel": "c", "event": "m", "data": {"text": "hi"}}),
        json!({"type": "publish", "channel": "c", "event": "m", "payload": {"text": "hi"}}),
        json!({"type": "publish", "channel": "c", "event": "m", "text": "hi"}),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = publisher.request(request, &format!("pub-{i}"));
        assert_eq!(reply["type"], "published", "{reply}");
        let message = listener.expect_eventually("m");
        assert_eq!(
            message["data"],
            json!({"text": "hi"}),
            "shape {i}: {message}"
        );
    }
}

#[test]
fn an_endpoint_serves_its_own_envelope_and_the_query_overrides_it() {
    let hub = hub_with(support::config().endpoints(vec![
        Endpoint::new("/agent", Envelope::Payload),
        Endpoint::new("/ide", Envelope::Flat),
    ]));
    assert_eq!(
        Shaped::connect(&hub, "/agent").welcome["type"],
        "connection:established"
    );
    assert_eq!(Shaped::connect(&hub, "/ide").welcome["status"], "connected");
    let mut standard = Shaped::connect(&hub, "/agent?envelope=standard");
    assert!(standard.welcome["data"]["clientId"].is_string());
    assert_eq!(standard.recv("auth")["type"], "auth");
    // The default path keeps the default envelope.
    assert!(Shaped::connect(&hub, "/ws").welcome["data"].is_object());
    // A path that is not an endpoint is still not one.
    let (status, _, _) = support::upgrade_head(hub.addr, "/nowhere", "");
    assert_eq!(status, 404);
}

#[test]
fn an_unknown_envelope_is_refused_with_400_naming_the_choices() {
    let hub = support::start_default();
    let (status, _, body) = support::upgrade_head(hub.addr, "/ws?envelope=xml", "");
    assert_eq!(status, 400);
    assert!(body.contains("xml"), "{body}");
    assert!(body.contains("standard"), "{body}");
    // Nothing was admitted for it.
    hub.wait_stats("no clients", |s| s.active_connections == 0);
}

#[test]
fn an_endpoint_on_a_reserved_path_is_a_config_error() {
    for path in ["/health", "/metrics", "/api/publish", "no-slash"] {
        let config = support::config().endpoints(vec![Endpoint::new(path, Envelope::Flat)]);
        assert!(config.validate().is_err(), "{path} was accepted");
    }
}

#[test]
fn json_heartbeats_reach_every_envelope_when_asked_for() {
    let hub = hub_with(
        support::config()
            .json_heartbeat(true)
            .heartbeat_interval(Duration::from_millis(100)),
    );
    let mut standard = Shaped::connect(&hub, "/ws");
    let beat = standard.expect_eventually("heartbeat");
    assert!(beat["data"]["timestamp"].is_string(), "{beat}");
    let mut payload = Shaped::connect(&hub, "/ws?envelope=payload");
    let beat = payload.expect_eventually("heartbeat");
    assert!(beat["payload"]["timestamp"].is_string(), "{beat}");
    let mut flat = Shaped::connect(&hub, "/ws?envelope=flat");
    let beat = flat.expect_eventually("heartbeat");
    assert!(beat["timestamp"].is_string(), "{beat}");
}

#[test]
fn without_the_flag_there_are_no_json_heartbeats() {
    let hub = hub_with(support::config().heartbeat_interval(Duration::from_millis(50)));
    let mut client = hub.client("/ws");
    // Several heartbeat intervals pass, measured by the protocol Pings the
    // client answers; none of them comes with a JSON heartbeat.
    let mut pings = 0;
    while pings < 3 {
        match client.ws.read().expect("the connection stays up") {
            Message::Ping(_) => pings += 1,
            Message::Text(text) => panic!("unexpected message {text}"),
            _ => {}
        }
    }
    client.expect_nothing_pending();
}

#[test]
fn batches_are_named_by_the_batch_type() {
    let hub = hub_with(support::config().batch_type("batchUpdate"));
    let mut client = hub.client("/ws");
    client.request(json!({"type": "subscribe", "channel": "files"}), "sub");
    for i in 0..3 {
        hub.handle()
            .publish_batched(Target::channel("files"), "file_changed", json!({"n": i}))
            .unwrap();
    }
    let batch = client.expect_eventually("batchUpdate");
    let items = batch["data"]["messages"]
        .as_array()
        .or_else(|| batch["data"].as_array())
        .unwrap_or_else(|| panic!("a batch holds its messages: {batch}"))
        .clone();
    assert!(!items.is_empty());
    assert_eq!(items[0]["type"], "file_changed", "{batch}");
}

#[test]
fn with_anonymous_allowed_a_bad_token_connects_with_auth_failed() {
    let tokens = HashMap::from([(Secret::new("alice-static"), TokenGrant::user("alice"))]);
    let hub = hub_with(
        support::config()
            .tokens(tokens.clone())
            .allow_anonymous(true),
    );
    let mut good = Shaped::connect(&hub, "/ws?token=alice-static");
    let auth = good.recv("auth");
    assert_eq!(auth["data"], json!({"success": true, "userId": "alice"}));

    let mut bad = Shaped::connect(&hub, "/ws?token=nope");
    let auth = bad.recv("auth");
    assert_eq!(auth["data"]["success"], false, "{auth}");
    assert_eq!(auth["data"]["userId"], Value::Null);
    assert!(auth["data"]["error"].is_string(), "{auth}");

    let mut none = Shaped::connect(&hub, "/ws");
    assert_eq!(none.recv("auth")["data"]["success"], false);

    // Without anonymous clients, a bad token is still refused.
    let strict = hub_with(support::config().tokens(tokens));
    let mut refused = support::Client::open(strict.addr, "/ws?token=nope").unwrap();
    let (code, _) = support::expect_close(&mut refused);
    assert_eq!(code, 1008);
}

#[test]
fn a_flat_subscribed_names_its_position_next_to_type() {
    let hub = support::start_default();
    let mut flat = Shaped::connect(&hub, "/ws?envelope=flat");
    let reply = flat.request(json!({"type": "subscribe", "sessionId": "s1"}), "s");
    assert_eq!(reply["type"], "subscribed");
    assert_eq!(reply["seq"], 0, "{reply}");
    assert!(reply["epoch"].is_string(), "{reply}");
    assert!(reply.get("data").is_none(), "{reply}");
}
