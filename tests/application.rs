//! The application side over real sockets: requests to the embedding
//! program and to service connections (with `busy` and `unknown_type`),
//! publications from a service to every target, server-side control from
//! the library, the HTTP API and a service, metadata in filters, batching,
//! and typed events and the event bus reaching clients.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::thread;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use support::{Client, DEADLINE, TestHub, http_raw, start};
use support::{expect_but_presence as expect, next_but_presence as next};
use wshub::bus::EventBus;
use wshub::events::{AiProgress, FileChanged, MessageReceived};
use wshub::{
    ClientRequest, Config, Error, Filter, Hub, Requests, Secret, Status, Target, TokenGrant, Topic,
    load_tokens,
};

const ADMIN: &str = "admin-secret-for-tests";

/// A hub whose program reads the clients' requests.
fn start_with_requests(config: Config) -> (TestHub, Requests) {
    let mut hub = Hub::with_config(config).expect("hub binds");
    let requests = hub.requests();
    let addr = hub.local_addr();
    let server = hub.spawn().expect("hub starts");
    (TestHub { server, addr }, requests)
}

/// A development hub whose admin token opens service connections.
fn with_admin() -> Config {
    support::config().admin_token(Some(ADMIN.into()))
}

/// Writes `grants` to a tokens file and loads it, as `--tokens` does.
fn tokens_file(name: &str, grants: Value) -> HashMap<Secret, TokenGrant> {
    let path = std::env::temp_dir().join(format!(
        "wshub-application-{}-{name}.json",
        std::process::id()
    ));
    std::fs::write(&path, grants.to_string()).expect("write the tokens file");
    let tokens = load_tokens(&path);
    let _ = std::fs::remove_file(&path);
    tokens.expect("the tokens file loads")
}

