//! The hub under pressure: liveness never waits behind work,
//! shutdown never waits behind a backlog, refused connections hold no
//! threads, the router's inbox is bounded in bytes, and replies to requests
//! sent together with a client's Close all arrive before the hub's Close.

mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded, unbounded};
use serde_json::{Value, json};
use socket2::{Domain, Socket, Type};
use support::{Client, DEADLINE, start};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::{Message, WebSocket};
use wshub::{Config, Filter, Target};

/// The tests that load both cores run one at a time, so that none of them
/// is starved by another.
static HEAVY: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sets `stop` when dropped, so that helper threads end even if the test
/// fails.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

// ---------------------------------------------------------------------------
// Frames and handshakes by hand, for exact control of the bytes on the wire.

/// A client frame as every client sends it: masked.
fn masked(mut frame: Frame) -> Vec<u8> {
    frame.header_mut().mask = Some([0x5a, 0x13, 0xc7, 0x81]);
    let mut bytes = Vec::with_capacity(frame.len());
    frame
        .format(&mut bytes)
        .expect("a frame formats into a Vec");
    bytes
}

fn text_frame(text: &str) -> Vec<u8> {
    masked(Frame::message(
        text.to_owned(),
        OpCode::Data(Data::Text),
        true,
    ))
}

fn close_frame(code: u16) -> Vec<u8> {
    masked(Frame::close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: "".into(),
    })))
}

/// Connects a socket bound to `local` (another loopback address, so the hub
/// sees another client address) to the hub.
fn connect_from(local: &str, hub: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    let local: SocketAddr = local.parse().expect("a local address");
    socket
        .bind(&local.into())
        .unwrap_or_else(|err| panic!("bind to {local}: {err}"));
    socket
        .connect(&hub.into())
        .unwrap_or_else(|err| panic!("connect from {local}: {err}"));
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true).ok();
    stream
}

/// A tungstenite handshake on `stream`; the error says what the hub answered.
fn handshake(
    stream: TcpStream,
    hub: SocketAddr,
    path: &str,
) -> Result<WebSocket<TcpStream>, String> {
    stream.set_read_timeout(Some(DEADLINE)).ok();
    tungstenite::client::client(format!("ws://{hub}{path}"), stream)
        .map(|(ws, _)| ws)
        .map_err(|err| match err {
            tungstenite::HandshakeError::Failure(err) => err.to_string(),
            tungstenite::HandshakeError::Interrupted(_) => "handshake interrupted".to_owned(),
        })
}

/// A WebSocket upgrade by hand on `stream`: on a 101, the bytes that came
/// after the response head; otherwise the status line and body.
fn raw_upgrade(stream: &mut TcpStream, hub: SocketAddr, path: &str) -> Result<Vec<u8>, String> {
    stream.set_read_timeout(Some(DEADLINE)).ok();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {hub}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|err| format!("sending the upgrade: {err}"))?;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(format!(
                    "connection closed during the upgrade after {:?}",
                    String::from_utf8_lossy(&received)
                ));
            }
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(err) => return Err(format!("no answer to the upgrade: {err}")),
        }
    };
    let rest = received.split_off(end);
    let head = String::from_utf8_lossy(&received);
    match head.starts_with("HTTP/1.1 101") {
        true => Ok(rest),
        false => Err(format!(
            "{} {}",
            head.lines().next().unwrap_or_default(),
            String::from_utf8_lossy(&rest)
        )),
    }
}

/// Reads until the hub's Close: its code, or how the connection ended
/// without one.
fn close_code_of(ws: &mut WebSocket<TcpStream>) -> Result<(u16, String), String> {
    ws.get_mut().set_read_timeout(Some(DEADLINE)).ok();
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => {
                return Ok((u16::from(frame.code), frame.reason.to_string()));
            }
            Ok(Message::Close(None)) => return Ok((1005, String::new())),
            Ok(_) => {}
            Err(tungstenite::Error::Io(err))
                if matches!(
                    err.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                return Err(format!("no Close frame within {DEADLINE:?}"));
            }
            Err(err) => return Err(format!("ended without a Close frame (1006): {err}")),
        }
    }
}

// ---------------------------------------------------------------------------
// Blocking the router from the library: a filter runs on the router thread.

