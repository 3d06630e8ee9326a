//! The wire protocol over real sockets: welcome, ping, subscriptions,
//! publishing, presence, errors for every kind of bad input, and the
//! connection staying usable after each.

mod support;

use serde_json::json;
use std::io::Write;

use support::{Client, DEADLINE, read_json, start, start_default};
use tungstenite::Message;
use wshub::Target;

fn is_timestamp(value: &serde_json::Value) -> bool {
    let Some(text) = value.as_str() else {
        return false;
    };
    let b = text.as_bytes();
    text.len() == 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && text.chars().filter(char::is_ascii_digit).count() == 17
}

#[test]
fn the_first_message_is_the_connection_welcome() {
    let hub = start_default();
    let client = hub.client("/ws?userId=u1&sessionId=s1");
    let w = &client.welcome;
    assert!(w["data"]["clientId"].as_str().unwrap().starts_with("c_"));
    assert_eq!(w["data"]["userId"], "u1");
    assert_eq!(w["data"]["sessionId"], "s1");
    assert_eq!(w["data"]["authenticated"], false);
    assert_eq!(w["data"]["heartbeatMs"], 30_000);
    assert!(is_timestamp(&w["timestamp"]), "{w}");

    let anonymous = hub.client("/ws");
    assert_eq!(anonymous.welcome["data"]["userId"], serde_json::Value::Null);
    assert_ne!(anonymous.id(), client.id());
}

#[test]
fn clients_may_connect_to_the_bare_host_and_to_a_custom_path() {
    let hub = start(support::config().path("/live"));
    hub.client("/");
    hub.client("/live?userId=x");
    let err = Client::open(hub.addr, "/ws").expect_err("/ws is not the endpoint any more");
    assert!(err.to_string().contains("404"), "{err}");
}

#[test]
fn ping_gets_pong_with_the_correlation_id() {
    let hub = start_default();
    let mut client = hub.client("/ws");
    client.send(json!({"type": "ping"}));
    let pong = client.expect("pong");
    assert!(pong.get("correlationId").is_none());
    assert!(is_timestamp(&pong["timestamp"]));

    let pong = client.request(json!({"type": "ping"}), "r1");
    assert_eq!(pong["type"], "pong");
    let pong = client.request(json!({"type": "ping", "correlationId": 42}), "x");
    assert_eq!(pong["type"], "pong");
    client.send(json!({"type": "ping", "correlationId": 42}));
    assert_eq!(client.expect("pong")["correlationId"], 42);
}

#[test]
fn subscribers_of_a_channel_receive_its_events_and_others_do_not() {
    let hub = start_default();
    let mut files = hub.client("/ws");
    let mut git = hub.client("/ws");
    let reply = files.request(json!({"type": "subscribe", "channel": "files"}), "s");
    assert_eq!(reply["type"], "subscribed");
    assert_eq!(reply["channel"], "files");
    assert_eq!(reply["data"]["seq"], 0, "nothing published yet: {reply}");
    let epoch = reply["data"]["epoch"].clone();
    git.request(json!({"type": "subscribe", "channel": "git"}), "s");

    let delivered = hub
        .handle()
        .publish(
            Target::channel("files"),
            "event",
            json!({"file": "src/main.ts", "event": "change"}),
        )
        .unwrap();
    assert_eq!(delivered, 1);
    let event = files.expect("event");
    assert_eq!(event["channel"], "files");
    assert_eq!(event["data"]["file"], "src/main.ts");
    assert_eq!((&event["seq"], &event["epoch"]), (&json!(1), &epoch));
    assert!(is_timestamp(&event["timestamp"]));
    git.expect_nothing_pending();

    let reply = files.request(json!({"type": "unsubscribe", "channel": "files"}), "u");
    assert_eq!(reply["type"], "unsubscribed");
    assert_eq!(reply["channel"], "files");
    let delivered = hub
        .handle()
        .publish(Target::channel("files"), "event", json!(1))
        .unwrap();
    assert_eq!(delivered, 0);
    files.expect_nothing_pending();
}

