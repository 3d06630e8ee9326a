//! The examples run as a person would run them: `examples/agent` and
//! `examples/ide` on a free port for a few seconds, each played against by
//! a real WebSocket client until it stops by itself with status 0, and the
//! Python backend `examples/agent_service.py` playing the agent flow over a
//! service connection to an in-process hub.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, unbounded};
use serde_json::json;
use support::{Client, DEADLINE};
use wshub::Envelope;

/// How long each example runs before it stops by itself.
const RUN_SECONDS: u64 = 4;

/// An example's binary: cargo builds examples for `cargo test` into
/// `target/<profile>/examples`, next to this test's `deps` folder.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built: `cargo test` builds the examples (or run `cargo build --examples`)",
        path.display()
    );
    path
}

/// A program started by a test, its stdout read line by line. Killed if
/// the test ends before the program does.
struct Program {
    name: String,
    child: Child,
    lines: Receiver<String>,
}

impl Program {
    fn start(name: &str, mut command: Command) -> Program {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("start {name}: {err}"));
        let stdout = child.stdout.take().expect("a piped stdout");
        let (sender, lines) = unbounded();
        // Ends, dropping the sender, when the program closes its stdout.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Program {
            name: name.to_owned(),
            child,
            lines,
        }
    }

    /// The address of its `listening on ws://<addr>/ws` line.
    fn listening(&self) -> SocketAddr {
        loop {
            let line = self
                .lines
                .recv_timeout(DEADLINE)
                .unwrap_or_else(|err| panic!("{} printed no address: {err}", self.name));
            if let Some(url) = line.strip_prefix("listening on ws://") {
                let addr = url.strip_suffix("/ws").unwrap_or(url);
                return addr.parse().unwrap_or_else(|err| panic!("{line:?}: {err}"));
            }
        }
    }

    /// Waits, up to `within`, for the program to end by itself. Its stdout
    /// closes when it exits, so no polling is needed.
    fn wait_for_exit(mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            match self.lines.recv_deadline(deadline) {
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{} did not end within {within:?}", self.name)
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.child.wait().expect("wait for the program")
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs an example for [`RUN_SECONDS`] on a free port.
fn run_example(name: &str) -> (Program, SocketAddr) {
    let mut command = Command::new(example(name));
    command.args(["0", &RUN_SECONDS.to_string()]);
    let program = Program::start(name, command);
    let addr = program.listening();
    (program, addr)
}

/// The client sees the hub stop (1001) when the example's time is up, and
/// the example exits with 0.
fn expect_clean_end(program: Program, client: &mut Client) {
    let (code, reason) = client.expect_close();
    assert_eq!(
        (code, reason.as_str()),
        (1001, "Server shutting down"),
        "the example shuts its hub down"
    );
    client.finish_close();
    let status = program.wait_for_exit(Duration::from_secs(RUN_SECONDS) + DEADLINE);
    assert!(status.success(), "the example exited with {status}");
}

/// Reads the session's stream until `stream:complete` and the idle status
/// after it: the statuses in order, and the text the chunks spell.
fn read_stream(client: &mut Client) -> (Vec<String>, String) {
    let mut statuses = Vec::new();
    let mut text = String::new();
    let mut complete = false;
    // Bounded: a few statuses and one chunk per word of a short answer.
    for _ in 0..64 {
        let message = client.recv("the agent's stream");
        match message["type"].as_str() {
            Some("status:update") => {
                statuses.push(message["data"]["status"].as_str().unwrap().to_owned());
                if complete && statuses.last().map(String::as_str) == Some("idle") {
                    return (statuses, text);
                }
            }
            Some("stream:chunk") => {
                assert!(!complete, "a chunk after stream:complete: {message}");
                text.push_str(message["data"]["content"].as_str().unwrap());
            }
            Some("stream:complete") => complete = true,
            _ => panic!("unexpected in the stream: {message}"),
        }
    }
    panic!("the stream did not end: {statuses:?}, {text:?}");
}

#[test]
fn the_agent_example_starts_streams_and_cancels_for_a_session() {
    let (program, addr) = run_example("agent");
    let mut client = Client::connect(addr, "/ws?sessionId=s1");

    let started = client.request(
        json!({"type": "agent:start", "payload": {"projectId": "p1"}}),
        "r1",
    );
    assert_eq!(started["type"], "agent:started", "{started}");
    assert_eq!(started["data"], json!({"sessionId": "s1"}));

    client.send(json!({"type": "agent:message", "payload": {"content": "hello there"}}));
    let (statuses, text) = read_stream(&mut client);
    assert_eq!(statuses, ["thinking", "streaming", "idle"]);
    assert_eq!(text.trim_end(), "You said: hello there");

    let cancelled = client.request(json!({"type": "agent:cancel"}), "c1");
    assert_eq!(cancelled["type"], "agent:cancelled", "{cancelled}");
    assert_eq!(cancelled["data"], json!({"sessionId": "s1"}));
    let refused = client.request(json!({"type": "agent:fly"}), "x1");
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["data"]["code"], "unknown_type");

    expect_clean_end(program, &mut client);
}

#[test]
fn the_ide_example_sends_typed_channel_events_and_bus_broadcasts() {
    let (program, addr) = run_example("ide");
    let mut client = Client::connect(addr, "/ws");
    for channel in ["files", "git"] {
        let reply = client.request(json!({"type": "subscribe", "channel": channel}), channel);
        assert_eq!(reply["type"], "subscribed");
    }
    let (mut file, mut git, mut chat) = (None, None, None);
    // Bounded: a file event every 200 ms, a broadcast every 2 s.
    for _ in 0..200 {
        if file.is_some() && git.is_some() && chat.is_some() {
            break;
        }
        let message = client.recv("the IDE's events");
        match (message["type"].as_str(), message["channel"].as_str()) {
            (Some("event"), Some("files")) => file = Some(message),
            (Some("event"), Some("git")) => git = Some(message),
            (Some("messageReceived"), None) => chat = Some(message),
            _ => panic!("unexpected: {message}"),
        }
    }
    let file = file.expect("a files event")["data"].clone();
    assert!(
        file["file"].as_str().unwrap().starts_with("src/file"),
        "{file}"
    );
    assert_eq!(file["event"], "change");
    assert!(file["timestamp"].is_string(), "{file}");
    let git = git.expect("a git event")["data"].clone();
    assert_eq!(git["type"], "commit");
    assert!(
        git["message"].as_str().unwrap().starts_with("commit "),
        "{git}"
    );
    let chat = chat.expect("a messageReceived")["data"].clone();
    assert!(chat["id"].as_str().unwrap().starts_with("msg-"), "{chat}");
    assert_eq!(chat["content"], "Build is green");
    assert!(chat["timestamp"].is_string(), "{chat}");

    expect_clean_end(program, &mut client);
}

#[test]
#[ignore = "needs python3 with the websockets package; .ci/run installs it"]
fn the_python_agent_service_plays_the_agent_flow_over_a_service_connection() {
    let has_websockets = Command::new("python3")
        .args(["-c", "import websockets.sync.client"])
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        has_websockets,
        "python3 with the websockets package is needed (pip install websockets)"
    );
    const TOKEN: &str = "python-service-token";
    // Served as the drop-in recipe for these clients serves them: the
    // payload envelope by default, which the service opts out of.
    let hub = support::start(
        support::config()
            .admin_token(Some(TOKEN.into()))
            .envelope(Envelope::Payload),
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/agent_service.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(format!("ws://{}/ws", hub.addr))
        .env("WSHUB_ADMIN_TOKEN", TOKEN);
    let program = Program::start("agent_service.py", command);
    hub.wait_stats("the Python service to connect", |s| {
        s.service_connections == 1
    });

    let mut ws = Client::open(hub.addr, "/ws").expect("the client connects");
    let welcome = support::read_json(&mut ws, DEADLINE).expect("a welcome");
    assert_eq!(welcome["type"], "connection:established", "{welcome}");
    let id = welcome["payload"]["clientId"].clone();
    assert!(id.is_string(), "{welcome}");
    let mut client = Client { ws, welcome };
    let started = client.request(
        json!({"type": "agent:start", "payload": {"projectId": "p1"}}),
        "r1",
    );
    assert_eq!(started["type"], "agent:started", "{started}");
    assert_eq!(started["payload"], json!({"sessionId": id}));

    client.send(json!({"type": "agent:message", "payload": {"content": "hello there"}}));
    let mut words = Vec::new();
    loop {
        let message = client.recv("the stream");
        assert!(message["correlationId"].is_null(), "{message}");
        match message["type"].as_str() {
            Some("stream:chunk") => {
                words.push(message["payload"]["content"].as_str().unwrap().to_owned());
            }
            Some("stream:complete") => break,
            _ => panic!("unexpected in the stream: {message}"),
        }
        assert!(words.len() <= 2, "more chunks than words: {words:?}");
    }
    assert_eq!(words, ["hello ", "there "]);

    let cancelled = client.request(json!({"type": "agent:cancel"}), "c1");
    assert_eq!(cancelled["type"], "agent:cancelled", "{cancelled}");
    assert_eq!(cancelled["payload"]["sessionId"], id, "{cancelled}");
    let unknown = client.request(json!({"type": "agent:other"}), "u1");
    assert_eq!(unknown["type"], "error", "{unknown}");
    assert_eq!(
        unknown["payload"]["message"],
        "Unknown message type: agent:other"
    );
    client.expect_nothing_pending();

    // The backend runs until the hub closes its connection.
    let server = hub.server;
    let stopping = thread::spawn(move || server.shutdown());
    assert_eq!(client.expect_close().0, 1001);
    client.finish_close();
    let status = program.wait_for_exit(DEADLINE);
    assert!(status.success(), "agent_service.py exited with {status}");
    stopping
        .join()
        .expect("the shutdown thread")
        .expect("the hub stops");
}
