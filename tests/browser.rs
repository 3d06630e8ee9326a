//! A real browser (headless Chromium) against real hubs: it connects with a
//! token, subscribes, publishes, receives, and stays connected through
//! heartbeats (the browser answers protocol Pings); without a token it sees
//! the `unauthorized` error and close 1008 "Unauthorized"; from an origin the
//! hub does not allow, it cannot connect at all. And the JavaScript client,
//! `clients/js/wshub.js`, loaded by a page as a module: it connects with a
//! token, subscribes, publishes, gets replies and errors to its requests,
//! reconnects and re-subscribes after the application bounces it, and its
//! heartbeat keeps it open. The same scenario again with the files `npm pack`
//! puts in the `@wshub/client` package, imported by the package's name.
//!
//! Needs Chromium, so plain `cargo test` lists it as ignored; `.ci/run`
//! installs Chromium and runs `cargo test --test browser -- --ignored`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, unbounded};
use serde_json::{Value, json};
use wshub::{Hub, Target, sign_jwt};

const SECRET: &str = "browser-test-secret-of-32-bytes!";

const PAGE: &str = r#"<!doctype html>
<title>wshub browser test</title>
<script>
const HUB = "ws://{{HUB}}", OTHER = "ws://{{OTHER}}", TOKEN = "{{TOKEN}}";
function session(url, onMessage) {
  return new Promise(resolve => {
    const ws = new WebSocket(url), seen = [];
    ws.onmessage = e => { const m = JSON.parse(e.data); seen.push(m); onMessage && onMessage(ws, m, seen, resolve); };
    ws.onclose = e => resolve({ seen, code: e.code, reason: e.reason });
  });
}
async function run() {
  const results = {};
  results.authorized = await session(HUB + "/ws?token=" + TOKEN, (ws, m, seen, resolve) => {
    if (m.type === "connection") ws.send(JSON.stringify({ type: "subscribe", channel: "files", correlationId: "s" }));
    if (m.type === "subscribed") ws.send(JSON.stringify({ type: "publish", channel: "files", data: { file: "a.ts" } }));
    // Outlive several heartbeats and a client timeout before asking again.
    if (m.type === "event") setTimeout(() => ws.send(JSON.stringify({ type: "ping", correlationId: "alive" })), 3500);
    if (m.type === "pong") { resolve({ seen, open: ws.readyState === WebSocket.OPEN }); ws.close(1000, "done"); }
  });
  results.unauthorized = await session(HUB + "/ws");
  results.foreign = await session(OTHER + "/ws?token=" + TOKEN);
  await fetch("/result", { method: "POST", body: JSON.stringify(results) });
}
run().catch(err => fetch("/result", { method: "POST", body: JSON.stringify({ error: String(err) }) }));
</script>"#;

/// Serves the page (and any other files: path, content type, body) and
/// passes the posted result on. One thread per connection: browsers open
/// spare connections that never send a request.
fn serve_page(listener: TcpListener, page: String, results: Sender<Value>) {
    serve(listener, vec![("/", "text/html", page)], results);
}

fn serve(
    listener: TcpListener,
    files: Vec<(&'static str, &'static str, String)>,
    results: Sender<Value>,
) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let (files, results) = (files.clone(), results.clone());
        thread::spawn(move || answer(stream, &files, &results));
    }
}