#[test]
fn every_channel_of_the_ide_seed_carries_events() {
    let hub = start_default();
    let mut client = hub.client("/ws");
    let channels = [
        "files",
        "diagnostics",
        "ai-response",
        "search",
        "validation",
        "git",
    ];
    for channel in channels {
        client.request(json!({"type": "subscribe", "channel": channel}), channel);
    }
    for channel in channels {
        hub.handle()
            .publish(Target::channel(channel), "event", json!({"on": channel}))
            .unwrap();
        let event = client.expect("event");
        assert_eq!(event["channel"], channel);
        assert_eq!(event["data"]["on"], channel);
    }
}

#[test]
fn connecting_with_a_session_id_subscribes_to_that_session() {
    let hub = start_default();
    let mut watcher = hub.client("/ws?sessionId=my_session");
    let mut other = hub.client("/ws?sessionId=other");
    for (kind, data) in [
        (
            "ai_start",
            json!({"prompt": "Create a React component", "mode": "generate"}),
        ),
        (
            "ai_progress",
            json!({"chunksReceived": 25, "contentLength": 1250}),
        ),
        (
            "ai_complete",
            json!({"mode": "generate", "contentLength": 5000, "chunks": 100}),
        ),
        (
            "ai_error",
            json!({"message": "API rate limit exceeded", "type": "rate_limit_error"}),
        ),
    ] {
        let delivered = hub
            .handle()
            .publish(Target::session("my_session"), kind, data.clone())
            .unwrap();
        assert_eq!(delivered, 1);
        let message = watcher.expect(kind);
        assert_eq!(message["sessionId"], "my_session");
        assert_eq!(message["data"], data);
    }
    other.expect_nothing_pending();
}

#[test]
fn sessions_can_be_joined_and_left_by_message() {
    let hub = start_default();
    let mut client = hub.client("/ws");
    let reply = client.request(
        json!({"type": "subscribe", "sessionId": "session_123"}),
        "a",
    );
    assert_eq!(reply["type"], "subscribed");
    assert_eq!(reply["sessionId"], "session_123");
    client.request(json!({"type": "subscribe", "sessionId": "second"}), "b");
    assert_eq!(
        hub.handle()
            .publish(Target::session("session_123"), "ai_start", json!({}))
            .unwrap(),
        1
    );
    client.expect("ai_start");

    // `unsubscribe` with no field leaves every session (as the AI Canvas clients expect).
    let reply = client.request(json!({"type": "unsubscribe"}), "c");
    assert_eq!(reply["type"], "unsubscribed");
    assert!(reply.get("sessionId").is_none());
    assert_eq!(
        hub.handle()
            .publish(Target::session("session_123"), "ai_start", json!({}))
            .unwrap(),
        0
    );
    assert_eq!(
        hub.handle()
            .publish(Target::session("second"), "ai_start", json!({}))
            .unwrap(),
        0
    );

    client.request(json!({"type": "subscribe", "sessionId": "third"}), "d");
    let reply = client.request(json!({"type": "unsubscribe", "sessionId": "third"}), "e");
    assert_eq!(reply["sessionId"], "third");
    assert_eq!(
        hub.handle()
            .publish(Target::session("third"), "x", json!({}))
            .unwrap(),
        0
    );
}

#[test]
fn client_publish_is_forbidden_unless_the_server_allows_it() {
    let hub = start_default();
    let mut client = hub.client("/ws");
    client.request(json!({"type": "subscribe", "channel": "chat"}), "s");
    let reply = client.request(
        json!({"type": "publish", "channel": "chat", "data": {"text": "hi"}}),
        "p",
    );
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["data"]["code"], "forbidden");
    assert!(
        reply["data"]["error"]
            .as_str()
            .unwrap()
            .contains("--allow-client-publish")
    );
    client.expect_nothing_pending();
}

