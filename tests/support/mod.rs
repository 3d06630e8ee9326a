//! Shared test helpers: a hub on 127.0.0.1:0, WebSocket clients that wait
//! with deadlines (never fixed sleeps), and a raw HTTP client.

#![allow(dead_code)]

pub mod json;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};
use wshub::{Config, Hub, Server, Target};

/// How long any single expected event may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A config for tests: any free port on loopback, everything else default.
pub fn config() -> Config {
    Config::default().host("127.0.0.1").port(0)
}

/// A running hub and where to reach it.
pub struct TestHub {
    pub server: Server,
    pub addr: SocketAddr,
}

impl TestHub {
    pub fn handle(&self) -> &wshub::Handle {
        self.server.handle()
    }

    /// A client on `path` (with its query), past the `connection` welcome.
    pub fn client(&self, path: &str) -> Client {
        Client::connect(self.addr, path)
    }

    /// Waits until the hub's stats satisfy `ready`, asking again as
    /// messages flow (each call is a round trip through the router). Between
    /// two asks it pauses, 1 ms at first and up to 16 ms: waiting must not
    /// keep a CPU busy that the hub needs to get there (what it waits for is
    /// the stat, the pause only spaces the asks).
    pub fn wait_stats(&self, what: &str, ready: impl Fn(&wshub::Stats) -> bool) -> wshub::Stats {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let stats = self.handle().stats().expect("stats");
            if ready(&stats) {
                return stats;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "timed out waiting for {what}: {} clients, {} threads, {} slow consumers, {} stale, {} rejected",
                stats.active_connections,
                stats.threads,
                stats.slow_consumers,
                stats.stale_clients,
                stats.rejected_connections
            );
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(16));
        }
    }
}

pub fn start(config: Config) -> TestHub {
    let hub = Hub::with_config(config).expect("hub binds");
    let addr = hub.local_addr();
    let server = hub.spawn().expect("hub starts");
    TestHub { server, addr }
}

pub fn start_default() -> TestHub {
    start(config())
}

/// A WebSocket client over a real socket.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
    /// The `connection` welcome.
    pub welcome: Value,
}

impl Client {
    pub fn connect(addr: SocketAddr, path: &str) -> Client {
        let mut ws = Self::open(addr, path).unwrap_or_else(|err| panic!("connect {path}: {err}"));
        let welcome = read_json(&mut ws, DEADLINE).expect("a connection welcome");
        assert_eq!(
            welcome["type"], "connection",
            "first message is the welcome: {welcome}"
        );
        // The standard envelope's greeting goes on with how the token went.
        let auth = read_json(&mut ws, DEADLINE).expect("the auth message after the welcome");
        assert_eq!(
            auth["type"], "auth",
            "the welcome is followed by auth: {auth}"
        );
        Client { ws, welcome }
    }

