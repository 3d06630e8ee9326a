//! The five systems wshub replaces, each with its own client code: the
//! client code of each system's documentation (`tests/seeds/*.js`, its
//! message handling verbatim) runs under node against the real binary,
//! started as the README's "Drop-in for existing clients" says; the test
//! publishes what that system's server sent (over HTTP, or as its agent
//! service over a service connection) and checks what the client's own
//! handlers got. Then one hub serving all five at once, and one publication
//! reaching the clients of all three envelopes.
//!
//! Needs node and the npm `ws` package (`npm install` in tests/seeds), so
//! plain `cargo test` lists these as ignored; `.ci/run` installs both and
//! runs `cargo test --test seeds -- --ignored`.

mod support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

const BIN: &str = env!("CARGO_BIN_EXE_wshub");

/// The backend's admin token, in the recipes that have one.
const ADMIN: &str = "seed-admin-token";

/// How long a hub may take to start, and a node script to get ready or
/// to finish (each script gives up by itself after `SCRIPT_DEADLINE`).
const DEADLINE: Duration = Duration::from_secs(15);
const SCRIPT_DEADLINE: Duration = Duration::from_secs(12);

// The README's recipes ("Drop-in for existing clients"), run with `--port 0`
// in place of the port the clients were written for.

/// Cursor Chat Agent; the tests add `--heartbeat-interval 0.5` so a
/// heartbeat comes within the test.
const CURSOR_CHAT_AGENT: &[&str] = &["--batch-type", "batchUpdate", "--json-heartbeat"];
/// Code Cloud Agents, after `--tokens FILE`.
const CODE_CLOUD_AGENTS: &[&str] = &["--allow-anonymous", "--admin-token", ADMIN];
/// Cluso Server: nothing to configure.
const CLUSO: &[&str] = &[];
/// The agent service's clients (the service connects with the admin token).
const AGENT_SERVICE: &[&str] = &["--envelope", "payload", "--admin-token", ADMIN];
/// AI Canvas Platform.
const AI_CANVAS: &[&str] = &["--envelope", "flat"];
/// All five on one hub.
const ALL_FIVE: &[&str] = &[
    "--endpoint",
    "/agent=payload",
    "--endpoint",
    "/canvas=flat",
    "--batch-type",
    "batchUpdate",
    "--json-heartbeat",
    "--admin-token",
    ADMIN,
];
/// Where the agent service's backend connects: a service connection that
/// reads `client_message` in the standard envelope, as docs/embedding.md shows.
const SERVICE_PATH: &str = "/ws?token=seed-admin-token&envelope=standard";

/// The Code Cloud Agents tokens file: the documentation's tokens, and who
/// each one is.
fn code_cloud_users() -> Value {
    json!({"your-token-here": "user_abc123", "your-token": "user-123", "test-token": "user-test"})
}

// ---------------------------------------------------------------------------
// The hub, the node scripts and the agent service.

/// The `wshub` binary, started with `--port 0`; its log is kept.
struct Hub {
    child: Child,
    addr: SocketAddr,
    admin: Option<String>,
    log: Arc<Mutex<Vec<String>>>,
    files: Vec<PathBuf>,
}

impl Hub {
    fn start(args: &[&str]) -> Hub {
        Hub::start_with_files(args, Vec::new())
    }

