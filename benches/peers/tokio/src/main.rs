//! Reference peer for wshub's benchmark (`benches/hub/`): the protocol
//! subset the benchmark uses (welcome, subscribe, publish, ping) on tokio's
//! multi-thread runtime and tokio-tungstenite, written the way a competent
//! async user would.
//!
//! ```text
//! wshub-peer-tokio [--port N]      (or PORT=N; 0 picks a free port)
//! ```
//!
//! Listens on 127.0.0.1 only, prints `listening on ws://ADDR/ws` on stdout,
//! and exits on SIGTERM or SIGINT.
//!
//! Each connection has a reader task and a writer task joined by an unbounded
//! channel. A publication is encoded once, as a `Message::Text` whose bytes
//! are shared, and a clone (a reference count) goes into each subscriber's
//! channel. The writer `feed`s while more is queued and `flush`es when its
//! channel is momentarily empty, so a burst leaves in few writes.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Tx = UnboundedSender<Message>;

/// Who is subscribed to what: channel name -> client id -> its writer's queue.
#[derive(Default)]
struct Hub {
    channels: Mutex<HashMap<String, HashMap<u64, Tx>>>,
    next_id: AtomicU64,
}

impl Hub {
    fn channels(&self) -> MutexGuard<'_, HashMap<String, HashMap<u64, Tx>>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let port = match port() {
        Ok(port) => port,
        Err(problem) => {
            eprintln!("wshub-peer-tokio: {problem}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("wshub-peer-tokio: cannot listen on 127.0.0.1:{port}: {err}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on ws://{addr}/ws"),
        Err(err) => {
            eprintln!("wshub-peer-tokio: {err}");
            return ExitCode::FAILURE;
        }
    }
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("wshub-peer-tokio: cannot watch signals: {err}");
            return ExitCode::FAILURE;
        }
    };
    let hub = Arc::new(Hub::default());
    loop {
        tokio::select! {
            _ = term.recv() => return ExitCode::SUCCESS,
            _ = int.recv() => return ExitCode::SUCCESS,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve(Arc::clone(&hub), stream));
                }
                Err(err) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    eprintln!("wshub-peer-tokio: accept: {err}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

fn port() -> Result<u16, String> {
    let mut args = std::env::args().skip(1);
    let mut value = std::env::var("PORT").unwrap_or_else(|_| "0".to_owned());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => value = args.next().ok_or("--port needs a value")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    value.parse().map_err(|_| format!("not a port: {value}"))
}

/// One connection: the handshake, then this task reads while another writes.
async fn serve(hub: Arc<Hub>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    // tungstenite's own advice for many connections that read little: a 4 KiB
    // read buffer instead of the default 128 KiB, which is allocated up
    // front and zero-filled before every read (wshub reads into 4 KiB too).
    let config = WebSocketConfig::default()
        .read_buffer_size(4 << 10)
        .max_message_size(Some(64 << 10));
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.feed(message).await.is_err() {
                return;
            }
            while let Ok(message) = rx.try_recv() {
                if sink.feed(message).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });

    let id = hub.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let mut client = Client {
        hub: &hub,
        id,
        client_id: format!("c_{id:x}"),
        tx,
        subscribed: Vec::new(),
    };
    client.send(json!({"type": "connection", "data": {"clientId": client.client_id}}));
    while let Some(Ok(message)) = source.next().await {
        match message {
            Message::Text(text) => client.handle(&text),
            Message::Binary(_) => {
                client.fail("unsupported_frame", "Binary frames are not supported", None)
            }
            Message::Close(_) => break,
            // tungstenite answers pings itself.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
    client.leave();
    drop(client);
    let _ = writer.await;
}

struct Client<'a> {
    hub: &'a Hub,
    id: u64,
    client_id: String,
    tx: Tx,
    subscribed: Vec<String>,
}

impl Client<'_> {
    fn handle(&mut self, text: &str) {
        let Ok(mut message) = serde_json::from_str::<Value>(text) else {
            return self.fail("invalid_json", "Invalid message format", None);
        };
        let correlation = message.get_mut("correlationId").map(Value::take);
        let Some(kind) = message.get("type").and_then(Value::as_str) else {
            return self.fail("invalid_message", "Invalid message format", correlation);
        };
        let channel = message.get("channel").and_then(Value::as_str);
        match (kind, channel) {
            ("ping", _) => self.reply(json!({"type": "pong"}), correlation),
            ("subscribe", Some(channel)) => {
                let channel = channel.to_owned();
                self.hub
                    .channels()
                    .entry(channel.clone())
                    .or_default()
                    .insert(self.id, self.tx.clone());
                let reply = json!({"type": "subscribed", "channel": channel, "data": {}});
                if !self.subscribed.contains(&channel) {
                    self.subscribed.push(channel);
                }
                self.reply(reply, correlation);
            }
            ("publish", Some(channel)) => {
                let channel = channel.to_owned();
                let kind = match message.get_mut("event").map(Value::take) {
                    Some(Value::String(kind)) => kind,
                    _ => "event".to_owned(),
                };
                let data = match message.get_mut("data").map(Value::take) {
                    Some(data) => data,
                    None => message.get_mut("payload").map_or(Value::Null, Value::take),
                };
                let event = encode(json!({
                    "type": kind,
                    "channel": channel,
                    "data": data,
                    "from": {"clientId": self.client_id, "userId": null},
                    "timestamp": timestamp(),
                }));
                let delivered = match self.hub.channels().get(&channel) {
                    Some(subscribers) => subscribers
                        .values()
                        .filter(|tx| tx.send(event.clone()).is_ok())
                        .count(),
                    None => 0,
                };
                if correlation.is_some() {
                    let reply = json!({
                        "type": "published",
                        "channel": channel,
                        "data": {"delivered": delivered},
                    });
                    self.reply(reply, correlation);
                }
            }
            ("subscribe" | "publish", None) => {
                self.fail("invalid_channel", "Missing channel", correlation)
            }
            (other, _) => {
                let error = format!("Unknown message type: {other}");
                self.fail("unknown_type", &error, correlation)
            }
        }
    }

    fn reply(&self, mut message: Value, correlation: Option<Value>) {
        if let (Some(id), Some(fields)) = (correlation, message.as_object_mut()) {
            fields.insert("correlationId".to_owned(), id);
        }
        self.send(message);
    }

    fn fail(&self, code: &str, error: &str, correlation: Option<Value>) {
        self.reply(
            json!({"type": "error", "data": {"code": code, "error": error}}),
            correlation,
        );
    }

    fn send(&self, mut message: Value) {
        if let Some(fields) = message.as_object_mut() {
            fields.insert("timestamp".to_owned(), Value::String(timestamp()));
        }
        // A closed writer means the client is leaving; nothing to do.
        let _ = self.tx.send(encode(message));
    }

    fn leave(&mut self) {
        let mut channels = self.hub.channels();
        for channel in self.subscribed.drain(..) {
            if let Some(subscribers) = channels.get_mut(&channel) {
                subscribers.remove(&self.id);
                if subscribers.is_empty() {
                    channels.remove(&channel);
                }
            }
        }
    }
}

/// A text frame whose bytes every clone shares.
fn encode(message: Value) -> Message {
    Message::Text(Utf8Bytes::from(message.to_string()))
}

/// Now as ISO-8601 UTC with milliseconds, like `2024-01-01T12:00:00.000Z`.
fn timestamp() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}