    /// The handshake only: no welcome read.
    pub fn open(addr: SocketAddr, path: &str) -> Result<WebSocket<TcpStream>, tungstenite::Error> {
        let stream = TcpStream::connect(addr).expect("tcp connect");
        stream.set_nodelay(true).ok();
        let url = format!("ws://{addr}{path}");
        // A small read buffer: tungstenite zero-fills it on every read.
        let config = tungstenite::protocol::WebSocketConfig::default().read_buffer_size(16 * 1024);
        let (ws, _) = tungstenite::client::client_with_config(url.as_str(), stream, Some(config))
            .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(err) => err,
            tungstenite::HandshakeError::Interrupted(_) => tungstenite::Error::AttackAttempt,
        })?;
        Ok(ws)
    }

    pub fn id(&self) -> String {
        self.welcome["data"]["clientId"]
            .as_str()
            .expect("clientId")
            .to_owned()
    }

    pub fn send(&mut self, value: Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .expect("send");
    }

    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).expect("send");
    }

    /// The next JSON message, or a panic naming what was expected.
    pub fn recv(&mut self, what: &str) -> Value {
        read_json(&mut self.ws, DEADLINE).unwrap_or_else(|err| panic!("expected {what}: {err}"))
    }

    /// The next message, which must be of type `kind`.
    pub fn expect(&mut self, kind: &str) -> Value {
        let message = self.recv(kind);
        assert_eq!(message["type"], kind, "expected {kind}, got {message}");
        message
    }

    /// Skips messages until one of type `kind` arrives.
    pub fn expect_eventually(&mut self, kind: &str) -> Value {
        let start = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            let message = read_json(&mut self.ws, left)
                .unwrap_or_else(|err| panic!("expected {kind}: {err}"));
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// Sends `request` and returns the reply carrying its `correlationId`
    /// (skipping anything else in between).
    pub fn request(&mut self, mut request: Value, correlation: &str) -> Value {
        request["correlationId"] = json!(correlation);
        self.send(request);
        let start = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            let message = read_json(&mut self.ws, left)
                .unwrap_or_else(|err| panic!("reply to {correlation}: {err}"));
            if message["correlationId"] == correlation {
                return message;
            }
        }
    }

    /// Proves that nothing is waiting for this client: a ping's pong is the
    /// very next message. The router handles events in order, so anything
    /// sent to this client before the ping would come first.
    pub fn expect_nothing_pending(&mut self) {
        self.send(json!({"type": "ping", "correlationId": "nothing-pending"}));
        let next = self.recv("the pong");
        assert_eq!(
            next["type"], "pong",
            "expected nothing before the pong, got {next}"
        );
        assert_eq!(next["correlationId"], "nothing-pending");
    }

    /// Reads until the server's Close; returns its code and reason.
    pub fn expect_close(&mut self) -> (u16, String) {
        expect_close(&mut self.ws)
    }

    /// After the server's Close: sends ours back (tungstenite queued it
    /// while reading) and waits for the server to close the connection.
    pub fn finish_close(&mut self) {
        finish_close(&mut self.ws);
    }
}

/// After the server's Close: sends ours back (tungstenite queued it while
/// reading) and waits, up to [`DEADLINE`], for the server to close TCP.
pub fn finish_close(ws: &mut WebSocket<TcpStream>) {
    ws.get_mut().set_read_timeout(Some(DEADLINE)).ok();
    loop {
        match ws.read() {
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(err) => panic!("expected the hub to close the connection, got {err}"),
            Ok(_) => {}
        }
    }
}

/// Reads until a Close frame arrives; returns code and reason.
pub fn expect_close(ws: &mut WebSocket<TcpStream>) -> (u16, String) {
    let start = Instant::now();
    loop {
        let left = DEADLINE.saturating_sub(start.elapsed());
        assert!(!left.is_zero(), "no Close frame within {DEADLINE:?}");
        ws.get_mut().set_read_timeout(Some(left)).ok();
        match ws.read() {
            Ok(Message::Close(Some(CloseFrame { code, reason }))) => {
                return (u16::from(code), reason.to_string());
            }
            Ok(Message::Close(None)) => return (1005, String::new()),
            Ok(_) => {}
            Err(err) => panic!("connection ended without a Close frame: {err}"),
        }
    }
}

/// The next text message as JSON, within `wait`. Pings are answered by
/// tungstenite itself while reading.
pub fn read_json(ws: &mut WebSocket<TcpStream>, wait: Duration) -> Result<Value, String> {
    let start = Instant::now();
    loop {
        let left = wait.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(format!("nothing within {wait:?}"));
        }
        ws.get_mut().set_read_timeout(Some(left)).ok();
        match ws.read() {
            Ok(Message::Text(text)) => {
                return serde_json::from_str(text.as_str())
                    .map_err(|e| format!("not JSON: {e}: {text}"));
            }
            Ok(Message::Close(frame)) => return Err(format!("closed: {frame:?}")),
            Ok(_) => {}
            Err(tungstenite::Error::Io(err))
                if matches!(
                    err.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(err) => return Err(format!("read failed: {err}")),
        }
    }
}