/// Blocks the router thread inside a filtered publish until the returned
/// sender is dropped (or a minute passes). Returns once the router is
/// blocked; the hub needs at least one client for the filter to run.
fn block_router(handle: &wshub::Handle) -> (crossbeam_channel::Sender<()>, thread::JoinHandle<()>) {
    let (release, gate) = bounded::<()>(0);
    let (entered, blocked) = bounded::<()>(1);
    let filter = Filter::new(move |_client| {
        let _ = entered.try_send(());
        // Returns at once when the sender is gone: every later call too.
        let _ = gate.recv_timeout(Duration::from_secs(60));
        false
    });
    let handle = handle.clone();
    let publisher = thread::spawn(move || {
        handle
            .publish(Target::Filter(filter), "gate", json!({}))
            .expect("the gated publish is answered");
    });
    blocked
        .recv_timeout(DEADLINE)
        .expect("the router runs the gate filter");
    (release, publisher)
}

// ---------------------------------------------------------------------------
// 1. Liveness waits behind work.

/// Frames from the hub (never masked), parsed as the bytes arrive.
#[derive(Default)]
struct Frames {
    bytes: Vec<u8>,
    at: usize,
}

impl Frames {
    fn feed(&mut self, bytes: &[u8]) {
        if self.at == self.bytes.len() {
            self.bytes.clear();
            self.at = 0;
        } else if self.at > 1 << 16 {
            self.bytes.drain(..self.at);
            self.at = 0;
        }
        self.bytes.extend_from_slice(bytes);
    }

    /// The next whole frame: its opcode and payload.
    fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        let b = &self.bytes[self.at..];
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[1] & 0x80, 0, "the hub sent a masked frame");
        let (len, header) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return None,
            n => (usize::from(n), 2),
        };
        if b.len() < header + len {
            return None;
        }
        let frame = (b[0] & 0x0f, b[header..header + len].to_vec());
        self.at += header + len;
        Some(frame)
    }
}

/// What one raw client of the liveness test went through.
#[derive(Debug, Default)]
struct Seen {
    pings: u64,
    presences: u64,
    /// How the connection ended, if it did before the test stopped it.
    end: Option<String>,
}

/// What raw clients tell the test as they go.
enum Note {
    Welcomed,
    BurstSent,
    /// The flood is over for this client (or its connection is).
    Settled,
    Failed(String),
}

/// One client on its own thread, over a raw socket: answers every Ping at
/// once, counts `user_presence` messages, sends `burst` once `go` is set.
/// It is settled once it has seen the whole flood (`flood` presence
/// messages) and then `after` more Pings, or `after` Pings in a row with no
/// presence message once the flood has begun, or when its connection ends.
struct Live {
    hub: SocketAddr,
    path: String,
    burst: Vec<u8>,
    flood: u64,
    after: u64,
    go: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    notes: Sender<Note>,
}

impl Live {
    fn run(mut self) -> Seen {
        let mut seen = Seen::default();
        let mut stream = match TcpStream::connect(self.hub) {
            Ok(stream) => stream,
            Err(err) => {
                let _ = self.notes.send(Note::Failed(format!("connect: {err}")));
                return seen;
            }
        };
        stream.set_nodelay(true).ok();
        let mut frames = Frames::default();
        match raw_upgrade(&mut stream, self.hub, &self.path) {
            Ok(rest) => frames.feed(&rest),
            Err(err) => {
                let _ = self.notes.send(Note::Failed(err));
                return seen;
            }
        }
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut welcomed = false;
        let mut settled = false;
        let mut quiet_pings = 0;
        let mut pings_after_flood = 0;
        let mut chunk = vec![0u8; 64 * 1024];
        'run: while !self.stop.load(Ordering::Acquire) {
            while let Some((opcode, payload)) = frames.next() {
                match opcode {
                    0x1 if !welcomed => {
                        welcomed = true;
                        let _ = self.notes.send(Note::Welcomed);
                    }
                    0x1 if payload.starts_with(br#"{"type":"user_presence""#) => {
                        seen.presences += 1;
                        quiet_pings = 0;
                    }
                    0x9 => {
                        seen.pings += 1;
                        quiet_pings += 1;
                        if seen.presences >= self.flood {
                            pings_after_flood += 1;
                        }
                        if let Err(err) = stream.write_all(&masked(Frame::pong(payload))) {
                            seen.end = Some(format!("the Pong could not be sent: {err}"));
                            break 'run;
                        }
                    }
                    0x8 => {
                        let code = payload
                            .get(..2)
                            .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                        let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                        seen.end = Some(format!("closed by the hub with {code} {reason}"));
                        break 'run;
                    }
                    _ => {}
                }
            }
            let flooding = seen.presences > 0;
            if !settled
                && (pings_after_flood >= self.after || (flooding && quiet_pings >= self.after))
            {
                settled = true;
                let _ = self.notes.send(Note::Settled);
            }
            if !self.burst.is_empty() && self.go.load(Ordering::Acquire) {
                if let Err(err) = stream.write_all(&self.burst) {
                    seen.end = Some(format!("the burst could not be sent: {err}"));
                    break;
                }
                self.burst.clear();
                let _ = self.notes.send(Note::BurstSent);
            }
            match stream.read(&mut chunk) {
                Ok(0) => {
                    seen.end = Some("cut by the hub: EOF without a Close frame".to_owned());
                    break;
                }
                Ok(n) => frames.feed(&chunk[..n]),
                Err(err)
                    if matches!(
                        err.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    seen.end = Some(format!("cut by the hub: {err}"));
                    break;
                }
            }
        }
        if !settled {
            let _ = self.notes.send(Note::Settled);
        }
        seen
    }
}

