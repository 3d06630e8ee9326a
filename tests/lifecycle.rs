//! A connection's life: heartbeat pings, termination of silent clients (and
//! only them), the connection limit, and what the library handle can do.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Client, DEADLINE, start};
use tungstenite::Message;
use wshub::{Config, Filter, Target};

/// Pings every 200 ms, and a client silent for 1.2 s is terminated: a
/// client that answers has a second to spare for a busy machine's
/// scheduling.
fn heartbeat_config() -> Config {
    support::config()
        .heartbeat_interval(Duration::from_millis(200))
        .client_timeout(Duration::from_millis(1200))
}

#[test]
fn the_welcome_announces_the_heartbeat() {
    let hub = start(heartbeat_config());
    let client = hub.client("/ws");
    assert_eq!(client.welcome["data"]["heartbeatMs"], 200);
}

#[test]
fn a_silent_client_is_terminated_after_the_client_timeout() {
    let hub = start(heartbeat_config());
    let mut watcher = hub.client("/ws?userId=watcher");
    watcher.expect("user_presence");
    // Connects, then never reads or writes: its pongs are never sent.
    let connected = Instant::now();
    let silent = Client::open(hub.addr, "/ws?userId=silent").unwrap();
    let offline = watcher.expect_eventually("user_presence");
    assert_eq!(offline["data"]["status"], "online");
    let offline = watcher.expect_eventually("user_presence");
    assert_eq!(
        offline["data"],
        json!({"userId": "silent", "status": "offline"})
    );
    let waited = connected.elapsed();
    assert!(
        waited >= Duration::from_millis(1200),
        "terminated after {waited:?}, before its timeout"
    );
    let stats = hub.handle().stats().unwrap();
    assert_eq!(stats.stale_clients, 1);
    assert_eq!(stats.active_connections, 1);

    // Its socket was cut: pings then the end, no Close frame.
    let mut raw = silent.into_inner();
    raw.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut bytes = Vec::new();
    let _ = raw.read_to_end(&mut bytes);
    assert!(bytes.windows(2).any(|w| w == [0x89, 0x00]), "it was pinged");
}