    /// Starts the hub; `files` are removed when it is dropped.
    fn start_with_files(args: &[&str], files: Vec<PathBuf>) -> Hub {
        let mut child = Command::new(BIN)
            .args(["--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the wshub binary starts");
        let (tx, lines) = unbounded();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let kept = log.clone();
        // Keep draining the pipe so the hub never blocks on logging.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + DEADLINE;
        let addr = loop {
            let line = lines.recv_deadline(deadline).unwrap_or_else(|_| {
                panic!(
                    "wshub {args:?} did not say where it listens; its log: {:#?}",
                    log.lock().unwrap()
                )
            });
            if let Some(url) = line.split("listening on ws://").nth(1) {
                let addr = url.split('/').next().unwrap();
                break addr.parse().expect("an address in the start line");
            }
        };
        let admin = args
            .windows(2)
            .find(|pair| pair[0] == "--admin-token")
            .map(|pair| pair[1].to_owned());
        Hub {
            child,
            addr,
            admin,
            log,
            files,
        }
    }

    /// Where the clients' URLs point instead of `ws://localhost:3000`.
    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// One HTTP request, with the admin token if the hub has one.
    fn http(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let auth = match &self.admin {
            Some(token) => format!("Authorization: Bearer {token}\r\n"),
            None => String::new(),
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let (status, _, text) = support::http_raw(self.addr, request.as_bytes());
        let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, answer)
    }

    /// `POST /api/publish`, as the system's backend does; returns how many
    /// clients it reached.
    fn publish(&self, body: Value) -> u64 {
        let (status, answer) = self.http("POST", "/api/publish", &body.to_string());
        assert_eq!(status, 200, "publish {body}: {answer}");
        assert_eq!(answer["success"], true, "publish {body}: {answer}");
        answer["data"]["delivered"]
            .as_u64()
            .unwrap_or_else(|| panic!("publish {body}: no delivered count in {answer}"))
    }

    /// Tells the script tagged `run` that everything was published.
    fn done(&self, run: &str) {
        self.publish(json!({"broadcast": true, "type": "harness:done", "data": {"run": run}}));
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("the hub's log:\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// `tests/seeds`, with its `node_modules/ws` installed.
fn seeds_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/seeds");
    assert!(
        dir.join("node_modules/ws/package.json").exists(),
        "{} is missing: run npm install in tests/seeds",
        dir.join("node_modules/ws").display()
    );
    dir
}

/// A client script under node: `READY` and `RESULT {json}` on its stdout,
/// its console on stderr (kept for failure messages).
struct Node {
    script: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Node {
    fn start(script: &str, mut config: Value) -> Node {
        let dir = seeds_dir();
        if config.get("deadlineMs").is_none() {
            config["deadlineMs"] = json!(SCRIPT_DEADLINE.as_millis() as u64);
        }
        let mut child = Command::new("node")
            .arg(dir.join(script))
            .arg(config.to_string())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("node {script}: {err} (is node installed?)"));
        let (tx, lines) = unbounded();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let kept = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        Node {
            script: script.to_owned(),
            child,
            lines,
            stderr,
        }
    }

    /// The next line on stdout starting with `prefix`.
    fn line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.lines.recv_deadline(deadline) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "{}: no {prefix:?} line within {DEADLINE:?}; its console:\n{}",
                    self.script,
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// Waits until the script's clients are connected (and subscribed).
    fn ready(&self) {
        if let Err(result) = self.ready_or_gave_up() {
            panic!(
                "{} gave up before it was ready: {result:#}\nits console:\n{}",
                self.script,
                self.stderr.lock().unwrap()
            );
        }
    }

    /// `READY`, or what the script had when it gave up (its deadline).
    fn ready_or_gave_up(&self) -> Result<(), Value> {
        let line = self.line("");
        match line.strip_prefix("RESULT ") {
            None if line == "READY" => Ok(()),
            None => self.ready_or_gave_up(),
            Some(result) => Err(serde_json::from_str(result).unwrap_or(Value::String(line))),
        }
    }

    /// What the handlers got, once the script has seen its `harness:done`.
    fn result(&self) -> Value {
        let line = self.line("RESULT ");
        let result: Value = serde_json::from_str(&line["RESULT ".len()..])
            .unwrap_or_else(|err| panic!("{}: bad RESULT line: {err}: {line}", self.script));
        assert!(
            result.get("error").is_none(),
            "{} failed: {result:#}\nits console:\n{}",
            self.script,
            self.stderr.lock().unwrap()
        );
        result
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the handler `name` got, in order (nothing: empty).
fn got<'a>(result: &'a Value, name: &str) -> &'a [Value] {
    result["got"][name].as_array().map_or(&[], Vec::as_slice)
}

/// Every socket the script opened whose URL contains `part`, with what it
/// received.
fn sockets<'a>(result: &'a Value, part: &str) -> Vec<&'a Value> {
    let all = result["sockets"].as_array().expect("the script's sockets");
    let found: Vec<&Value> = all
        .iter()
        .filter(|s| s["url"].as_str().unwrap().contains(part))
        .collect();
    assert!(!found.is_empty(), "no socket with {part:?} in {result:#}");
    found
}

/// What the one socket whose URL contains `part` received.
fn seen<'a>(result: &'a Value, part: &str) -> &'a [Value] {
    let found = sockets(result, part);
    assert_eq!(found.len(), 1, "one socket with {part:?}");
    found[0]["seen"].as_array().unwrap()
}

/// The first message of type `kind` among `messages`.
fn first<'a>(messages: &'a [Value], kind: &str) -> &'a Value {
    messages
        .iter()
        .find(|m| m["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} among {messages:#?}"))
}

/// No socket of the script got an error.
fn no_errors(result: &Value) {
    for socket in result["sockets"].as_array().unwrap() {
        let errors: Vec<&Value> = socket["seen"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["type"] == "error")
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", socket["url"]);
    }
}

/// Whether the console got exactly `line` (its arguments) at some point.
fn logged(result: &Value, stream: &str, line: Value) -> bool {
    got(result, stream).contains(&line)
}