/// Waits for `count` notes that `pick` accepts, until `deadline`; returns
/// how many came. A client that could not connect fails the test.
fn wait_notes(
    notes: &crossbeam_channel::Receiver<Note>,
    count: usize,
    pick: fn(&Note) -> bool,
    deadline: Instant,
) -> usize {
    let mut got = 0;
    while got < count {
        match notes.recv_deadline(deadline) {
            Ok(Note::Failed(err)) => panic!("a client could not connect: {err}"),
            Ok(note) if pick(&note) => got += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    got
}

#[test]
fn healthy_clients_survive_a_presence_flood() {
    let _serial = one_at_a_time();
    // Tuned on a 2-core machine: a router that queues Pongs behind its
    // events (as before the lanes and the writer pool) takes about twice the client
    // timeout to work through this flood, and cuts every client. The
    // timeout leaves room for a busy machine's scheduling: 540 threads
    // here, beside whatever else runs, answer each Ping within about half
    // a second; a timeout of one second (and half the flood) was not enough.
    const HEALTHY: usize = 250;
    const FLOODERS: usize = 20;
    const BURST: usize = 40;
    let hub = start(
        support::config()
            .heartbeat_interval(Duration::from_millis(200))
            .client_timeout(Duration::from_secs(2))
            .presence_grace(Duration::ZERO)
            // Every client handshakes at once.
            .max_handshakes(1024),
    );
    let go = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(Arc::clone(&stop));
    let (notes_tx, notes) = unbounded();
    // One user's connections, each well inside the rate limit (a burst of
    // 100), alternating statuses so that every update is news.
    let statuses = ["away", "busy", "online"];
    let burst: Vec<u8> = (0..BURST)
        .flat_map(|i| {
            text_frame(&json!({"type": "user_presence", "data": statuses[i % 3]}).to_string())
        })
        .collect();
    let spawn = |path: &str, burst: Vec<u8>| {
        let live = Live {
            hub: hub.addr,
            path: path.to_owned(),
            burst,
            flood: (FLOODERS * BURST) as u64,
            // Twenty Pings: two client timeouts.
            after: 20,
            go: Arc::clone(&go),
            stop: Arc::clone(&stop),
            notes: notes_tx.clone(),
        };
        thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || live.run())
            .expect("a client thread")
    };
    let healthy: Vec<_> = (0..HEALTHY).map(|_| spawn("/ws", Vec::new())).collect();
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| spawn("/ws?userId=flooder", burst.clone()))
        .collect();
    let clients = HEALTHY + FLOODERS;
    let welcomed = wait_notes(
        &notes,
        clients,
        |n| matches!(n, Note::Welcomed),
        Instant::now() + DEADLINE,
    );
    assert_eq!(welcomed, clients, "every client gets its welcome");
    go.store(true, Ordering::Release);
    let sent = wait_notes(
        &notes,
        FLOODERS,
        |n| matches!(n, Note::BurstSent),
        Instant::now() + DEADLINE,
    );
    assert_eq!(sent, FLOODERS, "every flooding connection sends its burst");
    let settled = wait_notes(
        &notes,
        clients,
        |n| matches!(n, Note::Settled),
        Instant::now() + 3 * DEADLINE,
    );
    let stats = hub.handle().stats().expect("stats");
    stop.store(true, Ordering::Release);
    let healthy: Vec<Seen> = healthy.into_iter().map(|t| t.join().unwrap()).collect();
    let flooders: Vec<Seen> = flooders.into_iter().map(|t| t.join().unwrap()).collect();
    let cut: Vec<&Seen> = healthy.iter().filter(|s| s.end.is_some()).collect();
    assert!(
        stats.stale_clients == 0 && cut.is_empty(),
        "{} clients were terminated as silent although each answered every Ping at once: \
         {} of {HEALTHY} healthy clients lost their connection (the first: {}, after {} Pings \
         and {} of the {} presence updates) and {} of the {FLOODERS} flooding ones: liveness \
         waited behind the presence flood (today their Pongs queue in the router's inbox)",
        stats.stale_clients,
        cut.len(),
        cut.first().and_then(|s| s.end.as_deref()).unwrap_or("none"),
        cut.first().map_or(0, |s| s.pings),
        cut.first().map_or(0, |s| s.presences),
        FLOODERS * BURST,
        flooders.iter().filter(|s| s.end.is_some()).count(),
    );
    let missed = healthy.iter().filter(|s| s.presences == 0).count();
    assert_eq!(
        (settled, missed),
        (clients, 0),
        "the flood reaches every healthy client, which then keeps getting Pings"
    );
}

