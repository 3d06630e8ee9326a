//! The application side over real sockets: requests to the embedding
//! program and to service connections (with `busy` and `unknown_type`),
//! publications from a service to every target, server-side control from
//! the library, the HTTP API and a service, metadata in filters, batching,
//! and typed events and the event bus reaching clients.

mod support;

use std::collections::BTreeSet;
use std::thread;

use crossbeam_channel::Receiver;
use serde::Deserialize;
use serde_json::{Value, json};
use support::{Client, DEADLINE, TestHub, start};
use wshub::{ClientRequest, Config, Hub, Target};

const ADMIN: &str = "admin-secret-for-tests";

/// A hub whose program reads the clients' requests.
fn start_with_requests(config: Config) -> (TestHub, Receiver<ClientRequest>) {
    let mut hub = Hub::with_config(config).expect("hub binds");
    let requests = hub.requests();
    let addr = hub.local_addr();
    let server = hub.spawn().expect("hub starts");
    (TestHub { server, addr }, requests)
}

/// A development hub whose admin token opens service connections.
fn with_admin() -> Config {
    Config {
        admin_token: Some(ADMIN.into()),
        ..support::config()
    }
}

fn next_request(requests: &Receiver<ClientRequest>) -> ClientRequest {
    requests
        .recv_timeout(DEADLINE)
        .expect("a request reaches the program")
}

/// The next message that is not a presence broadcast (users coming online
/// are announced to every client allowed to see them).
fn next(client: &mut Client, what: &str) -> Value {
    loop {
        let message = client.recv(what);
        if message["type"] != "user_presence" {
            return message;
        }
    }
}

/// The next message but presence, which must be of type `kind`.
fn expect(client: &mut Client, kind: &str) -> Value {
    let message = next(client, kind);
    assert_eq!(message["type"], kind, "expected {kind}, got {message}");
    message
}

/// Proves nothing but presence waits for `client`: a ping's pong comes next.
/// The router handles a client's events in order, so anything queued for it
/// before the ping would come first.
fn quiet(client: &mut Client) {
    client.send(json!({"type": "ping", "correlationId": "quiet"}));
    loop {
        let message = client.recv("the pong");
        match message["type"].as_str() {
            Some("user_presence") => continue,
            Some("pong") if message["correlationId"] == "quiet" => return,
            _ => panic!("expected nothing before the pong, got {message}"),
        }
    }
}

// --- requests to the embedding program --------------------------------------

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct StartAgent {
    project_id: String,
    mode: String,
}

