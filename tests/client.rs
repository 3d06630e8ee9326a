//! The Rust client (`wshub::client`) against the real hub over real sockets:
//! it connects, subscribes, publishes and requests; it reconnects by the
//! close-code table, re-subscribes and recovers what was published while it
//! was away, in order and once; it says when a stream could not be
//! recovered, asks for a fresh token after a 4001, and stops when told to.
//! A scripted hub plays what a correct hub never does on purpose (gaps,
//! duplicates, a change of epoch mid-stream, silence) to prove the client
//! notices.

mod support;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use support::{DEADLINE, TestHub, now, publish_n, read_json, start};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message as Frame, WebSocket};
use wshub::client::{Client, Error, Loss, Message, Next, Options, Update};
use wshub::events::FileChanged;
use wshub::{Hub, Secret, Status, Target, TokenGrant, Topic, sign_jwt};

const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws")
}

/// Quick reconnects, for tests.
fn quick() -> Options {
    Options::new().backoff(Duration::from_millis(5), Duration::from_millis(50))
}

fn connect(hub: &TestHub, options: Options) -> Client {
    Client::connect(&url(hub.addr), options).expect("the client connects")
}

/// The next event, which must come within the deadline.
fn next_any(client: &mut Client) -> Update {
    match client.next_update(DEADLINE) {
        Ok(Some(event)) => event,
        Ok(None) => panic!("no event within {DEADLINE:?}"),
        Err(err) => panic!("next_update failed: {err}"),
    }
}

/// The next event but presence (users coming and going), which every
/// client with a user is told about.
fn next(client: &mut Client) -> Update {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        match next_any(client) {
            Update::Presence(_) => {}
            event => return event,
        }
    }
    panic!("only presence within {DEADLINE:?}");
}

