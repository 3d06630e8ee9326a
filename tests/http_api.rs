//! HTTP on the WebSocket port: health, status, stats, metrics, publishing to
//! every target, and a JSON error with the right status for every bad request.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;
use support::{DEADLINE, get, http_raw, post, start, start_default};

#[test]
fn health_answers_ok() {
    let hub = start_default();
    assert_eq!(get(hub.addr, "/health"), (200, json!({"status": "ok"})));
    let (status, head, body) = http_raw(hub.addr, b"HEAD /health HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: application/json"));
    assert!(body.is_empty(), "HEAD has no body");
}

#[test]
fn websocket_status_has_the_shape_of_the_chat_seed() {
    let hub = start_default();
    let mut client = hub.client("/ws");
    client.request(json!({"type": "ping"}), "p");
    let (status, body) = get(hub.addr, "/api/websocket/status");
    assert_eq!(status, 200);
    assert_eq!(body["success"], true);
    let data = &body["data"];
    assert_eq!(data["connected"], true);
    assert_eq!(data["clients"], 1);
    assert!(data["uptime"].is_u64());
    // The welcome, its auth and the pong out, the ping in.
    assert_eq!(data["messageCount"], 4);
    assert_eq!(data["lastActivity"].as_str().unwrap().len(), 24);
}

#[test]
fn ws_stats_list_every_client() {
    let hub = start_default();
    let mut client = hub.client("/ws?userId=user_123&sessionId=session_456");
    client.request(json!({"type": "subscribe", "channel": "files"}), "s");
    let (status, body) = get(hub.addr, "/api/ws/stats");
    assert_eq!(status, 200);
    assert_eq!(body["totalConnections"], 1);
    assert_eq!(body["activeConnections"], 1);
    assert_eq!(body["authenticatedConnections"], 0);
    let entry = &body["clients"][0];
    assert_eq!(entry["id"], client.id());
    assert_eq!(entry["userId"], "user_123");
    assert_eq!(entry["sessionId"], "session_456");
    assert_eq!(entry["isAlive"], true);
    assert_eq!(entry["state"], 1);
    assert_eq!(entry["channels"], json!(["files"]));
    assert_eq!(body["channels"], 1);
    assert_eq!(body["sessions"], 1);
    assert_eq!(body["users"], 1);

    drop(client);
    hub.wait_stats("the client to leave", |s| s.active_connections == 0);
    let (_, body) = get(hub.addr, "/api/ws/stats");
    assert_eq!(
        body["totalConnections"], 1,
        "total counts every connection ever"
    );
    assert_eq!(body["activeConnections"], 0);
    assert_eq!(body["clients"], json!([]));
}

#[test]
fn metrics_are_prometheus_text() {
    let hub = start_default();
    let _client = hub.client("/ws");
    let (status, head, body) = http_raw(hub.addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: text/plain; version=0.0.4"));
    assert!(
        body.contains("# TYPE wshub_connections_active gauge\nwshub_connections_active 1\n"),
        "{body}"
    );
    assert!(body.contains("wshub_slow_consumers_total 0"));
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.split_once(' ').expect("name value");
        assert!(name.starts_with("wshub_"));
        value.parse::<f64>().expect("a number");
    }
}