#[test]
fn a_request_reaches_the_program_with_its_sender_and_is_answered_through_it() {
    let (hub, requests) = start_with_requests(support::config());
    let mut client = hub.client("/ws?userId=u1&sessionId=s1");
    let mut other = hub.client("/ws?userId=u2");
    let mut watcher = hub.client("/ws");
    watcher.request(json!({"type": "subscribe", "channel": "agents"}), "w");
    assert!(hub.handle().set_meta(&client.id(), "plan", "pro").unwrap());

    client.send(json!({
        "type": "agent:start",
        "payload": {"projectId": "p1", "mode": "fast"},
        "correlationId": "r1",
    }));
    let request = next_request(&requests);
    assert_eq!(request.client_id(), client.id());
    assert_eq!(request.user_id(), Some("u1"));
    assert_eq!(request.session_id(), Some("s1"));
    assert_eq!(request.kind(), "agent:start");
    assert_eq!(
        request.data::<StartAgent>().unwrap(),
        StartAgent {
            project_id: "p1".into(),
            mode: "fast".into()
        }
    );
    assert_eq!(
        serde_json::from_str::<Value>(request.raw_data().unwrap()).unwrap(),
        json!({"projectId": "p1", "mode": "fast"})
    );
    assert!(
        request.data::<Vec<u8>>().is_err(),
        "data that does not fit T"
    );
    assert_eq!(request.correlation_id(), Some(r#""r1""#));
    assert_eq!(request.meta().get("plan"), Some(&json!("pro")));

    // reply: the correlationId echoed.
    assert!(
        request
            .reply("agent:started", json!({"sessionId": "s1"}))
            .unwrap()
    );
    let started = expect(&mut client, "agent:started");
    assert_eq!(started["correlationId"], "r1");
    assert_eq!(started["data"], json!({"sessionId": "s1"}));
    // send: more for the sender, without the correlationId.
    assert!(
        request
            .send("stream:chunk", json!({"content": "Hello"}))
            .unwrap()
    );
    let chunk = expect(&mut client, "stream:chunk");
    assert!(chunk.get("correlationId").is_none(), "{chunk}");
    assert_eq!(chunk["data"]["content"], "Hello");
    // reply_error: an error with the code, and the correlationId.
    assert!(
        request
            .reply_error("quota_exceeded", "Too many agents")
            .unwrap()
    );
    let error = expect(&mut client, "error");
    assert_eq!(error["correlationId"], "r1");
    assert_eq!(
        error["data"],
        json!({"code": "quota_exceeded", "error": "Too many agents"})
    );
    // handle(): publish anywhere.
    let handle = request.handle();
    assert_eq!(
        handle
            .publish(
                Target::user("u2"),
                "notification",
                json!({"level": "info", "message": "u1 started an agent"})
            )
            .unwrap(),
        1
    );
    assert_eq!(
        expect(&mut other, "notification")["data"]["message"],
        "u1 started an agent"
    );
    assert_eq!(
        handle
            .publish(
                Target::channel("agents"),
                "agent_status",
                json!({"state": "busy"})
            )
            .unwrap(),
        1
    );
    let status = expect(&mut watcher, "agent_status");
    assert_eq!(status["channel"], "agents");
    quiet(&mut client);

    // A numeric correlationId comes back a number; no data reads as null;
    // a client without a session or a user has none.
    other.send(json!({"type": "agent:cancel", "correlationId": 7}));
    let request = next_request(&requests);
    assert_eq!(request.client_id(), other.id());
    assert_eq!(
        (request.user_id(), request.session_id()),
        (Some("u2"), None)
    );
    assert_eq!(request.correlation_id(), Some("7"));
    assert_eq!(request.data::<Value>().unwrap(), Value::Null);
    assert!(request.meta().is_empty());
    request.reply("agent:cancelled", json!({})).unwrap();
    assert_eq!(expect(&mut other, "agent:cancelled")["correlationId"], 7);
    watcher.send(json!({"type": "chat:send", "data": {"text": "hi"}}));
    let request = next_request(&requests);
    assert_eq!((request.user_id(), request.session_id()), (None, None));
    assert_eq!(request.correlation_id(), None);

    // The sender gone, a reply reaches nobody.
    drop(watcher);
    hub.wait_stats("the watcher to leave", |s| s.active_connections == 2);
    assert!(!request.reply("chat:sent", json!({})).unwrap());
    assert_eq!(hub.handle().stats().unwrap().requests, 3);
}

#[test]
fn threads_sharing_the_request_receiver_each_get_requests() {
    let (hub, requests) = start_with_requests(support::config());
    // Each worker takes one request and ends: two requests answered by two
    // distinct workers prove both got one, whatever the order.
    let workers: Vec<_> = ["first", "second"]
        .into_iter()
        .map(|name| {
            let requests = requests.clone();
            thread::spawn(move || {
                let request = next_request(&requests);
                request
                    .reply("handled", json!({"by": name}))
                    .expect("reply");
            })
        })
        .collect();
    drop(requests);
    let mut client = hub.client("/ws");
    client.send(json!({"type": "job", "correlationId": "j1"}));
    client.send(json!({"type": "job", "correlationId": "j2"}));
    let mut by = BTreeSet::new();
    let mut answered = BTreeSet::new();
    for _ in 0..2 {
        let reply = expect(&mut client, "handled");
        by.insert(reply["data"]["by"].as_str().unwrap().to_owned());
        answered.insert(reply["correlationId"].as_str().unwrap().to_owned());
    }
    for worker in workers {
        worker.join().expect("the worker ends");
    }
    assert_eq!(by, BTreeSet::from(["first".into(), "second".into()]));
    assert_eq!(answered, BTreeSet::from(["j1".into(), "j2".into()]));
}

#[test]
fn a_full_request_queue_answers_busy_and_holds_up_nobody() {
    let (hub, requests) = start_with_requests(Config {
        request_queue: 2,
        ..support::config()
    });
    let mut client = hub.client("/ws");
    let mut other = hub.client("/ws");
    // Nobody reads: two requests fill the queue, the third is busy.
    for n in 1..=3 {
        client.send(json!({"type": "agent:start", "correlationId": format!("r{n}")}));
    }
    let busy = client.recv("busy for the third request");
    assert_eq!(busy["type"], "error", "{busy}");
    assert_eq!(busy["data"]["code"], "busy");
    assert_eq!(busy["correlationId"], "r3");
    // The two queued ones get nothing yet; both clients are answered.
    client.expect_nothing_pending();
    assert_eq!(other.request(json!({"type": "ping"}), "p")["type"], "pong");
    let stats = hub.handle().stats().unwrap();
    assert_eq!((stats.busy, stats.requests), (1, 2));
    assert_eq!(requests.len(), 2);

    // Reading one makes room for one more.
    let first = next_request(&requests);
    assert_eq!(first.correlation_id(), Some(r#""r1""#));
    client.send(json!({"type": "agent:start", "correlationId": "r4"}));
    client.send(json!({"type": "agent:start", "correlationId": "r5"}));
    let busy = client.recv("busy for r5");
    assert_eq!(
        (&busy["data"]["code"], &busy["correlationId"]),
        (&json!("busy"), &json!("r5"))
    );
    client.expect_nothing_pending();
    assert_eq!(hub.handle().stats().unwrap().busy, 2);
    let (_, body) = support::get(hub.addr, "/api/ws/stats");
    assert_eq!(body["busy"], 2);
}

#[test]
fn once_every_request_receiver_is_dropped_requests_are_unknown_types() {
    let (hub, requests) = start_with_requests(support::config());
    let second = requests.clone();
    let mut client = hub.client("/ws");
    // One request waits unread in the queue when the receivers go.
    client.send(json!({"type": "agent:start", "correlationId": "r1"}));
    client.expect_nothing_pending();
    drop(requests);
    // One receiver left: requests still reach the program.
    client.send(json!({"type": "agent:start", "correlationId": "r2"}));
    client.expect_nothing_pending();
    assert_eq!(second.len(), 2);
    drop(second);
    let reply = client.request(json!({"type": "agent:start"}), "r3");
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["data"]["code"], "unknown_type");
    assert_eq!(reply["data"]["error"], "Unknown message type: agent:start");
    let reply = client.request(json!({"type": "agent:message"}), "r4");
    assert_eq!(reply["data"]["code"], "unknown_type");
    let stats = hub.handle().stats().unwrap();
    assert_eq!((stats.requests, stats.busy), (2, 0));
}

#[test]
fn the_program_takes_requests_before_any_service_and_services_once_it_stops() {
    let (hub, requests) = start_with_requests(with_admin());
    let mut service = hub.client(&format!("/ws?token={ADMIN}"));
    let mut client = hub.client("/ws");
    client.send(json!({"type": "agent:start", "correlationId": "r1"}));
    assert_eq!(next_request(&requests).kind(), "agent:start");
    client.expect_nothing_pending();
    quiet(&mut service);
    // The program stops reading: the same request goes to the service.
    drop(requests);
    client.send(json!({"type": "agent:start", "correlationId": "r2"}));
    let forwarded = expect(&mut service, "client_message");
    assert_eq!(forwarded["data"]["message"]["correlationId"], "r2");
    assert_eq!(hub.handle().stats().unwrap().requests, 2);
}

#[test]
fn with_neither_a_program_nor_a_service_a_request_is_an_unknown_type() {
    let hub = start(support::config());
    let mut client = hub.client("/ws?userId=u1");
    let reply = client.request(
        json!({"type": "agent:start", "payload": {"projectId": "p1"}}),
        "r1",
    );
    assert_eq!(reply["type"], "error");
    assert_eq!(
        reply["data"],
        json!({"code": "unknown_type", "error": "Unknown message type: agent:start"})
    );
    client.send(json!({"type": "chat:send"}));
    let reply = expect(&mut client, "error");
    assert_eq!(reply["data"]["error"], "Unknown message type: chat:send");
    assert!(reply.get("correlationId").is_none());
    // The service commands are application requests from a regular client.
    for kind in ["send", "disconnect", "set_meta", "subscribers"] {
        let reply = client.request(
            json!({"type": kind, "clientId": client.id(), "channel": "x", "message": {"type": "x"}}),
            kind,
        );
        assert_eq!(
            reply["data"],
            json!({"code": "unknown_type", "error": format!("Unknown message type: {kind}")}),
            "{kind}"
        );
    }
    assert_eq!(hub.handle().stats().unwrap().requests, 0);
}