fn answer(mut stream: TcpStream, files: &[(&str, &str, String)], results: &Sender<Value>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    if request_line.starts_with("POST /result") {
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_ok() {
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            let _ = results.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
        }
        return;
    }
    let path = request_line.split(' ').nth(1).unwrap_or("");
    let (status, kind, body) = match files.iter().find(|(p, _, _)| *p == path) {
        Some((_, kind, body)) => ("200 OK", *kind, body.as_str()),
        None => ("404 Not Found", "text/plain", ""),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Opens `{origin}/` in headless Chromium and returns what the page posted
/// to `/result`, within a minute (else panics with the page's console).
fn browse(origin: &str, results: &Receiver<Value>, name: &str) -> Value {
    let profile =
        std::env::temp_dir().join(format!("wshub-chromium-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&profile).unwrap();
    let log_path = profile.join("console.log");
    let mut browser = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--enable-logging=stderr")
        .arg(format!("{origin}/"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("chromium starts (install it: apt-get install chromium)");
    let result = results.recv_timeout(Duration::from_secs(60));
    let _ = browser.kill();
    let _ = browser.wait();
    let console: Vec<String> = std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("CONSOLE"))
        .map(str::to_owned)
        .collect();
    let _ = std::fs::remove_dir_all(&profile);
    result.unwrap_or_else(|_| {
        panic!("the page did not report within a minute; console: {console:#?}")
    })
}

#[test]
#[ignore = "needs Chromium: .ci/run installs it and runs cargo test --test browser -- --ignored"]
fn a_real_browser_connects_receives_and_sees_refusals() {
    let pages = TcpListener::bind("127.0.0.1:0").unwrap();
    let page_origin = format!("http://{}", pages.local_addr().unwrap());
    let secure = |origin: String| {
        support::config()
            .jwt_secret(Some(SECRET.into()))
            .allow_client_publish(true)
            .allowed_origins(vec![origin])
            // A browser on a busy machine gets nearly 3 s to answer a Ping.
            .heartbeat_interval(Duration::from_millis(200))
            .client_timeout(Duration::from_millis(3000))
    };
    let hub = support::start(secure(page_origin.clone()));
    let other = support::start(secure("https://elsewhere.example".into()));
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = sign_jwt(
        SECRET.as_bytes(),
        &json!({"sub": "browser-user", "exp": exp}),
    )
    .unwrap();
    let page = PAGE
        .replace("{{HUB}}", &hub.addr.to_string())
        .replace("{{OTHER}}", &other.addr.to_string())
        .replace("{{TOKEN}}", &token);

    let (tx, results) = unbounded();
    thread::spawn(move || serve_page(pages, page, tx));
    let result = browse(&page_origin, &results, "protocol");
    assert!(result.get("error").is_none(), "the page failed: {result}");

    let authorized = &result["authorized"];
    let types: Vec<&str> = authorized["seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"connection"), "{authorized}");
    assert!(
        types.contains(&"subscribed") && types.contains(&"event"),
        "{authorized}"
    );
    let event = authorized["seen"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "event")
        .unwrap();
    assert_eq!(event["data"]["file"], "a.ts");
    assert_eq!(event["from"]["userId"], "browser-user");
    assert_eq!(
        authorized["open"], true,
        "the browser answered the Pings and was not terminated"
    );

    let unauthorized = &result["unauthorized"];
    assert_eq!(unauthorized["code"], 1008, "{unauthorized}");
    assert_eq!(unauthorized["reason"], "Unauthorized");
    let seen = unauthorized["seen"].as_array().unwrap();
    assert_eq!(
        seen.len(),
        1,
        "only the refusal, no welcome: {unauthorized}"
    );
    assert_eq!(seen[0]["data"]["code"], "unauthorized");

    let foreign = &result["foreign"];
    assert_eq!(foreign["code"], 1006, "the handshake failed: {foreign}");
    assert_eq!(foreign["seen"], json!([]));
    assert_eq!(other.handle().stats().unwrap().total_connections, 0);
    let _ = TcpStream::connect(hub.addr);
}

/// A page that runs wshub.js (served as `/wshub.js`) through a whole
/// scenario and posts what it saw.
const CLIENT_PAGE: &str = r#"<!doctype html>
<title>wshub.js in a real browser</title>
<script type="module">
import { WshubClient } from "/wshub.js";
const HUB = "ws://{{HUB}}/ws", TOKEN = "{{TOKEN}}";
const report = body => fetch("/result", { method: "POST", body: JSON.stringify(body) });
async function until(check, what) {
  for (const end = Date.now() + 10000; !check(); ) {
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await new Promise(resolve => setTimeout(resolve, 10));
  }
}
async function run() {
  const r = { closes: [], opens: [], events: [] };
  let tokens = 0, resubscribed = 0;
  const client = new WshubClient(HUB, { token: () => (tokens++, TOKEN), minDelay: 50, maxDelay: 500, heartbeat: { grace: 2500 } });
  client.on("open", welcome => r.opens.push(welcome));
  client.on("close", e => r.closes.push({ code: e.code, reason: e.reason, action: e.action }));
  client.on("event", (data, m) => r.events.push({ data, channel: m.channel, from: m.from && m.from.userId }));
  client.on("subscribed", (data, m) => m.channel === "files" && resubscribed++);

  r.subscribed = await client.subscribe("files");
  r.delivered = await client.publish("files", "event", { file: "a.ts" });
  await until(() => r.events.length === 1, "the event");
  r.reply = await client.request("agent:start", { projectId: "p1" });
  r.rejected = await client.request("agent:fail", {}).then(() => null, e => ({ name: e.name, code: e.code, message: e.message }));
  r.presence = await client.presence();

  // The application bounces this client (close 4000): it backs off,
  // reconnects with a token from the provider and subscribes again.
  client.send("bounce-me");
  await until(() => r.opens.length === 2 && resubscribed === 2, "the reconnect and re-subscription");
  r.deliveredAgain = await client.publish("files", "event", { file: "b.ts" });
  await until(() => r.events.length === 2, "the event after the reconnect");

  // Outlive several heartbeats and the watchdog's 2.7 s of silence (the
  // grace leaves room for a busy machine): its pings keep the client open.
  await new Promise(resolve => setTimeout(resolve, 3000));
  r.stateAfterHeartbeats = client.state;
  r.tokens = tokens;
  client.close();
  r.stateAfterClose = client.state;
  await report(r);
}
run().catch(err => report({ error: String((err && err.stack) || err) }));
</script>"#;

#[test]
#[ignore = "needs Chromium: .ci/run installs it and runs cargo test --test browser -- --ignored"]
fn the_js_client_connects_subscribes_requests_and_reconnects_in_a_real_browser() {
    let client = include_str!("../clients/js/wshub.js").to_owned();
    client_scenario(CLIENT_PAGE.to_owned(), "/wshub.js", client);
}

/// The page of the client scenario importing the package by its name, as an
/// application does, through an import map onto the packed files.
fn packed_page() -> String {
    let map = r#"<script type="importmap">{"imports": {"@wshub/client": "/node_modules/@wshub/client/wshub.js"}}</script>"#;
    CLIENT_PAGE
        .replace(
            "<script type=\"module\">",
            &format!("{map}\n<script type=\"module\">"),
        )
        .replace(r#"from "/wshub.js""#, r#"from "@wshub/client""#)
}

#[test]
#[ignore = "needs Chromium, node and npm: .ci/run installs them and runs cargo test --test browser -- --ignored"]
fn the_packed_npm_package_runs_in_a_real_browser() {
    let dir = std::env::temp_dir().join(format!("wshub-browser-pack-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let packed = Command::new("npm")
        .args(["pack", "--pack-destination"])
        .arg(&dir)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js"))
        .output()
        .expect("npm runs (install node and npm)");
    assert!(packed.status.success(), "npm pack: {packed:?}");
    let tarball = String::from_utf8_lossy(&packed.stdout)
        .trim()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let untar = Command::new("tar")
        .arg("xzf")
        .arg(dir.join(&tarball))
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(untar.success());
    let client = std::fs::read_to_string(dir.join("package/wshub.js")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    client_scenario(
        packed_page(),
        "/node_modules/@wshub/client/wshub.js",
        client,
    );
}

/// Runs the client scenario page, with `client` served at `client_path`.
fn client_scenario(page: String, client_path: &'static str, client: String) {
    let pages = TcpListener::bind("127.0.0.1:0").unwrap();
    let page_origin = format!("http://{}", pages.local_addr().unwrap());
    let mut hub = Hub::with_config(
        support::config()
            .jwt_secret(Some(SECRET.into()))
            .allow_client_publish(true)
            .allowed_origins(vec![page_origin.clone()])
            // A browser on a busy machine gets nearly 3 s to answer a Ping.
            .heartbeat_interval(Duration::from_millis(200))
            .client_timeout(Duration::from_millis(3000))
            .rate_limit(0),
    )
    .expect("hub binds");
    let requests = hub.requests();
    let addr = hub.local_addr();
    let server = hub.spawn().expect("hub starts");
    // The application: answers two requests and bounces the client on the third.
    thread::spawn(move || {
        for request in requests.iter() {
            let _ = match request.kind() {
                "agent:start" => {
                    let data: Value = request.data().unwrap_or(Value::Null);
                    request.reply("agent:started", json!({"projectId": data["projectId"]}))
                }
                "agent:fail" => request.reply_error("agent_failed", "No agent for that"),
                "bounce-me" => request
                    .handle()
                    .close(Target::client(request.client_id()), 4000, "Bounce")
                    .map(|n| n > 0),
                _ => Ok(false),
            };
        }
    });

    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = sign_jwt(
        SECRET.as_bytes(),
        &json!({"sub": "browser-user", "exp": exp}),
    )
    .unwrap();
    let page = page
        .replace("{{HUB}}", &addr.to_string())
        .replace("{{TOKEN}}", &token);
    let (tx, results) = unbounded();
    thread::spawn(move || {
        serve(
            pages,
            vec![
                ("/", "text/html", page),
                (client_path, "text/javascript", client),
            ],
            tx,
        )
    });
    let r = browse(&page_origin, &results, "client");
    assert!(r.get("error").is_none(), "the page failed: {r}");

    let welcome = &r["opens"][0];
    assert_eq!(welcome["userId"], "browser-user", "{r}");
    assert_eq!(welcome["authenticated"], true);
    assert_eq!(welcome["heartbeatMs"], 200);
    assert_eq!(welcome["reconnected"], false);
    assert!(r["subscribed"].is_object(), "{r}");
    assert_eq!(r["delivered"], 1);
    assert_eq!(
        r["events"][0],
        json!({"data": {"file": "a.ts"}, "channel": "files", "from": "browser-user"})
    );
    assert_eq!(r["reply"]["type"], "agent:started");
    assert_eq!(r["reply"]["data"]["projectId"], "p1");
    assert!(r["reply"]["correlationId"].is_string(), "{r}");
    assert_eq!(
        r["rejected"],
        json!({"name": "WshubError", "code": "agent_failed", "message": "No agent for that"})
    );
    assert!(
        r["presence"]
            .as_array()
            .unwrap()
            .contains(&json!({"userId": "browser-user", "status": "online"})),
        "{r}"
    );

    assert_eq!(
        r["closes"][0],
        json!({"code": 4000, "reason": "Bounce", "action": "backoff"})
    );
    assert_eq!(r["opens"][1]["reconnected"], true);
    assert_eq!(
        r["tokens"], 2,
        "the token provider is asked at every connect"
    );
    assert_eq!(r["deliveredAgain"], 1);
    assert_eq!(r["events"][1]["data"]["file"], "b.ts");
    assert_eq!(
        r["stateAfterHeartbeats"], "open",
        "no silence seen through the heartbeats"
    );
    assert_eq!(r["stateAfterClose"], "closed");
    assert_eq!(r["closes"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["closes"][1]["action"], "stop");
    server.shutdown().unwrap();
}

/// A page that connects to a hub with compression on, and round-trips a
/// large message (compressed both ways) and a small one (plain from the hub).
const COMPRESSION_PAGE: &str = r#"<!doctype html>
<title>wshub compression in a real browser</title>
<script>
const files = Array.from({ length: 80 }, (_, i) => ({ path: `src/components/panel_${i}.tsx`, status: "modified" }));
const ws = new WebSocket("ws://{{HUB}}/ws"), seen = [];
const report = body => fetch("/result", { method: "POST", body: JSON.stringify(body) });
ws.onmessage = e => {
  const m = JSON.parse(e.data);
  seen.push(m.type);
  if (m.type === "auth") ws.send(JSON.stringify({ type: "subscribe", channel: "room" }));
  if (m.type === "subscribed") ws.send(JSON.stringify({ type: "publish", channel: "room", event: "files", data: { files } }));
  if (m.type === "files") {
    const same = JSON.stringify(m.data) === JSON.stringify({ files });
    ws.send(JSON.stringify({ type: "publish", channel: "room", event: "small", data: same }));
  }
  if (m.type === "small") { report({ extensions: ws.extensions, same: m.data, seen }); ws.close(1000); }
};
ws.onclose = e => report({ error: `closed ${e.code} ${e.reason}`, seen });
</script>"#;

#[test]
#[ignore = "needs Chromium: .ci/run installs it and runs cargo test --test browser -- --ignored"]
fn a_real_browser_negotiates_compression_and_round_trips_compressed_messages() {
    let pages = TcpListener::bind("127.0.0.1:0").unwrap();
    let page_origin = format!("http://{}", pages.local_addr().unwrap());
    let hub = support::start(
        support::config()
            .compression(true)
            .allow_client_publish(true)
            .allowed_origins(vec![page_origin.clone()]),
    );
    let page = COMPRESSION_PAGE.replace("{{HUB}}", &hub.addr.to_string());
    let (tx, results) = unbounded();
    thread::spawn(move || serve_page(pages, page, tx));
    let result = browse(&page_origin, &results, "compression");
    assert!(result.get("error").is_none(), "the page failed: {result}");
    let extensions = result["extensions"].as_str().unwrap();
    assert!(
        extensions.starts_with("permessage-deflate")
            && extensions.contains("server_no_context_takeover")
            && extensions.contains("client_no_context_takeover"),
        "{result}"
    );
    assert_eq!(result["same"], true, "{result}");
    assert_eq!(
        result["seen"],
        json!(["connection", "auth", "subscribed", "files", "small"])
    );
}