#[test]
fn publish_reaches_each_kind_of_target_and_counts_deliveries() {
    let hub = start_default();
    let mut files = hub.client("/ws?userId=u1");
    let mut session = hub.client("/ws?userId=u2&sessionId=s1");
    let mut other_tab = hub.client("/ws?userId=u2");
    files.request(json!({"type": "subscribe", "channel": "files"}), "s");
    for c in [&mut files, &mut session, &mut other_tab] {
        // Clear the presence messages of the three joins.
        c.request(json!({"type": "ping"}), "sync");
    }

    let (status, body) = post(
        hub.addr,
        "/api/publish",
        r#"{"channel":"files","data":{"file":"a.ts"}}"#,
    );
    assert_eq!(
        (status, &body),
        (200, &json!({"success": true, "data": {"delivered": 1}}))
    );
    let event = files.expect("event");
    assert_eq!(event["channel"], "files");
    assert_eq!(event["data"]["file"], "a.ts");

    let (_, body) = post(
        hub.addr,
        "/api/publish",
        r#"{"sessionId":"s1","type":"ai_complete","data":{"chunks":100}}"#,
    );
    assert_eq!(body["data"]["delivered"], 1);
    assert_eq!(session.expect("ai_complete")["sessionId"], "s1");

    let (_, body) = post(
        hub.addr,
        "/api/publish",
        r#"{"userId":"u2","type":"notification","data":{"level":"error","message":"Task failed"}}"#,
    );
    assert_eq!(body["data"]["delivered"], 2, "both of u2's connections");
    session.expect("notification");
    let n = other_tab.expect("notification");
    assert_eq!(
        n["data"],
        json!({"level": "error", "message": "Task failed"})
    );

    let target = format!(
        r#"{{"clientId":"{}","type":"privateMessage","data":{{"content":"hi"}}}}"#,
        files.id()
    );
    let (_, body) = post(hub.addr, "/api/publish", &target);
    assert_eq!(body["data"]["delivered"], 1);
    files.expect("privateMessage");

    let (_, body) = post(
        hub.addr,
        "/api/publish",
        r#"{"broadcast":true,"type":"messageReceived","data":{"id":"msg-123","content":"Hello, Cursor!"}}"#,
    );
    assert_eq!(body["data"]["delivered"], 3);
    for c in [&mut files, &mut session, &mut other_tab] {
        let m = c.expect("messageReceived");
        assert_eq!(m["data"]["id"], "msg-123");
        assert!(m.get("channel").is_none());
    }

    let (_, body) = post(
        hub.addr,
        "/api/publish",
        r#"{"clientId":"c_nobody","data":1}"#,
    );
    assert_eq!(body["data"]["delivered"], 0);
}

#[test]
fn bad_publish_requests_get_400_with_a_reason() {
    let hub = start_default();
    for body in [
        "",
        "not json",
        "[]",
        r#"{"data":1}"#,
        r#"{"channel":"a","userId":"b"}"#,
        r#"{"broadcast":false}"#,
        r#"{"chanel":"typo"}"#,
        r#"{"channel":"has space"}"#,
        r#"{"channel":"a","type":""}"#,
        r#"{"channel":5}"#,
    ] {
        let (status, reply) = post(hub.addr, "/api/publish", body);
        assert_eq!(status, 400, "{body}: {reply}");
        assert_eq!(reply["success"], false);
        assert_eq!(reply["code"], "bad_request");
        assert!(!reply["error"].as_str().unwrap().is_empty());
    }
}

#[test]
fn wrong_paths_and_methods_get_404_and_405() {
    let hub = start_default();
    let (status, body) = get(hub.addr, "/nope");
    assert_eq!(status, 404);
    assert_eq!(body["code"], "not_found");

    let (status, head, body) = http_raw(
        hub.addr,
        b"POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET, HEAD"));
    assert!(body.contains("method_not_allowed"));
    let (status, _, _) = http_raw(hub.addr, b"GET /api/publish HTTP/1.1\r\n\r\n");
    assert_eq!(status, 405);
    let (status, _, _) = http_raw(hub.addr, b"DELETE /api/ws/stats HTTP/1.1\r\n\r\n");
    assert_eq!(status, 405);

    let (status, head, body) = http_raw(hub.addr, b"GET /ws HTTP/1.1\r\n\r\n");
    assert_eq!(status, 426, "the WebSocket path without an upgrade");
    assert!(head.contains("Upgrade: websocket"));
    assert!(body.contains("upgrade_required"));
}