#[test]
fn allowed_client_publications_reach_every_subscriber_including_the_publisher() {
    let hub = start(support::config().allow_client_publish(true));
    let mut alice = hub.client("/ws?userId=alice");
    let mut bob = hub.client("/ws?userId=bob");
    // Presence noise from the two joins.
    alice.expect_eventually("user_presence");
    alice.expect_eventually("user_presence");
    bob.expect_eventually("user_presence");
    alice.request(json!({"type": "subscribe", "channel": "chat"}), "s");
    bob.request(json!({"type": "subscribe", "channel": "chat"}), "s");

    let reply = alice.request(
        json!({"type": "publish", "channel": "chat", "event": "chat_message", "data": {"content": "hi"}}),
        "p1",
    );
    // Alice is subscribed too: her own message comes before the reply.
    assert_eq!(reply["type"], "published");
    assert_eq!(reply["data"]["delivered"], 2);
    let message = bob.expect("chat_message");
    assert_eq!(message["channel"], "chat");
    assert_eq!(message["data"]["content"], "hi");
    assert_eq!(message["from"]["userId"], "alice");

    // Without a correlationId there is no `published` reply; `payload` is an alias of `data`.
    alice.send(json!({"type": "publish", "channel": "chat", "payload": {"n": 1}}));
    let own = alice.expect("event");
    assert_eq!(own["data"]["n"], 1);
    assert_eq!(own["from"]["clientId"], alice.id());
    bob.expect("event");
    alice.expect_nothing_pending();

    // Sessions work the same way.
    alice.request(json!({"type": "subscribe", "sessionId": "pair"}), "s2");
    bob.request(json!({"type": "subscribe", "sessionId": "pair"}), "s2");
    bob.send(
        json!({"type": "publish", "sessionId": "pair", "event": "cursor", "data": {"line": 3}}),
    );
    let cursor = alice.expect("cursor");
    assert_eq!(cursor["sessionId"], "pair");

    // Events may not pass for the hub's own messages.
    let reply = alice.request(
        json!({"type": "publish", "channel": "chat", "event": "connection"}),
        "p2",
    );
    assert_eq!(reply["data"]["code"], "invalid_message");
}

#[test]
fn presence_is_broadcast_and_offline_follows_the_last_connection() {
    let hub = start(support::config().presence_grace(std::time::Duration::ZERO));
    let mut watcher = hub.client("/ws?userId=watcher");
    let online = watcher.expect("user_presence");
    assert_eq!(
        online["data"],
        json!({"userId": "watcher", "status": "online"})
    );

    let mut first = hub.client("/ws?userId=user_abc123");
    let online = watcher.expect("user_presence");
    assert_eq!(
        online["data"],
        json!({"userId": "user_abc123", "status": "online"})
    );
    let second = hub.client("/ws?userId=user_abc123");
    first.expect_eventually("user_presence");

    // The Code Cloud Agents clients send a bare status.
    first.send(json!({"type": "user_presence", "data": "busy"}));
    let busy = watcher.expect("user_presence");
    assert_eq!(
        busy["data"],
        json!({"userId": "user_abc123", "status": "busy"})
    );
    let ack = first.request(
        json!({"type": "user_presence", "data": {"status": "away"}}),
        "a1",
    );
    assert_eq!(ack["type"], "ack");
    watcher.expect("user_presence");

    let list = watcher.request(json!({"type": "presence"}), "q");
    assert_eq!(
        list["data"]["users"],
        json!([{"userId": "user_abc123", "status": "away"}, {"userId": "watcher", "status": "online"}])
    );

    // One of two connections leaving is not news; the last one is.
    drop(second);
    watcher.expect_nothing_pending();
    first.ws.close(None).unwrap();
    let offline = watcher.expect("user_presence");
    assert_eq!(
        offline["data"],
        json!({"userId": "user_abc123", "status": "offline"})
    );
}

#[test]
fn a_quick_reconnection_is_not_announced_offline() {
    // The reconnection must come within the grace: two seconds leave room
    // for a busy machine's scheduling (it takes milliseconds on a quiet one).
    let hub = start(support::config().presence_grace(std::time::Duration::from_secs(2)));
    let mut watcher = hub.client("/ws?userId=watcher");
    watcher.expect("user_presence");
    let tab = hub.client("/ws?userId=alice");
    assert_eq!(watcher.expect("user_presence")["data"]["status"], "online");
    // A page reload: the old connection goes, a new one comes at once.
    drop(tab);
    let tab = hub.client("/ws?userId=alice");
    watcher.expect_nothing_pending();
    // Leaving for good is announced once the grace period is over.
    drop(tab);
    let offline = watcher.expect("user_presence");
    assert_eq!(
        offline["data"],
        json!({"userId": "alice", "status": "offline"})
    );
}

