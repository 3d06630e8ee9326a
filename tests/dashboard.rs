//! The dashboard (`GET /admin`) over real sockets: the page is served with
//! no data in it; its data (the stats stream on the `/admin` WebSocket and
//! `/api/stats/history`) needs the admin token, which never goes in a URL;
//! the stream follows clients as they come and go; a client's detail and
//! the actions (publish, disconnect, unsubscribe) work from it; with
//! `admin_ui(false)` none of it is there. The new `/metrics` series.
//!
//! The page itself, in headless Chromium, is driven by the ignored tests at
//! the end (`.ci/run` installs Chromium, node and `tests/dashboard`'s npm
//! packages, then runs `cargo test --test dashboard -- --ignored`).

mod support;

use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::{DEADLINE, TestHub, read_json};
use tungstenite::WebSocket;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use wshub::Secret;

const ADMIN: &str = "the-admin-token-of-this-test";
const SECRET: &str = "dashboard-test-secret-of-32-byte";

/// A hub with client auth on (JWTs) and an admin token.
fn secured() -> TestHub {
    support::start(
        support::config()
            .jwt_secret(Some(Secret::new(SECRET)))
            .allow_anonymous(true)
            .admin_token(Some(Secret::new(ADMIN))),
    )
}

/// Opens the dashboard's stream offering `protocols`; the handshake's
/// answer, or the socket.
fn open_console(
    addr: SocketAddr,
    path: &str,
    protocols: &[String],
) -> Result<(WebSocket<TcpStream>, Option<String>), tungstenite::Error> {
    let stream = TcpStream::connect(addr).expect("tcp connect");
    let mut request = format!("ws://{addr}{path}").into_client_request()?;
    if !protocols.is_empty() {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(&protocols.join(", ")).unwrap(),
        );
    }
    let (ws, response) = tungstenite::client(request, stream).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(err) => err,
        tungstenite::HandshakeError::Interrupted(_) => tungstenite::Error::AttackAttempt,
    })?;
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    Ok((ws, protocol))
}

fn bearer(token: &str) -> Vec<String> {
    vec![
        "wshub".to_owned(),
        format!("wshub.bearer.{}", URL_SAFE_NO_PAD.encode(token)),
    ]
}

/// A dashboard's connection, past its welcome, its history and its first
/// numbers.
struct Console {
    ws: WebSocket<TcpStream>,
    id: String,
    history: Value,
    stats: Value,
}

impl Console {
    fn open(hub: &TestHub, token: &str) -> Console {
        let (mut ws, protocol) = open_console(hub.addr, "/admin", &bearer(token)).unwrap();
        assert_eq!(protocol.as_deref(), Some("wshub"), "the hub answers wshub");
        let welcome = read_json(&mut ws, DEADLINE).unwrap();
        assert_eq!(welcome["type"], "connection", "{welcome}");
        let id = welcome["data"]["clientId"].as_str().unwrap().to_owned();
        let mut console = Console {
            ws,
            id,
            history: Value::Null,
            stats: Value::Null,
        };
        console.history = console.next("admin_history");
        console.stats = console.next("admin_stats");
        console
    }

    /// The next message of type `kind`, skipping others.
    fn next(&mut self, kind: &str) -> Value {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {kind} in time");
            let message = read_json(&mut self.ws, left).unwrap();
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// The first `admin_stats` whose data satisfies `ready`.
    fn stats_until(&mut self, what: &str, mut ready: impl FnMut(&Value) -> bool) -> Value {
        let end = Instant::now() + DEADLINE;
        loop {
            assert!(Instant::now() < end, "no admin_stats with {what} in time");
            let stats = self.next("admin_stats");
            if ready(&stats["data"]) {
                return stats["data"].clone();
            }
        }
    }

    fn request(&mut self, mut body: Value, correlation: &str) -> Value {
        body["correlationId"] = json!(correlation);
        self.ws
            .send(tungstenite::Message::text(body.to_string()))
            .unwrap();
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let message = read_json(&mut self.ws, left).unwrap();
            if message["correlationId"] == correlation {
                return message;
            }
        }
    }
}