#[test]
fn malformed_requests_get_400() {
    let hub = start_default();
    for request in [
        &b"garbage\r\n\r\n"[..],
        b"GET /health HTTP/9\r\n\r\n",
        b"GET /health HTTP/1.1\r\nbroken header\r\n\r\n",
        b"GET http://x/health HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ] {
        let (status, _, body) = http_raw(hub.addr, request);
        assert_eq!(status, 400, "{:?}", String::from_utf8_lossy(request));
        assert!(body.contains("\"success\":false"));
    }
}

#[test]
fn bodies_need_a_length_within_the_limit() {
    let hub = start(support::config().max_body_size(64));
    let (status, _, body) = http_raw(hub.addr, b"POST /api/publish HTTP/1.1\r\n\r\n{}");
    assert_eq!(status, 411, "{body}");
    let (status, _, _) = http_raw(
        hub.addr,
        b"POST /api/publish HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    );
    assert_eq!(status, 411);
    let (status, _, _) = http_raw(
        hub.addr,
        b"POST /api/publish HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    );
    assert_eq!(status, 400);

    // Too big: refused before the body is read, and the answer is not lost
    // to a reset even though the client is still sending.
    let big = format!(r#"{{"broadcast":true,"data":"{}"}}"#, "x".repeat(100_000));
    let (status, body) = post(hub.addr, "/api/publish", &big);
    assert_eq!(status, 413);
    assert_eq!(body["code"], "payload_too_large");

    let small = r#"{"broadcast":true}"#;
    assert_eq!(post(hub.addr, "/api/publish", small).0, 200);
}

#[test]
fn expect_100_continue_is_honoured() {
    let hub = start_default();
    let mut stream = TcpStream::connect(hub.addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = r#"{"broadcast":true}"#;
    write!(
        stream,
        "POST /api/publish HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(body.as_bytes()).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert_eq!(support::parse_response(&rest).0, 200);
}

#[test]
fn oversized_heads_get_431_and_slow_ones_408() {
    // The default deadline for the whole head: a short one could pass
    // before a busy machine lets this thread write it.
    let huge = format!(
        "GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    let (status, _, body) = http_raw(start_default().addr, huge.as_bytes());
    assert_eq!(status, 431, "{body}");

    // Half a request, then nothing: the hub answers 408 at its deadline.
    let hub = start(support::config().handshake_timeout(Duration::from_millis(300)));
    let mut stream = TcpStream::connect(hub.addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(b"GET /health HTTP/1.1\r\nHost:").unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    assert_eq!(support::parse_response(&response).0, 408);
}

#[test]
fn bad_upgrade_requests_are_refused_with_their_reason() {
    let hub = start_default();
    let upgrade = |path: &str, extra: &str| {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}\r\n",
            hub.addr
        );
        http_raw(hub.addr, request.as_bytes())
    };
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let (status, head, _) = upgrade("/ws", &format!("{key}Sec-WebSocket-Version: 8\r\n"));
    assert_eq!(status, 426);
    assert!(head.contains("Sec-WebSocket-Version: 13"));
    let (status, _, body) = upgrade("/ws", "Sec-WebSocket-Version: 13\r\n");
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = upgrade("/elsewhere", &format!("{key}Sec-WebSocket-Version: 13\r\n"));
    assert_eq!(status, 404);
    let (status, _, body) = upgrade(
        "/ws?sessionId=bad%20name",
        &format!("{key}Sec-WebSocket-Version: 13\r\n"),
    );
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = upgrade(
        "/ws?userId=%zz",
        &format!("{key}Sec-WebSocket-Version: 13\r\n"),
    );
    assert_eq!(status, 400);

    // The sample key of RFC 6455 gets the sample answer.
    let (status, head, _) = support::upgrade_head(hub.addr, "/ws", "");
    assert_eq!(status, 101);
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{head}"
    );
}

#[test]
fn a_client_that_never_reads_its_response_holds_no_thread_past_the_deadline() {
    let hub = start(
        support::config()
            .handshake_timeout(Duration::from_millis(500))
            .rate_limit(0)
            .max_subscriptions(1000),
    );
    // About 10 MB of /api/ws/stats: 50 clients with 1000 long channel names each,
    // far more than the kernel's socket buffers hold.
    let mut clients: Vec<_> = (0..50).map(|_| hub.client("/ws")).collect();
    for client in &mut clients {
        for n in 0..1000 {
            client.send(
                json!({"type": "subscribe", "channel": format!("{n:04}-{}", "c".repeat(200))}),
            );
        }
    }
    for client in &mut clients {
        for _ in 0..1000 {
            client.expect("subscribed");
        }
    }
    let baseline = hub.handle().stats().unwrap().threads;

    // Ask for it and read no more than the start of the answer: that the
    // hub is writing it (its deadline, 500 ms, can be over before a busy
    // machine's stats would show the thread alive).
    let mut stream = TcpStream::connect(hub.addr).unwrap();
    stream
        .write_all(b"GET /api/ws/stats HTTP/1.1\r\n\r\n")
        .unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut received = vec![0u8; 12];
    stream
        .read_exact(&mut received)
        .expect("the start of the answer");
    assert_eq!(&received, b"HTTP/1.1 200");
    // At its deadline the hub gives up on the write and the thread ends.
    hub.wait_stats("the request's thread to end", |s| s.threads == baseline);
    let _ = stream.read_to_end(&mut received);
    assert!(
        received.len() < 8 * 1024 * 1024,
        "the hub did not stop writing ({} bytes)",
        received.len()
    );
}

#[test]
fn conflicting_content_lengths_and_control_characters_are_bad_requests() {
    let hub = start_default();
    for request in [
        &b"POST /api/publish HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"[..],
        b"POST /api/publish HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}",
    ] {
        let (status, _, body) = http_raw(hub.addr, request);
        assert_eq!(status, 400, "{body}");
    }
    let upgrade = "GET /ws?userId=eve%0D%0AINFO%20forged HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let (status, _, body) = http_raw(hub.addr, upgrade.as_bytes());
    assert_eq!(status, 400);
    assert!(body.contains("control characters"), "{body}");
}

#[test]
fn the_publish_answer_reads_as_the_readme_shows_it() {
    let hub = start_default();
    let body = r#"{"channel":"nobody-here","data":{}}"#;
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        hub.addr,
        body.len()
    );
    let (status, _, answer) = http_raw(hub.addr, request.as_bytes());
    assert_eq!(status, 200);
    assert_eq!(answer, r#"{"success":true,"data":{"delivered":0}}"#);
}

#[test]
fn a_publish_the_busy_router_did_not_take_in_time_is_refused_and_never_delivered() {
    use crossbeam_channel::bounded;
    use wshub::{Filter, Target};
    let hub = start_default();
    let mut follower = hub.client("/ws");
    follower.request(json!({"type": "subscribe", "channel": "c"}), "s");
    // A filter that holds the router (application code, run on the router
    // thread) until the test lets it go.
    let (entered_tx, entered) = bounded::<()>(1);
    let (release, release_rx) = bounded::<()>(1);
    let blocker = Filter::new(move |_| {
        let _ = entered_tx.try_send(());
        let _ = release_rx.recv_timeout(DEADLINE * 3);
        true
    });
    let handle = hub.handle().clone();
    let blocked =
        std::thread::spawn(move || handle.publish(Target::Filter(blocker), "blocked", json!({})));
    entered
        .recv_timeout(DEADLINE)
        .expect("the router runs the filter");
    // The router is busy past the HTTP API's wait: the publish is given up,
    // and says so truly.
    let (status, answer) = post(hub.addr, "/api/publish", r#"{"channel":"c","type":"late"}"#);
    release.send(()).unwrap();
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["code"], "unavailable", "{answer}");
    let why = answer["error"].as_str().unwrap();
    assert!(why.contains("not published"), "{why}");
    assert!(!why.contains("shutting down"), "{why}");
    blocked.join().unwrap().unwrap();
    // Nothing of it comes, ever: the router dropped it once free.
    hub.handle()
        .publish(Target::channel("c"), "marker", json!({}))
        .unwrap();
    assert_eq!(follower.expect("blocked")["type"], "blocked");
    let next = follower.recv("the marker");
    assert_eq!(
        next["type"], "marker",
        "the refused publish was delivered: {next}"
    );
}

#[test]
fn the_hubs_own_types_are_refused_alike_over_http_websocket_and_the_library() {
    let hub = start(support::config().allow_client_publish(true));
    let mut listener = hub.client("/ws");
    listener.request(json!({"type": "subscribe", "channel": "c"}), "s");
    let mut publisher = hub.client("/ws");
    for kind in ["connection", "user_presence", "error", "heartbeat"] {
        // A connection's publish.
        let reply = publisher.request(
            json!({"type": "publish", "channel": "c", "event": kind, "data": {}}),
            "p",
        );
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["data"]["code"], "invalid_message", "{reply}");
        let said = reply["data"]["error"].as_str().unwrap().to_owned();
        assert!(said.contains("reserved"), "{said}");
        // The HTTP API: the same check, the same words.
        let body = json!({"channel": "c", "type": kind, "data": {}}).to_string();
        let (status, reply) = post(hub.addr, "/api/publish", &body);
        assert_eq!(status, 400, "{kind}: {reply}");
        assert_eq!(reply["code"], "bad_request");
        assert!(
            reply["error"].as_str().unwrap().contains(&said),
            "{reply} says what {said} says"
        );
        // The library: a typed error.
        let refused = hub
            .handle()
            .publish(wshub::Target::channel("c"), kind, json!({}));
        assert!(
            matches!(&refused, Err(wshub::Error::ReservedType(k)) if k == kind),
            "{refused:?}"
        );
    }
    // Nothing of it reached the channel.
    listener.expect_nothing_pending();
    // A message to one client is not a publication: an `error` reply is fine.
    assert!(
        hub.handle()
            .send(
                &listener.id(),
                "error",
                json!({"code": "app", "error": "no"})
            )
            .unwrap()
    );
    assert_eq!(listener.expect("error")["data"]["code"], "app");
}

#[test]
fn ready_says_503_full_at_max_connections_while_health_stays_200() {
    let hub = start(support::config().max_connections(1));
    assert_eq!(get(hub.addr, "/ready"), (200, json!({"status": "ready"})));
    let client = hub.client("/ws");
    let (status, body) = get(hub.addr, "/ready");
    assert_eq!((status, &body["status"]), (503, &json!("full")), "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("--max-connections")
    );
    assert_eq!(get(hub.addr, "/health"), (200, json!({"status": "ok"})));
    drop(client);
    hub.wait_stats("the client to go", |s| s.active_connections == 0);
    assert_eq!(get(hub.addr, "/ready"), (200, json!({"status": "ready"})));
}

#[test]
fn a_draining_hub_is_not_ready_but_keeps_serving() {
    let hub = start(support::config());
    let mut client = hub.client("/ws");
    hub.handle().drain();
    let (status, body) = get(hub.addr, "/ready");
    assert_eq!(
        (status, &body["status"]),
        (503, &json!("draining")),
        "{body}"
    );
    assert_eq!(get(hub.addr, "/health"), (200, json!({"status": "ok"})));
    // Everything else goes on: the client, and a new one.
    assert_eq!(client.request(json!({"type": "ping"}), "p")["type"], "pong");
    let mut late = hub.client("/ws");
    assert_eq!(late.request(json!({"type": "ping"}), "p")["type"], "pong");
}