/// The agent service of the agent-service clients, as a backend over a
/// service connection: it plays the handler's `_handleMessage` and the
/// agent service behind it.
struct AgentService {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Served>>,
}

/// What the service saw, once stopped.
#[derive(Debug, Default)]
struct Served {
    /// The `data` of every `client_message`.
    requests: Vec<Value>,
    /// Errors the hub sent the service.
    errors: Vec<Value>,
    /// How its connection ended, if the hub ended it.
    ended: Option<String>,
}

impl AgentService {
    fn start(hub: &Hub) -> AgentService {
        let mut ws = support::Client::open(hub.addr, SERVICE_PATH)
            .unwrap_or_else(|err| panic!("the service connects: {err}"));
        // Once welcomed, it is a service connection: requests come to it.
        let welcome = next(&mut ws, DEADLINE).expect("the service's welcome");
        assert_eq!(welcome["type"], "connection", "{welcome}");
        let auth = next(&mut ws, DEADLINE).expect("the service's auth");
        assert_eq!(auth["data"]["success"], true, "{auth}");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || serve(ws, &flag));
        AgentService {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Served {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("the service ran")
    }
}

impl Drop for AgentService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The next JSON message within `wait` (an error says why there was none).
fn next(ws: &mut WebSocket<TcpStream>, wait: Duration) -> Result<Value, String> {
    support::read_json(ws, wait)
}

fn serve(mut ws: WebSocket<TcpStream>, stop: &AtomicBool) -> Served {
    let mut served = Served::default();
    let end = Instant::now() + DEADLINE * 2;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        let event = match next(&mut ws, Duration::from_millis(50)) {
            Ok(event) => event,
            Err(err) if err.starts_with("nothing within") => continue,
            Err(err) => {
                served.ended = Some(err);
                break;
            }
        };
        if event["type"] == "error" {
            served.errors.push(event);
            continue;
        }
        if event["type"] != "client_message" {
            continue;
        }
        served.requests.push(event["data"].clone());
        let client = event["data"]["clientId"].as_str().unwrap().to_owned();
        let request = &event["data"]["message"];
        let correlation = request.get("correlationId");
        let session = json!({"sessionId": client});
        let send = |kind: &str, payload: Value, correlation: Option<&Value>| {
            let mut message = json!({"type": kind, "payload": payload});
            if let Some(id) = correlation {
                message["correlationId"] = id.clone();
            }
            json!({"type": "send", "clientId": client, "message": message})
        };
        let answers = match request["type"].as_str().unwrap_or_default() {
            "agent:start" => vec![send("agent:started", session, correlation)],
            "agent:message" => {
                let status = json!({"sessionId": client, "status": "thinking"});
                let mut answers = vec![json!({"type": "publish", "clientId": client,
                                              "event": "status:update", "data": status})];
                let content = request["payload"]["content"].as_str().unwrap_or_default();
                for word in content.split_whitespace() {
                    let chunk = json!({"sessionId": client, "content": format!("{word} ")});
                    answers.push(send("stream:chunk", chunk, None));
                }
                answers.push(send("stream:complete", session, None));
                answers
            }
            "agent:cancel" => vec![send("agent:cancelled", session, correlation)],
            other => vec![send(
                "error",
                json!({"message": format!("Unknown message type: {other}")}),
                correlation,
            )],
        };
        for answer in answers {
            if let Err(err) = ws.send(Message::text(answer.to_string())) {
                served.ended = Some(format!("send failed: {err}"));
                return served;
            }
        }
    }
    served
}

// ---------------------------------------------------------------------------
// Each system: what its server sends, and what its client's handlers must get.

/// The Cursor Chat Agent's events: type, the handler that gets them, data.
fn cursor_events() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "messageReceived",
            "displayMessage",
            json!({"id": "msg-123", "content": "Hello, Cursor!", "timestamp": "2024-01-01T12:00:00.000Z", "type": "user"}),
        ),
        (
            "ideStatusChanged",
            "updateIDEStatus",
            json!({"port": 9222, "status": "active", "workspacePath": "/path/to/workspace"}),
        ),
        (
            "connectionStatus",
            "updateConnectionStatus",
            json!({"connected": true, "activePort": 9222, "lastActivity": "2024-01-01T12:00:00.000Z"}),
        ),
        (
            "userAppDetected",
            "updateUserApp",
            json!({"url": "http://localhost:3000", "workspacePath": "/path/to/workspace"}),
        ),
        (
            "workspaceChanged",
            "updateWorkspace",
            json!({"workspacePath": "/path/to/workspace", "port": 9222}),
        ),
    ]
}

fn cursor_batched() -> Vec<Value> {
    vec![
        json!({"type": "messageReceived", "data": {"id": "msg-200", "content": "queued"}}),
        json!({"type": "workspaceChanged", "data": {"workspacePath": "/other", "port": 9223}}),
    ]
}

