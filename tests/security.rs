//! Auth, permissions and abuse limits over real sockets: the attack matrix
//! (each refused with its documented error, reaching no data), private
//! channels, sessions bound to users, token expiry and refresh, the admin
//! API, origins, rate limits and the other per-client caps.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::{Client, TestHub, get, http_raw, now, read_json, start};
use wshub::{Config, Secret, Target, TokenGrant, sign_jwt};

const SECRET: &str = "test-secret-that-is-32-bytes-lng";
const ADMIN: &str = "admin-token-for-tests";

fn jwt(claims: Value) -> String {
    sign_jwt(SECRET.as_bytes(), &claims).unwrap()
}

fn user_token(user: &str) -> String {
    jwt(json!({"sub": user, "exp": now() + 3600.0}))
}

/// A token signed by hand, with any header and key.
fn forged(header: &str, claims: &Value, key: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(header);
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{h}.{p}").as_bytes());
    format!(
        "{h}.{p}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn secure_config() -> Config {
    support::config()
        .tokens(HashMap::from([
            (Secret::new("alice-static"), TokenGrant::user("alice")),
            (
                Secret::new("team-static"),
                TokenGrant {
                    channels: Some(vec!["private-team-*".into(), "files".into()]),
                    publish: true,
                    ..TokenGrant::user("carol")
                },
            ),
        ]))
        .jwt_secret(Some(SECRET.into()))
        .jwt_leeway(Duration::ZERO)
        .admin_token(Some(ADMIN.into()))
        .allowed_origins(vec!["https://app.example.com".into()])
}

fn secure_hub() -> TestHub {
    start(secure_config())
}

/// Connects and expects to be refused: `unauthorized`, then close 1008, and
/// nothing else (no welcome, no data). Returns the error message.
fn expect_unauthorized(hub: &TestHub, path: &str) -> String {
    let mut ws = Client::open(hub.addr, path).expect("the handshake itself succeeds");
    let first = read_json(&mut ws, support::DEADLINE).expect("an error message");
    assert_eq!(
        first["type"], "error",
        "{path}: the first message must be the refusal, got {first}"
    );
    assert_eq!(first["data"]["code"], "unauthorized");
    assert_eq!(
        support::expect_close(&mut ws),
        (1008, "Unauthorized".to_owned())
    );
    first["data"]["error"].as_str().unwrap().to_owned()
}

#[test]
fn the_attack_matrix_is_refused_and_reaches_no_data() {
    let hub = secure_hub();
    // A real user with something to steal.
    let mut alice = Client::connect(hub.addr, &format!("/ws?token={}", user_token("alice")));
    alice.request(
        json!({"type": "subscribe", "sessionId": "alice-session"}),
        "s",
    );
    alice.request(json!({"type": "subscribe", "channel": "user:alice"}), "s");

    let good = json!({"sub": "alice", "exp": now() + 3600.0});
    let token = jwt(good.clone());
    let (h, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let admin_claims = URL_SAFE_NO_PAD
        .encode(json!({"sub": "alice", "exp": now() + 3600.0, "admin": true}).to_string());
    let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(good.to_string());
    let cases: Vec<(&str, String, &str)> = vec![
        ("no token", String::new(), "a token is required"),
        ("garbage token", "token=garbage".into(), "invalid token"),
        ("empty parts", "token=..".into(), "malformed"),
        (
            "wrong signature",
            format!(
                "token={}",
                forged(r#"{"alg":"HS256"}"#, &good, b"wrong key")
            ),
            "signature",
        ),
        ("alg none", format!("token={none}.{payload}."), "algorithm"),
        (
            "alg HS512",
            format!(
                "token={}",
                forged(r#"{"alg":"HS512"}"#, &good, SECRET.as_bytes())
            ),
            "HS512",
        ),
        (
            "alg RS256",
            format!(
                "token={}",
                forged(r#"{"alg":"RS256"}"#, &good, SECRET.as_bytes())
            ),
            "RS256",
        ),
        (
            "expired",
            format!(
                "token={}",
                jwt(json!({"sub": "alice", "exp": now() - 10.0}))
            ),
            "expired",
        ),
        (
            "not yet valid",
            format!(
                "token={}",
                jwt(json!({"sub": "alice", "exp": now() + 3600.0, "nbf": now() + 600.0}))
            ),
            "not valid yet",
        ),
        (
            "tampered payload",
            format!("token={h}.{admin_claims}.{sig}"),
            "signature",
        ),
        (
            "no exp",
            format!("token={}", jwt(json!({"sub": "alice"}))),
            "exp",
        ),
        (
            "userId spoofing",
            format!("token={token}&userId=bob"),
            "does not match",
        ),
        (
            "userId without token",
            "userId=alice".into(),
            "a token is required",
        ),
    ];
    for (name, query, reason) in cases {
        let message = expect_unauthorized(&hub, &format!("/ws?{query}"));
        assert!(message.contains(reason), "{name}: {message}");
    }
    // The bare path too.
    expect_unauthorized(&hub, "/");

    // Nothing reached Alice's session or user channel, and she noticed nothing.
    alice.expect_nothing_pending();
    let stats = hub.handle().stats().unwrap();
    assert_eq!(stats.active_connections, 1);
    assert_eq!(stats.rejected_connections, 14);
}

#[test]
fn a_browser_from_another_origin_is_refused_at_the_handshake() {
    let hub = secure_hub();
    let path = format!("/ws?token={}", user_token("alice"));
    let upgrade = |origin: &str| support::upgrade_head(hub.addr, &path, origin);
    let (status, _, body) = upgrade("Origin: https://evil.example.net\r\n");
    assert_eq!(status, 403);
    assert!(body.contains("forbidden_origin"), "{body}");
    assert_eq!(upgrade("Origin: null\r\n").0, 403);
    // The listed origin and non-browser clients (no Origin) get in.
    assert_eq!(upgrade("Origin: https://app.example.com\r\n").0, 101);
    assert_eq!(upgrade("").0, 101);
}

#[test]
fn tokens_come_from_the_query_or_an_authorization_header() {
    let hub = secure_hub();
    let static_client = Client::connect(hub.addr, "/ws?token=alice-static");
    assert_eq!(static_client.welcome["data"]["userId"], "alice");
    assert_eq!(static_client.welcome["data"]["authenticated"], true);

    let stream = std::net::TcpStream::connect(hub.addr).unwrap();
    let request = tungstenite::http::Request::builder()
        .uri(format!("ws://{}/ws", hub.addr))
        .header("Host", hub.addr.to_string())
        .header("Authorization", format!("Bearer {}", user_token("bob")))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    let (mut ws, _) = tungstenite::client::client(request, stream).unwrap();
    let welcome = read_json(&mut ws, support::DEADLINE).unwrap();
    assert_eq!(welcome["type"], "connection");
    assert_eq!(welcome["data"]["userId"], "bob");
    let stats = hub.handle().stats().unwrap();
    assert_eq!(stats.authenticated_connections, 2);
}

#[test]
fn private_channels_need_a_grant_and_user_channels_their_user() {
    let hub = secure_hub();
    let mut alice = Client::connect(hub.addr, &format!("/ws?token={}", user_token("alice")));
    let mut carol = Client::connect(hub.addr, "/ws?token=team-static");
    for (who, channel, ok) in [
        ("alice", "general", true),
        ("alice", "private-team-x", false),
        ("alice", "user:alice", true),
        ("alice", "user:carol", false),
        ("carol", "private-team-x", true),
        ("carol", "files", true),
        ("carol", "general", false),
        ("carol", "private-other", false),
        ("carol", "user:carol", true),
    ] {
        let client = if who == "alice" {
            &mut alice
        } else {
            &mut carol
        };
        let reply = client.request(json!({"type": "subscribe", "channel": channel}), "s");
        if ok {
            assert_eq!(reply["type"], "subscribed", "{channel}: {reply}");
        } else {
            assert_eq!(reply["data"]["code"], "forbidden", "{channel}: {reply}");
        }
    }
    assert_eq!(
        hub.handle()
            .publish(
                Target::channel("private-team-x"),
                "event",
                json!({"secret": 1})
            )
            .unwrap(),
        1
    );
    carol.expect_eventually("event");
    alice.expect_nothing_pending();

    // A JWT's channels claim grants the same way.
    let mut dave = Client::connect(
        hub.addr,
        &format!(
            "/ws?token={}",
            jwt(json!({"sub": "dave", "exp": now() + 60.0, "channels": ["private-team-*"]}))
        ),
    );
    assert_eq!(
        dave.request(
            json!({"type": "subscribe", "channel": "private-team-y"}),
            "s"
        )["type"],
        "subscribed"
    );
    assert_eq!(
        dave.request(json!({"type": "subscribe", "channel": "general"}), "s")["data"]["code"],
        "forbidden"
    );

    // Publishing needs a right, and only where the client may read.
    let reply = alice.request(
        json!({"type": "publish", "channel": "general", "data": 1}),
        "p",
    );
    assert_eq!(reply["data"]["code"], "forbidden");
    let reply = carol.request(
        json!({"type": "publish", "channel": "private-team-x", "data": 1}),
        "p",
    );
    assert_eq!(reply["type"], "published");
    let reply = carol.request(
        json!({"type": "publish", "channel": "private-other", "data": 1}),
        "p",
    );
    assert_eq!(reply["data"]["code"], "forbidden");
}

#[test]
fn a_session_belongs_to_the_user_who_opened_it() {
    let hub = secure_hub();
    let mut alice = Client::connect(
        hub.addr,
        &format!("/ws?token={}&sessionId=canvas-1", user_token("alice")),
    );
    assert_eq!(alice.welcome["data"]["sessionId"], "canvas-1");
    let alice_tab = Client::connect(
        hub.addr,
        &format!("/ws?token={}&sessionId=canvas-1", user_token("alice")),
    );
    assert_eq!(
        alice_tab.welcome["data"]["sessionId"], "canvas-1",
        "her other tab may join"
    );

    let mut bob = Client::connect(
        hub.addr,
        &format!("/ws?token={}&sessionId=canvas-1", user_token("bob")),
    );
    assert_eq!(bob.welcome["data"]["sessionId"], Value::Null);
    let error = bob.expect("error");
    assert_eq!(error["data"]["code"], "forbidden");
    let reply = bob.request(json!({"type": "subscribe", "sessionId": "canvas-1"}), "s");
    assert_eq!(reply["data"]["code"], "forbidden");
    assert!(
        reply["data"]["error"]
            .as_str()
            .unwrap()
            .contains("another user")
    );

    // Admins may join any session.
    let mut admin = Client::connect(hub.addr, &format!("/ws?token={ADMIN}"));
    assert_eq!(
        admin.request(json!({"type": "subscribe", "sessionId": "canvas-1"}), "s")["type"],
        "subscribed"
    );

    // Past the presence messages of the joins.
    alice.request(json!({"type": "ping"}), "sync");
    bob.request(json!({"type": "ping"}), "sync");
    assert_eq!(
        hub.handle()
            .publish(Target::session("canvas-1"), "ai_complete", json!({}))
            .unwrap(),
        3
    );
    alice.expect("ai_complete");
    bob.expect_nothing_pending();
    // Even when she leaves, the session stays hers (for session_retention).
    drop(alice);
    drop(alice_tab);
    hub.wait_stats("alice to leave", |s| s.users == 1);
    let reply = bob.request(json!({"type": "subscribe", "sessionId": "canvas-1"}), "s2");
    assert_eq!(reply["data"]["code"], "forbidden");
}

#[test]
fn a_token_that_expires_while_connected_closes_with_4001_unless_refreshed() {
    let hub = secure_hub();
    // Three seconds: time enough for two connections and five round trips
    // before it expires, even on a busy machine.
    let short = jwt(json!({"sub": "erin", "exp": now() + 3.0, "channels": ["a", "b"]}));
    let mut refreshed = Client::connect(hub.addr, &format!("/ws?token={short}"));
    let mut lapsed = Client::connect(hub.addr, &format!("/ws?token={short}"));
    refreshed.request(json!({"type": "subscribe", "channel": "a"}), "s");
    refreshed.request(json!({"type": "subscribe", "channel": "b"}), "s");

    // Bad refreshes change nothing.
    let reply = refreshed.request(
        json!({"type": "refresh", "data": {"token": "garbage"}}),
        "r0",
    );
    assert_eq!(reply["data"]["code"], "unauthorized");
    let reply = refreshed.request(
        json!({"type": "refresh", "data": {"token": user_token("mallory")}}),
        "r1",
    );
    assert_eq!(reply["data"]["code"], "forbidden");
    // A good one for the same user, granting less: channel b is left.
    let longer = jwt(json!({"sub": "erin", "exp": now() + 3600.0, "channels": ["a"]}));
    refreshed.send(json!({"type": "refresh", "data": {"token": longer}, "correlationId": "r2"}));
    let left = refreshed.expect("unsubscribed");
    assert_eq!(left["channel"], "b");
    let ack = refreshed.expect("ack");
    assert_eq!(ack["correlationId"], "r2");

    let expired = lapsed.expect_eventually("error");
    assert_eq!(expired["data"]["code"], "token_expired");
    assert_eq!(lapsed.expect_close(), (4001, "Token expired".to_owned()));
    // The tick that closed the lapsed one did not touch the refreshed one.
    assert_eq!(
        refreshed.request(json!({"type": "ping"}), "alive")["type"],
        "pong"
    );
    assert_eq!(
        hub.handle()
            .publish(Target::channel("a"), "event", 1)
            .unwrap(),
        1
    );
    assert_eq!(
        hub.handle()
            .publish(Target::channel("b"), "event", 1)
            .unwrap(),
        0
    );
}

#[test]
fn anonymous_clients_get_public_channels_and_broadcasts_only() {
    let hub = start(secure_config().allow_anonymous(true));
    let mut anon = Client::connect(hub.addr, "/ws");
    assert_eq!(anon.welcome["data"]["authenticated"], false);
    assert_eq!(
        anon.request(json!({"type": "subscribe", "channel": "news"}), "s")["type"],
        "subscribed"
    );
    for request in [
        json!({"type": "subscribe", "channel": "private-x"}),
        json!({"type": "subscribe", "channel": "user:alice"}),
        json!({"type": "subscribe", "sessionId": "s1"}),
        json!({"type": "presence"}),
        json!({"type": "user_presence", "data": "online"}),
        json!({"type": "publish", "channel": "news", "data": 1}),
    ] {
        let reply = anon.request(request.clone(), "x");
        assert_eq!(reply["data"]["code"], "forbidden", "{request}: {reply}");
    }
    // A user connecting and setting presence is not shown to anonymous clients.
    let mut alice = Client::connect(hub.addr, &format!("/ws?token={}", user_token("alice")));
    alice.request(json!({"type": "user_presence", "data": "busy"}), "p");
    hub.handle()
        .publish(
            Target::user("alice"),
            "notification",
            json!({"level": "info"}),
        )
        .unwrap();
    alice.expect_eventually("notification");
    anon.expect_nothing_pending();
    assert_eq!(
        hub.handle()
            .broadcast("notification", json!({"level": "info"}))
            .unwrap(),
        2
    );
    assert_eq!(anon.expect("notification")["data"]["level"], "info");
    // A userId needs a token.
    expect_unauthorized(&hub, "/ws?userId=alice");
}

#[test]
fn the_admin_api_needs_the_admin_token() {
    let hub = secure_hub();
    let request = |method: &str, path: &str, auth: &str| {
        let body = r#"{"broadcast":true}"#;
        let raw = format!(
            "{method} {path} HTTP/1.1\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            if method == "POST" { body.len() } else { 0 }
        );
        let raw = if method == "POST" {
            raw
        } else {
            raw.replace(body, "")
        };
        http_raw(hub.addr, raw.as_bytes())
    };
    for (method, path) in [
        ("GET", "/api/ws/stats"),
        ("GET", "/metrics"),
        ("POST", "/api/publish"),
    ] {
        let (status, head, body) = request(method, path, "");
        assert_eq!(status, 401, "{path}");
        assert!(head.contains("WWW-Authenticate: Bearer"));
        assert!(body.contains("unauthorized"));
        assert_eq!(
            request(method, path, "Authorization: Bearer nope\r\n").0,
            401
        );
        assert_eq!(
            request(method, path, &format!("Authorization: Basic {ADMIN}\r\n")).0,
            401
        );
        assert_eq!(
            request(method, path, &format!("Authorization: Bearer {ADMIN}\r\n")).0,
            200,
            "{path}"
        );
    }
    assert_eq!(get(hub.addr, "/health").0, 200, "health stays open");
    assert_eq!(get(hub.addr, "/api/websocket/status").0, 200);

    // Cross-origin publishing is refused even with the token, unless listed.
    let evil = format!("Authorization: Bearer {ADMIN}\r\nOrigin: https://evil.example.net\r\n");
    assert_eq!(request("POST", "/api/publish", &evil).0, 403);
    let listed = format!("Authorization: Bearer {ADMIN}\r\nOrigin: https://app.example.com\r\n");
    assert_eq!(request("POST", "/api/publish", &listed).0, 200);
}

#[test]
fn without_an_admin_token_client_auth_locks_the_admin_api() {
    let hub = start(secure_config().admin_token(None));
    let (status, body) = get(hub.addr, "/api/ws/stats");
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("--admin-token"));
    // And in development mode, a page elsewhere still cannot publish.
    let dev = support::start_default();
    let raw = "POST /api/publish HTTP/1.1\r\nOrigin: https://evil.example.net\r\nContent-Length: 18\r\n\r\n{\"broadcast\":true}";
    assert_eq!(http_raw(dev.addr, raw.as_bytes()).0, 403);
}

#[test]
fn the_admin_token_over_websocket_has_full_rights() {
    let hub = secure_hub();
    let mut service = Client::connect(hub.addr, &format!("/ws?token={ADMIN}"));
    assert_eq!(service.welcome["data"]["authenticated"], true);
    assert_eq!(service.welcome["data"]["userId"], Value::Null);
    for channel in ["private-anything", "user:alice"] {
        let reply = service.request(json!({"type": "subscribe", "channel": channel}), "s");
        assert_eq!(reply["type"], "subscribed");
    }
    let reply = service.request(
        json!({"type": "publish", "channel": "private-anything", "data": 1}),
        "p",
    );
    assert_eq!(reply["type"], "published");
}

#[test]
fn a_client_over_its_rate_limit_is_refused_then_closed_for_abuse() {
    let hub = start(
        support::config()
            .rate_limit(5)
            .rate_window(Duration::from_secs(60)),
    );
    let mut bystander = hub.client("/ws");
    bystander.request(json!({"type": "subscribe", "channel": "c"}), "s");
    let mut flooder = hub.client("/ws");
    for i in 0..5 {
        assert_eq!(
            flooder.request(json!({"type": "ping"}), &format!("ok{i}"))["type"],
            "pong"
        );
    }
    for i in 0..5 {
        let reply = flooder.request(json!({"type": "ping"}), &format!("over{i}"));
        assert_eq!(reply["data"]["code"], "rate_limited", "{reply}");
    }
    // As many again over the limit: cut off.
    flooder.send(json!({"type": "ping"}));
    assert_eq!(
        flooder.expect_close(),
        (1008, "Rate limit exceeded".to_owned())
    );
    let stats = hub.wait_stats("the flooder to go", |s| s.active_connections == 1);
    assert_eq!(stats.rate_limited, 6);
    assert_eq!(
        hub.handle()
            .publish(Target::channel("c"), "event", 1)
            .unwrap(),
        1
    );
    bystander.expect("event");
}

#[test]
fn subscriptions_per_client_are_capped() {
    let hub = start(support::config().max_subscriptions(3));
    let mut client = hub.client("/ws?sessionId=s0");
    for channel in ["a", "b"] {
        assert_eq!(
            client.request(json!({"type": "subscribe", "channel": channel}), "s")["type"],
            "subscribed"
        );
    }
    let reply = client.request(json!({"type": "subscribe", "channel": "c"}), "x");
    assert_eq!(reply["data"]["code"], "too_many_subscriptions");
    let reply = client.request(json!({"type": "subscribe", "sessionId": "s1"}), "y");
    assert_eq!(reply["data"]["code"], "too_many_subscriptions");
    // Subscribing again to one it has is fine; leaving one makes room.
    assert_eq!(
        client.request(json!({"type": "subscribe", "channel": "a"}), "z")["type"],
        "subscribed"
    );
    client.request(json!({"type": "unsubscribe", "channel": "a"}), "u");
    assert_eq!(
        client.request(json!({"type": "subscribe", "channel": "c"}), "w")["type"],
        "subscribed"
    );
}

#[test]
fn connections_per_user_are_capped() {
    let hub = start(secure_config().max_connections_per_user(2));
    let token = user_token("alice");
    let _one = Client::connect(hub.addr, &format!("/ws?token={token}"));
    let _two = Client::connect(hub.addr, &format!("/ws?token={token}"));
    let mut three = Client::open(hub.addr, &format!("/ws?token={token}")).unwrap();
    assert_eq!(
        support::expect_close(&mut three),
        (1013, "Too many connections for this user".to_owned())
    );
    Client::connect(hub.addr, &format!("/ws?token={}", user_token("bob")));
}

fn upgrade_status(hub: &TestHub, headers: &str) -> u16 {
    support::upgrade_head(hub.addr, "/ws", headers).0
}

#[test]
fn in_development_mode_only_pages_on_this_machine_may_connect() {
    let hub = support::start_default();
    assert_eq!(
        upgrade_status(&hub, "Origin: https://evil.example\r\n"),
        403
    );
    assert_eq!(
        upgrade_status(&hub, "Origin: http://localhost.evil.example\r\n"),
        403
    );
    for origin in [
        "http://localhost:5173",
        "http://127.0.0.1:8080",
        "http://[::1]:3000",
    ] {
        assert_eq!(
            upgrade_status(&hub, &format!("Origin: {origin}\r\n")),
            101,
            "{origin}"
        );
    }
    assert_eq!(upgrade_status(&hub, ""), 101, "not a browser: no Origin");
    // With tokens required, a page elsewhere has none to use: its origin may try.
    let secure = start(secure_config().allowed_origins(Vec::new()));
    assert_eq!(
        upgrade_status(&secure, "Origin: https://evil.example\r\n"),
        101
    );
}

#[test]
fn in_development_mode_a_rebound_domain_cannot_read_the_hub() {
    let hub = support::start_default();
    let stats = |host: &str| {
        let request = format!("GET /api/ws/stats HTTP/1.1\r\nHost: {host}\r\n\r\n");
        http_raw(hub.addr, request.as_bytes())
    };
    let (status, _, body) = stats("evil.example:3000");
    assert_eq!(status, 403);
    assert!(body.contains("forbidden_host"), "{body}");
    assert_eq!(stats("localhost:3000").0, 200);
    let health = http_raw(
        hub.addr,
        b"GET /health HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    );
    assert_eq!(health.0, 200, "health checks stay open");
    assert_eq!(stats(&hub.addr.to_string()).0, 200);
    assert_eq!(upgrade_status(&hub, "Host: evil.example\r\n"), 403);
}

#[test]
fn a_flood_of_pings_or_pongs_is_cut_off_without_reaching_the_router() {
    let hub = support::start_default();
    let mut bystander = hub.client("/ws");
    let mut flooder = hub.client("/ws");
    let received_before = hub.handle().stats().unwrap().messages_received;
    for _ in 0..10_000 {
        // Unsolicited Pongs: nothing comes back to read, so they cost the
        // flooder nothing. The hub stops listening partway.
        if flooder
            .ws
            .send(tungstenite::Message::Pong(Vec::new().into()))
            .is_err()
        {
            break;
        }
    }
    assert_eq!(
        flooder.expect_close(),
        (1008, "Rate limit exceeded".to_owned())
    );
    let stats = hub.wait_stats("the flooder to go", |s| s.active_connections == 1);
    assert_eq!(
        stats.messages_received, received_before,
        "control frames are not messages"
    );
    assert_eq!(stats.rate_limited, 1);
    bystander.expect_nothing_pending();
}

#[test]
fn a_refresh_that_drops_admin_rights_leaves_other_users_sessions() {
    let hub = secure_hub();
    let mut bob = Client::connect(
        hub.addr,
        &format!("/ws?token={}&sessionId=s-bob", user_token("bob")),
    );
    let mut ops = Client::connect(hub.addr, "/ws?token=team-static");
    // carol's static token is not admin; an admin JWT for carol is.
    let admin = jwt(json!({"sub": "carol", "exp": now() + 600.0, "admin": true}));
    ops.request(json!({"type": "refresh", "data": {"token": admin}}), "r0");
    assert_eq!(
        ops.request(json!({"type": "subscribe", "sessionId": "s-bob"}), "s")["type"],
        "subscribed"
    );
    ops.send(
        json!({"type": "refresh", "data": {"token": user_token("carol")}, "correlationId": "r1"}),
    );
    let left = ops.expect_eventually("unsubscribed");
    assert_eq!(left["sessionId"], "s-bob");
    assert_eq!(ops.expect("ack")["correlationId"], "r1");
    bob.request(json!({"type": "ping"}), "sync");
    assert_eq!(
        hub.handle()
            .publish(
                Target::session("s-bob"),
                "ai_progress",
                json!({"secret": 1})
            )
            .unwrap(),
        1
    );
    bob.expect("ai_progress");
    ops.expect_nothing_pending();
}

#[test]
fn a_user_cannot_hoard_sessions() {
    let hub = start(secure_config().max_sessions_per_user(3));
    let token = user_token("hoarder");
    for round in 0..2 {
        let mut client = Client::connect(hub.addr, &format!("/ws?token={token}"));
        for n in 0..3 {
            let reply = client.request(
                json!({"type": "subscribe", "sessionId": format!("s{n}")}),
                "s",
            );
            assert_eq!(reply["type"], "subscribed", "round {round}: {reply}");
        }
        // A fourth is refused, on this connection or the next: leaving and
        // reconnecting does not free the ones just claimed.
        let reply = client.request(
            json!({"type": "subscribe", "sessionId": format!("new-{round}")}),
            "x",
        );
        assert_eq!(reply["data"]["code"], "too_many_subscriptions", "{reply}");
    }
    // Another user is not affected.
    let mut other = Client::connect(hub.addr, &format!("/ws?token={}", user_token("someone")));
    assert_eq!(
        other.request(json!({"type": "subscribe", "sessionId": "mine"}), "s")["type"],
        "subscribed"
    );
}