// ---------------------------------------------------------------------------
// 2. Shutdown waits behind a backlog.

/// The real binary, with its log drained (so it never blocks on stderr).
struct Binary {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Binary {
    fn start(args: &[&str]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wshub"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().unwrap();
        let (lines_tx, lines) = unbounded();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + DEADLINE;
        let addr = loop {
            let line: String = lines
                .recv_deadline(deadline)
                .expect("the binary logs where it listens");
            if let Some(url) = line.split("ws://").nth(1) {
                break url.split('/').next().unwrap().parse().expect("an address");
            }
        };
        // Keep draining the log, and keep it for failure messages.
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&log);
        thread::spawn(move || {
            while let Ok(line) = lines.recv() {
                kept.lock().unwrap().push(line);
            }
        });
        Binary { child, addr, log }
    }

    fn log_has(&self, needle: &str) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains(needle))
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// The exit code, or `None` if it is still running after `DEADLINE`.
    fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clients subscribed to `channel` whose threads read and discard
/// everything in bulk until `stop` (or the connection's end).
fn drained_subscribers(
    addr: SocketAddr,
    count: usize,
    channel: &str,
    stop: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<()>> {
    (0..count)
        .map(|_| {
            let mut client = Client::connect(addr, "/ws");
            client.request(json!({"type": "subscribe", "channel": channel}), "s");
            let mut stream = client.ws.into_inner();
            stream
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let stop = Arc::clone(stop);
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut sink = vec![0u8; 64 * 1024];
                    while !stop.load(Ordering::Acquire) {
                        match stream.read(&mut sink) {
                            Ok(0) => return,
                            Ok(_) => {}
                            Err(err)
                                if matches!(
                                    err.kind(),
                                    ErrorKind::WouldBlock
                                        | ErrorKind::TimedOut
                                        | ErrorKind::Interrupted
                                ) => {}
                            Err(_) => return,
                        }
                    }
                })
                .unwrap()
        })
        .collect()
}

/// Clients that write small publishes to `channel` as fast as the hub takes
/// them, until `stop` or a write fails. Each says once on `stalled` when the
/// hub has stopped reading from it for a second.
fn publish_flooders(
    addr: SocketAddr,
    count: usize,
    channel: &str,
    stop: &Arc<AtomicBool>,
    stalled: &Sender<()>,
) -> Vec<thread::JoinHandle<()>> {
    let publish = text_frame(
        &json!({"type": "publish", "channel": channel, "data": {"pad": "z".repeat(100)}})
            .to_string(),
    );
    let chunk: Vec<u8> = publish.repeat(64 * 1024 / publish.len());
    (0..count)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.set_nodelay(true).ok();
            raw_upgrade(&mut stream, addr, "/ws").expect("a flooder connects");
            stream
                .set_write_timeout(Some(Duration::from_secs(1)))
                .unwrap();
            let (chunk, stop, stalled) = (chunk.clone(), Arc::clone(stop), stalled.clone());
            thread::spawn(move || {
                let mut told = false;
                let mut rest = &chunk[..];
                while !stop.load(Ordering::Acquire) {
                    match stream.write(rest) {
                        Ok(n) => {
                            rest = &rest[n..];
                            if rest.is_empty() {
                                rest = &chunk[..];
                            }
                        }
                        Err(err)
                            if matches!(
                                err.kind(),
                                ErrorKind::WouldBlock
                                    | ErrorKind::TimedOut
                                    | ErrorKind::Interrupted
                            ) =>
                        {
                            if !told {
                                told = true;
                                let _ = stalled.send(());
                            }
                        }
                        Err(err) if err.kind() == ErrorKind::Interrupted => {}
                        Err(_) => return,
                    }
                }
            })
        })
        .collect()
}