/// Close code 1000..=4999 from a number.
pub fn close_code(code: u16) -> CloseCode {
    CloseCode::from(code)
}

/// A raw HTTP exchange: sends `request` bytes, returns status, headers and body.
pub fn http_raw(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("tcp connect");
    stream.set_read_timeout(Some(DEADLINE)).ok();
    stream.write_all(request).expect("send request");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let _ = stream.shutdown(Shutdown::Both);
    parse_response(&response)
}

pub fn parse_response(response: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, head.to_owned(), body.to_owned())
}

/// `GET path`; returns status and the body as JSON (or a string).
pub fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (status, _, body) = http_raw(addr, request.as_bytes());
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// `POST path` with a JSON body.
pub fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, Value) {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, _, body) = http_raw(addr, request.as_bytes());
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// Sends a WebSocket upgrade for `path_and_query` with extra `headers`
/// (each ending in CRLF) and reads the answer's head only: after a 101 the
/// connection stays open; any other answer is read to its end. Returns the
/// status, the head and the body.
pub fn upgrade_head(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("tcp connect");
    stream.set_read_timeout(Some(DEADLINE)).ok();
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .expect("send the upgrade");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let (status, head_text, _) = parse_response(&head);
    let mut body = Vec::new();
    if status != 101 {
        let _ = stream.read_to_end(&mut body);
    }
    (
        status,
        head_text,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The next message that is not a presence broadcast (users coming online
/// are announced to every client allowed to see them).
pub fn next_but_presence(client: &mut Client, what: &str) -> Value {
    loop {
        let message = client.recv(what);
        if message["type"] != "user_presence" {
            return message;
        }
    }
}

/// The next message but presence, which must be of type `kind`.
pub fn expect_but_presence(client: &mut Client, kind: &str) -> Value {
    let message = next_but_presence(client, kind);
    assert_eq!(message["type"], kind, "expected {kind}, got {message}");
    message
}

/// A client whose socket takes little at a time (a small receive buffer),
/// so what the hub has for it stays in the hub until it reads.
pub fn narrow_client(hub: &TestHub, path: &str) -> Client {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&hub.addr.into()).expect("tcp connect");
    let stream: TcpStream = socket.into();
    let (mut ws, _) = tungstenite::client::client(format!("ws://{}{path}", hub.addr), stream)
        .unwrap_or_else(|e| panic!("upgrade: {e}"));
    let welcome = read_json(&mut ws, DEADLINE).expect("the welcome");
    assert_eq!(welcome["type"], "connection", "{welcome}");
    read_json(&mut ws, DEADLINE).expect("the auth message");
    Client { ws, welcome }
}

/// Reads what `client` is sent up to the answer to a ping of its own.
pub fn until_pong(client: &mut Client, correlation: &str) -> Vec<Value> {
    client.send(json!({"type": "ping", "correlationId": correlation}));
    let mut got = Vec::new();
    loop {
        let message = client.recv("the pong");
        if message["type"] == "pong" && message["correlationId"] == correlation {
            return got;
        }
        got.push(message);
    }
}

/// Publishes `tick`s with `data.n` from `from` up to `to` (excluded).
pub fn publish_n(hub: &TestHub, target: &Target, from: u64, to: u64) {
    for n in from..to {
        hub.handle()
            .publish(target.clone(), "tick", json!({ "n": n }))
            .expect("publish");
    }
}

/// Seconds since 1970, as JWTs count them.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// A loopback port nobody listens on, and the socket that keeps it so: bound
/// but not listening (a connection to it is refused), so no other test's
/// listener can take the port while the socket lives.
pub fn port_nobody_listens_on() -> (socket2::Socket, u16) {
    let bound =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    bound
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("a loopback port");
    let port = bound
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("an IPv4 address")
        .port();
    (bound, port)
}
