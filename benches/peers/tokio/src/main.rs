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
//! What it sends has the fields of wshub's standard envelope, in wshub's
//! order and with values of the same shape, so both do the same work per
//! message: the `connection` welcome then `auth`, `subscribed` with where
//! the channel stands (`seq`, `epoch`), and each delivery with `from`
//! (`clientId` like wshub's `c_1-0954ab34`), `seq` (per channel, from 1) and
//! `epoch` (12 hex digits, made when the channel is first named). The
//! request's `data` goes out as it came, unparsed, as wshub does.
//!
//! Each connection has a reader task and a writer task joined by an unbounded
//! channel. A publication is encoded once, as a `Message::Text` whose bytes
//! are shared, and a clone (a reference count) goes into each subscriber's
//! channel. The writer `feed`s while more is queued and `flush`es when its
//! channel is momentarily empty, so a burst leaves in few writes.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Tx = UnboundedSender<Message>;

/// What wshub's welcome says of a client's heartbeat (its default), only so
/// the welcome weighs the same: this peer sends no protocol pings.
const HEARTBEAT_MS: u64 = 30_000;

/// Who is subscribed to what: channel name -> its position and subscribers.
#[derive(Default)]
struct Hub {
    channels: Mutex<HashMap<String, Channel>>,
    next_id: AtomicU64,
    /// How many epochs were made.
    epochs: AtomicU64,
    /// Keys the hashes that make client ids' tags and epochs.
    key: RandomState,
}

/// A channel's stream: the `seq` of its last publication in `epoch`, and
/// client id -> its writer's queue. It outlives its subscribers, as a stream
/// in wshub's history does, so its numbering goes on.
struct Channel {
    seq: u64,
    epoch: String,
    subscribers: HashMap<u64, Tx>,
}

impl Hub {
    fn channels(&self) -> MutexGuard<'_, HashMap<String, Channel>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `name`'s stream, opened with a new epoch if it is new.
    fn open<'m>(&self, channels: &'m mut HashMap<String, Channel>, name: &str) -> &'m mut Channel {
        channels.entry(name.to_owned()).or_insert_with(|| {
            let n = self.epochs.fetch_add(1, Ordering::Relaxed);
            let hash = self.key.hash_one(("epoch", n));
            Channel {
                seq: 0,
                epoch: format!("{:012x}", hash & 0xffff_ffff_ffff),
                subscribers: HashMap::new(),
            }
        })
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
    let tag = hub.key.hash_one(id) as u32;
    let mut client = Client {
        hub: &hub,
        id,
        client_id: format!("c_{id:x}-{tag:08x}"),
        tx,
        subscribed: Vec::new(),
    };
    let welcome = Welcome {
        client_id: &client.client_id,
        user_id: None,
        session_id: None,
        authenticated: false,
        heartbeat_ms: HEARTBEAT_MS,
    };
    client.send(&Outbound::new("connection", Some(welcome)));
    let auth = Auth {
        success: true,
        user_id: None,
    };
    client.send(&Outbound::new("auth", Some(auth)));
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

/// The fields of a request this peer reads; `data` is borrowed from its
/// text, unparsed.
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    channel: Option<String>,
    event: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
    #[serde(rename = "correlationId", borrow)]
    correlation_id: Option<&'a RawValue>,
}

/// A message in wshub's standard envelope, its fields in wshub's order.
#[derive(Serialize)]
struct Outbound<'a, D> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<D>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<Origin<'a>>,
    #[serde(rename = "correlationId", skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<&'a str>,
    timestamp: String,
}

impl<'a, D: Serialize> Outbound<'a, D> {
    /// A message of `kind` with `data`, stamped now.
    fn new(kind: &'a str, data: Option<D>) -> Self {
        Outbound {
            kind,
            channel: None,
            data,
            from: None,
            correlation_id: None,
            seq: None,
            epoch: None,
            timestamp: timestamp(),
        }
    }
}

/// Who a publication comes from (`from`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Origin<'a> {
    client_id: &'a str,
    user_id: Option<&'a str>,
}

/// Data of the `connection` welcome.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Welcome<'a> {
    client_id: &'a str,
    user_id: Option<&'a str>,
    session_id: Option<&'a str>,
    authenticated: bool,
    heartbeat_ms: u64,
}

