//! Random input thrown at a live hub: random JSON and text frames each get
//! exactly one answer and leave the connection usable; binary frames get
//! `unsupported_frame`; random bytes on the wire end the connection without
//! harm. Throughout, a healthy client keeps working, and afterwards every
//! connection's threads are gone (no leak).

mod support;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::json;
use support::json::{any_json, request_like};
use support::{Client, DEADLINE, read_json, start};
use tungstenite::Message;
use wshub::Target;

/// Error codes a client can cause here (no auth, no client publishing).
const CODES: &[&str] = &[
    "invalid_json",
    "invalid_message",
    "unknown_type",
    "unsupported_frame",
    "forbidden",
    "invalid_channel",
    "too_many_subscriptions",
];

/// Replies a well-formed request can get.
const REPLIES: &[&str] = &["pong", "subscribed", "unsubscribed", "presence", "error"];

#[derive(Debug, Clone)]
enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

fn frames() -> impl Strategy<Value = Vec<Frame>> {
    let frame = prop_oneof![
        4 => request_like().prop_map(|v| Frame::Text(v.to_string())),
        2 => any_json().prop_map(|v| Frame::Text(v.to_string())),
        2 => ".{0,100}".prop_map(Frame::Text),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Frame::Binary),
    ];
    prop::collection::vec(frame, 1..8)
}

fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

#[test]
fn random_frames_and_bytes_never_hurt_the_hub_or_other_clients() {
    // The only test in this file: no other test's threads come and go.
    let before = thread_count();
    let hub = start(support::config().rate_limit(0).max_message_size(4096));
    let mut healthy = hub.client("/ws");
    healthy.request(json!({"type": "subscribe", "channel": "watch"}), "s");

    let mut runner = TestRunner::new(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&frames(), |frames| {
            let mut client = hub.client("/ws");
            for frame in &frames {
                match frame {
                    Frame::Text(text) => client.send_text(text),
                    Frame::Binary(bytes) => client.ws.send(Message::binary(bytes.clone())).unwrap(),
                }
                // Exactly one answer per frame, of a known kind.
                let reply = client.recv("an answer");
                let kind = reply["type"].as_str().unwrap_or_default();
                prop_assert!(REPLIES.contains(&kind), "{frame:?} got {reply}");
                if kind == "error" {
                    let code = reply["data"]["code"].as_str().unwrap_or_default();
                    prop_assert!(CODES.contains(&code), "{frame:?} got {reply}");
                    if let Frame::Binary(_) = frame {
                        prop_assert_eq!(code, "unsupported_frame");
                    }
                }
                prop_assert_eq!(reply["timestamp"].as_str().map(str::len), Some(24));
            }
            // Nothing more was sent, and the connection still works.
            client.expect_nothing_pending();
            Ok(())
        })
        .unwrap();

    runner
        .run(&prop::collection::vec(any::<u8>(), 1..300), |bytes| {
            let ws = Client::open(hub.addr, "/ws").unwrap();
            let mut raw = ws.into_inner();
            // The hub may answer, close, or wait for more; once we stop
            // sending, the connection must end, and soon.
            let _ = raw.write_all(&bytes);
            let _ = raw.shutdown(Shutdown::Write);
            raw.set_read_timeout(Some(DEADLINE)).unwrap();
            let start = Instant::now();
            let mut sink = [0u8; 4096];
            loop {
                match std::io::Read::read(&mut raw, &mut sink) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            prop_assert!(
                start.elapsed() < DEADLINE,
                "the hub held a broken connection open"
            );
            Ok(())
        })
        .unwrap();

    // The healthy client never noticed.
    healthy.expect_nothing_pending();
    assert_eq!(
        hub.handle()
            .publish(Target::channel("watch"), "event", json!({"ok": true}))
            .unwrap(),
        1
    );
    assert_eq!(
        read_json(&mut healthy.ws, DEADLINE).unwrap()["data"]["ok"],
        true
    );

    // Every fuzzed connection is gone, and so are its threads: the hub
    // counts only the healthy client's reader...
    hub.wait_stats("the fuzzed clients and their threads to go", |s| {
        s.active_connections == 1 && s.threads == 1
    });
    // ...and once it has stopped, the process has no thread more than
    // before it started. (While it runs, a connection thread that served a
    // request may wait up to 10 s for the next one, and a busy machine
    // makes the hub start more of them: the process's count is compared
    // after the stop, when they end at once.)
    drop(healthy);
    let support::TestHub { server, .. } = hub;
    server.shutdown().expect("the hub stops");
    let deadline = Instant::now() + DEADLINE;
    while thread_count() > before {
        assert!(
            Instant::now() < deadline,
            "threads leaked: {} > {before}",
            thread_count()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
