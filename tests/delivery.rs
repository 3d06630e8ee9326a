//! Delivery under load: nothing lost or reordered in a fan-out, a client
//! that never reads is closed without holding anyone up, protocol pings are
//! answered during a flood, close handshakes work from either side, and a
//! shutdown's Close reaches even a slow reader within its deadline.

mod support;

use std::thread;
use std::time::Instant;

use serde_json::json;
use support::{Client, DEADLINE, narrow_client, read_json, start, start_default};
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use wshub::Target;

/// Reads `count` events and checks their `seq` runs 0, 1, 2, ... in order.
fn read_in_order(mut client: Client, count: u64) -> Client {
    for expected in 0..count {
        let event = client.recv("the next event of the flood");
        assert_eq!(event["type"], "event", "{event}");
        assert_eq!(
            event["data"]["seq"], expected,
            "lost or reordered at {expected}"
        );
    }
    client
}

#[test]
fn a_fan_out_to_50_clients_loses_and_reorders_nothing() {
    let hub = start_default();
    let clients: Vec<Client> = (0..50)
        .map(|_| {
            let mut c = hub.client("/ws");
            c.request(json!({"type": "subscribe", "channel": "fan"}), "s");
            c
        })
        .collect();
    const COUNT: u64 = 1000;
    let readers: Vec<_> = clients
        .into_iter()
        .map(|c| thread::spawn(move || read_in_order(c, COUNT)))
        .collect();
    for seq in 0..COUNT {
        let delivered = hub
            .handle()
            .publish(
                Target::channel("fan"),
                "event",
                json!({"seq": seq, "pad": "x".repeat(200)}),
            )
            .unwrap();
        assert_eq!(delivered, 50);
    }
    for reader in readers {
        let mut client = reader.join().expect("reader saw every event in order");
        client.expect_nothing_pending();
    }
    let stats = hub.handle().stats().unwrap();
    assert_eq!(
        stats.slow_consumers, 0,
        "a burst of 1000 closes no healthy client"
    );
}

#[test]
fn a_client_that_never_reads_is_closed_with_1013_and_holds_nobody_up() {
    let hub = start(support::config().max_queue(64));
    // Subscribes, then never reads again.
    let mut stuck = hub.client("/ws");
    stuck.request(json!({"type": "subscribe", "channel": "flood"}), "s");
    let healthy: Vec<Client> = (0..5)
        .map(|_| {
            let mut c = hub.client("/ws");
            c.request(json!({"type": "subscribe", "channel": "flood"}), "s");
            c
        })
        .collect();
    // Healthy clients read everything, in order, up to an end marker.
    let readers: Vec<_> = healthy
        .into_iter()
        .map(|mut c| {
            thread::spawn(move || {
                let mut next = 0u64;
                loop {
                    let event = read_json(&mut c.ws, DEADLINE)
                        .unwrap_or_else(|err| panic!("a healthy client stopped at {next}: {err}"));
                    if event["type"] == "end" {
                        return (next, c);
                    }
                    assert_eq!(event["data"]["seq"], next, "lost or reordered");
                    next += 1;
                }
            })
        })
        .collect();

    // Publish until the stuck client's queue overflows (kernel buffers
    // first absorb a few megabytes); bounded so the test always ends.
    let pad = "x".repeat(16 * 1024);
    let mut sent = 0u64;
    loop {
        let delivered = hub
            .handle()
            .publish(
                Target::channel("flood"),
                "event",
                json!({"seq": sent, "pad": pad}),
            )
            .unwrap();
        sent += 1;
        if delivered == 5 {
            break;
        }
        assert_eq!(delivered, 6);
        assert!(sent < 20_000, "the stuck client was never found slow");
    }
    // The rest of the flood goes to the healthy ones only.
    for _ in 0..100 {
        let delivered = hub
            .handle()
            .publish(
                Target::channel("flood"),
                "event",
                json!({"seq": sent, "pad": pad}),
            )
            .unwrap();
        assert_eq!(delivered, 5);
        sent += 1;
    }
    hub.handle()
        .publish(Target::channel("flood"), "end", json!({}))
        .unwrap();
    let mut kept = Vec::new();
    for reader in readers {
        let (received, client) = reader.join().expect("healthy reader");
        assert_eq!(received, sent);
        kept.push(client);
    }
    let stats = hub.handle().stats().unwrap();
    assert_eq!(stats.slow_consumers, 1);
    assert_eq!(stats.active_connections, 5);

    // When it finally reads, the stuck client finds the 1013 after its backlog.
    assert_eq!(stuck.expect_close(), (1013, "Client too slow".to_owned()));
}

