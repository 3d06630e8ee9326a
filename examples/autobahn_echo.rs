//! An echo service on the hub's own WebSocket layer, for the Autobahn
//! test suite: every text and binary message comes back as it came, Pings
//! are answered, and a client that breaks the protocol is closed with the
//! code the hub would use.
//!
//! The hub's clients speak JSON, and it refuses binary messages; a
//! conformance suite needs an echo of anything. So this is not the hub
//! with a test switch, but the layer under it, as the hub runs it: the
//! same [`wshub::websocket::Reader`] each reader thread runs (masking,
//! fragments, control frames between them, RSV bits, UTF-8 checked as
//! fragments come, Close payloads, sizes, inflating under a cap), the same
//! [`wshub::websocket::negotiate`] the upgrade answers with, and the same
//! [`wshub::websocket::Compressor`] the router compresses fan-outs with. It
//! compresses every reply it can (the hub only those of
//! `--compression-min-size` bytes or more), so the suite sees the
//! compressor at every size.
//!
//! ```text
//! cargo run --release --example autobahn_echo -- 9001    # ws://127.0.0.1:9001
//! ```
//!
//! One thread per connection, blocking reads and writes; it prints the
//! address it listens on and runs until killed. Messages may be up to
//! 64 MiB (the suite's largest is 16 MiB).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame};
use wshub::websocket::{self, Compressor, Deflate, Incoming, ReadError};

/// The largest message the suite may send (its largest is 16 MiB).
const MAX_MESSAGE: usize = 64 << 20;
/// The read buffer of each connection.
const BUFFER: usize = 64 * 1024;
/// How long a handshake, and the end of a closed connection, may take.
const PATIENCE: Duration = Duration::from_secs(10);

fn main() -> io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(9001);
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("listening on ws://{}", listener.local_addr()?);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        thread::spawn(move || {
            if let Err(err) = serve(stream) {
                eprintln!("connection ended: {err}");
            }
        });
    }
    Ok(())
}

/// One connection: the handshake, then echo until it ends.
fn serve(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    let Some(Upgrade { key, offers, rest }) = handshake(&stream)? else {
        let mut out = &stream;
        out.write_all(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    };
    let deflate = websocket::negotiate(offers.iter().map(String::as_str));
    let extensions = match deflate {
        Some(deflate) => format!("Sec-WebSocket-Extensions: {}\r\n", deflate.response()),
        None => String::new(),
    };
    let mut out = &stream;
    write!(
        out,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extensions}\r\n",
        derive_accept_key(key.as_bytes())
    )?;
    // From here the client sets the pace: no read timeout.
    stream.set_read_timeout(None)?;
    let mut reader =
        websocket::Reader::with_read(&stream, rest, BUFFER, MAX_MESSAGE).deflate(deflate);
    let mut echo = Echo {
        out: &stream,
        deflate,
        compressor: deflate.map(|_| Compressor::new()),
    };
    loop {
        match reader.read() {
            Ok(Incoming::Text(text)) => echo.data(true, text.as_bytes())?,
            Ok(Incoming::Binary(data)) => echo.data(false, &data)?,
            Ok(Incoming::Ping(payload)) => echo.frame(Frame::pong(payload))?,
            Ok(Incoming::Pong(_)) => {}
            Ok(Incoming::Close(close)) => {
                // Echo the code (none for none), then end the connection.
                let reply = close.map(|c| CloseFrame {
                    code: CloseCode::from(c.code),
                    reason: "".into(),
                });
                echo.frame(Frame::close(reply))?;
                return finish(&stream);
            }
            Err(err) => {
                let Some(code) = err.close_code() else {
                    return Ok(());
                };
                echo.frame(Frame::close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason(&err).into(),
                })))?;
                return finish(&stream);
            }
        }
    }
}

/// The reason the hub gives with each close code.
fn reason(err: &ReadError) -> &'static str {
    match err {
        ReadError::TooBig => "Message too big",
        ReadError::InvalidUtf8 => "Invalid UTF-8",
        _ => "Protocol error",
    }
}

/// The writing side of a connection.
struct Echo<'a> {
    out: &'a TcpStream,
    deflate: Option<Deflate>,
    compressor: Option<Compressor>,
}

impl Echo<'_> {
    /// Sends a message back, compressed if the client agreed and it helps.
    fn data(&mut self, text: bool, payload: &[u8]) -> io::Result<()> {
        if let (Some(deflate), Some(compressor)) = (self.deflate, self.compressor.as_mut())
            && let Some(frame) = compressor.frame(text, payload, deflate)
        {
            return self.out.write_all(&frame);
        }
        let kind = if text { Data::Text } else { Data::Binary };
        self.frame(Frame::message(payload.to_vec(), OpCode::Data(kind), true))
    }

    fn frame(&mut self, frame: Frame) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(frame.len());
        frame
            .format(&mut bytes)
            .map_err(|err| io::Error::other(err.to_string()))?;
        self.out.write_all(&bytes)
    }
}

/// After the Close: says so at the TCP level, then reads and drops what
/// the client still sends until it closes too (or takes too long), so the
/// Close is not lost to a reset.
fn finish(stream: &TcpStream) -> io::Result<()> {
    stream.shutdown(Shutdown::Write)?;
    let deadline = Instant::now() + PATIENCE;
    let mut sink = [0u8; 4096];
    let mut input = stream;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        match input.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(())
}

/// An upgrade request, as far as the echo needs it.
struct Upgrade {
    /// Its `Sec-WebSocket-Key`.
    key: String,
    /// Its `Sec-WebSocket-Extensions` values.
    offers: Vec<String>,
    /// What was read past its end.
    rest: Vec<u8>,
}

/// Reads the upgrade request; `None` for anything but a WebSocket upgrade.
fn handshake(stream: &TcpStream) -> io::Result<Option<Upgrade>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut input = stream;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(end)) => {
                let header = |name: &str| {
                    request
                        .headers
                        .iter()
                        .filter(|h| h.name.eq_ignore_ascii_case(name))
                        .filter_map(|h| std::str::from_utf8(h.value).ok())
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                };
                let upgrade = header("upgrade")
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case("websocket"));
                let key = header("sec-websocket-key").into_iter().next();
                return Ok(match (request.method, upgrade, key) {
                    (Some("GET"), true, Some(key)) => Some(Upgrade {
                        key,
                        offers: header("sec-websocket-extensions"),
                        rest: buf[end..].to_vec(),
                    }),
                    _ => None,
                });
            }
            Ok(httparse::Status::Partial) if buf.len() < 16 * 1024 => {}
            _ => return Ok(None),
        }
        let n = input.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