/// `broadcastToClients` for each event, then two through its message queue
/// (batched).
fn publish_cursor_chat_agent(hub: &Hub) {
    for (kind, _, data) in cursor_events() {
        hub.publish(json!({"broadcast": true, "type": kind, "data": data}));
    }
    for message in cursor_batched() {
        hub.publish(json!({"broadcast": true, "type": message["type"], "data": message["data"], "batched": true}));
    }
}

fn check_cursor_chat_agent(result: &Value) {
    no_errors(result);
    for (kind, handler, data) in cursor_events() {
        assert_eq!(
            got(result, handler),
            [data],
            "{handler} got the {kind} data"
        );
    }
    let messages = seen(result, "/");
    let batch = first(messages, "batchUpdate");
    assert_eq!(
        batch["data"]["messages"],
        json!(cursor_batched()),
        "{batch}"
    );
    assert!(
        logged(
            result,
            "console",
            json!(["Unknown event type:", "batchUpdate"])
        ),
        "the batch reached the handler's default branch"
    );
    let heartbeat = first(messages, "heartbeat");
    assert!(
        heartbeat["data"]["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{heartbeat}"
    );
}

fn agent_status() -> Value {
    json!({"agentName": "CLOUD_ASSISTANT", "state": "working", "currentTask": "Analyzing code", "progress": 50})
}

fn chat_message() -> Value {
    json!({"conversationId": "conv-123", "messageId": "msg-456", "content": "Analysis complete!",
           "sender": "CLOUD_ASSISTANT", "timestamp": "2025-12-26T13:00:00.000Z"})
}

/// `broadcastAgentStatus`, `broadcastChatMessage` and `sendNotification`
/// to all authenticated clients, then `sendNotification` to one user.
fn publish_code_cloud_agents(hub: &Hub) {
    hub.publish(json!({"authenticated": true, "type": "agent_status", "data": agent_status()}));
    hub.publish(json!({"authenticated": true, "type": "chat_message", "data": chat_message()}));
    hub.publish(json!({"authenticated": true, "type": "notification",
                       "data": {"level": "success", "message": "All tests passed!"}}));
    let reached = hub.publish(json!({"userId": "user-123", "type": "notification",
                                     "data": {"level": "error", "message": "Task failed"}}));
    assert_eq!(reached, 1, "user-123 has one connection (the hook's)");
}

fn check_code_cloud_agents(result: &Value, anonymous: bool) {
    no_errors(result);
    // The class, with the usage's handlers.
    assert_eq!(got(result, "#agent-status.innerText"), [json!("working")]);
    assert_eq!(
        got(result, "showToast"),
        [json!({"level": "success", "message": "All tests passed!"})],
        "the notification to all; not the one to user-123"
    );
    assert_eq!(got(result, "client.onChatMessage"), [chat_message()]);
    let presence = got(result, "client.onUserPresence");
    for told in [
        json!({"userId": "user-123", "status": "online"}),
        json!({"userId": "user-123", "status": "busy"}),
        json!({"userId": "user_abc123", "status": "away"}),
    ] {
        assert!(presence.contains(&told), "{told} among {presence:?}");
    }
    let class = seen(result, "token=your-token-here");
    let auth = first(class, "auth");
    assert_eq!(
        auth["data"],
        json!({"success": true, "userId": "user_abc123"})
    );
    let pong = first(class, "pong");
    assert!(
        pong.as_object().unwrap().len() == 2 && pong["timestamp"].is_string(),
        "type and timestamp, as documented: {pong}"
    );

    // The hook.
    let hook = &result["hook"];
    assert_eq!(hook["isConnected"], true);
    assert_eq!(hook["agentStatus"], agent_status());
    assert_eq!(
        hook["notifications"],
        json!([{"level": "success", "message": "All tests passed!"},
               {"level": "error", "message": "Task failed"}])
    );

    // The Node.js client logs what it gets.
    let node = seen(result, "token=test-token");
    assert_eq!(first(node, "agent_status")["data"], agent_status());

    if anonymous {
        let anonymous = seen(result, "token=not-a-token");
        let auth = first(anonymous, "auth");
        assert_eq!(auth["data"]["success"], false, "{auth}");
        assert_eq!(auth["data"]["userId"], Value::Null, "{auth}");
        for handler in [
            "onAgentStatus",
            "onChatMessage",
            "onNotification",
            "onUserPresence",
        ] {
            let name = format!("anonymous.{handler}");
            assert_eq!(
                got(result, &name),
                [] as [Value; 0],
                "{name}: no sensitive updates"
            );
        }
    }
}

fn file_changed() -> Value {
    json!({"file": "src/main.ts", "event": "change", "timestamp": "2024-12-09T15:30:45.123Z"})
}

/// `fileChanged` on `files`, and `diagnosticsUpdated` on a channel the
/// client did not subscribe to.
fn publish_cluso(hub: &Hub) {
    let reached = hub.publish(json!({"channel": "files", "type": "event", "data": file_changed()}));
    assert_eq!(reached, 1);
    let diagnostics =
        json!({"diagnostics": [{"file": "src/main.ts", "line": 3, "message": "unused"}]});
    let reached = hub.publish(json!({"channel": "diagnostics", "data": diagnostics}));
    assert_eq!(reached, 0, "nobody subscribed to diagnostics");
}

fn check_cluso(result: &Value) {
    no_errors(result);
    assert_eq!(got(result, "handleFileChange"), [file_changed()]);
    let messages = seen(result, "/ws");
    let subscribed = first(messages, "subscribed");
    assert_eq!(subscribed["channel"], "files", "{subscribed}");
    assert!(
        !messages.iter().any(|m| m["channel"] == "diagnostics"),
        "{messages:?}"
    );
}

fn check_agent_service(result: &Value, served: &Served) {
    assert!(
        served.errors.is_empty(),
        "the service was refused: {served:#?}"
    );
    assert_eq!(
        served.ended, None,
        "the hub dropped the service: {served:#?}"
    );
    let requests = &served.requests;
    let welcome = got(result, "connection:established");
    assert_eq!(welcome.len(), 1, "{result:#}");
    let client = welcome[0]["clientId"].as_str().expect("payload.clientId");
    let session = json!(client);
    assert_eq!(
        got(result, "agent:started"),
        [json!({"sessionId": session, "correlationId": "start-1"})]
    );
    assert_eq!(
        got(result, "status:update"),
        [json!({"sessionId": session, "status": "thinking"})]
    );
    let chunks = got(result, "stream:chunk");
    let text: String = chunks
        .iter()
        .map(|c| {
            assert_eq!(c["sessionId"], session);
            c["content"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, "write a haiku ");
    assert_eq!(
        got(result, "stream:complete"),
        [json!({"sessionId": session})]
    );
    assert_eq!(
        got(result, "agent:cancelled"),
        [json!({"sessionId": session, "correlationId": "cancel-1"})]
    );
    assert_eq!(
        got(result, "pong"),
        [json!({"payload": {}, "correlationId": "ping-1"})]
    );
    assert_eq!(
        got(result, "error"),
        [
            json!({"message": "Unknown message type: agent:pause", "correlationId": "pause-1"}),
            json!({"message": "Invalid message format"}),
        ]
    );
    let stamps = got(result, "timestamp");
    assert!(
        stamps.iter().all(|t| t == "number"),
        "every timestamp a number: {stamps:?}"
    );

    // The service got each request as the client sent it.
    let mine: Vec<&Value> = requests
        .iter()
        .filter(|r| r["clientId"] == session)
        .collect();
    let kinds: Vec<&str> = mine
        .iter()
        .map(|r| r["message"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "agent:start",
            "agent:message",
            "agent:cancel",
            "agent:pause"
        ]
    );
    let start = &mine[0]["message"];
    assert_eq!(
        start["payload"],
        json!({"projectId": "p1", "projectPath": "/projects/p1"})
    );
    assert_eq!(start["correlationId"], "start-1");
    assert!(start["timestamp"].is_u64(), "{start}");
}

fn ai_result(chunks: u64) -> Value {
    json!({"mode": "generate", "contentLength": 5000, "chunks": chunks, "targetFile": "src/Component.tsx"})
}

fn ai_error() -> Value {
    json!({"message": "API rate limit exceeded", "type": "rate_limit_error"})
}

/// `notifyAIStart`, `notifyAIProgress` (once, then twice batched),
/// `notifyAIComplete` and `notifyAIError` to the sessions, and
/// `broadcastToUser`.
fn publish_ai_canvas(hub: &Hub) {
    let to = |session: &str, kind: &str, data: Value| {
        hub.publish(json!({"sessionId": session, "type": kind, "data": data}))
    };
    let task = json!({"prompt": "Create a React component", "mode": "generate", "targetFile": "src/Component.tsx"});
    assert_eq!(to("my_session", "ai_start", json!({"task": task})), 1);
    to(
        "my_session",
        "ai_progress",
        json!({"progress": {"chunksReceived": 25, "contentLength": 1250}}),
    );
    for chunks in [50, 75] {
        let progress =
            json!({"progress": {"chunksReceived": chunks, "contentLength": chunks * 50}});
        hub.publish(json!({"sessionId": "my_session", "type": "ai_progress", "data": progress, "batched": true}));
    }
    to(
        "my_session",
        "ai_complete",
        json!({"result": ai_result(100)}),
    );
    to("my_session", "ai_error", json!({"error": ai_error()}));
    assert_eq!(
        to(
            "shared_session",
            "ai_complete",
            json!({"result": ai_result(40)})
        ),
        1
    );
    assert_eq!(
        to(
            "background_task_123",
            "ai_complete",
            json!({"result": ai_result(7)})
        ),
        1
    );
    to(
        "test_session",
        "ai_progress",
        json!({"progress": {"chunksReceived": 1, "contentLength": 10}}),
    );
    let reached = hub.publish(json!({"userId": "user123", "type": "notification",
                                     "data": {"message": "New update available"}}));
    assert_eq!(reached, 1);
}

fn check_ai_canvas(result: &Value, batch_type: &str) {
    no_errors(result);
    // 1. Real-time AI notifications.
    let progress = json!({"chunksReceived": 25, "contentLength": 1250});
    assert_eq!(got(result, "showLoadingIndicator"), [json!([])]);
    assert_eq!(got(result, "updateProgressBar"), [json!([progress])]);
    assert!(logged(result, "console", json!(["Progress:", progress])));
    assert!(logged(
        result,
        "console",
        json!(["AI completed!", ai_result(100)])
    ));
    assert_eq!(
        got(result, "hideLoadingIndicator").len(),
        2,
        "on complete and on error"
    );
    assert_eq!(got(result, "showSuccessNotification").len(), 1);
    assert!(logged(
        result,
        "console.error",
        json!(["AI error:", ai_error()])
    ));
    assert_eq!(
        got(result, "showErrorNotification"),
        [json!(["API rate limit exceeded"])]
    );
    let mine = seen(result, "sessionId=my_session");
    let welcome = &mine[0];
    assert_eq!(welcome["type"], "connection");
    assert_eq!(welcome["status"], "connected");
    assert!(welcome["clientId"].is_string(), "{welcome}");
    assert_eq!(welcome["sessionId"], "my_session");
    assert!(welcome["timestamp"].is_string(), "{welcome}");
    let batch = mine
        .iter()
        .find(|m| m["type"] == batch_type && m["sessionId"] == "my_session")
        .unwrap_or_else(|| panic!("a {batch_type} for my_session among {mine:#?}"));
    let kinds: Vec<&Value> = batch["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("messages next to type: {batch}"))
        .iter()
        .map(|m| &m["type"])
        .collect();
    assert_eq!(kinds, ["ai_progress", "ai_progress"], "{batch}");

    // 2. Multi-user collaboration.
    assert_eq!(got(result, "refreshSharedCanvas"), [json!([])]);
    assert_eq!(
        got(result, "notifyUser"),
        [json!(["AI agent completed task"])]
    );
    let shared = seen(result, "sessionId=shared_session");
    assert_eq!(shared[0]["userId"], "user123", "{}", shared[0]);
    assert!(
        shared
            .iter()
            .any(|m| m["type"] == "notification" && m["message"] == "New update available"),
        "broadcastToUser's notification, its fields next to type: {shared:#?}"
    );

    // 3. Background processing.
    assert_eq!(got(result, "fetchGeneratedDocumentation"), [json!([])]);
    assert!(logged(
        result,
        "console",
        json!(["Background task completed!"])
    ));

    // The testing snippet: ping, then subscribe.
    let test = seen(result, "sessionId=test");
    let pong = first(test, "pong");
    assert!(
        pong["timestamp"].is_string() && pong.get("data").is_none(),
        "{pong}"
    );
    let subscribed = first(test, "subscribed");
    assert_eq!(subscribed["sessionId"], "test_session", "{subscribed}");
    assert!(subscribed.get("data").is_none(), "{subscribed}");
    let progress = first(test, "ai_progress");
    assert_eq!(progress["sessionId"], "test_session");
    assert_eq!(progress["progress"]["chunksReceived"], 1, "{progress}");
}

// ---------------------------------------------------------------------------
// One system per hub, as each recipe says.

#[test]
#[ignore = "needs node and the npm ws package; .ci/run installs them"]
fn cursor_chat_agent_clients_work_unchanged() {
    let hub = Hub::start(&[CURSOR_CHAT_AGENT, &["--heartbeat-interval", "0.5"]].concat());
    let node = Node::start(
        "cursor-chat-agent.js",
        json!({"hub": hub.url(), "run": "cursor"}),
    );
    node.ready();
    // Its status endpoint, as its troubleshooting section asks it.
    let (status, answer) = hub.http("GET", "/api/websocket/status", "");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["success"], true);
    assert_eq!(answer["data"]["connected"], true);
    assert_eq!(answer["data"]["clients"], 1, "{answer}");
    for field in ["lastActivity", "uptime", "messageCount"] {
        assert!(answer["data"].get(field).is_some(), "{field} in {answer}");
    }
    publish_cursor_chat_agent(&hub);
    hub.done("cursor");
    check_cursor_chat_agent(&node.result());
}

#[test]
#[ignore = "needs node and the npm ws package; .ci/run installs them"]
fn code_cloud_agents_clients_work_unchanged() {
    let users = code_cloud_users();
    let tokens: serde_json::Map<String, Value> = users
        .as_object()
        .unwrap()
        .iter()
        .map(|(token, user)| (token.clone(), json!({"userId": user})))
        .collect();
    let file = std::env::temp_dir().join(format!("wshub-seed-tokens-{}.json", std::process::id()));
    std::fs::write(&file, Value::Object(tokens).to_string()).unwrap();
    let path = file.to_str().unwrap().to_owned();
    let hub = Hub::start_with_files(
        &[&["--tokens", &path], CODE_CLOUD_AGENTS].concat(),
        vec![file],
    );
    let node = Node::start(
        "code-cloud-agents.js",
        json!({"hub": hub.url(), "run": "cloud", "users": users}),
    );
    node.ready();
    publish_code_cloud_agents(&hub);
    hub.done("cloud");
    check_code_cloud_agents(&node.result(), true);
}

#[test]
#[ignore = "needs node and the npm ws package; .ci/run installs them"]
fn cluso_clients_work_unchanged() {
    let hub = Hub::start(CLUSO);
    let node = Node::start("cluso.js", json!({"hub": hub.url(), "run": "cluso"}));
    node.ready();
    publish_cluso(&hub);
    hub.done("cluso");
    check_cluso(&node.result());
}

#[test]
#[ignore = "needs node and the npm ws package; .ci/run installs them"]
fn agent_service_clients_work_unchanged() {
    let hub = Hub::start(AGENT_SERVICE);
    let service = AgentService::start(&hub);
    let node = Node::start(
        "agent-service.js",
        json!({"hub": hub.url(), "run": "agent"}),
    );
    node.ready();
    hub.done("agent");
    let result = node.result();
    check_agent_service(&result, &service.stop());
}

/// Fails today: a service connection is rate-limited like a browser
/// (`--rate-limit`, 100 messages a minute by default), so an agent service
/// that streams a long answer, one `send` per chunk, has its sends refused
/// (`rate_limited`) after about a hundred, then is closed 1008: the client
/// gets the first hundred chunks and never `stream:complete`.
#[test]
#[ignore = "needs node and the npm ws package; .ci/run installs them"]
fn agent_service_streams_a_long_answer_whole() {
    const WORDS: usize = 250;
    let hub = Hub::start(AGENT_SERVICE);
    let service = AgentService::start(&hub);
    let content: Vec<String> = (1..=WORDS).map(|i| format!("w{i}")).collect();
    let node = Node::start(
        "agent-service.js",
        json!({"hub": hub.url(), "run": "agent", "content": content.join(" "), "deadlineMs": 5000}),
    );
    let outcome = node.ready_or_gave_up();
    let served = service.stop();
    let result = match outcome {
        Ok(()) => {
            hub.done("agent");
            node.result()
        }
        Err(gave_up) => gave_up,
    };
    let chunks = got(&result, "stream:chunk").len();
    let complete = got(&result, "stream:complete").len();
    let refused: Vec<&Value> = served.errors.iter().map(|e| &e["data"]["code"]).collect();
    assert!(
        chunks == WORDS && complete == 1 && refused.is_empty() && served.ended.is_none(),
        "the client got {chunks} of {WORDS} chunks and {complete} stream:complete; \
         the hub refused {} of the service's messages ({:?}) and ended its connection: {:?}",
        refused.len(),
        refused.first(),
        served.ended
    );
}

#[test]
#[ignore = "needs node and the npm ws package; .ci/run installs them"]
fn ai_canvas_clients_work_unchanged() {
    let hub = Hub::start(AI_CANVAS);
    let node = Node::start("ai-canvas.js", json!({"hub": hub.url(), "run": "canvas"}));
    node.ready();
    // Its stats endpoint, with the fields its monitoring reads.
    let (status, stats) = hub.http("GET", "/api/ws/stats", "");
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["activeConnections"], 4, "{stats}");
    assert!(stats["totalConnections"].as_u64() >= Some(4), "{stats}");
    let shared = stats["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["userId"] == "user123")
        .unwrap_or_else(|| panic!("user123 in {stats}"));
    assert_eq!(shared["sessionId"], "shared_session", "{shared}");
    assert_eq!(shared["isAlive"], true);
    assert_eq!(shared["state"], 1);
    assert!(shared["id"].is_string(), "{shared}");
    publish_ai_canvas(&hub);
    hub.done("canvas");
    check_ai_canvas(&node.result(), "batch_update");
}

// ---------------------------------------------------------------------------
// All five on one hub.

/// One hub as the README's "all five" recipe says, its agent service, and
/// every system's clients connected and ready.
struct AllFive {
    hub: Hub,
    service: AgentService,
    scripts: Vec<(&'static str, Node)>,
}

impl AllFive {
    fn start() -> AllFive {
        let hub = Hub::start(&[ALL_FIVE, &["--heartbeat-interval", "0.5"]].concat());
        let service = AgentService::start(&hub);
        let url = hub.url();
        let scripts: Vec<(&str, Node)> = [
            ("cursor", "cursor-chat-agent.js", json!({})),
            // Development mode: the URLs name their user.
            (
                "cloud",
                "code-cloud-agents.js",
                json!({"users": code_cloud_users(), "userParam": true, "anonymous": false}),
            ),
            ("cluso", "cluso.js", json!({})),
            ("agent", "agent-service.js", json!({"path": "/agent"})),
            ("canvas", "ai-canvas.js", json!({"path": "/canvas"})),
        ]
        .into_iter()
        .map(|(run, script, mut config)| {
            config["hub"] = json!(url);
            config["run"] = json!(run);
            (run, Node::start(script, config))
        })
        .collect();
        for (_, node) in &scripts {
            node.ready();
        }
        AllFive {
            hub,
            service,
            scripts,
        }
    }

    /// Tells every script it is done; returns their results by run.
    fn results(&self) -> Vec<(&'static str, Value)> {
        for (run, _) in &self.scripts {
            self.hub.done(run);
        }
        self.scripts
            .iter()
            .map(|(run, node)| (*run, node.result()))
            .collect()
    }
}

fn result_of<'a>(results: &'a [(&str, Value)], run: &str) -> &'a Value {
    &results.iter().find(|(r, _)| *r == run).unwrap().1
}

#[test]
#[ignore = "needs node and the npm ws package; .ci/run installs them"]
fn one_hub_serves_all_five_at_once() {
    let all = AllFive::start();
    publish_cursor_chat_agent(&all.hub);
    publish_code_cloud_agents(&all.hub);
    publish_cluso(&all.hub);
    publish_ai_canvas(&all.hub);
    let results = all.results();
    check_cursor_chat_agent(result_of(&results, "cursor"));
    check_code_cloud_agents(result_of(&results, "cloud"), false);
    check_cluso(result_of(&results, "cluso"));
    // One --batch-type names every batch, whichever the endpoint.
    check_ai_canvas(result_of(&results, "canvas"), "batchUpdate");
    let AllFive { hub, service, .. } = all;
    check_agent_service(result_of(&results, "agent"), &service.stop());
    drop(hub);
}

#[test]
#[ignore = "needs node and the npm ws package; .ci/run installs them"]
fn one_publication_reaches_the_clients_of_all_three_envelopes() {
    let all = AllFive::start();
    let note = json!({"level": "info", "message": "Deploy finished"});
    let reached = all
        .hub
        .publish(json!({"broadcast": true, "type": "notification", "data": note}));
    let results = all.results();
    let clients: usize = results
        .iter()
        .map(|(_, r)| r["sockets"].as_array().unwrap().len())
        .sum();
    assert_eq!(reached, clients as u64 + 1, "every client and the service");

    for (run, result) in &results {
        for socket in result["sockets"].as_array().unwrap() {
            let messages = socket["seen"].as_array().unwrap();
            let got = first(messages, "notification");
            let url = &socket["url"];
            match *run {
                "agent" => {
                    assert_eq!(got["payload"], note, "{url}: {got}");
                    assert!(got["timestamp"].is_u64(), "{url}: {got}");
                }
                "canvas" => {
                    assert_eq!(got["level"], "info", "{url}: {got}");
                    assert_eq!(got["message"], "Deploy finished", "{url}: {got}");
                    assert!(got.get("data").is_none(), "{url}: {got}");
                    assert!(got["timestamp"].is_string(), "{url}: {got}");
                }
                _ => {
                    assert_eq!(got["data"], note, "{url}: {got}");
                    assert!(got["timestamp"].is_string(), "{url}: {got}");
                }
            }
        }
    }
    // The Code Cloud Agents handlers took it as their own.
    let cloud = result_of(&results, "cloud");
    assert_eq!(got(cloud, "showToast"), std::slice::from_ref(&note));
    assert_eq!(cloud["hook"]["notifications"], json!([note]));
}