#[test]
fn a_client_that_answers_pings_stays_connected() {
    let hub = start(heartbeat_config());
    let mut client = Client::open(hub.addr, "/ws").unwrap();
    // Reading answers each ping with a pong (tungstenite does it). Twelve
    // pings at 200 ms span twice the 1.2 s timeout.
    let mut pings = 0;
    while pings < 12 {
        client.get_mut().set_read_timeout(Some(DEADLINE)).unwrap();
        match client.read().expect("still connected") {
            Message::Ping(_) => pings += 1,
            Message::Text(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // Send the pong tungstenite queued for the last ping. Still connected
    // and never taken for silent, over twice the timeout. (Whether the hub
    // has the last pong yet, `is_alive`, holds only until its next Ping,
    // 200 ms: a busy machine can ask too late.)
    client.flush().unwrap();
    let stats = hub.handle().stats().unwrap();
    assert_eq!(stats.active_connections, 1);
    assert_eq!(stats.stale_clients, 0);
}

#[test]
fn application_messages_count_as_signs_of_life() {
    // No protocol pings at all: only messages can keep a client alive. The
    // talker speaks every 50 ms; a busy machine may hold one of its round
    // trips up for a while, so the timeout is a second.
    let timeout = Duration::from_secs(1);
    let hub = start(
        support::config()
            .heartbeat_interval(Duration::from_secs(60))
            .client_timeout(timeout),
    );
    let mut talker = hub.client("/ws?userId=talker");
    let _silent = hub.client("/ws?userId=silent");
    // Talk every 50 ms (pacing, not synchronisation) until the silent one
    // has been terminated, and for at least two timeouts.
    let start = Instant::now();
    loop {
        let reply = talker.request(json!({"type": "ping"}), "alive");
        assert_eq!(reply["type"], "pong");
        let stats = hub.handle().stats().unwrap();
        if stats.stale_clients == 1 && start.elapsed() > 2 * timeout {
            assert_eq!(stats.active_connections, 1);
            assert_eq!(stats.clients[0].user_id.as_deref(), Some("talker"));
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the silent client was never terminated"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_connection_limit_closes_the_next_client_with_1013() {
    let hub = start(support::config().max_connections(2));
    let _a = hub.client("/ws");
    let _b = hub.client("/ws");
    let mut third = Client::open(hub.addr, "/ws").unwrap();
    assert_eq!(
        support::expect_close(&mut third),
        (1013, "Server full".to_owned())
    );
    let stats = hub.handle().stats().unwrap();
    assert_eq!(stats.rejected_connections, 1);
    assert_eq!(stats.active_connections, 2);
    drop(_a);
    hub.wait_stats("a slot to free up", |s| s.active_connections == 1);
    hub.client("/ws");
}

#[test]
fn the_handle_publishes_to_every_target_including_a_filter() {
    let hub = start(support::config());
    let mut ide = hub.client("/ws?userId=dev");
    let mut browser = hub.client("/ws?userId=viewer");
    ide.request(json!({"type": "subscribe", "channel": "ide"}), "s");
    browser.request(json!({"type": "ping"}), "sync");
    let subscribed_to_ide = Filter::new(|c| c.is_subscribed("ide"));
    let delivered = hub
        .handle()
        .publish(
            Target::Filter(subscribed_to_ide),
            "ideStatusChanged",
            json!({"port": 9222, "status": "active"}),
        )
        .unwrap();
    assert_eq!(delivered, 1);
    let m = ide.expect_eventually("ideStatusChanged");
    assert_eq!(m["data"]["port"], 9222);
    browser.expect_nothing_pending();

    let by_user = Filter::new(|c| c.user_id() == Some("viewer") && !c.authenticated());
    assert_eq!(
        hub.handle()
            .publish(Target::Filter(by_user), "x", 1)
            .unwrap(),
        1
    );
    browser.expect_eventually("x");

    assert_eq!(
        hub.handle()
            .broadcast("workspaceChanged", json!({"workspacePath": "/p"}))
            .unwrap(),
        2
    );
    assert_eq!(
        hub.handle()
            .publish(Target::client(ide.id()), "userAppDetected", json!({}))
            .unwrap(),
        1
    );
    assert!(matches!(
        hub.handle().publish(Target::channel("bad name"), "x", 1),
        Err(wshub::Error::InvalidName { .. })
    ));
    let not_json = std::collections::HashMap::from([((1, 2), 3)]);
    assert!(matches!(
        hub.handle().publish(Target::Broadcast, "x", not_json),
        Err(wshub::Error::Json(_))
    ));
}

#[test]
fn dropping_the_server_stops_the_hub() {
    let hub = start(support::config());
    let addr = hub.addr;
    let mut client = hub.client("/ws");
    drop(hub);
    assert_eq!(client.expect_close().0, 1001);
    client.finish_close();
    let deadline = Instant::now() + DEADLINE;
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after drop");
        std::thread::yield_now();
    }
}

#[test]
fn past_its_thread_budget_the_hub_refuses_connections_and_stays_up() {
    // Room for four threads: two clients (a reader each) and two
    // connections that never send their request.
    let hub = start(support::config().max_threads(Some(4)));
    let _clients = (hub.client("/ws"), hub.client("/ws"));
    // A client has its welcome a moment before its handshake thread ends.
    hub.wait_stats("a thread per client", |s| s.threads == 2);
    let mut idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(hub.addr).unwrap())
        .collect();
    hub.wait_stats("four threads", |s| s.threads == 4);

    // Even the accept loop has no thread to give: 503 at once.
    let (status, _, body) = support::http_raw(hub.addr, b"GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"code\":\"busy\""));

    // Free one: an upgrade gets a thread for its request (once the idle one
    // is gone), but no reader thread, and is closed with 1013 instead.
    drop(idle.pop());
    let deadline = Instant::now() + DEADLINE;
    let mut upgraded = loop {
        match Client::open(hub.addr, "/ws") {
            Ok(ws) => break ws,
            Err(err) => assert!(
                err.to_string().contains("503") && Instant::now() < deadline,
                "{err}"
            ),
        }
        std::thread::yield_now();
    };
    assert_eq!(
        support::expect_close(&mut upgraded),
        (1013, "Server full".to_owned())
    );

    // Give the threads back: the hub serves again. A thread ends a moment
    // after its socket is closed (a client may even have its answer
    // before), and a new client needs two places (its upgrade and its
    // reader), so each step starts once only the two readers are left.
    drop(idle);
    drop(upgraded);
    let settled = |what: &str| hub.wait_stats(what, |s| s.threads == 2);
    settled("the idle connection's thread to end");
    let (status, _, body) = support::http_raw(hub.addr, b"GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    settled("the health request's thread to end");
    hub.client("/ws");
    assert_eq!(hub.handle().stats().unwrap().rejected_connections, 1);
}

#[test]
fn idle_sockets_get_only_their_share_of_handshakes() {
    // Loopback is not trusted here, so it counts as one address.
    let hub = start(
        support::config()
            .max_handshakes_per_ip(3)
            .trusted_proxies(Vec::new()),
    );
    let mut client = hub.client("/ws");
    // A client has its welcome a moment before its handshake thread ends.
    hub.wait_stats("a thread for the client", |s| s.threads == 1);
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(hub.addr).unwrap())
        .collect();
    hub.wait_stats("three idle handshakes", |s| s.threads == 4);
    // A fourth from the same address is refused at once...
    let (status, _, body) = support::http_raw(hub.addr, b"GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(status, 503, "{body}");
    // ...while connected clients carry on.
    assert_eq!(client.request(json!({"type": "ping"}), "p")["type"], "pong");
    drop(idle);
    let deadline = Instant::now() + DEADLINE;
    while support::http_raw(hub.addr, b"GET /health HTTP/1.1\r\n\r\n").0 != 200 {
        assert!(Instant::now() < deadline, "the slots were not given back");
        std::thread::yield_now();
    }
}

#[test]
fn one_address_gets_at_most_max_connections_per_ip_unless_it_is_a_proxy() {
    let hub = start(
        support::config()
            .max_connections_per_ip(2)
            .trusted_proxies(Vec::new()),
    );
    let _a = hub.client("/ws");
    let _b = hub.client("/ws");
    let mut third = Client::open(hub.addr, "/ws").unwrap();
    assert_eq!(
        support::expect_close(&mut third),
        (1013, "Too many connections from this address".to_owned())
    );
    // Behind a proxy (loopback is trusted by default) the cap does not apply.
    let proxied = start(support::config().max_connections_per_ip(2));
    let _clients: Vec<Client> = (0..3).map(|_| proxied.client("/ws")).collect();
}

#[test]
fn a_client_timeout_of_zero_keeps_a_silent_client_for_a_debugging_session() {
    let hub = start(
        support::config()
            .heartbeat_interval(Duration::from_millis(100))
            .client_timeout(Duration::ZERO),
    );
    // Connects, then never answers: it only counts the Pings it is sent.
    let silent = Client::open(hub.addr, "/ws?userId=asleep").unwrap();
    let mut raw = silent.into_inner();
    raw.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut pings = 0;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    // Twenty Pings unanswered: two seconds, twice the silence that cuts a
    // client under a one-second timeout.
    while pings < 20 {
        let n = raw.read(&mut buf).expect("still connected");
        assert!(n > 0, "the hub cut the silent client");
        bytes.extend_from_slice(&buf[..n]);
        pings = bytes.windows(2).filter(|w| *w == [0x89, 0x00]).count();
    }
    let stats = hub.handle().stats().unwrap();
    assert_eq!((stats.active_connections, stats.stale_clients), (1, 0));
    assert!(!stats.clients[0].is_alive, "it is silent, and said so");
}

#[test]
fn a_refused_connection_reads_its_503_to_a_clean_end_not_a_reset() {
    let hub = start(
        support::config()
            .max_handshakes_per_ip(1)
            .trusted_proxies(Vec::new()),
    );
    // One idle socket holds the address's only handshake.
    let _idle = TcpStream::connect(hub.addr).unwrap();
    hub.wait_stats("the idle handshake", |s| s.threads == 1);
    // A burst of clients each sends its whole upgrade at once, as browsers
    // do, and only then reads: the hub refuses them with the request
    // unread. Closed so, a socket sends a reset instead of its end.
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        hub.addr
    );
    let refused: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut stream = TcpStream::connect(hub.addr).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            stream
        })
        .collect();
    for mut stream in refused {
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .unwrap_or_else(|err| panic!("{err} after {:?}", String::from_utf8_lossy(&answer)));
        let (status, _, body) = support::parse_response(&answer);
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("\"busy\""), "{body}");
    }
}