/// `GET path` with an optional bearer token: status, head, body.
fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String, String) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    support::http_raw(addr, request.as_bytes())
}

#[test]
fn the_page_holds_no_data_and_everything_with_data_needs_the_admin_token() {
    let hub = secured();
    let (status, head, page) = get(hub.addr, "/admin", None);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("text/html"), "{head}");
    assert!(
        head.contains("Content-Security-Policy: default-src 'none'"),
        "{head}"
    );
    assert!(
        page.contains(r#"content="token""#),
        "the page asks for the token"
    );
    assert!(!page.contains(ADMIN));
    for file in ["/admin/app.js", "/admin/chart.js", "/admin/style.css"] {
        assert_eq!(get(hub.addr, file, None).0, 200, "{file}");
    }
    assert_eq!(get(hub.addr, "/admin/other.js", None).0, 404);

    // The history: 401 without the token, 400 naming every metric for an
    // unknown one, the series with it.
    let path = "/api/stats/history?metric=messagesOut";
    assert_eq!(get(hub.addr, path, None).0, 401);
    assert_eq!(get(hub.addr, path, Some("not-it")).0, 401);
    let (status, _, body) = get(hub.addr, "/api/stats/history?metric=nope", Some(ADMIN));
    assert_eq!(status, 400);
    assert!(
        body.contains("messagesOut") && body.contains("latency.p99"),
        "{body}"
    );
    let (status, _, body) = get(hub.addr, path, Some(ADMIN));
    assert_eq!(status, 200, "{body}");
    let history: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(history["data"]["metric"], "messagesOut");
    assert_eq!(history["data"]["kind"], "rate");
    assert_eq!(history["data"]["seconds"]["step"], 1);
    assert_eq!(history["data"]["minutes"]["step"], 60);

    // The stream: refused without the admin token (a client's JWT is not
    // it), and the token never in the URL.
    let (mut ws, _) = open_console(hub.addr, "/admin", &["wshub".to_owned()]).unwrap();
    let refusal = read_json(&mut ws, DEADLINE).unwrap();
    assert_eq!(refusal["data"]["code"], "unauthorized", "{refusal}");
    assert_eq!(support::expect_close(&mut ws).0, 1008);
    let (mut ws, _) = open_console(hub.addr, "/admin", &bearer("not-it")).unwrap();
    assert_eq!(read_json(&mut ws, DEADLINE).unwrap()["type"], "error");
    let (status, _, body) = support::upgrade_head(hub.addr, &format!("/admin?token={ADMIN}"), "");
    assert_eq!(status, 400);
    assert!(body.contains("never goes in the URL"), "{body}");

    let (status, _, metrics) = get(hub.addr, "/metrics", Some(ADMIN));
    assert_eq!(status, 200);
    for line in [
        "wshub_refusals_total{reason=\"admin_token\"} 4",
        "wshub_delivery_latency_seconds_bucket{le=\"+Inf\"}",
        "wshub_errors_total{code=\"unauthorized\"}",
        "wshub_publications_total{source=\"http\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[test]
fn a_dashboard_gets_the_history_then_numbers_every_second_that_follow_clients() {
    let hub = secured();
    let mut console = Console::open(&hub, ADMIN);
    let metrics = console.history["data"]["metrics"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<&str> = metrics
        .iter()
        .map(|m| m["metric"].as_str().unwrap())
        .collect();
    for name in [
        "messagesIn",
        "messagesOut",
        "publications.library",
        "latency.p99",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let series_bytes = console.history["data"]["seriesBytes"].as_u64().unwrap();
    assert!(
        series_bytes > 0 && series_bytes < 100 * 1024,
        "{series_bytes}"
    );
    let first = &console.stats["data"];
    assert_eq!(
        first["now"]["connections"], 1,
        "the dashboard itself: {first}"
    );
    assert_eq!(first["now"]["consoles"], 1);
    assert_eq!(first["now"]["services"], 0, "a dashboard is no service");
    assert!(
        first.get("second").is_none(),
        "its history holds the last second"
    );

    // A client comes, subscribes and is published to: the numbers follow.
    let mut client = hub.client("/ws");
    client.request(json!({"type": "subscribe", "channel": "news"}), "s");
    let out = names.iter().position(|n| *n == "messagesOut").unwrap();
    let library = names
        .iter()
        .position(|n| *n == "publications.library")
        .unwrap();
    hub.handle()
        .publish(wshub::Target::channel("news"), "tick", json!({}))
        .unwrap();
    client.expect("tick");
    // Each second's row counts that second's publications: the library's
    // one shows in one of them, and its delivery in messagesOut.
    let (mut published, mut sent) = (0, 0);
    let seen = console.stats_until("the client and its publication", |d| {
        published += d["second"][library].as_u64().unwrap();
        sent += d["second"][out].as_u64().unwrap();
        d["now"]["connections"] == 2 && published == 1
    });
    assert!(sent >= 1, "{seen}");
    assert_eq!(seen["second"].as_array().unwrap().len(), names.len());
    assert_eq!(seen["now"]["anonymous"], 1, "{seen}");
    assert_eq!(seen["now"]["channels"], 1);
    let id = client.id();
    assert!(
        seen["clients"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id.as_str()),
        "{seen}"
    );
    drop(client);
    console.stats_until("the client gone", |d| d["now"]["connections"] == 1);
}

#[test]
fn a_dashboard_shows_a_clients_detail_and_disconnects_and_unsubscribes_it() {
    let hub = secured();
    let mut console = Console::open(&hub, ADMIN);
    let mut client = hub.client("/ws");
    client.request(json!({"type": "subscribe", "channel": "news"}), "s");
    client.request(json!({"type": "subscribe", "channel": "sport"}), "t");
    let id = client.id();

    let info = console.request(json!({"type": "client_info", "clientId": id}), "i");
    assert_eq!(info["type"], "client_info", "{info}");
    let detail = &info["data"]["client"];
    assert_eq!(info["data"]["found"], true);
    assert_eq!(detail["id"], id.as_str());
    assert_eq!(detail["channels"], json!(["news", "sport"]));
    assert_eq!(detail["authenticated"], false);
    assert!(
        detail["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(detail["connectedAt"].as_u64().unwrap() > 0);
    assert_eq!(detail["queue"]["messages"], 0);
    let missing = console.request(json!({"type": "client_info", "clientId": "nobody"}), "m");
    assert_eq!(missing["data"]["found"], false);

    let unsubscribed = console.request(
        json!({"type": "unsubscribe", "clientId": id, "channel": "sport"}),
        "u",
    );
    assert_ne!(unsubscribed["type"], "error", "{unsubscribed}");
    assert_eq!(client.expect("unsubscribed")["channel"], "sport");
    let info = console.request(json!({"type": "client_info", "clientId": id}), "j");
    assert_eq!(info["data"]["client"]["channels"], json!(["news"]));

    let published = console.request(
        json!({"type": "publish", "channel": "news", "event": "note", "data": {"from": "ops"}}),
        "p",
    );
    assert_ne!(published["type"], "error", "{published}");
    assert_eq!(client.expect("note")["data"]["from"], "ops");

    let disconnected = console.request(
        json!({"type": "disconnect", "clientId": id, "code": 1000, "reason": "From the dashboard"}),
        "d",
    );
    assert_ne!(disconnected["type"], "error", "{disconnected}");
    assert_eq!(
        client.expect_close(),
        (1000, "From the dashboard".to_owned()),
        "the client really is closed"
    );
    console.stats_until("the client gone", |d| d["now"]["connections"] == 1);
    assert!(!console.id.is_empty());
}

#[test]
fn a_client_may_send_its_token_as_a_subprotocol_and_not_in_the_url() {
    let hub = secured();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = wshub::sign_jwt(SECRET.as_bytes(), &json!({"sub": "ann", "exp": exp})).unwrap();
    let (mut ws, protocol) = open_console(hub.addr, "/ws", &bearer(&token)).unwrap();
    assert_eq!(protocol.as_deref(), Some("wshub"));
    let welcome = read_json(&mut ws, DEADLINE).unwrap();
    assert_eq!(welcome["data"]["userId"], "ann", "{welcome}");
    // Without wshub beside it, the hub could not answer: a clear 400.
    let protocol = format!("wshub.bearer.{}", URL_SAFE_NO_PAD.encode(&token));
    let (status, _, body) = support::upgrade_head(
        hub.addr,
        "/ws",
        &format!("Sec-WebSocket-Protocol: {protocol}\r\n"),
    );
    assert_eq!(status, 400);
    assert!(body.contains("Offer the subprotocol wshub"), "{body}");
}

#[test]
fn with_the_dashboard_off_there_is_no_page_and_no_stream() {
    let hub = support::start(
        support::config()
            .admin_ui(false)
            .admin_token(Some(Secret::new(ADMIN))),
    );
    assert_eq!(get(hub.addr, "/admin", None).0, 404);
    assert_eq!(get(hub.addr, "/admin/app.js", None).0, 404);
    let (status, _, _) = support::upgrade_head(hub.addr, "/admin", "");
    assert_eq!(status, 404);
    // The analytics stay.
    let (status, _, _) = get(hub.addr, "/api/stats/history?metric=connects", Some(ADMIN));
    assert_eq!(status, 200);
}

#[test]
fn a_development_hub_opens_its_dashboard_without_a_token_and_a_locked_one_refuses() {
    let open = support::start_default();
    let (_, _, page) = get(open.addr, "/admin", None);
    assert!(page.contains(r#"content="open""#));
    let (mut ws, _) = open_console(open.addr, "/admin", &[]).unwrap();
    assert_eq!(read_json(&mut ws, DEADLINE).unwrap()["type"], "connection");

    let locked = support::start(support::config().jwt_secret(Some(Secret::new(SECRET))));
    let (_, _, page) = get(locked.addr, "/admin", None);
    assert!(page.contains(r#"content="locked""#));
    let (mut ws, _) = open_console(locked.addr, "/admin", &bearer("anything")).unwrap();
    let refusal = read_json(&mut ws, DEADLINE).unwrap();
    assert!(
        refusal["data"]["error"]
            .as_str()
            .unwrap()
            .contains("--admin-token"),
        "{refusal}"
    );
}

// --- the page in a real browser ---------------------------------------------

mod browser {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::thread::{self, JoinHandle};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
    use serde_json::{Value, json};

    use super::{ADMIN, SECRET};
    use crate::support::{self, Client, DEADLINE};

    const BIN: &str = env!("CARGO_BIN_EXE_wshub");
    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dashboard");
    /// The page's steps may wait on a busy machine.
    const STEP_DEADLINE: Duration = Duration::from_secs(90);

    /// The binary, its whole log kept.
    pub struct Binary {
        child: Child,
        pub addr: SocketAddr,
        pub log: Arc<Mutex<Vec<String>>>,
    }

    impl Binary {
        pub fn start(args: &[&str]) -> Binary {
            let mut child = Command::new(BIN)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("the binary starts");
            let stderr = child.stderr.take().unwrap();
            let log = Arc::new(Mutex::new(Vec::new()));
            let (tx, started) = unbounded();
            let kept = Arc::clone(&log);
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("listening on ws://") {
                        let _ = tx.send(line.clone());
                    }
                    kept.lock().unwrap().push(line);
                }
            });
            let line = started
                .recv_timeout(DEADLINE)
                .unwrap_or_else(|_| panic!("the hub did not start: {:#?}", log.lock().unwrap()));
            let addr = line
                .split("ws://")
                .nth(1)
                .unwrap()
                .split('/')
                .next()
                .unwrap();
            Binary {
                child,
                addr: addr.parse().unwrap(),
                log,
            }
        }

        pub fn log(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
    }

    impl Drop for Binary {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// tests/dashboard/drive.mjs in node, steered step by step.
    pub struct Driver {
        child: Child,
        stdin: ChildStdin,
        lines: Receiver<String>,
    }

    impl Driver {
        pub fn start(env: &[(&str, String)]) -> Driver {
            assert!(
                std::path::Path::new(DIR)
                    .join("node_modules/playwright-core")
                    .exists(),
                "run npm install in tests/dashboard first (.ci/run does)"
            );
            let mut child = Command::new("node")
                .arg("drive.mjs")
                .current_dir(DIR)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("node runs (install nodejs)");
            let stdin = child.stdin.take().unwrap();
            let stdout = child.stdout.take().unwrap();
            let (tx, lines) = unbounded();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            Driver {
                child,
                stdin,
                lines,
            }
        }

        /// The next line, which must be step `name`: its data.
        pub fn step(&mut self, name: &str) -> Value {
            let line = self
                .lines
                .recv_timeout(STEP_DEADLINE)
                .unwrap_or_else(|_| panic!("the page did not reach {name}"));
            if let Some(failed) = line.strip_prefix("FAIL ") {
                panic!("the page failed before {name}: {failed}");
            }
            let rest = line
                .strip_prefix(&format!("STEP {name} "))
                .unwrap_or_else(|| panic!("expected step {name}, got {line}"));
            serde_json::from_str(rest).unwrap()
        }

        pub fn go(&mut self, data: Value) {
            writeln!(self.stdin, "go {data}").unwrap();
            self.stdin.flush().unwrap();
        }

        /// What the page saw, at its end.
        pub fn done(&mut self) -> Value {
            let line = self
                .lines
                .recv_timeout(STEP_DEADLINE)
                .expect("the page did not finish");
            let _ = self.child.wait();
            match line.strip_prefix("DONE ") {
                Some(seen) => serde_json::from_str(seen).unwrap(),
                None => panic!("the page failed: {line}"),
            }
        }
    }

    impl Drop for Driver {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    pub fn user_token(user: &str) -> String {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        wshub::sign_jwt(SECRET.as_bytes(), &json!({"sub": user, "exp": exp})).unwrap()
    }

    /// Publishes to `news` over HTTP about 50 times a second until told to
    /// stop (or 3000 times).
    pub fn publisher(addr: SocketAddr) -> (Sender<()>, JoinHandle<()>) {
        let (stop, stopped) = bounded::<()>(1);
        let thread = thread::spawn(move || {
            for n in 0..3_000 {
                let body = json!({"channel": "news", "type": "tick", "data": {"n": n}}).to_string();
                let request = format!(
                    "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = support::http_raw(addr, request.as_bytes());
                // Paced, and ends as soon as it is told.
                if stopped.recv_timeout(Duration::from_millis(20)).is_ok() {
                    return;
                }
            }
        });
        (stop, thread)
    }

    /// A client that reads whatever comes until it is closed: its close.
    pub fn reading(mut client: Client) -> JoinHandle<(u16, String)> {
        thread::spawn(move || {
            loop {
                match client.ws.read() {
                    Ok(tungstenite::Message::Close(frame)) => {
                        let _ = client.ws.flush();
                        return frame.map_or((1005, String::new()), |f| {
                            (u16::from(f.code), f.reason.to_string())
                        });
                    }
                    Ok(_) => {}
                    Err(err) => return (1006, err.to_string()),
                }
            }
        })
    }

    /// What every scenario checks at its end: the page never put the
    /// token in a URL, the hub never logged it, and logged the action
    /// with who took it.
    pub fn check_secrecy(seen: &Value, logs: &[String], disconnected: &str) {
        let encoded = URL_SAFE_NO_PAD.encode(ADMIN);
        let urls: Vec<&str> = seen["urls"]
            .as_array()
            .unwrap()
            .iter()
            .chain(seen["sockets"].as_array().unwrap())
            .map(|u| u.as_str().unwrap())
            .collect();
        assert!(urls.iter().any(|u| u.ends_with("/admin")), "{urls:?}");
        for url in &urls {
            assert!(
                !url.contains(ADMIN) && !url.contains(&encoded) && !url.contains("token"),
                "the token in a URL: {url}"
            );
        }
        for line in logs {
            assert!(
                !line.contains(ADMIN) && !line.contains(&encoded),
                "the token in the log: {line}"
            );
        }
        assert!(
            logs.iter().any(|l| l.contains("dashboard c_")
                && l.contains("from 127.0.0.1:")
                && l.contains(&format!("disconnects client {disconnected}"))),
            "the action logged with who took it: {logs:#?}"
        );
    }

    pub fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A `redis-server` of our own, gone when dropped.
    pub struct Redis {
        child: Child,
        pub port: u16,
    }

    impl Redis {
        pub fn start() -> Redis {
            let deadline = Instant::now() + DEADLINE;
            loop {
                let port = free_port();
                let mut child = Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-server runs (install redis-server)");
                loop {
                    if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
                        let mut answer = [0u8; 7];
                        stream.set_read_timeout(Some(DEADLINE)).unwrap();
                        if stream.write_all(b"PING\r\n").is_ok()
                            && std::io::Read::read_exact(&mut stream, &mut answer).is_ok()
                            && &answer == b"+PONG\r\n"
                        {
                            return Redis { child, port };
                        }
                    }
                    if child.try_wait().ok().flatten().is_some() {
                        break;
                    }
                    assert!(Instant::now() < deadline, "redis-server did not answer");
                    // Polls a process starting up: no message to wait on.
                    thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The flags of a hub with client auth and the admin token.
fn secured_flags(port: &str) -> Vec<String> {
    [
        "--port",
        port,
        "--jwt-secret",
        SECRET,
        "--allow-anonymous",
        "--admin-token",
        ADMIN,
        "--log-level",
        "debug",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Signs in, watches clients come, opens one's detail, disconnects it,
/// watches the rest leave, signs out; with `other`, a second hub on the
/// same Redis with a client of its own.
fn scenario(hub: &browser::Binary, other: Option<&browser::Binary>, shot: Option<&str>) {
    let mut env = vec![
        ("HUB", format!("http://{}", hub.addr)),
        ("TOKEN", ADMIN.to_owned()),
        (
            "MODE",
            if other.is_some() { "cluster" } else { "single" }.to_owned(),
        ),
    ];
    if let Some(shot) = shot {
        env.push(("SHOT", shot.to_owned()));
    }
    let mut driver = browser::Driver::start(&env);
    let signed_in = driver.step("signed-in");
    assert_eq!(signed_in["connections"], 1, "the page's own: {signed_in}");

    let token = browser::user_token("ann");
    let mut ann = support::Client::connect(hub.addr, &format!("/ws?token={token}"));
    let mut anon = support::Client::connect(hub.addr, "/ws");
    ann.request(json!({"type": "subscribe", "channel": "news"}), "a");
    anon.request(json!({"type": "subscribe", "channel": "news"}), "b");
    let elsewhere = other.map(|other| {
        let mut client = support::Client::connect(other.addr, "/ws");
        client.request(json!({"type": "subscribe", "channel": "news"}), "c");
        client
    });
    let ann_id = ann.id();
    let (stop, publisher) = browser::publisher(hub.addr);
    let ann = browser::reading(ann);
    driver.go(json!({"client": ann_id, "user": "ann", "others": 2}));

    driver.step("disconnected");
    let close = ann.join().unwrap();
    assert_eq!(
        close,
        (1000, "Disconnected from the dashboard".to_owned()),
        "the client saw its close"
    );
    driver.go(json!({}));

    driver.step("left");
    let _ = stop.send(());
    publisher.join().unwrap();
    // The anonymous client goes: its socket closed, as a tab closes.
    drop(anon);
    driver.go(json!({}));
    let seen = driver.done();
    drop(elsewhere);

    let before = &seen["beforeLogin"];
    assert_eq!(before["dashboardHidden"], true, "{seen}");
    assert_eq!(before["cards"], 0, "no data before the login");
    assert_eq!(before["rows"], 0);
    assert!(
        seen["wrongToken"]
            .as_str()
            .unwrap()
            .contains("Unauthorized"),
        "{seen}"
    );
    assert_eq!(seen["wrongTokenStored"], 0, "a refused token is not kept");
    assert_eq!(seen["tokenIn"], json!(["wshub.admin.token"]));
    assert_eq!(seen["afterConnect"], 3);
    assert!(seen["paths"].as_u64().unwrap() > 10, "{seen}");
    assert_eq!(seen["detail"]["user"], "ann");
    assert!(
        seen["detail"]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(
        seen["detail"]["topics"][0]
            .as_str()
            .unwrap()
            .contains("channel news"),
        "{seen}"
    );
    assert!(seen["confirmText"].as_str().unwrap().contains(&ann_id));
    assert_eq!(seen["afterLeave"], 1);
    assert_eq!(seen["afterSignOut"], json!({"stored": 0, "cards": 0}));
    if other.is_some() {
        let hubs = seen["hubs"].as_array().unwrap();
        assert_eq!(hubs.len(), 3, "two hubs and the cluster's total: {seen}");
        let total = hubs.iter().find(|h| h["hub"] == "total").unwrap();
        assert!(total["connections"].as_u64().unwrap() >= 4, "{seen}");
    }
    browser::check_secrecy(&seen, &hub.log(), &ann_id);
}

#[test]
#[ignore = "needs Chromium and node: .ci/run installs them and tests/dashboard's packages, and runs cargo test --test dashboard -- --ignored"]
fn the_dashboard_in_a_real_browser_signs_in_follows_clients_and_disconnects_one() {
    let flags = secured_flags("0");
    let hub = browser::Binary::start(&flags.iter().map(String::as_str).collect::<Vec<_>>());
    // A screenshot: the README's own (docs/dashboard.png) only with
    // WSHUB_BLESS=1, so a test run leaves the tree as it found it.
    let shot = match std::env::var_os("WSHUB_BLESS") {
        Some(_) => {
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/dashboard.png"))
        }
        None => std::env::temp_dir().join(format!("wshub-dashboard-{}.png", std::process::id())),
    };
    scenario(&hub, None, Some(shot.to_str().expect("a UTF-8 path")));
    assert!(
        shot.exists(),
        "the browser wrote no screenshot to {}",
        shot.display()
    );
    if std::env::var_os("WSHUB_BLESS").is_none() {
        let _ = std::fs::remove_file(&shot);
    }
}

#[test]
#[ignore = "needs Chromium, node and redis-server: .ci/run installs them and runs cargo test --test dashboard -- --ignored"]
fn the_dashboard_of_two_hubs_on_redis_shows_each_hub_and_the_cluster() {
    let redis = browser::Redis::start();
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let start = || {
        let mut flags = secured_flags("0");
        flags.extend(["--redis".to_owned(), url.clone()]);
        browser::Binary::start(&flags.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (hub, other) = (start(), start());
    scenario(&hub, Some(&other), None);
}