/// Waits for every observer's Close at once (each within `DEADLINE`).
fn closes_of(observers: Vec<Client>) -> Vec<Result<(u16, String), String>> {
    let waiting: Vec<_> = observers
        .into_iter()
        .map(|mut observer| thread::spawn(move || close_code_of(&mut observer.ws)))
        .collect();
    waiting.into_iter().map(|t| t.join().unwrap()).collect()
}

const SUBSCRIBERS: usize = 100;
const FLOODERS: usize = 4;
/// How long the flooders may run before the shutdown if the hub keeps up.
const FLOOD_AT_MOST: Duration = Duration::from_secs(3);
const OBSERVERS: usize = 5;

/// How many of `closes` are the 1001 of a shutdown.
fn going_away(closes: &[Result<(u16, String), String>]) -> usize {
    let good = Ok((1001, "Server shutting down".to_owned()));
    closes.iter().filter(|c| **c == good).count()
}

#[test]
fn sigterm_closes_quiet_clients_with_1001_despite_a_backlog() {
    let _serial = one_at_a_time();
    let mut hub = Binary::start(&[
        "--port",
        "0",
        "--allow-client-publish",
        "--rate-limit",
        "0",
        // Subscribers that fall behind are not closed: the backlog stays.
        "--max-queue",
        "10000000",
        "--max-queue-bytes",
        "4294967296",
    ]);
    let addr = hub.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(Arc::clone(&stop));
    let drains = drained_subscribers(addr, SUBSCRIBERS, "fan", &stop);
    let mut observers: Vec<Client> = (0..OBSERVERS)
        .map(|_| Client::connect(addr, "/ws"))
        .collect();
    for observer in &mut observers {
        observer.request(json!({"type": "ping"}), "ready");
    }
    let (stalled_tx, stalled) = unbounded();
    let flooders = publish_flooders(addr, FLOODERS, "fan", &stop, &stalled_tx);
    // Flood until the hub falls behind every flooder (its readers stop
    // reading them), or for FLOOD_AT_MOST: a hub that keeps up has no
    // backlog to hide a signal behind, which is fine too.
    let deadline = Instant::now() + FLOOD_AT_MOST;
    for _ in 0..FLOODERS {
        if stalled.recv_deadline(deadline).is_err() {
            break;
        }
    }

    hub.signal("TERM");
    let closes = closes_of(observers);
    let closed = going_away(&closes);
    assert!(
        closed == OBSERVERS,
        "{} of {OBSERVERS} quiet clients got no Close 1001 after SIGTERM while {FLOODERS} clients \
         flooded publishes to {SUBSCRIBERS} subscribers: the signal waited behind the backlog{}; \
         they got {closes:?}",
        OBSERVERS - closed,
        match (hub.log_has("SIGTERM received"), hub.log_has("with 1001")) {
            (true, false) => " (its log says SIGTERM was received, not that clients were closed)",
            _ => "",
        }
    );
    // The flood stops with the test's clients, so only the hub's own work
    // stands between it and its exit.
    stop.store(true, Ordering::Release);
    for thread in flooders.into_iter().chain(drains) {
        let _ = thread.join();
    }
    assert_eq!(hub.wait_exit(), Some(0), "the hub exits 0 after SIGTERM");
}

#[test]
fn shutdown_closes_quiet_clients_with_1001_despite_a_backlog() {
    let _serial = one_at_a_time();
    let hub = start(
        support::config()
            .allow_client_publish(true)
            .rate_limit(0)
            .max_queue(10_000_000)
            .max_queue_bytes(1 << 32),
    );
    let addr = hub.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(Arc::clone(&stop));
    let drains = drained_subscribers(addr, SUBSCRIBERS, "fan", &stop);
    let mut observers: Vec<Client> = (0..OBSERVERS)
        .map(|_| Client::connect(addr, "/ws"))
        .collect();
    for observer in &mut observers {
        observer.request(json!({"type": "ping"}), "ready");
    }
    // The backlog builds up for certain once the router is blocked. The
    // flooders connect first: a client's handshake completes with its
    // welcome, which the router sends.
    let (stalled_tx, stalled) = unbounded();
    let flooders = publish_flooders(addr, FLOODERS, "fan", &stop, &stalled_tx);
    let (release, publisher) = block_router(hub.handle());
    let deadline = Instant::now() + DEADLINE;
    for _ in 0..FLOODERS {
        stalled
            .recv_deadline(deadline)
            .expect("the blocked hub stops reading from the flooders");
    }
    // Asking to stop may wait for room in the router's inbox.
    let handle = hub.handle().clone();
    let asking = thread::spawn(move || handle.shutdown());
    drop(release);

    let closes = closes_of(observers);
    let closed = going_away(&closes);
    assert!(
        closed == OBSERVERS,
        "{} of {OBSERVERS} quiet clients got no Close 1001 after Handle::shutdown while {FLOODERS} \
         clients flooded publishes to {SUBSCRIBERS} subscribers: the shutdown waited behind the \
         backlog; they got {closes:?}",
        OBSERVERS - closed,
    );
    stop.store(true, Ordering::Release);
    for thread in flooders.into_iter().chain(drains) {
        let _ = thread.join();
    }
    asking.join().unwrap();
    let _ = publisher.join();
    let support::TestHub { server, .. } = hub;
    let (stopped_tx, stopped) = bounded(1);
    thread::spawn(move || {
        let _ = stopped_tx.send(server.join().map_err(|err| err.to_string()));
    });
    assert_eq!(
        stopped.recv_timeout(DEADLINE).ok(),
        Some(Ok(())),
        "the hub stops cleanly"
    );
}