fn next_request(requests: &Requests) -> ClientRequest {
    requests
        .recv_timeout(DEADLINE)
        .expect("the hub is running")
        .expect("a request reaches the program")
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

/// Sends `message` and returns the answer with `correlation`, skipping
/// presence (and nothing else).
fn ask(client: &mut Client, mut message: Value, correlation: &str) -> Value {
    message["correlationId"] = json!(correlation);
    client.send(message);
    let answer = next(client, correlation);
    assert_eq!(
        answer["correlationId"], correlation,
        "expected the answer to {correlation}, got {answer}"
    );
    answer
}

/// An HTTP request with an optional bearer token; status and JSON body.
fn api(
    hub: &TestHub,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        hub.addr,
        body.len()
    );
    let (status, _, body) = http_raw(hub.addr, request.as_bytes());
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn client_stats(hub: &TestHub, id: &str) -> wshub::stats::ClientStats {
    hub.handle()
        .stats()
        .unwrap()
        .clients
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{id} is not in the stats"))
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
    // The string the client sent, not its JSON text.
    assert_eq!(request.correlation_id(), Some("r1"));
    assert_eq!(request.address(), "127.0.0.1");
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
    let (hub, requests) = start_with_requests(support::config().request_queue(2));
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
    assert_eq!(first.correlation_id(), Some("r1"));
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

// --- service connections ----------------------------------------------------

#[test]
fn a_service_connection_receives_client_messages_and_answers_with_send() {
    let hub = start(with_admin());
    let mut service = hub.client(&format!("/ws?token={ADMIN}"));
    assert_eq!(service.welcome["data"]["authenticated"], true);
    assert_eq!(service.welcome["data"]["userId"], Value::Null);
    let stats = hub.handle().stats().unwrap();
    assert_eq!(stats.service_connections, 1);
    assert!(client_stats(&hub, &service.id()).service);
    let (_, body) = api(&hub, "GET", "/api/ws/stats", Some(ADMIN), None);
    assert_eq!(body["serviceConnections"], 1);

    let mut client = hub.client("/ws?userId=u1&sessionId=s1");
    assert!(
        hub.handle()
            .set_meta(&client.id(), "subscribedToIDE", true)
            .unwrap()
    );
    let sent = r#"{"type":"agent:start","payload":{"projectId":"p1"},"correlationId":"r1","extra":[1,{"deep":null}]}"#;
    client.send_text(sent);
    let forwarded = expect(&mut service, "client_message");
    let data = &forwarded["data"];
    assert_eq!(data["clientId"], client.id());
    assert_eq!(data["userId"], "u1");
    assert_eq!(data["sessionId"], "s1");
    assert_eq!(data["meta"], json!({"subscribedToIDE": true}));
    assert_eq!(
        data["message"],
        serde_json::from_str::<Value>(sent).unwrap(),
        "the message as sent"
    );

    // The answer reaches the client with the request's correlationId; the
    // service's own correlationId gets an ack.
    service.send(json!({
        "type": "send",
        "clientId": client.id(),
        "message": {"type": "agent:started", "payload": {"sessionId": "s1"}, "correlationId": "r1"},
        "correlationId": "a1",
    }));
    let started = expect(&mut client, "agent:started");
    assert_eq!(started["correlationId"], "r1");
    assert_eq!(started["data"], json!({"sessionId": "s1"}));
    let ack = expect(&mut service, "ack");
    assert_eq!(ack["correlationId"], "a1");
    assert_eq!(ack["data"]["delivered"], 1);
    // With `data`, without correlationIds: delivered, and no ack.
    service.send(json!({
        "type": "send",
        "clientId": client.id(),
        "message": {"type": "stream:chunk", "data": {"content": "Hello"}},
    }));
    let chunk = expect(&mut client, "stream:chunk");
    assert_eq!(chunk["data"]["content"], "Hello");
    assert!(chunk.get("correlationId").is_none(), "{chunk}");
    quiet(&mut service);
    // To nobody: delivered 0.
    let ack = ask(
        &mut service,
        json!({"type": "send", "clientId": "c_nobody", "message": {"type": "x"}}),
        "a2",
    );
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["data"]["delivered"], 0);

    // A client without user, session or metadata: those are null or absent.
    let mut plain = hub.client("/ws");
    plain.send(json!({"type": "chat:send", "data": {"text": "hi"}}));
    let forwarded = expect(&mut service, "client_message");
    let data = &forwarded["data"];
    assert_eq!(data["clientId"], plain.id());
    assert_eq!(
        (&data["userId"], &data["sessionId"]),
        (&Value::Null, &Value::Null)
    );
    assert!(data.get("meta").is_none(), "{forwarded}");
    assert_eq!(
        data["message"],
        json!({"type": "chat:send", "data": {"text": "hi"}})
    );
    quiet(&mut plain);
    quiet(&mut client);
    // A service's own application messages reach nobody.
    let reply = ask(&mut service, json!({"type": "agent:start"}), "own");
    assert_eq!(reply["data"]["code"], "unknown_type", "{reply}");
    assert_eq!(hub.handle().stats().unwrap().requests, 2);
}

#[test]
fn the_welcome_of_a_service_connection_says_so_in_every_envelope() {
    let welcome = |hub: &TestHub, query: &str| {
        let mut ws = Client::open(hub.addr, &format!("/ws?{query}")).expect("connects");
        support::read_json(&mut ws, DEADLINE).expect("a welcome")
    };
    // Where each envelope puts the welcome's fields.
    let envelopes = [("standard", "/data"), ("flat", ""), ("payload", "/payload")];
    let authed = start(with_admin().tokens(tokens_file(
        "welcome-service",
        json!({"svc-token": {"userId": "backend", "service": true}, "user-token": {"userId": "u"}}),
    )));
    let dev = start(with_admin());
    for (envelope, at) in envelopes {
        let service = format!("{at}/service");
        for (hub, token) in [(&authed, ADMIN), (&authed, "svc-token"), (&dev, ADMIN)] {
            let w = welcome(hub, &format!("envelope={envelope}&token={token}"));
            assert_eq!(w.pointer(&service), Some(&json!(true)), "{w}");
        }
        // An ordinary client's welcome is as it was; so is that of a
        // backend whose token a hub without auth took for no token at all.
        for (hub, token) in [(&authed, "user-token"), (&dev, "not-the-admin-token")] {
            let w = welcome(hub, &format!("envelope={envelope}&token={token}"));
            assert!(w.pointer(&format!("{at}/clientId")).is_some(), "{w}");
            assert_eq!(w.pointer(&service), None, "{w}");
        }
    }
}

#[test]
fn a_token_with_the_service_grant_opens_a_service_connection() {
    let hub = start(support::config().tokens(tokens_file(
        "service-grant",
        json!({
            "svc-token": {"userId": "backend", "service": true},
            "alice-token": {"userId": "alice", "meta": {"team": "red"}},
        }),
    )));
    let mut service = hub.client("/ws?token=svc-token");
    assert_eq!(service.welcome["data"]["userId"], "backend");
    assert_eq!(service.welcome["data"]["authenticated"], true);
    assert_eq!(hub.handle().stats().unwrap().service_connections, 1);
    assert!(client_stats(&hub, &service.id()).service);

    let mut alice = hub.client("/ws?token=alice-token");
    assert!(!client_stats(&hub, &alice.id()).service);
    alice.send(json!({"type": "chat:send", "payload": {"text": "hi"}, "correlationId": "q1"}));
    let forwarded = expect(&mut service, "client_message");
    assert_eq!(forwarded["data"]["clientId"], alice.id());
    assert_eq!(forwarded["data"]["userId"], "alice");
    assert_eq!(forwarded["data"]["meta"], json!({"team": "red"}));
    service.send(json!({
        "type": "send",
        "clientId": alice.id(),
        "message": {"type": "chat:sent", "payload": {"ok": true}, "correlationId": "q1"},
        "correlationId": "s1",
    }));
    let sent = expect(&mut alice, "chat:sent");
    assert_eq!(sent["correlationId"], "q1");
    assert_eq!(sent["data"], json!({"ok": true}));
    assert_eq!(expect(&mut service, "ack")["data"]["delivered"], 1);

    // From a regular client, `send` is one more request for the service,
    // not a command.
    let bob_message = json!({
        "type": "send",
        "clientId": service.id(),
        "message": {"type": "pwned"},
    });
    alice.send(bob_message.clone());
    let forwarded = expect(&mut service, "client_message");
    assert_eq!(forwarded["data"]["message"], bob_message);
    quiet(&mut alice);
}

#[test]
fn requests_go_round_the_service_connections_in_turn() {
    let hub = start(with_admin());
    let mut services = [
        hub.client(&format!("/ws?token={ADMIN}")),
        hub.client(&format!("/ws?token={ADMIN}")),
    ];
    let mut client = hub.client("/ws?userId=u1");
    const N: u64 = 10;
    for n in 0..N {
        client.send(json!({"type": "job", "data": {"n": n}}));
    }
    // Once the client's ping is answered, every request was routed; each
    // service's own ping then comes after every request sent to it.
    quiet(&mut client);
    let mut taken = Vec::new();
    for service in &mut services {
        service.send(json!({"type": "ping", "correlationId": "done"}));
        let mut got = Vec::new();
        loop {
            let message = next(service, "a request or the pong");
            if message["type"] == "pong" {
                break;
            }
            assert_eq!(message["type"], "client_message", "{message}");
            got.push(message["data"]["message"]["data"]["n"].as_u64().unwrap());
        }
        taken.push(got);
    }
    let all: BTreeSet<u64> = taken.iter().flatten().copied().collect();
    assert_eq!(all, (0..N).collect(), "every request went to one service");
    assert_eq!(taken[0].len() + taken[1].len(), N as usize, "{taken:?}");
    for got in &taken {
        assert_eq!(got.len(), (N / 2) as usize, "in turn: {taken:?}");
        assert!(
            got.iter().all(|n| n % 2 == got[0] % 2),
            "each service takes every other request: {taken:?}"
        );
    }
    assert_eq!(hub.handle().stats().unwrap().requests, N);
}

/// The requests a service got before the pong to its own ping: their types.
fn taken_types(service: &mut Client) -> Vec<String> {
    service.send(json!({"type": "ping", "correlationId": "done"}));
    let mut got = Vec::new();
    loop {
        let message = next(service, "a request or the pong");
        if message["type"] == "pong" {
            return got;
        }
        assert_eq!(message["type"], "client_message", "{message}");
        got.push(
            message["data"]["message"]["type"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
}

#[test]
fn requests_go_only_to_the_services_that_declared_their_type() {
    let hub = start(with_admin());
    let mut agents = [
        hub.client(&format!(
            "/ws?token={ADMIN}&handles=agent:start,agent:cancel"
        )),
        hub.client(&format!(
            "/ws?token={ADMIN}&handles=agent:start,agent:cancel"
        )),
    ];
    let mut files = hub.client(&format!("/ws?token={ADMIN}&handles=file:read"));
    let mut client = hub.client("/ws?userId=u1");
    for _ in 0..4 {
        client.send(json!({"type": "agent:start"}));
        client.send(json!({"type": "file:read"}));
    }
    client.send(json!({"type": "agent:cancel"}));
    // Nobody declared it: the client is told, though services are there.
    let unknown = ask(&mut client, json!({"type": "chat:send"}), "c1");
    assert_eq!(unknown["data"]["code"], "unknown_type", "{unknown}");
    quiet(&mut client);
    let first = taken_types(&mut agents[0]);
    let second = taken_types(&mut agents[1]);
    assert_eq!(first, ["agent:start", "agent:start", "agent:cancel"]);
    assert_eq!(second, ["agent:start", "agent:start"], "in turn");
    assert_eq!(taken_types(&mut files), ["file:read"; 4]);
    // A service that declares nothing handles every type, as before.
    let mut everything = hub.client(&format!("/ws?token={ADMIN}"));
    client.send(json!({"type": "chat:send"}));
    client.send(json!({"type": "file:read"}));
    quiet(&mut client);
    // Each to the one of its type given a request the longest ago.
    assert_eq!(taken_types(&mut everything), ["chat:send"]);
    assert_eq!(taken_types(&mut files), ["file:read"]);
    // One that declares an empty list gets no request at all.
    drop(everything);
    hub.wait_stats("the catch-all service to go", |s| {
        s.service_connections == 3
    });
    let mut publisher = hub.client(&format!("/ws?token={ADMIN}&handles="));
    let unknown = ask(&mut client, json!({"type": "chat:send"}), "c2");
    assert_eq!(unknown["data"]["code"], "unknown_type", "{unknown}");
    assert_eq!(taken_types(&mut publisher), Vec::<String>::new());
}

#[test]
fn a_declaration_of_types_is_checked_at_connect() {
    let hub = start(with_admin());
    let upgrade = |query: &str| {
        let request = format!(
            "GET /ws?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let (status, _, body) = http_raw(hub.addr, request.as_bytes());
        (status, body)
    };
    let (status, body) = upgrade(&format!("token={ADMIN}&handles=agent:start,subscribe"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("protocol's own message types"), "{body}");
    // Only a service handles requests.
    let (status, body) = upgrade("userId=u1&handles=agent:start");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("service connections"), "{body}");
    let mut service = hub.client(&format!("/ws?token={ADMIN}&handles=agent:start"));
    quiet(&mut service);
}

#[test]
fn a_service_that_leaves_mid_request_leaves_its_client_busy_not_silent() {
    for clean_close in [false, true] {
        let hub = start(with_admin());
        let mut service = hub.client(&format!("/ws?token={ADMIN}"));
        let mut client = hub.client("/ws");
        client.send(json!({"type": "agent:start", "correlationId": "r0"}));
        client.send(json!({"type": "agent:message", "correlationId": "r1"}));
        client.send(json!({"type": "agent:message", "data": {"content": "no id"}}));
        for _ in 0..3 {
            expect(&mut service, "client_message");
        }
        // r0 is answered; r1 and the uncorrelated one are outstanding.
        service.send(json!({
            "type": "send",
            "clientId": client.id(),
            "message": {"type": "agent:started", "correlationId": "r0"},
        }));
        assert_eq!(expect(&mut client, "agent:started")["correlationId"], "r0");
        if clean_close {
            service.ws.close(None).expect("send a Close");
            support::finish_close(&mut service.ws);
        } else {
            drop(service);
        }
        let busy = client.recv("busy for r1");
        assert_eq!(busy["type"], "error", "{busy}");
        assert_eq!(busy["data"]["code"], "busy", "{busy}");
        assert_eq!(busy["correlationId"], "r1");
        // Nothing for the answered r0, nor for the request without an id.
        client.expect_nothing_pending();
        let stats = hub.handle().stats().unwrap();
        assert_eq!((stats.busy, stats.service_connections), (1, 0));
        // No service left: requests are unknown types again.
        let reply = client.request(json!({"type": "agent:start"}), "r2");
        assert_eq!(reply["data"]["code"], "unknown_type");
    }
}

#[test]
fn a_refresh_cannot_change_what_a_connection_is_and_requests_are_not_lost() {
    let hub = start(support::config().tokens(tokens_file(
        "service-refresh",
        json!({
            "svc-token": {"userId": "backend", "service": true},
            "plain-token": {"userId": "backend"},
            "alice-token": {"userId": "alice"},
        }),
    )));
    // A service connection may not refresh into a plain client (its
    // messages are read as commands since it opened)...
    let mut service = hub.client("/ws?token=svc-token");
    let refused = ask(
        &mut service,
        json!({"type": "refresh", "data": {"token": "plain-token"}}),
        "r",
    );
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["data"]["code"], "forbidden", "{refused}");
    // ...nor a plain client into a service.
    let mut plain = hub.client("/ws?token=plain-token");
    let refused = ask(
        &mut plain,
        json!({"type": "refresh", "data": {"token": "svc-token"}}),
        "r2",
    );
    assert_eq!(refused["data"]["code"], "forbidden", "{refused}");
    assert_eq!(hub.handle().stats().unwrap().service_connections, 1);
    drop(plain);
    drop(service);
    hub.wait_stats("the service to leave", |s| s.active_connections == 0);
    // No service is left: a request is an unknown type, not silence.
    let mut alice = hub.client("/ws?token=alice-token");
    alice.send(json!({"type": "agent:start", "correlationId": "a1"}));
    alice.send(json!({"type": "ping", "correlationId": "after"}));
    let reply = next(&mut alice, "the answer to a1");
    assert_eq!(
        (&reply["type"], &reply["correlationId"]),
        (&json!("error"), &json!("a1")),
        "a1 went to a service connection that is gone: {reply}"
    );
    assert_eq!(reply["data"]["code"], "unknown_type");
    assert_eq!(hub.handle().stats().unwrap().service_connections, 0);
}

#[test]
fn a_service_publishes_to_every_target_without_from() {
    let hub = start(
        support::config()
            .tokens(tokens_file(
                "service-publish",
                json!({
                    "alice-token": {"userId": "alice", "publish": true},
                    "bob-token": {"userId": "bob"},
                }),
            ))
            .allow_anonymous(true)
            .admin_token(Some(ADMIN.into())),
    );
    let mut service = hub.client(&format!("/ws?token={ADMIN}"));
    let mut alice = hub.client("/ws?token=alice-token&sessionId=s1");
    let mut bob = hub.client("/ws?token=bob-token");
    let mut anon = hub.client("/ws");
    ask(
        &mut bob,
        json!({"type": "subscribe", "channel": "news"}),
        "s",
    );
    ask(
        &mut anon,
        json!({"type": "subscribe", "channel": "news"}),
        "s",
    );

    let mut publish = |to: Value, n: u64| -> u64 {
        let mut message = json!({"type": "publish", "event": "notification", "data": {"n": n}});
        for (key, value) in to.as_object().unwrap() {
            message[key] = value.clone();
        }
        let reply = service.request(message, &format!("p{n}"));
        assert_eq!(reply["type"], "published", "{reply}");
        reply["data"]["delivered"].as_u64().unwrap()
    };
    let got = |client: &mut Client, n: u64| {
        let message = expect(client, "notification");
        assert_eq!(message["data"]["n"], n, "{message}");
        assert!(message.get("from").is_none(), "no from: {message}");
        message
    };

    assert_eq!(publish(json!({"userId": "alice"}), 1), 1);
    got(&mut alice, 1);
    assert_eq!(publish(json!({"clientId": bob.id()}), 2), 1);
    got(&mut bob, 2);
    // Every client, the service connection among them.
    assert_eq!(publish(json!({"broadcast": true}), 3), 4);
    for client in [&mut alice, &mut bob, &mut anon] {
        got(client, 3);
    }
    // Every client a token vouched for: not the anonymous one.
    assert_eq!(publish(json!({"authenticated": true}), 4), 3);
    got(&mut alice, 4);
    got(&mut bob, 4);
    assert_eq!(publish(json!({"channel": "news"}), 5), 2);
    assert_eq!(got(&mut bob, 5)["channel"], "news");
    assert_eq!(got(&mut anon, 5)["channel"], "news");
    assert_eq!(publish(json!({"sessionId": "s1"}), 6), 1);
    assert_eq!(got(&mut alice, 6)["sessionId"], "s1");
    for client in [&mut alice, &mut bob, &mut anon] {
        quiet(client);
    }
}

#[test]
fn a_regular_client_may_publish_to_topics_only() {
    let hub = start(support::config().tokens(tokens_file(
        "client-publish",
        json!({
            "alice-token": {"userId": "alice", "publish": true},
            "bob-token": {"userId": "bob"},
        }),
    )));
    let mut alice = hub.client("/ws?token=alice-token");
    let mut bob = hub.client("/ws?token=bob-token");
    ask(
        &mut bob,
        json!({"type": "subscribe", "channel": "news"}),
        "s",
    );
    for to in [
        json!({"userId": "bob"}),
        json!({"clientId": bob.id()}),
        json!({"broadcast": true}),
        json!({"authenticated": true}),
    ] {
        let mut message = json!({"type": "publish", "event": "notification", "data": 1});
        for (key, value) in to.as_object().unwrap() {
            message[key] = value.clone();
        }
        let reply = ask(&mut alice, message, "f");
        assert_eq!(reply["type"], "error", "{to}: {reply}");
        assert_eq!(reply["data"]["code"], "forbidden", "{to}: {reply}");
    }
    quiet(&mut bob);
    // To a channel it may read it publishes, and subscribers see who.
    let reply = ask(
        &mut alice,
        json!({"type": "publish", "channel": "news", "event": "notification", "data": 1}),
        "ok",
    );
    assert_eq!(reply["type"], "published");
    let message = expect(&mut bob, "notification");
    assert_eq!(
        message["from"],
        json!({"clientId": alice.id(), "userId": "alice"})
    );
}

// --- server-side control ----------------------------------------------------

#[test]
fn the_library_subscribes_unsubscribes_and_closes_clients() {
    let hub = start(support::config().max_subscriptions(3));
    let handle = hub.handle();
    let mut carol = hub.client("/ws?userId=carol");
    let mut bob = [hub.client("/ws?userId=bob"), hub.client("/ws?userId=bob")];
    let id = carol.id();

    assert!(
        handle
            .subscribe(&id, Topic::channel("diagnostics"))
            .unwrap()
    );
    let told = expect(&mut carol, "subscribed");
    // Told where the stream stands: nothing published on it yet.
    assert_eq!(
        (&told["channel"], &told["data"]["seq"]),
        (&json!("diagnostics"), &json!(0))
    );
    assert!(told["data"]["epoch"].is_string(), "{told}");
    assert_eq!(
        handle
            .publish(
                Target::channel("diagnostics"),
                "event",
                json!({"errors": 0})
            )
            .unwrap(),
        1
    );
    assert_eq!(expect(&mut carol, "event")["channel"], "diagnostics");
    let listening = handle.subscribers(Topic::channel("diagnostics")).unwrap();
    assert_eq!(
        listening.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    assert!(handle.subscribe(&id, Topic::session("s9")).unwrap());
    assert_eq!(expect(&mut carol, "subscribed")["sessionId"], "s9");
    assert_eq!(handle.subscribers(Topic::session("s9")).unwrap()[0].id, id);

    assert!(
        handle
            .unsubscribe(&id, Some(Topic::channel("diagnostics")))
            .unwrap()
    );
    assert_eq!(expect(&mut carol, "unsubscribed")["channel"], "diagnostics");
    assert_eq!(
        handle
            .publish(Target::channel("diagnostics"), "event", json!(1))
            .unwrap(),
        0
    );
    assert!(handle.unsubscribe(&id, None).unwrap());
    let told = expect(&mut carol, "unsubscribed");
    assert!(told.get("sessionId").is_none() && told.get("channel").is_none());
    assert!(client_stats(&hub, &id).sessions.is_empty());
    quiet(&mut carol);

    // Limits still apply to the trusted backend.
    for channel in ["a", "b", "c"] {
        assert!(handle.subscribe(&id, Topic::channel(channel)).unwrap());
    }
    assert!(matches!(
        handle.subscribe(&id, Topic::channel("d")),
        Err(Error::Refused(_))
    ));

    assert!(handle.set_meta(&id, "role", "reviewer").unwrap());
    assert_eq!(
        client_stats(&hub, &id).meta.get("role"),
        Some(&json!("reviewer"))
    );
    let online = handle.presence().unwrap();
    for user in ["bob", "carol"] {
        assert!(
            online
                .iter()
                .any(|p| p.user_id == user && p.status == Status::Online),
            "{online:?}"
        );
    }

    // Unknown clients: false, or nobody closed.
    assert!(!handle.subscribe("c_nobody", Topic::channel("x")).unwrap());
    assert!(!handle.unsubscribe("c_nobody", None).unwrap());
    assert!(!handle.set_meta("c_nobody", "k", 1).unwrap());
    assert_eq!(
        handle.close(Target::client("c_nobody"), 1000, "").unwrap(),
        0
    );

    // Every connection of a user, with the code and the reason.
    assert_eq!(
        handle
            .close(Target::user("bob"), 4000, "Signed out elsewhere")
            .unwrap(),
        2
    );
    for bob in &mut bob {
        assert_eq!(
            bob.expect_close(),
            (4000, "Signed out elsewhere".to_owned())
        );
        bob.finish_close();
    }
    assert!(handle.close(Target::client(&id), 999, "").is_err());
    assert_eq!(handle.close(Target::client(&id), 3000, "bye").unwrap(), 1);
    assert_eq!(carol.expect_close(), (3000, "bye".to_owned()));
}

#[test]
fn the_http_api_controls_clients_with_the_admin_token() {
    let hub = start(with_admin().max_subscriptions(2));
    let mut carol = hub.client("/ws?userId=carol");
    let mut dan = [hub.client("/ws?userId=dan"), hub.client("/ws?userId=dan")];
    let id = carol.id();
    let subscribe = json!({"clientId": id, "channel": "files"});

    for (method, path, body) in [
        ("POST", "/api/subscribe", Some(subscribe.clone())),
        ("POST", "/api/unsubscribe", Some(subscribe.clone())),
        ("POST", "/api/disconnect", Some(json!({"clientId": id}))),
        (
            "POST",
            "/api/meta",
            Some(json!({"clientId": id, "meta": {"a": 1}})),
        ),
        ("GET", "/api/subscribers?channel=files", None),
        ("GET", "/api/presence", None),
    ] {
        assert_eq!(api(&hub, method, path, None, body.clone()).0, 401, "{path}");
        assert_eq!(
            api(&hub, method, path, Some("wrong"), body).0,
            401,
            "{path}"
        );
    }
    quiet(&mut carol);

    let ok = json!({"success": true, "data": {}});
    assert_eq!(
        api(
            &hub,
            "POST",
            "/api/subscribe",
            Some(ADMIN),
            Some(subscribe.clone())
        ),
        (200, ok.clone())
    );
    assert_eq!(expect(&mut carol, "subscribed")["channel"], "files");
    let (status, body) = api(
        &hub,
        "POST",
        "/api/publish",
        Some(ADMIN),
        Some(json!({"channel": "files", "data": {"file": "a.rs"}})),
    );
    assert_eq!((status, &body["data"]["delivered"]), (200, &json!(1)));
    assert_eq!(expect(&mut carol, "event")["data"]["file"], "a.rs");
    let (status, body) = api(
        &hub,
        "GET",
        "/api/subscribers?channel=files",
        Some(ADMIN),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["clients"][0]["id"], id);
    assert_eq!(body["data"]["clients"][0]["channels"], json!(["files"]));
    assert_eq!(
        api(
            &hub,
            "POST",
            "/api/subscribe",
            Some(ADMIN),
            Some(json!({"clientId": id, "sessionId": "s3"}))
        ),
        (200, ok.clone())
    );
    assert_eq!(expect(&mut carol, "subscribed")["sessionId"], "s3");
    let (_, body) = api(
        &hub,
        "GET",
        "/api/subscribers?sessionId=s3",
        Some(ADMIN),
        None,
    );
    assert_eq!(body["data"]["clients"][0]["id"], id);
    // Its subscription limit holds for the backend too: 409.
    let (status, body) = api(
        &hub,
        "POST",
        "/api/subscribe",
        Some(ADMIN),
        Some(json!({"clientId": id, "channel": "third"})),
    );
    assert_eq!((status, &body["code"]), (409, &json!("refused")), "{body}");

    assert_eq!(
        api(
            &hub,
            "POST",
            "/api/meta",
            Some(ADMIN),
            Some(json!({"clientId": id, "meta": {"subscribedToIDE": true, "x": 1}}))
        ),
        (200, ok.clone())
    );
    assert_eq!(
        api(
            &hub,
            "POST",
            "/api/meta",
            Some(ADMIN),
            Some(json!({"clientId": id, "meta": {"x": null}}))
        ),
        (200, ok.clone())
    );
    let (_, stats) = api(&hub, "GET", "/api/ws/stats", Some(ADMIN), None);
    let entry = stats["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap();
    assert_eq!(entry["meta"], json!({"subscribedToIDE": true}));

    assert_eq!(
        api(
            &hub,
            "POST",
            "/api/unsubscribe",
            Some(ADMIN),
            Some(subscribe.clone())
        ),
        (200, ok.clone())
    );
    assert_eq!(expect(&mut carol, "unsubscribed")["channel"], "files");
    let (_, body) = api(
        &hub,
        "GET",
        "/api/subscribers?channel=files",
        Some(ADMIN),
        None,
    );
    assert_eq!(body["data"]["clients"], json!([]));
    assert_eq!(
        api(
            &hub,
            "POST",
            "/api/unsubscribe",
            Some(ADMIN),
            Some(json!({"clientId": id}))
        ),
        (200, ok.clone())
    );
    assert_eq!(expect(&mut carol, "unsubscribed").get("sessionId"), None);

    let (status, body) = api(&hub, "GET", "/api/presence", Some(ADMIN), None);
    assert_eq!(status, 200);
    let users = body["data"]["users"].as_array().unwrap();
    for user in ["carol", "dan"] {
        assert!(
            users.contains(&json!({"userId": user, "status": "online"})),
            "{body}"
        );
    }

    // Unknown clients: 404.
    let nobody = json!({"clientId": "c_nobody", "channel": "files"});
    for path in ["/api/subscribe", "/api/unsubscribe"] {
        assert_eq!(
            api(&hub, "POST", path, Some(ADMIN), Some(nobody.clone())).0,
            404,
            "{path}"
        );
    }
    let meta = json!({"clientId": "c_nobody", "meta": {"a": 1}});
    assert_eq!(
        api(&hub, "POST", "/api/meta", Some(ADMIN), Some(meta)).0,
        404
    );
    let (status, body) = api(
        &hub,
        "POST",
        "/api/disconnect",
        Some(ADMIN),
        Some(json!({"clientId": "c_nobody"})),
    );
    assert_eq!((status, &body["data"]["disconnected"]), (200, &json!(0)));
    quiet(&mut carol);

    // A user's every connection, with the code and the reason.
    let (status, body) = api(
        &hub,
        "POST",
        "/api/disconnect",
        Some(ADMIN),
        Some(json!({"userId": "dan", "code": 4002, "reason": "Account suspended"})),
    );
    assert_eq!(
        (status, body),
        (200, json!({"success": true, "data": {"disconnected": 2}}))
    );
    for dan in &mut dan {
        assert_eq!(dan.expect_close(), (4002, "Account suspended".to_owned()));
    }
    let (status, _) = api(
        &hub,
        "POST",
        "/api/disconnect",
        Some(ADMIN),
        Some(json!({"clientId": id})),
    );
    assert_eq!(status, 200);
    assert_eq!(carol.expect_close().0, 1000);
}

#[test]
fn a_service_connection_controls_clients() {
    let hub = start(with_admin());
    let mut service = hub.client(&format!("/ws?token={ADMIN}"));
    let mut carol = hub.client("/ws?userId=carol");
    let mut dan = [hub.client("/ws?userId=dan"), hub.client("/ws?userId=dan")];
    let id = carol.id();
    let mut command = |message: Value, correlation: &str| ask(&mut service, message, correlation);

    let ack = command(
        json!({"type": "subscribe", "clientId": id, "channel": "git"}),
        "k1",
    );
    assert_eq!(
        (&ack["type"], &ack["data"]),
        (&json!("ack"), &json!({"done": true}))
    );
    let told = expect(&mut carol, "subscribed");
    // Told where the stream stands: nothing published on it yet.
    assert_eq!(
        (&told["channel"], &told["data"]["seq"]),
        (&json!("git"), &json!(0))
    );
    assert!(told["data"]["epoch"].is_string(), "{told}");
    assert_eq!(
        hub.handle()
            .publish(Target::channel("git"), "event", json!({"type": "commit"}))
            .unwrap(),
        1
    );
    assert_eq!(expect(&mut carol, "event")["channel"], "git");

    let listing = command(json!({"type": "subscribers", "channel": "git"}), "k2");
    assert_eq!(listing["type"], "subscribers");
    assert_eq!(listing["channel"], "git");
    let clients = listing["data"]["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0]["id"], id);
    assert_eq!(clients[0]["userId"], "carol");

    let ack = command(
        json!({"type": "set_meta", "clientId": id, "data": {"role": "reviewer", "x": 1}}),
        "k3",
    );
    assert_eq!(ack["data"], json!({"done": true}));
    command(
        json!({"type": "set_meta", "clientId": id, "data": {"x": null}}),
        "k4",
    );
    assert_eq!(
        client_stats(&hub, &id).meta,
        json!({"role": "reviewer"}).as_object().unwrap().clone()
    );

    let ack = command(
        json!({"type": "unsubscribe", "clientId": id, "channel": "git"}),
        "k5",
    );
    assert_eq!(ack["data"], json!({"done": true}));
    assert_eq!(expect(&mut carol, "unsubscribed")["channel"], "git");
    assert_eq!(
        hub.handle()
            .publish(Target::channel("git"), "event", json!(1))
            .unwrap(),
        0
    );
    command(
        json!({"type": "subscribe", "clientId": id, "sessionId": "s7"}),
        "k6",
    );
    assert_eq!(expect(&mut carol, "subscribed")["sessionId"], "s7");
    command(json!({"type": "unsubscribe", "clientId": id}), "k7");
    let told = expect(&mut carol, "unsubscribed");
    assert!(told.get("sessionId").is_none(), "every session: {told}");
    assert!(client_stats(&hub, &id).sessions.is_empty());
    quiet(&mut carol);

    // Unknown clients.
    for (message, data) in [
        (
            json!({"type": "subscribe", "clientId": "c_nobody", "channel": "git"}),
            json!({"done": false}),
        ),
        (
            json!({"type": "unsubscribe", "clientId": "c_nobody"}),
            json!({"done": false}),
        ),
        (
            json!({"type": "set_meta", "clientId": "c_nobody", "data": {"a": 1}}),
            json!({"done": false}),
        ),
        (
            json!({"type": "disconnect", "clientId": "c_nobody"}),
            json!({"count": 0}),
        ),
    ] {
        let ack = command(message.clone(), "n");
        assert_eq!(
            (&ack["type"], &ack["data"]),
            (&json!("ack"), &data),
            "{message}"
        );
    }

    // Disconnect: a user's every connection, or one client.
    let ack = command(json!({"type": "disconnect", "userId": "dan"}), "k8");
    assert_eq!(ack["data"], json!({"count": 2}));
    for dan in &mut dan {
        assert_eq!(dan.expect_close().0, 1000);
    }
    let ack = command(
        json!({"type": "disconnect", "clientId": id, "code": 4003, "reason": "Moved to another device"}),
        "k9",
    );
    assert_eq!(ack["data"], json!({"count": 1}));
    assert_eq!(
        carol.expect_close(),
        (4003, "Moved to another device".to_owned())
    );
}

#[test]
fn a_service_connection_asks_for_stats_and_presence() {
    let hub = start(with_admin().presence_grace(Duration::ZERO));
    let mut service = hub.client(&format!("/ws?token={ADMIN}"));
    let mut erin = hub.client("/ws?userId=erin&sessionId=s-erin");
    let id = erin.id();
    quiet(&mut erin);

    // The same body as GET /api/ws/stats, over the connection.
    let stats = ask(&mut service, json!({"type": "stats"}), "st1");
    assert_eq!(stats["type"], "stats", "{stats}");
    assert_eq!(stats["data"]["activeConnections"], 2, "{stats}");
    assert_eq!(stats["data"]["serviceConnections"], 1, "{stats}");
    let (status, http) = api(&hub, "GET", "/api/ws/stats", Some(ADMIN), None);
    assert_eq!(status, 200);
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        keys(&stats["data"]),
        keys(&http),
        "the same fields as the HTTP API"
    );
    let clients = stats["data"]["clients"].as_array().unwrap();
    let erin_stats = clients.iter().find(|c| c["id"] == id.as_str()).unwrap();
    assert_eq!(erin_stats["userId"], "erin");
    assert_eq!(erin_stats["sessions"], json!(["s-erin"]));
    assert!(clients.iter().any(|c| c["service"] == true), "{stats}");

    let presence = ask(&mut service, json!({"type": "presence"}), "p1");
    assert_eq!(presence["type"], "presence", "{presence}");
    assert_eq!(
        presence["data"]["users"],
        json!([{"userId": "erin", "status": "online"}])
    );

    // For a regular client, `stats` is an application request like any
    // type it makes up: the service gets it.
    erin.send(json!({"type": "stats", "correlationId": "st2"}));
    let forwarded = expect(&mut service, "client_message");
    assert_eq!(forwarded["data"]["clientId"], id.as_str());
    assert_eq!(forwarded["data"]["message"]["type"], "stats");
}

#[test]
fn a_regular_client_may_not_act_on_other_clients() {
    let hub = start(support::config());
    let mut mallory = hub.client("/ws?userId=mallory");
    let mut victim = hub.client("/ws?userId=victim");
    for message in [
        json!({"type": "subscribe", "clientId": victim.id(), "channel": "private-x"}),
        json!({"type": "unsubscribe", "clientId": victim.id(), "channel": "files"}),
        json!({"type": "unsubscribe", "clientId": victim.id()}),
    ] {
        let reply = ask(&mut mallory, message.clone(), "f1");
        assert_eq!(reply["type"], "error", "{message}: {reply}");
        assert_eq!(reply["data"]["code"], "forbidden", "{message}: {reply}");
    }
    quiet(&mut victim);
    let stats = client_stats(&hub, &victim.id());
    assert!(stats.channels.is_empty() && stats.sessions.is_empty());
    assert!(client_stats(&hub, &mallory.id()).channels.is_empty());
}

// --- metadata ---------------------------------------------------------------

#[test]
fn a_filter_on_metadata_reaches_exactly_the_clients_it_accepts() {
    let hub = start(
        support::config()
            .tokens(tokens_file(
                "meta",
                json!({
                    "ide-token": {"userId": "ide", "meta": {"subscribedToIDE": true}},
                    "late-token": {"userId": "late"},
                    "plain-token": {"userId": "plain"},
                    "off-token": {"userId": "off", "meta": {"subscribedToIDE": true}},
                }),
            ))
            .admin_token(Some(ADMIN.into())),
    );
    let handle = hub.handle();
    let mut ide = hub.client("/ws?token=ide-token");
    let mut late = hub.client("/ws?token=late-token");
    let mut plain = hub.client("/ws?token=plain-token");
    let mut off = hub.client("/ws?token=off-token");
    assert!(
        handle
            .set_meta(&late.id(), "subscribedToIDE", true)
            .unwrap()
    );
    assert!(
        handle
            .set_meta(&off.id(), "subscribedToIDE", false)
            .unwrap()
    );
    let ide_clients = || {
        Target::Filter(Filter::new(|c| {
            c.meta("subscribedToIDE") == Some(&json!(true))
        }))
    };

    let delivered = handle
        .publish(
            ide_clients(),
            "ideStatusChanged",
            json!({"port": 9222, "status": "active"}),
        )
        .unwrap();
    assert_eq!(delivered, 2);
    for client in [&mut ide, &mut late] {
        assert_eq!(expect(client, "ideStatusChanged")["data"]["port"], 9222);
        quiet(client);
    }
    quiet(&mut plain);
    quiet(&mut off);

    // Stats list the metadata, from the token and from the backend.
    let meta = |id: &str| Value::Object(client_stats(&hub, id).meta);
    assert_eq!(meta(&ide.id()), json!({"subscribedToIDE": true}));
    assert_eq!(meta(&late.id()), json!({"subscribedToIDE": true}));
    assert_eq!(meta(&off.id()), json!({"subscribedToIDE": false}));
    assert_eq!(meta(&plain.id()), json!({}));
    let (_, stats) = api(&hub, "GET", "/api/ws/stats", Some(ADMIN), None);
    let listed = |id: String| {
        stats["clients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()["meta"]
            .clone()
    };
    assert_eq!(listed(ide.id()), json!({"subscribedToIDE": true}));
    assert_eq!(listed(plain.id()), json!({}));

    // null removes a key.
    assert!(
        handle
            .set_meta(&late.id(), "subscribedToIDE", Value::Null)
            .unwrap()
    );
    assert_eq!(meta(&late.id()), json!({}));
    assert_eq!(
        handle
            .publish(ide_clients(), "ideStatusChanged", json!({"port": 9223}))
            .unwrap(),
        1
    );
    assert_eq!(expect(&mut ide, "ideStatusChanged")["data"]["port"], 9223);
    quiet(&mut late);
}

// --- batching ---------------------------------------------------------------

/// The `messages` of a batch, as (type, data) pairs.
fn batch_items(batch: &Value) -> Vec<(String, Value)> {
    batch["data"]["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("a batch has messages: {batch}"))
        .iter()
        .map(|m| (m["type"].as_str().unwrap().to_owned(), m["data"].clone()))
        .collect()
}

fn progress(n: u64) -> Value {
    json!({"progress": {"chunksReceived": n}})
}

/// A hub whose batches are held for a minute unless something sends them.
fn long_window(batch_max: usize) -> Config {
    support::config()
        .batch_window(Duration::from_secs(60))
        .batch_max(batch_max)
        .admin_token(Some(ADMIN.into()))
}

#[test]
fn batched_publications_to_a_session_arrive_as_one_batch_in_order() {
    // The window ends the batch: it only has to outlast three calls, which
    // a busy machine can hold up for a while.
    let hub = start(support::config().batch_window(Duration::from_secs(2)));
    let mut client = hub.client("/ws?sessionId=s1");
    let handle = hub.handle();
    for n in 1..=3 {
        let delivered = handle
            .publish_batched(Target::session("s1"), "ai_progress", progress(n))
            .unwrap();
        assert_eq!(delivered, 1);
    }
    // The client is answered while the batch is held (before or after the
    // batch goes, as the window falls); nothing comes one by one.
    client.send(json!({"type": "ping", "correlationId": "p"}));
    let mut two = [
        client.recv("the pong or the batch"),
        client.recv("the batch or the pong"),
    ];
    two.sort_by_key(|message| message["type"] != "pong");
    assert_eq!(
        (two[0]["type"].as_str(), two[1]["type"].as_str()),
        (Some("pong"), Some("batch_update")),
        "expected the pong and one batch: {two:?}"
    );
    let batch = &two[1];
    assert_eq!(batch["sessionId"], "s1");
    assert_eq!(
        batch_items(batch),
        (1..=3)
            .map(|n| ("ai_progress".to_owned(), progress(n)))
            .collect::<Vec<_>>()
    );
    client.expect_nothing_pending();
}

#[test]
fn a_full_batch_goes_at_once_without_waiting_for_its_window() {
    let hub = start(long_window(4));
    let mut client = hub.client("/ws?sessionId=s1");
    let handle = hub.handle();
    for n in 1..=3 {
        handle
            .publish_batched(Target::session("s1"), "ai_progress", progress(n))
            .unwrap();
    }
    client.expect_nothing_pending();
    handle
        .publish_batched(Target::session("s1"), "ai_progress", progress(4))
        .unwrap();
    // Well within the test's deadline, far inside the minute's window.
    let batch = client.expect("batch_update");
    assert_eq!(batch_items(&batch).len(), 4);
    assert_eq!(batch_items(&batch)[3].1, progress(4));
    // The next one starts a new batch, held again.
    handle
        .publish_batched(Target::session("s1"), "ai_progress", progress(5))
        .unwrap();
    client.expect_nothing_pending();
}

#[test]
fn an_unbatched_publication_first_sends_its_targets_held_batch() {
    let hub = start(long_window(64));
    let mut client = hub.client("/ws?sessionId=s1");
    client.request(json!({"type": "subscribe", "channel": "x"}), "s");
    let handle = hub.handle();
    handle
        .publish_batched(Target::channel("x"), "event", json!({"x": 1}))
        .unwrap();
    handle
        .publish_batched(Target::session("s1"), "ai_progress", progress(1))
        .unwrap();
    handle
        .publish_batched(Target::session("s1"), "ai_progress", progress(2))
        .unwrap();
    assert_eq!(
        handle
            .publish(Target::session("s1"), "ai_complete", json!({"chunks": 2}))
            .unwrap(),
        1
    );
    let batch = client.expect("batch_update");
    assert_eq!(batch["sessionId"], "s1");
    assert_eq!(
        batch_items(&batch),
        [
            ("ai_progress".to_owned(), progress(1)),
            ("ai_progress".to_owned(), progress(2))
        ]
    );
    assert_eq!(client.expect("ai_complete")["data"]["chunks"], 2);
    // The channel's batch is another target's: still held.
    client.expect_nothing_pending();
    handle
        .publish(Target::channel("x"), "event", json!({"x": 2}))
        .unwrap();
    let batch = client.expect("batch_update");
    assert_eq!(batch["channel"], "x");
    assert_eq!(batch_items(&batch), [("event".to_owned(), json!({"x": 1}))]);
    assert_eq!(client.expect("event")["data"]["x"], 2);
}

#[test]
fn publications_over_http_and_from_a_service_may_be_batched() {
    let hub = start(long_window(3));
    let mut client = hub.client("/ws?sessionId=s1");
    let mut service = hub.client(&format!("/ws?token={ADMIN}"));
    let http = |n: u64| {
        let body =
            json!({"sessionId": "s1", "type": "ai_progress", "data": progress(n), "batched": true});
        let (status, body) = api(&hub, "POST", "/api/publish", Some(ADMIN), Some(body));
        assert_eq!(status, 200, "{body}");
        body["data"]["delivered"].clone()
    };
    assert_eq!(http(1), 1);
    client.expect_nothing_pending();
    let published = service.request(
        json!({"type": "publish", "sessionId": "s1", "event": "ai_progress", "data": progress(2), "batched": true}),
        "p",
    );
    assert_eq!(published["type"], "published");
    assert_eq!(published["data"]["delivered"], 1);
    client.expect_nothing_pending();
    assert_eq!(http(3), 1);
    let batch = client.expect("batch_update");
    assert_eq!(
        batch_items(&batch),
        (1..=3)
            .map(|n| ("ai_progress".to_owned(), progress(n)))
            .collect::<Vec<_>>()
    );
    assert!(
        batch["data"]["messages"][1].get("from").is_none(),
        "no from on a service's publication: {batch}"
    );
}

#[test]
fn batch_type_names_the_batch_message() {
    let hub = start(long_window(2).batch_type("batchUpdate"));
    let mut client = hub.client("/ws");
    let target = || Target::client(client.id());
    hub.handle()
        .publish_batched(target(), "messageReceived", json!({"id": "m1"}))
        .unwrap();
    hub.handle()
        .publish_batched(target(), "messageReceived", json!({"id": "m2"}))
        .unwrap();
    let batch = client.expect("batchUpdate");
    assert_eq!(
        batch_items(&batch),
        [
            ("messageReceived".to_owned(), json!({"id": "m1"})),
            ("messageReceived".to_owned(), json!({"id": "m2"}))
        ]
    );
}

#[test]
fn delivered_counts_the_clients_the_batch_will_reach() {
    let hub = start(long_window(2));
    let mut tabs = [
        hub.client("/ws?sessionId=s1"),
        hub.client("/ws?sessionId=s1"),
    ];
    let mut elsewhere = hub.client("/ws?sessionId=s2");
    assert_eq!(
        hub.handle()
            .publish_batched(Target::session("s1"), "ai_progress", progress(1))
            .unwrap(),
        2
    );
    let body =
        json!({"sessionId": "s1", "type": "ai_progress", "data": progress(2), "batched": true});
    let (status, body) = api(&hub, "POST", "/api/publish", Some(ADMIN), Some(body));
    assert_eq!((status, &body["data"]["delivered"]), (200, &json!(2)));
    for tab in &mut tabs {
        assert_eq!(batch_items(&tab.expect("batch_update")).len(), 2);
    }
    elsewhere.expect_nothing_pending();
}

#[test]
fn a_filter_target_is_not_batched() {
    let hub = start(long_window(64));
    let mut client = hub.client("/ws");
    let delivered = hub
        .handle()
        .publish_batched(
            Target::Filter(Filter::new(|_| true)),
            "notification",
            json!({"level": "info"}),
        )
        .unwrap();
    assert_eq!(delivered, 1);
    assert_eq!(client.expect("notification")["data"]["level"], "info");
}

#[test]
fn a_held_batch_is_delivered_before_shutdown_closes_its_clients() {
    let hub = start(long_window(64));
    let mut client = hub.client("/ws?sessionId=s1");
    assert_eq!(
        hub.handle()
            .publish_batched(Target::session("s1"), "ai_progress", progress(1))
            .unwrap(),
        1,
        "the batch will reach one client"
    );
    // Shutdown sends every client what it was promised, then 1001.
    let server = hub.server;
    let stopping = thread::spawn(move || server.shutdown());
    let batch = client.recv("the held batch before the 1001 close");
    assert_eq!(batch["type"], "batch_update", "{batch}");
    assert_eq!(
        batch_items(&batch),
        [("ai_progress".to_owned(), progress(1))]
    );
    assert_eq!(client.expect_close().0, 1001);
    client.finish_close();
    stopping.join().unwrap().unwrap();
}

#[test]
fn a_held_batch_reaches_a_client_before_the_server_closes_it() {
    let hub = start(long_window(64));
    let mut closed = hub.client("/ws?sessionId=s1");
    let mut staying = hub.client("/ws?sessionId=s2");
    hub.handle()
        .publish_batched(Target::session("s1"), "ai_progress", progress(1))
        .unwrap();
    hub.handle()
        .publish_batched(Target::session("s2"), "ai_progress", progress(2))
        .unwrap();
    assert_eq!(
        hub.handle()
            .close(Target::client(closed.id()), 4000, "done")
            .unwrap(),
        1
    );
    let batch = closed.recv("the held batch before the close");
    assert_eq!(
        batch_items(&batch),
        [("ai_progress".to_owned(), progress(1))]
    );
    assert_eq!(closed.expect_close(), (4000, "done".to_owned()));
    // Another target's batch keeps its window.
    staying.expect_nothing_pending();
}

// --- typed events and the event bus ----------------------------------------

#[test]
fn typed_events_and_the_event_bus_reach_clients() {
    let hub = start(support::config());
    let handle = hub.handle();
    let mut client = hub.client("/ws?sessionId=session_123");
    client.request(json!({"type": "subscribe", "channel": "files"}), "s");

    assert_eq!(
        handle
            .emit(Target::session("session_123"), &AiProgress::new(25, 1250))
            .unwrap(),
        1
    );
    let progress = client.expect("ai_progress");
    assert_eq!(progress["sessionId"], "session_123");
    assert_eq!(
        progress["data"],
        json!({"progress": {"chunksReceived": 25, "contentLength": 1250}})
    );

    assert_eq!(
        handle
            .emit_on_channel(&FileChanged::new("src/main.ts", "change"))
            .unwrap(),
        1
    );
    let changed = client.expect("event");
    assert_eq!(changed["channel"], "files");
    assert_eq!(changed["data"]["file"], "src/main.ts");
    assert_eq!(changed["data"]["event"], "change");
    assert!(changed["data"]["timestamp"].is_string(), "{changed}");

    let bus = EventBus::new();
    bus.bridge(
        "MessageSent",
        handle.clone(),
        Target::Broadcast,
        "messageReceived",
    )
    .unwrap();
    assert_eq!(
        bus.publish(
            "MessageSent",
            MessageReceived::new("msg-123", "Hello, Cursor!")
        )
        .unwrap(),
        1
    );
    let received = client.expect("messageReceived");
    assert_eq!(received["data"]["id"], "msg-123");
    assert_eq!(received["data"]["content"], "Hello, Cursor!");
}

#[test]
fn a_service_connection_is_not_rate_limited_like_a_browser() {
    // The default rate limit (100 a minute) is for clients; a backend
    // streaming an answer word by word goes far past it.
    let hub = start(support::config().admin_token(Some(ADMIN.into())));
    let mut service = hub.client(&format!("/ws?token={ADMIN}"));
    let mut client = hub.client("/ws");
    let id = client.id();
    for n in 0..300 {
        service.send(json!({
            "type": "send",
            "clientId": id,
            "message": {"type": "stream:chunk", "data": {"n": n}},
        }));
    }
    for n in 0..300 {
        let chunk = expect(&mut client, "stream:chunk");
        assert_eq!(chunk["data"]["n"], n);
    }
    quiet(&mut service);
    assert_eq!(hub.handle().stats().unwrap().rate_limited, 0);
}