fn next_message(client: &mut Client) -> Message {
    match next(client) {
        Update::Message(message) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Events up to (and not including) the next `Reconnected`, which is returned.
fn until_reconnected(client: &mut Client) -> (Vec<Update>, wshub::client::Welcome) {
    let start = Instant::now();
    let mut before = Vec::new();
    while start.elapsed() < DEADLINE {
        match next(client) {
            Update::Reconnected(welcome) => return (before, welcome),
            other => before.push(other),
        }
    }
    panic!("not reconnected within {DEADLINE:?}; saw {before:?}");
}

/// The close event that must come next.
fn expect_closed(client: &mut Client) -> (u16, String, Next) {
    match next(client) {
        Update::Closed { code, reason, next } => (code, reason, next),
        other => panic!("expected Closed, got {other:?}"),
    }
}

/// Nothing else is on its way: a ping's pong is the very next message (the
/// hub answers in order), and the request kept nothing else for later.
fn expect_nothing_pending(client: &mut Client) {
    let pong = client
        .request(json!({"type": "ping"}), DEADLINE)
        .expect("a pong");
    assert_eq!(pong["type"], "pong");
    loop {
        match client.next_update(Duration::ZERO) {
            Ok(None) => return,
            Ok(Some(Update::Presence(_))) => {}
            other => panic!("expected nothing pending, got {other:?}"),
        }
    }
}

/// `(seq, data.n)` of the next `count` messages.
fn numbered(client: &mut Client, count: usize) -> Vec<(u64, u64)> {
    (0..count)
        .map(|_| {
            let message = next_message(client);
            (
                message.seq.expect("a seq"),
                message.data["n"].as_u64().expect("data.n"),
            )
        })
        .collect()
}

fn jwt(user: &str, lifetime: f64) -> String {
    sign_jwt(
        SECRET.as_bytes(),
        &json!({"sub": user, "exp": now() + lifetime}),
    )
    .expect("a JWT")
}

fn token_hub() -> TestHub {
    start(
        support::config()
            .tokens(HashMap::from([
                (Secret::new("alice-token"), TokenGrant::user("alice")),
                (Secret::new("bob-token"), TokenGrant::user("bob")),
            ]))
            .jwt_secret(Some(SECRET.into()))
            .jwt_leeway(Duration::ZERO),
    )
}

// ---- Connecting ---------------------------------------------------------

#[test]
fn it_connects_with_a_token_and_reads_the_welcome() {
    let hub = token_hub();
    let client = connect(&hub, Options::new().token("alice-token"));
    let welcome = client.welcome();
    assert!(welcome.client_id.starts_with("c_"), "{welcome:?}");
    assert_eq!(welcome.user_id.as_deref(), Some("alice"));
    assert!(welcome.authenticated);
    assert_eq!(welcome.heartbeat, Some(Duration::from_secs(30)));
    assert!(client.is_connected());

    // A development hub: who to be, and a session joined at once.
    let dev = support::start_default();
    let client = connect(&dev, Options::new().user_id("u 1").session_id("s1"));
    assert_eq!(client.welcome().user_id.as_deref(), Some("u 1"));
    assert_eq!(client.welcome().session_id.as_deref(), Some("s1"));
    let stats = dev.handle().stats().unwrap();
    assert_eq!(stats.clients[0].sessions, ["s1"]);
}

#[test]
fn a_refused_token_an_unsupported_url_or_no_hub_are_typed_errors() {
    let hub = token_hub();
    match Client::connect(&url(hub.addr), Options::new().token("wrong")) {
        Err(Error::Rejected {
            code: 1008,
            error: Some(error),
            ..
        }) => assert_eq!(error.code, "unauthorized"),
        other => panic!("expected a 1008 rejection, got {other:?}"),
    }
    match Client::connect("wss://127.0.0.1:1/ws", Options::new()) {
        Err(Error::TlsUnsupported { url }) => assert_eq!(url, "wss://127.0.0.1:1/ws"),
        other => panic!("expected TlsUnsupported, got {other:?}"),
    }
    assert!(matches!(
        Client::connect("ftp://127.0.0.1/", Options::new()),
        Err(Error::InvalidUrl { .. })
    ));
    // A port nobody listens on: bound by this socket, which does not
    // listen, so no other test's listener can take it meanwhile.
    let bound = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    bound
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let free = bound.local_addr().unwrap().as_socket().unwrap();
    assert!(matches!(
        Client::connect(&url(free), Options::new()),
        Err(Error::Connect { .. })
    ));
    drop(bound);
}

// ---- Subscribing, publishing, requests -----------------------------------

#[test]
fn publications_arrive_typed_from_channels_sessions_and_the_user_s_own_stream() {
    let hub = token_hub();
    let mut client = connect(&hub, Options::new().token("alice-token").session_id("s1"));
    client.subscribe(Topic::channel("files")).unwrap();
    client.subscribe(Topic::channel("files")).unwrap(); // again: nothing new

    hub.handle()
        .emit_on_channel(&FileChanged::new("src/main.rs", "change"))
        .unwrap();
    let message = next_message(&mut client);
    assert_eq!(message.kind, "event");
    assert_eq!(message.topic, Some(Topic::channel("files")));
    assert_eq!(message.seq, Some(1));
    assert!(message.epoch.is_some());
    let change: FileChanged = message.data_as().unwrap();
    assert_eq!(
        (change.file.as_str(), change.event.as_str()),
        ("src/main.rs", "change")
    );

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(tag = "type", content = "data", rename_all = "snake_case")]
    enum Update {
        AiProgress { done: u32 },
        Notification { level: String, message: String },
    }
    hub.handle()
        .publish(Target::session("s1"), "ai_progress", json!({"done": 25}))
        .unwrap();
    let message = next_message(&mut client);
    assert_eq!(message.topic, Some(Topic::session("s1")));
    assert_eq!(
        message.parse::<Update>().unwrap(),
        Update::AiProgress { done: 25 }
    );

    hub.handle()
        .publish(
            Target::user("alice"),
            "notification",
            json!({"level": "info", "message": "hi"}),
        )
        .unwrap();
    let message = next_message(&mut client);
    assert_eq!(message.topic, Some(Topic::channel("user:alice")));
    assert_eq!(message.seq, Some(1));
    assert!(matches!(
        message.parse::<Update>().unwrap(),
        Update::Notification { .. }
    ));
    expect_nothing_pending(&mut client);
}

#[test]
fn clients_publish_to_each_other_and_see_who_published() {
    let hub = start(support::config().allow_client_publish(true));
    let mut reader = connect(&hub, Options::new().user_id("reader"));
    let mut writer = connect(&hub, Options::new().user_id("writer"));
    reader.subscribe(Topic::channel("chat")).unwrap();
    let delivered = writer
        .publish(
            Topic::channel("chat"),
            "chat_message",
            json!({"text": "hello"}),
        )
        .unwrap();
    assert_eq!(delivered, 1);
    let message = next_message(&mut reader);
    assert_eq!(message.kind, "chat_message");
    assert_eq!(message.data, json!({"text": "hello"}));
    let from = message.from.expect("from");
    assert_eq!(from.client_id, writer.welcome().client_id);
    assert_eq!(from.user_id.as_deref(), Some("writer"));
}

#[test]
fn refusals_are_hub_errors_and_refused_subscriptions_are_forgotten() {
    let hub = support::start_default();
    let mut client = connect(&hub, Options::new());
    match client.subscribe(Topic::channel("no spaces allowed")) {
        Err(Error::Hub(error)) => assert_eq!(error.code, "invalid_channel"),
        other => panic!("expected invalid_channel, got {other:?}"),
    }
    match client.publish(Topic::channel("chat"), "chat_message", json!({})) {
        Err(Error::Hub(error)) => assert_eq!(error.code, "forbidden"),
        other => panic!("expected forbidden, got {other:?}"),
    }
    assert!(matches!(
        client.request(json!({"no": "type"}), DEADLINE),
        Err(Error::InvalidMessage { .. })
    ));
    // The refused channel is not sent again on reconnect.
    let id = client.welcome().client_id.clone();
    hub.handle()
        .close(Target::client(id), 3000, "again")
        .unwrap();
    let (code, _, _) = expect_closed(&mut client);
    assert_eq!(code, 3000);
    let (before, _) = until_reconnected(&mut client);
    assert!(before.is_empty(), "{before:?}");
    expect_nothing_pending(&mut client);
}

#[test]
fn a_request_returns_its_reply_and_keeps_what_came_meanwhile() {
    let mut hub = Hub::with_config(support::config()).unwrap();
    let requests = hub.requests();
    let addr = hub.local_addr();
    let hub = TestHub {
        server: hub.spawn().unwrap(),
        addr,
    };
    // The application: publishes to the caller's channel, then answers;
    // leaves `agent:hang` unanswered.
    let app = thread::spawn(move || {
        let mut hung = Vec::new();
        for _ in 0..2 {
            let request = requests.recv_timeout(DEADLINE).expect("a request");
            if request.kind() == "agent:hang" {
                hung.push(request);
                continue;
            }
            let handle = request.handle().clone();
            handle
                .publish(Target::channel("jobs"), "job", json!({"id": 1}))
                .unwrap();
            request
                .reply("agent:started", json!({"sessionId": "s9"}))
                .unwrap();
        }
        hung
    });
    let mut client = connect(&hub, Options::new());
    client.subscribe(Topic::channel("jobs")).unwrap();
    let reply = client
        .request(
            json!({"type": "agent:start", "data": {"projectId": "p1"}}),
            DEADLINE,
        )
        .unwrap();
    assert_eq!(reply["type"], "agent:started");
    assert_eq!(reply["data"]["sessionId"], "s9");
    // The publication came before the reply, and waited for next_update.
    let job = next_message(&mut client);
    assert_eq!((job.kind.as_str(), &job.data), ("job", &json!({"id": 1})));

    let started = Instant::now();
    let timeout = Duration::from_millis(200);
    match client.request(json!({"type": "agent:hang"}), timeout) {
        Err(Error::Timeout { waited }) => assert!(waited >= timeout, "{waited:?}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(started.elapsed() < DEADLINE);
    let hung = app.join().expect("the application thread");
    // A late answer is dropped, not handed out as an event.
    hung[0].reply("agent:started", json!({})).unwrap();
    expect_nothing_pending(&mut client);
}

#[test]
fn presence_changes_are_events_and_the_list_is_a_request() {
    let hub = support::start_default();
    let mut watcher = connect(&hub, Options::new().user_id("u1"));
    let mut other = connect(&hub, Options::new().user_id("u2"));
    other.set_presence(Status::Away).unwrap();
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < DEADLINE, "no away from u2");
        if let Update::Presence(presence) = next_any(&mut watcher)
            && presence.user_id == "u2"
            && presence.status == Status::Away
        {
            break;
        }
    }
    let users = watcher.presence().unwrap();
    let u2 = users.iter().find(|p| p.user_id == "u2").expect("u2 listed");
    assert_eq!(u2.status, Status::Away);
    assert!(users.iter().any(|p| p.user_id == "u1"));
}

#[test]
fn a_batch_arrives_as_its_messages_in_order() {
    let hub = support::start_default();
    let mut client = connect(&hub, Options::new().session_id("s1"));
    for n in 0..3 {
        hub.handle()
            .publish_batched(Target::session("s1"), "ai_progress", json!({ "n": n }))
            .unwrap();
    }
    for n in 0..3u64 {
        let message = next_message(&mut client);
        assert!(message.batched);
        assert_eq!(message.kind, "ai_progress");
        assert_eq!(message.topic, Some(Topic::session("s1")));
        assert_eq!(
            (message.seq, message.data["n"].as_u64()),
            (Some(n + 1), Some(n))
        );
    }
}

// ---- Reconnecting and recovering ------------------------------------------

#[test]
fn after_the_hub_cuts_it_the_client_reconnects_and_resubscribes() {
    let hub = support::start_default();
    let mut client = connect(&hub, quick());
    client.subscribe(Topic::channel("files")).unwrap();
    // Kept by the hub, so it does not forget the stream meanwhile.
    publish_n(&hub, &Target::channel("files"), 0, 1);
    assert_eq!(numbered(&mut client, 1), [(1, 0)]);
    let first = client.welcome().client_id.clone();
    hub.handle()
        .close(Target::client(first.clone()), 3000, "Go away for a bit")
        .unwrap();
    let (code, reason, next_step) = expect_closed(&mut client);
    assert_eq!((code, reason.as_str()), (3000, "Go away for a bit"));
    assert!(matches!(next_step, Next::Reconnect { delay } if delay <= Duration::from_millis(5)));
    assert!(!client.is_connected());

    let (before, welcome) = until_reconnected(&mut client);
    assert!(before.is_empty(), "{before:?}");
    assert_ne!(welcome.client_id, first);
    // Re-subscribed, and answered, before Reconnected was handed out.
    let delivered = hub
        .handle()
        .publish(Target::channel("files"), "event", json!({"n": 1}))
        .unwrap();
    assert_eq!(delivered, 1);
    assert_eq!(next_message(&mut client).data, json!({"n": 1}));
    expect_nothing_pending(&mut client);
}

#[test]
fn what_was_published_while_away_arrives_after_the_reconnect_in_order_and_once() {
    let hub = support::start_default();
    let target = Target::channel("files");
    let mut client = connect(&hub, quick());
    client.subscribe(Topic::channel("files")).unwrap();
    publish_n(&hub, &target, 0, 3);
    assert_eq!(numbered(&mut client, 3), [(1, 0), (2, 1), (3, 2)]);

    let id = client.welcome().client_id.clone();
    hub.handle().close(Target::client(id), 3000, "cut").unwrap();
    expect_closed(&mut client);
    // The client is away until it is asked for its next event.
    publish_n(&hub, &target, 3, 6);
    let (before, _) = until_reconnected(&mut client);
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(numbered(&mut client, 3), [(4, 3), (5, 4), (6, 5)]);
    publish_n(&hub, &target, 6, 7);
    assert_eq!(numbered(&mut client, 1), [(7, 6)]);
    expect_nothing_pending(&mut client);
    assert_eq!(client.position(&Topic::channel("files")).unwrap().seq, 7);
}

#[test]
fn a_session_and_the_user_s_notifications_are_recovered_too() {
    let hub = token_hub();
    let mut client = connect(&hub, quick().token("alice-token").session_id("s1"));
    // Another tab of alice's in the session keeps both streams in use, so
    // the hub keeps them while they are empty (see the ignored test).
    let tab = hub.client("/ws?token=alice-token&sessionId=s1");
    let session = Target::session("s1");
    let user = Target::user("alice");
    let id = client.welcome().client_id.clone();
    hub.handle().close(Target::client(id), 3000, "cut").unwrap();
    expect_closed(&mut client);
    // Nothing was ever delivered to the client on either stream: the
    // positions come from its subscriptions at connect.
    publish_n(&hub, &session, 0, 2);
    publish_n(&hub, &user, 10, 12);
    until_reconnected(&mut client);
    let mut by_stream: HashMap<Topic, Vec<(u64, u64)>> = HashMap::new();
    for _ in 0..4 {
        let message = next_message(&mut client);
        by_stream
            .entry(message.topic.clone().expect("a topic"))
            .or_default()
            .push((message.seq.unwrap(), message.data["n"].as_u64().unwrap()));
    }
    assert_eq!(by_stream[&Topic::session("s1")], [(1, 0), (2, 1)]);
    assert_eq!(by_stream[&Topic::channel("user:alice")], [(1, 10), (2, 11)]);
    expect_nothing_pending(&mut client);
    drop(tab);
}

#[test]
fn a_restarted_hub_is_reconnected_to_and_its_lost_history_is_an_event() {
    let first = support::start_default();
    let addr = first.addr;
    let mut client = connect(&first, quick());
    client.subscribe(Topic::channel("c")).unwrap();
    publish_n(&first, &Target::channel("c"), 0, 1);
    assert_eq!(numbered(&mut client, 1), [(1, 0)]);

    first.handle().shutdown();
    let (code, _, next_step) = expect_closed(&mut client);
    assert_eq!(code, 1001);
    assert!(matches!(next_step, Next::Reconnect { .. }));
    first.server.shutdown().unwrap();
    let again = start(support::config().port(addr.port()));
    // Attempts before the new hub listened fail as 1006, with backoff.
    let (before, _) = until_reconnected(&mut client);
    for event in &before {
        assert!(
            matches!(
                event,
                Update::Closed {
                    code: 1006,
                    next: Next::Reconnect { .. },
                    ..
                }
            ),
            "{event:?}"
        );
    }
    // The new hub has a new epoch: what the old one held is gone.
    match next(&mut client) {
        Update::Lost { stream, loss } => {
            assert_eq!(stream, Topic::channel("c"));
            assert_eq!(loss, Loss::NotRecovered);
        }
        other => panic!("expected Lost, got {other:?}"),
    }
    // And the stream goes on, live, from the new hub's position.
    publish_n(&again, &Target::channel("c"), 5, 6);
    assert_eq!(numbered(&mut client, 1), [(1, 5)]);
    expect_nothing_pending(&mut client);
}

#[test]
fn an_expired_token_is_replaced_by_the_provider_s_and_the_client_goes_on() {
    let hub = token_hub();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    // Three seconds: time enough to connect, subscribe and read two
    // messages before it expires, even on a busy machine.
    let options = quick().token(jwt("erin", 3.0)).token_provider(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        Some(jwt("erin", 3600.0))
    });
    let mut client = connect(&hub, options);
    client.subscribe(Topic::channel("a")).unwrap();
    // Something kept on each stream, so the hub does not forget them while
    // the client is away (see the ignored test below).
    publish_n(&hub, &Target::channel("a"), 0, 1);
    publish_n(&hub, &Target::user("erin"), 0, 1);
    assert_eq!(numbered(&mut client, 2), [(1, 0), (1, 0)]);
    // The hub ends the token with an error, then 4001.
    let start = Instant::now();
    let next_step = loop {
        assert!(start.elapsed() < DEADLINE, "no 4001");
        match next(&mut client) {
            Update::HubError(error) => assert_eq!(error.code, "token_expired"),
            Update::Closed { code, next, .. } => {
                assert_eq!(code, 4001);
                break next;
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        next_step,
        Next::Reconnect {
            delay: Duration::ZERO
        }
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let (before, welcome) = until_reconnected(&mut client);
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(welcome.user_id.as_deref(), Some("erin"));
    assert!(welcome.authenticated);
    assert_eq!(
        hub.handle()
            .publish(Target::channel("a"), "event", 1)
            .unwrap(),
        1
    );
    assert_eq!(next_message(&mut client).data, json!(1));
    expect_nothing_pending(&mut client);
}

#[test]
fn a_quiet_stream_is_recovered_after_an_absence_longer_than_a_history_sweep() {
    let hub = support::start_default();
    let mut client = connect(&hub, quick());
    client.subscribe(Topic::channel("quiet")).unwrap();
    let id = client.welcome().client_id.clone();
    hub.handle().close(Target::client(id), 3000, "cut").unwrap();
    expect_closed(&mut client);
    // Away until the hub's sweep has run (it forgets the stream).
    hub.wait_stats("the quiet stream forgotten", |s| s.history_streams == 0);
    until_reconnected(&mut client);
    // Nothing was ever published on it: nothing was missed.
    expect_nothing_pending(&mut client);
}

#[test]
fn a_4001_without_a_fresh_token_stops_and_a_refused_token_stops_with_1008() {
    let hub = token_hub();
    let mut client = connect(&hub, quick().token("alice-token"));
    let id = client.welcome().client_id.clone();
    hub.handle()
        .close(Target::client(id), 4001, "Token expired")
        .unwrap();
    assert_eq!(expect_closed(&mut client).2, Next::Stop);
    assert!(matches!(
        client.next_update(DEADLINE),
        Err(Error::Closed { code: 4001, .. })
    ));

    // A provider whose token the hub refuses: the reconnect is refused (1008).
    let mut client = connect(
        &hub,
        quick()
            .token("bob-token")
            .token_provider(|| Some("stale".into())),
    );
    let id = client.welcome().client_id.clone();
    hub.handle()
        .close(Target::client(id), 4001, "Token expired")
        .unwrap();
    assert!(matches!(
        expect_closed(&mut client).2,
        Next::Reconnect { .. }
    ));
    match next(&mut client) {
        Update::HubError(error) => assert_eq!(error.code, "unauthorized"),
        other => panic!("expected the hub's refusal, got {other:?}"),
    }
    let (code, _, next_step) = expect_closed(&mut client);
    assert_eq!((code, next_step), (1008, Next::Stop));
    assert!(matches!(
        client.subscribe(Topic::channel("x")),
        Err(Error::Closed { code: 1008, .. })
    ));
}

#[test]
fn a_subscription_the_new_token_no_longer_allows_is_lost_and_forgotten() {
    let hub = token_hub();
    let claims = |channels: Value| {
        sign_jwt(
            SECRET.as_bytes(),
            &json!({"sub": "erin", "exp": now() + 3600.0, "channels": channels}),
        )
        .unwrap()
    };
    let narrower = claims(json!(["a"]));
    let options = quick()
        .token(claims(json!(["a", "b"])))
        .token_provider(move || Some(narrower.clone()));
    let mut client = connect(&hub, options);
    client.subscribe(Topic::channel("a")).unwrap();
    client.subscribe(Topic::channel("b")).unwrap();
    // Kept, so the hub does not forget the streams while the client is away.
    publish_n(&hub, &Target::channel("a"), 0, 1);
    publish_n(&hub, &Target::user("erin"), 0, 1);
    assert_eq!(numbered(&mut client, 2), [(1, 0), (1, 0)]);
    let id = client.welcome().client_id.clone();
    hub.handle()
        .close(Target::client(id), 4001, "Token expired")
        .unwrap();
    expect_closed(&mut client);
    until_reconnected(&mut client);
    match next(&mut client) {
        Update::Lost {
            stream,
            loss: Loss::Refused(error),
        } => {
            assert_eq!(stream, Topic::channel("b"));
            assert_eq!(error.code, "forbidden");
        }
        other => panic!("expected b refused, got {other:?}"),
    }
    // Forgotten: the next reconnect does not ask again; `a` is still followed.
    let id = client.welcome().client_id.clone();
    hub.handle().close(Target::client(id), 3000, "cut").unwrap();
    expect_closed(&mut client);
    let (before, _) = until_reconnected(&mut client);
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(
        hub.handle()
            .publish(Target::channel("a"), "event", 1)
            .unwrap(),
        1
    );
    assert_eq!(next_message(&mut client).data, json!(1));
    expect_nothing_pending(&mut client);
}

#[test]
fn application_codes_below_4500_ask_the_client_back() {
    let hub = support::start_default();
    for code in [4000, 4499] {
        let mut client = connect(&hub, quick());
        let id = client.welcome().client_id.clone();
        hub.handle()
            .close(Target::client(id), code, "Come back")
            .unwrap();
        let (closed, _, next_step) = expect_closed(&mut client);
        assert_eq!(closed, code);
        assert!(
            matches!(next_step, Next::Reconnect { delay } if delay <= Duration::from_millis(5))
        );
        let (_, welcome) = until_reconnected(&mut client);
        assert!(client.is_connected(), "back as {}", welcome.client_id);
    }
}

#[test]
fn stop_codes_stop_the_client() {
    let hub = support::start_default();
    for code in [1000, 4500, 4999] {
        let mut client = connect(&hub, quick());
        let id = client.welcome().client_id.clone();
        hub.handle().close(Target::client(id), code, "Bye").unwrap();
        let (closed, reason, next_step) = expect_closed(&mut client);
        assert_eq!(
            (closed, reason.as_str(), next_step),
            (code, "Bye", Next::Stop)
        );
        assert!(!client.is_connected());
        match client.next_update(DEADLINE) {
            Err(Error::Closed { code: stopped, .. }) => assert_eq!(stopped, code),
            other => panic!("expected Closed, got {other:?}"),
        }
        assert!(matches!(
            client.request(json!({"type": "ping"}), DEADLINE),
            Err(Error::Closed { .. })
        ));
    }
    hub.wait_stats("every client gone", |s| s.active_connections == 0);
}

#[test]
fn the_client_gives_up_after_its_maximum_attempts() {
    let hub = support::start_default();
    let mut client = connect(&hub, quick().max_attempts(2));
    hub.handle().shutdown();
    assert_eq!(expect_closed(&mut client).0, 1001);
    hub.server.shutdown().unwrap();
    // Two attempts, both refused (nothing listens there any more).
    let (code, _, next_step) = expect_closed(&mut client);
    assert_eq!(code, 1006);
    assert!(matches!(next_step, Next::Reconnect { .. }));
    let (code, _, next_step) = expect_closed(&mut client);
    assert_eq!((code, next_step), (1006, Next::Stop));
    assert!(matches!(
        client.next_update(DEADLINE),
        Err(Error::Closed { code: 1006, .. })
    ));
}

#[test]
fn close_says_goodbye_and_stops() {
    let hub = support::start_default();
    let mut client = connect(&hub, Options::new());
    hub.wait_stats("the client", |s| s.active_connections == 1);
    client.close();
    hub.wait_stats("the client gone", |s| s.active_connections == 0);
    assert!(matches!(
        client.next_update(Duration::ZERO),
        Err(Error::Closed { code: 1000, .. })
    ));
}

// ---- A scripted hub: what a correct hub does not do on purpose -------------

/// A listener that plays a hub, one scripted connection at a time.
struct Scripted {
    listener: TcpListener,
}

impl Scripted {
    fn new() -> Scripted {
        Scripted {
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    fn url(&self) -> String {
        url(self.listener.local_addr().unwrap())
    }

    /// The next connection, welcomed (no user, so no user stream).
    fn accept(&self, heartbeat_ms: u64) -> WebSocket<TcpStream> {
        let (stream, _) = self.listener.accept().expect("the client connects");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut ws = tungstenite::accept(stream).expect("an upgrade");
        send(
            &mut ws,
            json!({"type": "connection", "data": {"clientId": "c_scripted", "userId": null,
                "sessionId": null, "authenticated": false, "heartbeatMs": heartbeat_ms}}),
        );
        send(
            &mut ws,
            json!({"type": "auth", "data": {"success": true, "userId": null}}),
        );
        ws
    }
}

fn send(ws: &mut WebSocket<TcpStream>, message: Value) {
    ws.send(Frame::text(message.to_string())).expect("send");
}

fn recv(ws: &mut WebSocket<TcpStream>) -> Value {
    read_json(ws, DEADLINE).expect("a message from the client")
}

/// Answers the client's `subscribe` to `files` with `data`; returns its `since`.
fn answer_subscribe(ws: &mut WebSocket<TcpStream>, data: Value) -> Value {
    let request = recv(ws);
    assert_eq!(
        (&request["type"], &request["channel"]),
        (&json!("subscribe"), &json!("files"))
    );
    send(
        ws,
        json!({"type": "subscribed", "channel": "files", "data": data,
            "correlationId": request["correlationId"]}),
    );
    request["since"].clone()
}

fn tick(seq: u64, epoch: &str) -> Value {
    json!({"type": "tick", "channel": "files", "data": {"n": seq}, "seq": seq, "epoch": epoch})
}

fn close(ws: &mut WebSocket<TcpStream>, code: u16) {
    let frame = CloseFrame {
        code: support::close_code(code),
        reason: "scripted".into(),
    };
    ws.close(Some(frame)).expect("close");
    // Until the client answers.
    while ws.read().is_ok() {}
}

#[test]
fn duplicates_are_dropped_and_gaps_epochs_and_unrecovered_streams_are_reported() {
    let hub = Scripted::new();
    let script_url = hub.url();
    let script = thread::spawn(move || {
        let mut ws = hub.accept(30_000);
        assert_eq!(
            answer_subscribe(&mut ws, json!({"seq": 3, "epoch": "e1"})),
            Value::Null
        );
        send(&mut ws, tick(4, "e1"));
        send(&mut ws, tick(4, "e1")); // a duplicate
        send(&mut ws, tick(6, "e1")); // 5 is missing
        send(
            &mut ws,
            json!({"type": "batch_update", "channel": "files", "epoch": "e1", "data": {"messages": [
                {"type": "tick", "data": {"n": 7}, "seq": 7},
                {"type": "tick", "data": {"n": 8}, "seq": 8, "epoch": "e1"}]}}),
        );
        send(&mut ws, tick(1, "e2")); // the history was lost
        close(&mut ws, 1011);

        let mut ws = hub.accept(30_000);
        // Before the answer to its `since`, the replay will bring it.
        send(&mut ws, tick(2, "e2"));
        let since = answer_subscribe(&mut ws, json!({"seq": 3, "epoch": "e2", "recovered": true}));
        assert_eq!(since, json!({"seq": 1, "epoch": "e2"}));
        send(&mut ws, tick(2, "e2"));
        send(&mut ws, tick(3, "e2"));
        close(&mut ws, 1013);

        let mut ws = hub.accept(30_000);
        let since = answer_subscribe(
            &mut ws,
            json!({"seq": 9, "epoch": "e3", "recovered": false}),
        );
        assert_eq!(since, json!({"seq": 3, "epoch": "e2"}));
        send(&mut ws, tick(10, "e3"));
        // Until the client closes.
        while ws.read().is_ok() {}
    });

    let mut client = Client::connect(&script_url, quick()).unwrap();
    client.subscribe(Topic::channel("files")).unwrap();
    let files = || Topic::channel("files");
    let lost = |loss| Update::Lost {
        stream: files(),
        loss,
    };
    let mut seen = Vec::new();
    while seen.len() < 15 {
        seen.push(match next(&mut client) {
            Update::Message(message) => {
                assert_eq!(message.data["n"].as_u64(), message.seq, "{message:?}");
                json!([message.seq, message.epoch, message.batched])
            }
            Update::Closed { code, next, .. } => {
                assert!(matches!(next, Next::Reconnect { .. }));
                json!(["closed", code])
            }
            Update::Reconnected(_) => json!("reconnected"),
            event @ Update::Lost { .. } => {
                let expected = [
                    lost(Loss::Gap { from: 5, to: 5 }),
                    lost(Loss::EpochChanged {
                        previous: "e1".into(),
                        current: "e2".into(),
                    }),
                    lost(Loss::NotRecovered),
                ];
                assert!(expected.contains(&event), "{event:?}");
                json!(format!("{event:?}"))
            }
            other => panic!("unexpected {other:?}"),
        });
    }
    let expected = [
        json!([4, "e1", false]),
        json!(format!("{:?}", lost(Loss::Gap { from: 5, to: 5 }))),
        json!([6, "e1", false]),
        json!([7, "e1", true]),
        json!([8, "e1", true]),
        json!(format!(
            "{:?}",
            lost(Loss::EpochChanged {
                previous: "e1".into(),
                current: "e2".into()
            })
        )),
        json!([1, "e2", false]),
        json!(["closed", 1011]),
        json!("reconnected"),
        json!([2, "e2", false]),
        json!([3, "e2", false]),
        json!(["closed", 1013]),
        json!("reconnected"),
        json!(format!("{:?}", lost(Loss::NotRecovered))),
        json!([10, "e3", false]),
    ];
    assert_eq!(seen, expected);
    client.close();
    script.join().expect("the script ran to its end");
}

#[test]
fn an_idle_client_answers_the_hub_s_pings_and_its_watchdog_hears_them() {
    // Each side gives the other a second: the hub cuts a client silent for
    // 1 s, the watchdog declares silence after 2 × 200 ms + 600 ms. With
    // Pings every 200 ms, that leaves room for a busy machine's scheduling.
    let hub = start(
        support::config()
            .heartbeat_interval(Duration::from_millis(200))
            .client_timeout(Duration::from_secs(1)),
    );
    let mut client = connect(&hub, quick().heartbeat_grace(Duration::from_millis(600)));
    assert_eq!(client.welcome().heartbeat, Some(Duration::from_millis(200)));
    // Well past the hub's client timeout and the watchdog, with nothing
    // but the hub's Pings on the wire.
    match client.next_update(Duration::from_millis(2500)) {
        Ok(None) => {}
        other => panic!("expected a quiet second, got {other:?}"),
    }
    assert!(client.is_connected());
    expect_nothing_pending(&mut client);
    assert_eq!(hub.handle().stats().unwrap().stale_clients, 0);
}

#[test]
fn a_hub_that_falls_silent_is_taken_for_dead_and_reconnected_to() {
    let hub = Scripted::new();
    let script_url = hub.url();
    let script = thread::spawn(move || {
        // Welcomes, then says nothing at all (no Ping either) and keeps
        // the socket open.
        let silent = hub.accept(50);
        let mut ws = hub.accept(30_000);
        drop(silent);
        while ws.read().is_ok() {}
    });
    let grace = Duration::from_millis(50);
    let mut client = Client::connect(&script_url, quick().heartbeat_grace(grace)).unwrap();
    let started = Instant::now();
    let (code, reason, next_step) = expect_closed(&mut client);
    let silence = started.elapsed();
    assert_eq!(code, 1006);
    assert!(reason.contains("no frame"), "{reason}");
    assert!(matches!(next_step, Next::Reconnect { .. }));
    // Twice the heartbeat and the grace, from the welcome.
    assert!(silence >= Duration::from_millis(140), "{silence:?}");
    until_reconnected(&mut client);
    client.close();
    script.join().expect("the script ran to its end");
}