#[test]
fn protocol_pings_are_answered_while_a_flood_is_written() {
    let hub = start_default();
    let mut client = hub.client("/ws");
    client.request(json!({"type": "subscribe", "channel": "flood"}), "s");
    const COUNT: u64 = 3000;
    let publisher = {
        let handle = hub.handle().clone();
        thread::spawn(move || {
            for seq in 0..COUNT {
                handle
                    .publish(
                        Target::channel("flood"),
                        "event",
                        json!({"seq": seq, "pad": "y".repeat(500)}),
                    )
                    .unwrap();
            }
        })
    };
    let mut next_seq = 0;
    let mut pings_sent = 0u32;
    let mut pongs = Vec::new();
    // Each frame must come within the deadline; the whole flood takes what
    // the machine needs (about a second quietly, up to ten beside load).
    while next_seq < COUNT || pongs.len() < pings_sent as usize {
        if next_seq % 100 == 0 && pings_sent as u64 <= next_seq / 100 {
            client
                .ws
                .send(Message::Ping(pings_sent.to_be_bytes().to_vec().into()))
                .unwrap();
            pings_sent += 1;
        }
        client
            .ws
            .get_mut()
            .set_read_timeout(Some(DEADLINE))
            .unwrap();
        let frame = client.ws.read().unwrap_or_else(|err| {
            panic!(
                "after {next_seq} of {COUNT} events and {} of {pings_sent} pongs: {err}",
                pongs.len()
            )
        });
        match frame {
            Message::Text(text) => {
                let event: serde_json::Value =
                    serde_json::from_str(text.as_str()).expect("intact JSON");
                assert_eq!(event["data"]["seq"], next_seq);
                next_seq += 1;
            }
            Message::Pong(payload) => {
                pongs.push(u32::from_be_bytes(payload[..].try_into().unwrap()))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    publisher.join().unwrap();
    assert!(pings_sent >= 30);
    assert_eq!(
        pongs,
        (0..pings_sent).collect::<Vec<_>>(),
        "every ping answered, in order"
    );
}

#[test]
fn a_close_started_by_the_client_is_answered_and_the_socket_closed() {
    let hub = start_default();
    let mut client = hub.client("/ws");
    client
        .ws
        .close(Some(CloseFrame {
            code: support::close_code(1000),
            reason: "bye".into(),
        }))
        .unwrap();
    let (code, _) = client.expect_close();
    assert_eq!(code, 1000, "the hub echoes the code");
    // Then the hub closes the TCP connection.
    match client.ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
    hub.wait_stats("the client to be gone", |s| s.active_connections == 0);
}

#[test]
fn a_close_started_by_the_hub_completes_the_handshake() {
    let hub = start_default();
    let mut client = hub.client("/ws");
    assert!(hub.handle().disconnect(&client.id()).unwrap());
    assert!(!hub.handle().disconnect("c_nobody").unwrap());
    assert_eq!(client.expect_close(), (1000, "Normal closure".to_owned()));
    // tungstenite answers the Close; the hub then closes TCP.
    client.finish_close();
    hub.wait_stats("the client to be gone", |s| s.active_connections == 0);
}

#[test]
fn shutdown_flushes_queued_messages_then_closes_everyone_with_1001() {
    let hub = start_default();
    let mut clients: Vec<Client> = (0..3)
        .map(|_| {
            let mut c = hub.client("/ws");
            c.request(json!({"type": "subscribe", "channel": "last"}), "s");
            c
        })
        .collect();
    for seq in 0..200 {
        hub.handle()
            .publish(Target::channel("last"), "event", json!({"seq": seq}))
            .unwrap();
    }
    let support::TestHub { server, .. } = hub;
    let stopping = thread::spawn(move || server.shutdown());
    for client in &mut clients {
        for seq in 0..200 {
            assert_eq!(client.recv("queued before shutdown")["data"]["seq"], seq);
        }
        assert_eq!(
            client.expect_close(),
            (1001, "Server shutting down".to_owned())
        );
        client.finish_close();
    }
    stopping.join().unwrap().expect("clean shutdown");
}

#[test]
fn a_hub_that_has_shut_down_refuses_handle_calls() {
    let hub = start_default();
    let handle = hub.handle().clone();
    hub.server.shutdown().unwrap();
    assert!(matches!(handle.stats(), Err(wshub::Error::Closed)));
    assert!(matches!(
        handle.broadcast("x", 1),
        Err(wshub::Error::Closed)
    ));
}

#[test]
fn queues_are_bounded_in_bytes_too_but_one_big_message_still_gets_through() {
    let hub = start(support::config().max_queue_bytes(256 * 1024));
    // A message larger than the whole byte budget reaches a healthy client.
    let mut healthy = hub.client("/ws");
    healthy.request(json!({"type": "subscribe", "channel": "big"}), "s");
    let big = "b".repeat(1024 * 1024);
    assert_eq!(
        hub.handle()
            .publish(Target::channel("big"), "event", &big)
            .unwrap(),
        1
    );
    assert_eq!(
        healthy.expect("event")["data"].as_str().map(str::len),
        Some(big.len())
    );

    // A client that never reads is closed once its bytes pile up, long
    // before it has max_queue (4096) messages waiting.
    let mut stuck = hub.client("/ws");
    stuck.request(json!({"type": "subscribe", "channel": "flood"}), "s");
    let pad = "x".repeat(64 * 1024);
    let mut sent = 0;
    while hub
        .handle()
        .publish(Target::channel("flood"), "event", &pad)
        .unwrap()
        == 1
    {
        sent += 1;
        assert!(sent < 1000, "never closed for its bytes");
    }
    assert!(
        sent < 200,
        "{sent} messages of 64 KiB went out before the close"
    );
    assert_eq!(hub.handle().stats().unwrap().slow_consumers, 1);
    assert_eq!(stuck.expect_close(), (1013, "Client too slow".to_owned()));
    healthy.expect_nothing_pending();
}

#[test]
fn a_slow_reader_gets_its_1001_within_the_shutdown_deadline_whatever_is_queued() {
    const QUEUED: usize = 6_000;
    let hub = start(
        support::config()
            // Nobody is a slow consumer here: the backlog stays.
            .max_queue(1 << 20)
            .max_queue_bytes(1 << 30),
    );
    let mut slow = narrow_client(&hub, "/ws");
    slow.request(json!({"type": "subscribe", "channel": "backlog"}), "s");
    let pad = "x".repeat(10_000);
    for seq in 0..QUEUED {
        hub.handle()
            .publish(
                Target::channel("backlog"),
                "event",
                json!({"seq": seq, "pad": pad}),
            )
            .unwrap();
    }
    let support::TestHub { server, .. } = hub;
    let started = Instant::now();
    let stopping = thread::spawn(move || server.shutdown());
    // One message a millisecond: all of them would take longer than the
    // 5 s the hub waits for its clients to go.
    slow.ws.get_mut().set_read_timeout(Some(DEADLINE)).ok();
    let mut read = 0;
    let close = loop {
        match slow.ws.read() {
            Ok(Message::Text(_)) => {
                read += 1;
                thread::sleep(std::time::Duration::from_millis(1));
            }
            Ok(Message::Close(Some(CloseFrame { code, reason }))) => {
                break (u16::from(code), reason.to_string());
            }
            Ok(_) => {}
            Err(err) => panic!(
                "{:?} after the shutdown, having read {read} of {QUEUED} messages, the \
                 connection ended without a Close: {err}",
                started.elapsed()
            ),
        }
    };
    assert_eq!(close, (1001, "Server shutting down".to_owned()));
    assert!(read < QUEUED, "the Close came after all {read} messages");
    slow.finish_close();
    stopping.join().unwrap().expect("clean shutdown");
}
