//! permessage-deflate with the clients people use, as they come: Node's
//! `ws` (its client offers the extension by default) and Python's
//! `websockets` (the same). Each connects to a hub with `--compression`,
//! reports the extension agreed, and round-trips a message above the
//! minimum size (compressed both ways) and one below it (plain from the
//! hub). Headless Chromium does the same in tests/browser.rs.
//!
//! They need node with the npm `ws` package (in tests/seeds) and python3
//! with `websockets`, so plain `cargo test` lists them as ignored; `.ci/run`
//! installs both and runs `cargo test --test compression_clients -- --ignored`.

#![cfg(feature = "compression")]

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use serde_json::{Value, json};
use support::{DEADLINE, config, start};

/// The hub's answer to the offers of both clients.
const AGREED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The large message: a `files` event of about 6 KB, as the seeds send.
fn files() -> Value {
    let files: Vec<Value> = (0..80)
        .map(|i| json!({"path": format!("src/components/panel_{i}.tsx"), "status": "modified"}))
        .collect();
    json!({"files": files})
}

const NODE: &str = r#"
const WebSocket = require(process.env.WS_MODULE);
const files = JSON.parse(process.env.FILES);
const ws = new WebSocket(process.env.HUB);
const seen = [];
let agreed = null;
ws.on("upgrade", res => { agreed = res.headers["sec-websocket-extensions"]; });
ws.on("message", raw => {
  const m = JSON.parse(raw.toString());
  seen.push(m.type);
  if (m.type === "auth") ws.send(JSON.stringify({ type: "subscribe", channel: "room" }));
  if (m.type === "subscribed") {
    ws.send(JSON.stringify({ type: "publish", channel: "room", event: "files", data: files }));
  }
  if (m.type === "files") {
    const same = JSON.stringify(m.data) === JSON.stringify(files);
    ws.send(JSON.stringify({ type: "publish", channel: "room", event: "small", data: same }));
  }
  if (m.type === "small") {
    console.log(JSON.stringify({ extensions: agreed, same: m.data, seen }));
    ws.close(1000);
  }
});
ws.on("error", err => { console.log(JSON.stringify({ error: String(err) })); process.exit(1); });
"#;

const PYTHON: &str = r#"
import json, os
from websockets.sync.client import connect

files = json.loads(os.environ["FILES"])
with connect(os.environ["HUB"]) as ws:
    seen = []
    agreed = ws.response.headers.get("Sec-WebSocket-Extensions")
    ws.send(json.dumps({"type": "subscribe", "channel": "room"}))
    result = None
    while result is None:
        m = json.loads(ws.recv(timeout=10))
        seen.append(m["type"])
        if m["type"] == "subscribed":
            ws.send(json.dumps({"type": "publish", "channel": "room", "event": "files", "data": files}))
        elif m["type"] == "files":
            same = m["data"] == files
            ws.send(json.dumps({"type": "publish", "channel": "room", "event": "small", "data": same}))
        elif m["type"] == "small":
            result = {"extensions": agreed, "same": m["data"], "seen": seen}
    print(json.dumps(result))
"#;

/// Runs `command` (which prints one JSON line) against a hub with
/// compression on; returns that line, within the deadline.
fn run(mut command: Command) -> Value {
    let hub = start(config().compression(true).allow_client_publish(true));
    command
        .env("HUB", format!("ws://{}/ws", hub.addr))
        .env("FILES", files().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let child = command.spawn().expect("the client starts");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx
        .recv_timeout(DEADLINE * 3)
        .expect("the client finishes")
        .expect("the client runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}: {stdout}", output.status);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("one JSON line: {stdout}"))
}

fn check(result: &Value) {
    assert_eq!(result["extensions"], AGREED, "{result}");
    assert_eq!(
        result["same"], true,
        "the compressed files event arrived intact: {result}"
    );
    let seen = result["seen"].as_array().unwrap();
    for kind in ["connection", "auth", "subscribed", "files", "small"] {
        assert!(seen.contains(&json!(kind)), "{kind} in {result}");
    }
}

#[test]
#[ignore = "needs node and the npm ws package (tests/seeds); .ci/run installs them"]
fn node_ws_negotiates_and_round_trips_compressed_messages() {
    let module: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/seeds/node_modules/ws"]
        .iter()
        .collect();
    assert!(
        module.join("package.json").exists(),
        "npm install in tests/seeds first"
    );
    let mut command = Command::new("node");
    command.args(["-e", NODE]).env("WS_MODULE", module);
    check(&run(command));
}

#[test]
#[ignore = "needs python3 with the websockets package; .ci/run installs it"]
fn python_websockets_negotiates_and_round_trips_compressed_messages() {
    let mut command = Command::new("python3");
    command.args(["-c", PYTHON]);
    check(&run(command));
}