#[test]
fn presence_without_a_user_is_refused() {
    let hub = start_default();
    let mut client = hub.client("/ws");
    let reply = client.request(json!({"type": "user_presence", "data": "online"}), "p");
    assert_eq!(reply["data"]["code"], "forbidden");
    let reply = client.request(json!({"type": "user_presence", "data": "dancing"}), "q");
    assert_eq!(reply["data"]["code"], "invalid_message");
}

#[test]
fn unknown_types_are_answered_unknown_type() {
    let hub = start_default();
    let mut client = hub.client("/ws");
    let reply = client.request(
        json!({"type": "agent:start", "payload": {"projectId": "p"}}),
        "c1",
    );
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["data"]["code"], "unknown_type");
    assert_eq!(reply["data"]["error"], "Unknown message type: agent:start");
}

#[test]
fn every_kind_of_malformed_input_gets_its_error_and_the_connection_keeps_working() {
    let hub = start_default();
    let mut client = hub.client("/ws");
    let mut bystander = hub.client("/ws");
    bystander.request(json!({"type": "subscribe", "channel": "c"}), "s");
    let cases: &[(&str, &str)] = &[
        ("not json", "invalid_json"),
        ("{\"type\":", "invalid_json"),
        ("", "invalid_json"),
        ("[1,2,3]", "invalid_message"),
        ("\"ping\"", "invalid_message"),
        ("null", "invalid_message"),
        ("{}", "invalid_message"),
        ("{\"type\":42}", "invalid_message"),
        ("{\"type\":\"subscribe\"}", "invalid_message"),
        ("{\"type\":\"subscribe\",\"channel\":[]}", "invalid_message"),
        (
            "{\"type\":\"subscribe\",\"channel\":\"no spaces\"}",
            "invalid_channel",
        ),
        (
            "{\"type\":\"subscribe\",\"sessionId\":\"\"}",
            "invalid_channel",
        ),
        (
            "{\"type\":\"ping\",\"correlationId\":[1]}",
            "invalid_message",
        ),
        ("{\"type\":\"ping\",\"type\":\"ping\"}", "invalid_message"),
        ("{\"type\":\"nope\"}", "unknown_type"),
    ];
    for (text, code) in cases {
        client.send_text(text);
        let reply = client.expect("error");
        assert_eq!(reply["data"]["code"], *code, "{text}: {reply}");
        assert!(!reply["data"]["error"].as_str().unwrap().is_empty());
        // Still alive and answering.
        assert_eq!(
            client.request(json!({"type": "ping"}), "alive")["type"],
            "pong"
        );
    }
    // Deeply nested JSON is data like any other.
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    client.send_text(&format!("{{\"type\":\"user_presence\",\"data\":{deep}}}"));
    assert_eq!(client.expect("error")["data"]["code"], "invalid_message");

    // A binary frame is refused politely.
    client.ws.send(Message::binary(vec![1, 2, 3])).unwrap();
    let reply = client.expect("error");
    assert_eq!(reply["data"]["code"], "unsupported_frame");
    assert_eq!(
        client.request(json!({"type": "ping"}), "alive")["type"],
        "pong"
    );

    // Nobody else noticed.
    bystander.expect_nothing_pending();
    assert_eq!(
        hub.handle()
            .publish(Target::channel("c"), "event", 1)
            .unwrap(),
        1
    );
    bystander.expect("event");
}

#[test]
fn a_rejected_request_still_echoes_its_correlation_id() {
    let hub = start_default();
    let mut client = hub.client("/ws");
    for request in [
        json!({"type": 5}),
        json!({"type": "subscribe"}),
        json!({"type": "subscribe", "channel": "bad name"}),
        json!({"type": "publish", "channel": "x"}),
        json!({"type": "whatever"}),
    ] {
        let reply = client.request(request.clone(), "corr-7");
        assert_eq!(reply["type"], "error", "{request}");
    }
}

