//! A real browser (headless Chromium) against real hubs: it connects with a
//! token, subscribes, publishes, receives, and stays connected through
//! heartbeats (the browser answers protocol Pings); without a token it sees
//! the `unauthorized` error and close 1008 "Unauthorized"; from an origin the
//! hub does not allow, it cannot connect at all.
//!
//! Needs Chromium, so plain `cargo test` lists it as ignored; `.ci/run`
//! installs Chromium and runs `cargo test --test browser -- --ignored`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Sender, unbounded};
use serde_json::{Value, json};
use wshub::{Config, sign_jwt};

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
    if (m.type === "event") setTimeout(() => ws.send(JSON.stringify({ type: "ping", correlationId: "alive" })), 2500);
    if (m.type === "pong") { resolve({ seen, open: ws.readyState === WebSocket.OPEN }); ws.close(1000, "done"); }
  });
  results.unauthorized = await session(HUB + "/ws");
  results.foreign = await session(OTHER + "/ws?token=" + TOKEN);
  await fetch("/result", { method: "POST", body: JSON.stringify(results) });
}
run().catch(err => fetch("/result", { method: "POST", body: JSON.stringify({ error: String(err) }) }));
</script>"#;

/// Serves the page and passes the posted result on. One thread per
/// connection: browsers open spare connections that never send a request.
fn serve_page(listener: TcpListener, page: String, results: Sender<Value>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let (page, results) = (page.clone(), results.clone());
        thread::spawn(move || answer(stream, &page, &results));
    }
}

fn answer(mut stream: TcpStream, page: &str, results: &Sender<Value>) {
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
    let (status, body) = match request_line.starts_with("GET / ") {
        true => ("200 OK", page),
        false => ("404 Not Found", ""),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[test]
#[ignore = "needs Chromium: .ci/run installs it and runs cargo test --test browser -- --ignored"]
fn a_real_browser_connects_receives_and_sees_refusals() {
    let pages = TcpListener::bind("127.0.0.1:0").unwrap();
    let page_origin = format!("http://{}", pages.local_addr().unwrap());
    let secure = |origin: String| Config {
        jwt_secret: Some(SECRET.into()),
        allow_client_publish: true,
        allowed_origins: vec![origin],
        heartbeat_interval: Duration::from_millis(200),
        client_timeout: Duration::from_millis(1000),
        ..support::config()
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
    let profile = std::env::temp_dir().join(format!("wshub-chromium-{}", std::process::id()));
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
        .arg(format!("{page_origin}/"))
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
    let result = result.unwrap_or_else(|_| {
        panic!("the page did not report within a minute; console: {console:#?}")
    });
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