// ---------------------------------------------------------------------------
// 3. Refused connections hold threads.

/// Counts equal outcomes: `3 x Ok("1013 ..."), 7 x Err("...")`.
fn tally(outcomes: &[Result<String, String>]) -> String {
    let mut counts: Vec<(&Result<String, String>, usize)> = Vec::new();
    for outcome in outcomes {
        match counts.iter_mut().find(|(o, _)| *o == outcome) {
            Some((_, n)) => *n += 1,
            None => counts.push((outcome, 1)),
        }
    }
    counts
        .iter()
        .map(|(o, n)| format!("{n} x {o:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Opens one accepted client on `hog_path`, then `REFUSED` more on the same
/// path that the hub refuses after the upgrade with `reason`; they read the
/// Close and never answer it. Then a client on `other_path` (from `other_from`)
/// must still get in.
fn refused_connections_leave_room_for_others(
    config: Config,
    hog_path: &str,
    reason: &str,
    other_from: &str,
    other_path: &str,
) {
    const REFUSED: usize = 10;
    let hub = start(config);
    let _accepted = hub.client(hog_path);
    // The threads a refused connection used (the one that served its
    // upgrade, the reader reserved for it) end a moment after its Close is
    // sent, and on a busy machine that moment can outlast the next attempt:
    // what must not happen is that they wait for the client's Close. So each
    // attempt starts once only the accepted client's reader is left.
    let only_the_reader = |what: &str| hub.wait_stats(what, |s| s.threads == 1);
    only_the_reader("the accepted client's handshake thread to end");
    let mut refused = Vec::new();
    let mut outcomes = Vec::new();
    for _ in 0..REFUSED {
        match Client::open(hub.addr, hog_path) {
            Ok(mut ws) => {
                // Reads the hub's Close, and never sends one back.
                outcomes.push(close_code_of(&mut ws).map(|(code, why)| format!("{code} {why}")));
                refused.push(ws);
            }
            Err(err) => outcomes.push(Err(err.to_string())),
        }
        only_the_reader(
            "a refused connection, waiting for a Close it never gets, to give its threads back",
        );
    }

    // Another client must get in.
    let stream = connect_from(&format!("{other_from}:0"), hub.addr);
    let mut other = handshake(stream, hub.addr, other_path).unwrap_or_else(|err| {
        let stats = hub.handle().stats().expect("stats");
        panic!(
            "a client from {other_from} on {other_path} was turned away ({err}): \
             {REFUSED} connections refused after the upgrade, waiting for a Close they never get, \
             held {} of the hub's {} threads; the refused attempts got {}",
            stats.threads,
            stats.thread_limit,
            tally(&outcomes)
        )
    });
    let welcome = support::read_json(&mut other, DEADLINE)
        .unwrap_or_else(|err| panic!("the other client got no welcome: {err}"));
    assert_eq!(welcome["type"], "connection", "{welcome}");

    let expected = format!("1013 {reason}");
    assert!(
        outcomes
            .iter()
            .all(|o| o.as_deref() == Ok(expected.as_str())),
        "every refused connection is closed with {expected:?}; they got {}",
        tally(&outcomes)
    );
    drop(refused);
}

#[test]
fn connections_refused_per_address_do_not_keep_other_addresses_out() {
    refused_connections_leave_room_for_others(
        support::config()
            .max_connections_per_ip(1)
            .trusted_proxies(Vec::new())
            .max_threads(Some(8))
            // Long enough that a refused client's wait outlasts the test.
            .close_timeout(Duration::from_secs(30)),
        "/ws",
        "Too many connections from this address",
        "127.0.0.2",
        "/ws",
    );
}

#[test]
fn connections_refused_per_user_do_not_keep_other_users_out() {
    refused_connections_leave_room_for_others(
        support::config()
            .max_connections_per_user(1)
            .max_threads(Some(8))
            .close_timeout(Duration::from_secs(30)),
        "/ws?userId=hog",
        "Too many connections for this user",
        "127.0.0.1",
        "/ws?userId=other",
    );
}

// ---------------------------------------------------------------------------
// 4. The router's inbox is bounded by count, not bytes.

#[test]
fn a_busy_router_takes_in_a_bounded_number_of_bytes() {
    let _serial = one_at_a_time();
    const MIB: usize = 1024 * 1024;
    const CAP: usize = 96 * MIB;
    const MOST: usize = 32 * MIB;
    let hub = start(support::config().allow_client_publish(true).rate_limit(0));
    let mut observer = hub.client("/ws");
    let mut flooder = TcpStream::connect(hub.addr).expect("tcp connect");
    flooder.set_nodelay(true).ok();
    raw_upgrade(&mut flooder, hub.addr, "/ws").expect("the flooder connects");
    let pad = "x".repeat(64 * 1024 - 200);
    let frame = text_frame(&json!({"type": "publish", "channel": "sink", "data": pad}).to_string());

    let (release, publisher) = block_router(hub.handle());
    // Write until a write makes no progress for a second (or the cap).
    flooder
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut accepted = 0usize;
    let mut stopped = None;
    'flood: while accepted < CAP {
        let mut rest = &frame[..];
        while !rest.is_empty() {
            match flooder.write(rest) {
                Ok(n) => {
                    accepted += n;
                    rest = &rest[n..];
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    stopped = Some(err);
                    break 'flood;
                }
            }
        }
    }
    let how = match &stopped {
        Some(err) => format!("then writes stopped: {err}"),
        None => format!("and was still reading at the {} MiB cap", CAP / MIB),
    };
    assert!(
        accepted < MOST,
        "while its router was busy the hub took in {} MiB of 64 KiB publishes from one client, {how}: \
         its inbox is bounded by message count, not bytes (expected under {} MiB: socket buffers \
         and a small share per connection)",
        accepted / MIB,
        MOST / MIB
    );

    drop(release);
    publisher.join().expect("the gated publish returns");
    drop(flooder);
    let reply = observer.request(json!({"type": "ping"}), "after-the-flood");
    assert_eq!(reply["type"], "pong", "{reply}");
}

// ---------------------------------------------------------------------------
// 5. Replies sent together with the client's Close are lost.

/// Sends, in one write (one TCP segment), requests that each get a reply
/// and then a Close 1000; every reply must come, once, before the hub's
/// Close, which echoes 1000. With `busy`, the router is held busy while the
/// hub reads the packet (until the hub sends something, or for a second),
/// which makes today's race certain.
fn replies_arrive_before_the_close(busy: bool) {
    let hub = start(support::config().allow_client_publish(true));
    let mut client = hub.client("/ws");
    let mut burst = Vec::new();
    // Every correlationId expected back, with the reply's type.
    let mut expected: Vec<(String, &str)> = Vec::new();
    let mut request = |value: Value, kind| {
        burst.extend(text_frame(&value.to_string()));
        expected.push((value["correlationId"].as_str().unwrap().to_owned(), kind));
    };
    for i in 0..30 {
        request(
            json!({"type": "ping", "correlationId": format!("p{i}")}),
            "pong",
        );
    }
    for i in 0..3 {
        request(
            json!({"type": "subscribe", "channel": "no spaces", "correlationId": format!("bad{i}")}),
            "error",
        );
        request(
            json!({"type": "nonsense", "correlationId": format!("unknown{i}")}),
            "error",
        );
    }
    for i in 0..5 {
        request(
            json!({"type": "publish", "channel": "echo", "data": i, "correlationId": format!("pub{i}")}),
            "published",
        );
    }
    // Errors without a correlationId: frames that are not JSON.
    const NOT_JSON: usize = 3;
    for _ in 0..NOT_JSON {
        burst.extend(text_frame("{not json"));
    }
    burst.extend(close_frame(1000));
    let held = busy;
    let mut busy = busy.then(|| block_router(hub.handle()));
    // One write, so it all arrives in one TCP segment.
    client
        .ws
        .get_mut()
        .write_all(&burst)
        .expect("send the burst");

    let mut replies: Vec<Value> = Vec::new();
    let close = loop {
        let wait = match busy {
            Some(_) => Duration::from_secs(1),
            None => DEADLINE,
        };
        client.ws.get_mut().set_read_timeout(Some(wait)).ok();
        match client.ws.read() {
            Ok(Message::Text(text)) => replies.push(serde_json::from_str(text.as_str()).unwrap()),
            Ok(Message::Close(frame)) => break Ok(frame.map_or(1005, |f| u16::from(f.code))),
            Ok(_) => {}
            Err(tungstenite::Error::Io(err))
                if busy.is_some()
                    && matches!(
                        err.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
            {
                // Nothing while the router is held: let it go.
                busy = None;
            }
            Err(err) => break Err(err.to_string()),
        }
    };
    if let Some((release, publisher)) = busy {
        drop(release);
        publisher.join().expect("the gated publish returns");
    }
    let mut lost = Vec::new();
    for (id, kind) in &expected {
        let got: Vec<&Value> = replies
            .iter()
            .filter(|r| r["correlationId"] == id.as_str())
            .collect();
        match got.as_slice() {
            [] => lost.push(id.as_str()),
            [reply] => assert_eq!(reply["type"], *kind, "reply to {id}: {reply}"),
            more => panic!("{} replies to {id}: {more:?}", more.len()),
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} replies to requests sent in the same packet as the client's Close were lost{}: \
         {lost:?}; the hub ended with {}",
        lost.len(),
        expected.len(),
        if held {
            " (the router held busy meanwhile)"
        } else {
            ""
        },
        match &close {
            Ok(code) => format!("its Close {code} first"),
            Err(err) => format!("no Close: {err}"),
        }
    );
    // The greeting's `auth` is not a reply.
    let uncorrelated: Vec<&Value> = replies
        .iter()
        .filter(|r| r.get("correlationId").is_none() && r["type"] != "auth")
        .collect();
    assert_eq!(
        uncorrelated.len(),
        NOT_JSON,
        "one invalid_json error per frame that is not JSON, before the Close: {uncorrelated:?}"
    );
    assert!(
        uncorrelated
            .iter()
            .all(|r| r["type"] == "error" && r["data"]["code"] == "invalid_json"),
        "{uncorrelated:?}"
    );
    assert_eq!(close, Ok(1000), "the hub's Close echoes the client's 1000");
}

#[test]
fn replies_to_requests_sent_with_the_close_all_arrive_before_the_hubs_close() {
    replies_arrive_before_the_close(false);
}

#[test]
fn replies_to_requests_sent_with_the_close_arrive_even_while_the_router_is_busy() {
    replies_arrive_before_the_close(true);
}

// ---------------------------------------------------------------------------
// 6. The default rate limit closes busy interactive clients for good.

/// The issue as a user met it: under the defaults, a client sending 20
/// messages a second (an IDE panel, a chat tab) got `rate_limited` at the
/// 101st and close 1008 at the 201st, which clients take as "stop". Now a
/// client at 20 a second for 30 seconds is never refused, let alone closed.
/// It runs for 30 s beside this file's other tests, which take as long.
#[test]
fn an_interactive_client_at_20_messages_a_second_for_30_seconds_is_never_limited() {
    const RATE: u32 = 20;
    const SECONDS: u32 = 30;
    let hub = start(support::config().allow_client_publish(true));
    let mut tab = hub.client("/ws?userId=typist");
    tab.request(json!({"type": "subscribe", "channel": "chat"}), "join");
    let start = Instant::now();
    for i in 0..RATE * SECONDS {
        // Pacing (a message every 50 ms, as a typist's tab sends them), not
        // synchronisation: each message waits for its own answer.
        let due = start + Duration::from_millis(u64::from(i) * 1000 / u64::from(RATE));
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let message = match i % 2 {
            0 => json!({"type": "ping"}),
            _ => json!({"type": "publish", "channel": "chat", "event": "typing", "data": {"i": i}}),
        };
        let reply = tab.request(message, &format!("m{i}"));
        assert_ne!(
            reply["data"]["code"],
            "rate_limited",
            "message {i} of {} at {RATE}/s was refused: {reply}",
            RATE * SECONDS
        );
        assert!(
            matches!(reply["type"].as_str(), Some("pong" | "published")),
            "message {i}: {reply}"
        );
    }
    let stats = hub.handle().stats().unwrap();
    assert_eq!(stats.rate_limited, 0);
    assert_eq!(stats.active_connections, 1);
}