/// Data of the `auth` message after the welcome.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Auth<'a> {
    success: bool,
    user_id: Option<&'a str>,
}

/// Data of `subscribed`: where the channel's stream stands.
#[derive(Serialize)]
struct Position<'a> {
    seq: u64,
    epoch: &'a str,
}

#[derive(Serialize)]
struct Published {
    delivered: usize,
}

#[derive(Serialize)]
struct ErrorData<'a> {
    code: &'a str,
    error: &'a str,
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
        let request = match serde_json::from_str::<Request<'_>>(text) {
            Ok(request) => request,
            // JSON, but not an object with the fields of the right types.
            Err(err) if err.is_data() => {
                return self.fail("invalid_message", "Invalid message format", None);
            }
            Err(_) => return self.fail("invalid_json", "Invalid message format", None),
        };
        let correlation = request.correlation_id;
        let Some(kind) = request.kind.as_deref() else {
            return self.fail("invalid_message", "Invalid message format", correlation);
        };
        match (kind, request.channel.as_deref()) {
            ("ping", _) => {
                let pong = Outbound::<()> {
                    correlation_id: correlation,
                    ..Outbound::new("pong", None)
                };
                self.send(&pong);
            }
            ("subscribe", Some(name)) => {
                let mut channels = self.hub.channels();
                let channel = self.hub.open(&mut channels, name);
                channel.subscribers.insert(self.id, self.tx.clone());
                // Sent under the lock: no delivery of this channel can
                // overtake it.
                let position = Position {
                    seq: channel.seq,
                    epoch: &channel.epoch,
                };
                self.send(&Outbound {
                    channel: Some(name),
                    correlation_id: correlation,
                    ..Outbound::new("subscribed", Some(position))
                });
                drop(channels);
                if !self.subscribed.iter().any(|c| c == name) {
                    self.subscribed.push(name.to_owned());
                }
            }
            ("publish", Some(name)) => {
                let mut channels = self.hub.channels();
                let channel = self.hub.open(&mut channels, name);
                channel.seq += 1;
                // Numbered, encoded and queued under the lock, so every
                // subscriber gets the channel's publications in `seq` order.
                let event = Outbound {
                    channel: Some(name),
                    from: Some(Origin {
                        client_id: &self.client_id,
                        user_id: None,
                    }),
                    seq: Some(channel.seq),
                    epoch: Some(&channel.epoch),
                    ..Outbound::new(
                        request.event.as_deref().unwrap_or("event"),
                        request.data.or(request.payload),
                    )
                };
                let Some(event) = encode(&event) else {
                    return;
                };
                let delivered = channel
                    .subscribers
                    .values()
                    .filter(|tx| tx.send(event.clone()).is_ok())
                    .count();
                drop(channels);
                if correlation.is_some() {
                    self.send(&Outbound {
                        channel: Some(name),
                        correlation_id: correlation,
                        ..Outbound::new("published", Some(Published { delivered }))
                    });
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

    fn fail(&self, code: &str, error: &str, correlation: Option<&RawValue>) {
        self.send(&Outbound {
            correlation_id: correlation,
            ..Outbound::new("error", Some(ErrorData { code, error }))
        });
    }

    fn send<D: Serialize>(&self, message: &Outbound<'_, D>) {
        if let Some(message) = encode(message) {
            // A closed writer means the client is leaving; nothing to do.
            let _ = self.tx.send(message);
        }
    }

    fn leave(&mut self) {
        let mut channels = self.hub.channels();
        for name in self.subscribed.drain(..) {
            if let Some(channel) = channels.get_mut(&name) {
                channel.subscribers.remove(&self.id);
            }
        }
    }
}

/// A text frame whose bytes every clone shares.
fn encode<D: Serialize>(message: &Outbound<'_, D>) -> Option<Message> {
    match serde_json::to_string(message) {
        Ok(text) => Some(Message::Text(Utf8Bytes::from(text))),
        Err(err) => {
            // Only a map with keys that are not strings fails; these have none.
            eprintln!("wshub-peer-tokio: cannot encode a {}: {err}", message.kind);
            None
        }
    }
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