#[test]
fn a_message_over_the_size_limit_gets_payload_too_large_then_close_1009() {
    let hub = start(
        support::config()
            .max_message_size(1024)
            // Far longer than the test's deadline: the close must end on its own.
            .close_timeout(std::time::Duration::from_secs(60)),
    );
    let mut bystander = hub.client("/ws");
    let mut client = hub.client("/ws");
    // Exactly at the limit is fine.
    let filler = "x".repeat(1024 - r#"{"type":"ping","pad":""}"#.len());
    client.send_text(&format!(r#"{{"type":"ping","pad":"{filler}"}}"#));
    client.expect("pong");

    client.send_text(&format!(r#"{{"type":"ping","pad":"{filler}x"}}"#));
    let error = client.expect("error");
    assert_eq!(error["data"]["code"], "payload_too_large");
    assert_eq!(client.expect_close(), (1009, "Message too big".to_owned()));
    // The hub cannot parse the rest of this client's stream, yet the close
    // completes at once: it half-closes after its Close frame.
    client.finish_close();
    hub.wait_stats("the client to be gone", |s| s.active_connections == 1);
    bystander.expect_nothing_pending();
}

#[test]
fn timestamps_are_iso_8601_utc_with_milliseconds_on_every_message() {
    let hub = start_default();
    let mut client = hub.client("/ws?userId=t");
    let presence = client.expect("user_presence");
    assert!(is_timestamp(&presence["timestamp"]));
    for request in [
        json!({"type": "ping"}),
        json!({"type": "subscribe", "channel": "a"}),
        json!({"type": "unsubscribe", "channel": "a"}),
        json!({"type": "nope"}),
    ] {
        let reply = client.request(request, "t");
        assert!(is_timestamp(&reply["timestamp"]), "{reply}");
    }
}

#[test]
fn oversized_and_broken_frames_close_with_their_codes() {
    let hub = start(support::config().max_message_size(1024));
    let mut bystander = hub.client("/ws");

    // Too big, in one frame or in fragments.
    let mut client = hub.client("/ws");
    client.send_text(&"x".repeat(5000));
    assert_eq!(client.expect("error")["data"]["code"], "payload_too_large");
    assert_eq!(client.expect_close().0, 1009);

    let mut client = hub.client("/ws");
    for i in 0..3 {
        let fragment = tungstenite::protocol::frame::Frame::message(
            vec![b'a'; 600],
            tungstenite::protocol::frame::coding::OpCode::Data(if i == 0 {
                tungstenite::protocol::frame::coding::Data::Text
            } else {
                tungstenite::protocol::frame::coding::Data::Continue
            }),
            i == 2,
        );
        client.ws.write(Message::Frame(fragment)).unwrap();
    }
    client.ws.flush().unwrap();
    assert_eq!(client.expect("error")["data"]["code"], "payload_too_large");
    assert_eq!(client.expect_close().0, 1009);

    // Invalid UTF-8 in a text frame: 1007. Built by hand, masked as a client must.
    let mut ws = Client::open(hub.addr, "/ws").unwrap();
    ws.get_mut()
        .write_all(&[0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe])
        .unwrap();
    let welcome = read_json(&mut ws, DEADLINE).unwrap();
    assert_eq!(welcome["type"], "connection");
    assert_eq!(read_json(&mut ws, DEADLINE).unwrap()["type"], "auth");
    assert_eq!(
        read_json(&mut ws, DEADLINE).unwrap()["data"]["code"],
        "invalid_message"
    );
    assert_eq!(support::expect_close(&mut ws).0, 1007);

    // An unmasked frame from a client breaks the protocol: 1002.
    // Raw bytes straight onto the socket; reading stays with tungstenite,
    // which may already hold the welcome.
    let mut ws = Client::open(hub.addr, "/ws").unwrap();
    ws.get_mut().write_all(&[0x81, 0x02, b'{', b'}']).unwrap();
    read_json(&mut ws, DEADLINE).unwrap();
    assert_eq!(support::expect_close(&mut ws).0, 1002);

    bystander.expect_nothing_pending();
    hub.wait_stats("the broken clients to go", |s| s.active_connections == 1);
}
