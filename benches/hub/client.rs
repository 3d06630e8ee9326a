//! The load generator's client: a minimal WebSocket client on raw
//! sockets (handshakes, masked text frames, frame parsing without copies),
//! over plain TCP or TLS ([`Wire`]), inflating permessage-deflate messages
//! when asked to offer it ([`Dial`]), opening many connections at once, and
//! plain HTTP GETs of wshub's stats.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use flate2::{Decompress, FlushDecompress, Status};
use mio::unix::SourceFd;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::report::{Histogram, Tally};
use crate::{MASK, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, PHASE_LIMIT, STEP_TIMEOUT, WS_KEY};

/// The largest frame, and the largest inflated message, a client takes.
const MAX_MESSAGE: usize = 16 << 20;
/// The name the TLS clients ask for, which the bench's certificates carry.
pub(crate) const TLS_NAME: &str = "localhost";
/// What every compressed message ends with and RFC 7692 leaves off the
/// wire (a sync flush's empty stored block).
const DEFLATE_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// How the load generator reaches a server. The default is every
/// scenario's: plain TCP, no extension offered.
#[derive(Clone, Default)]
pub(crate) struct Dial {
    /// wss:// and https://, trusting what this configuration trusts.
    pub(crate) tls: Option<Arc<ClientConfig>>,
    /// Offer permessage-deflate as browsers do
    /// (`permessage-deflate; client_max_window_bits`).
    pub(crate) deflate: bool,
}

impl Dial {
    /// One HTTP/1.1 request on its own connection; returns the body.
    pub(crate) fn http_get(&self, addr: SocketAddr, path: &str) -> String {
        let exchange = || -> Result<Vec<u8>, String> {
            let mut wire = Wire::connect(addr, self)?;
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            wire.write_all(request.as_bytes())
                .and_then(|()| wire.flush())
                .map_err(|e| format!("write: {e}"))?;
            let mut response = Vec::new();
            let mut chunk = [0u8; 16 * 1024];
            // To the end, or what came before an error (a TLS peer that
            // closes without close_notify).
            loop {
                match wire.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => response.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            Ok(response)
        };
        let response = String::from_utf8(exchange().unwrap_or_default()).unwrap_or_default();
        response
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned()
    }

    /// wshub's Prometheus counters, as `name value` lines.
    pub(crate) fn metrics(&self, addr: SocketAddr) -> String {
        self.http_get(addr, "/metrics")
    }
}

/// A client's byte stream: plain TCP, or TLS over TCP (rustls). Blocking
/// or not as its socket is; a non-blocking TLS read returns the plaintext
/// rustls already holds before it reads the socket again, and `WouldBlock`
/// only when both are empty, so a reader that reads until `WouldBlock`
/// leaves nothing behind that epoll would not wake it for.
pub(crate) enum Wire {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Wire {
    /// Connects to `addr`, on a blocking socket with [`STEP_TIMEOUT`] for
    /// reads and writes; over TLS, with the handshake done.
    pub(crate) fn connect(addr: SocketAddr, dial: &Dial) -> Result<Wire, String> {
        let tcp =
            TcpStream::connect_timeout(&addr, STEP_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).ok();
        tcp.set_read_timeout(Some(STEP_TIMEOUT)).ok();
        tcp.set_write_timeout(Some(STEP_TIMEOUT)).ok();
        let Some(config) = &dial.tls else {
            return Ok(Wire::Plain(tcp));
        };
        let name = ServerName::try_from(TLS_NAME).map_err(|e| format!("TLS name: {e}"))?;
        let conn = ClientConnection::new(Arc::clone(config), name)
            .map_err(|e| format!("TLS client: {e}"))?;
        let mut tls = StreamOwned::new(conn, tcp);
        let began = Instant::now();
        while tls.conn.is_handshaking() {
            if began.elapsed() > STEP_TIMEOUT {
                return Err(format!(
                    "TLS handshake: not done within {} s",
                    STEP_TIMEOUT.as_secs()
                ));
            }
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        Ok(Wire::Tls(Box::new(tls)))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Wire::Plain(tcp) => tcp,
            Wire::Tls(tls) => &tls.sock,
        }
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
        self.tcp().set_nonblocking(nonblocking)
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.tcp().set_read_timeout(timeout)
    }

    /// The TLS version and cipher suite agreed, if over TLS.
    pub(crate) fn tls_agreed(&self) -> Option<String> {
        let Wire::Tls(tls) = self else {
            return None;
        };
        let version = tls
            .conn
            .protocol_version()
            .map_or("?".to_owned(), |v| format!("{v:?}"));
        let suite = tls
            .conn
            .negotiated_cipher_suite()
            .map_or("?".to_owned(), |s| format!("{:?}", s.suite()));
        Some(format!("{version}, {suite}"))
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(tcp) => tcp.read(buf),
            Wire::Tls(tls) => tls.read(buf),
        }
    }
}

/// Over TLS a write hands the bytes to rustls, which sends what the socket
/// takes at once; `flush` sends the rest (a no-op on plain TCP).
impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(tcp) => tcp.write(buf),
            Wire::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Wire::Plain(tcp) => tcp.flush(),
            Wire::Tls(tls) => tls.flush(),
        }
    }
}

/// Registered with epoll by its socket's descriptor.
impl mio::event::Source for Wire {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> std::io::Result<()> {
        SourceFd(&self.tcp().as_raw_fd()).register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> std::io::Result<()> {
        SourceFd(&self.tcp().as_raw_fd()).reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> std::io::Result<()> {
        SourceFd(&self.tcp().as_raw_fd()).deregister(registry)
    }
}

/// permessage-deflate's receiving side (RFC 7692 §7.2.2): raw DEFLATE with
/// the four bytes the sender left off put back. Its context is dropped
/// after each message when the server agreed `server_no_context_takeover`
/// (wshub always does), kept otherwise.
pub(crate) struct Inflater {
    decompress: Decompress,
    fresh_each_message: bool,
    out: Vec<u8>,
}

impl Inflater {
    fn new(fresh_each_message: bool) -> Inflater {
        Inflater {
            decompress: Decompress::new(false),
            fresh_each_message,
            out: Vec::with_capacity(16 * 1024),
        }
    }

    /// The message a compressed frame's `payload` holds.
    pub(crate) fn inflate(&mut self, payload: &[u8]) -> Result<&[u8], &'static str> {
        if self.fresh_each_message {
            self.decompress.reset(false);
        }
        self.out.clear();
        for mut input in [payload, &DEFLATE_TAIL[..]] {
            loop {
                if self.out.len() == self.out.capacity() {
                    if self.out.len() >= MAX_MESSAGE {
                        return Err("a compressed message inflating past 16 MiB");
                    }
                    self.out.reserve(self.out.len().max(16 * 1024));
                }
                let (before_in, before_out) = (self.decompress.total_in(), self.out.len());
                let status = self
                    .decompress
                    .decompress_vec(input, &mut self.out, FlushDecompress::Sync)
                    .map_err(|_| "a compressed message that does not inflate")?;
                let used = (self.decompress.total_in() - before_in) as usize;
                input = &input[used..];
                let room_left = self.out.len() < self.out.capacity();
                if status == Status::StreamEnd || (input.is_empty() && room_left) {
                    break;
                }
                if used == 0 && self.out.len() == before_out && room_left {
                    return Err("a compressed message that does not inflate");
                }
            }
        }
        Ok(&self.out)
    }
}

/// A client past the handshake, on a blocking socket, with the bytes read
/// past the last complete frame.
pub(crate) struct RawWs {
    pub(crate) stream: Wire,
    pub(crate) buf: Vec<u8>,
    /// permessage-deflate, when it was offered and the server agreed.
    pub(crate) inflater: Option<Inflater>,
}

impl RawWs {
    /// Connects and upgrades to a WebSocket over plain TCP, with no
    /// extension offered; reads nothing more.
    pub(crate) fn handshake(addr: SocketAddr, path: &str) -> Result<RawWs, String> {
        RawWs::dial(addr, path, &Dial::default())
    }

    /// Connects as `dial` says and upgrades to a WebSocket; reads nothing more.
    pub(crate) fn dial(addr: SocketAddr, path: &str, dial: &Dial) -> Result<RawWs, String> {
        let mut stream = Wire::connect(addr, dial)?;
        let offer = match dial.deflate {
            true => "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
            false => "",
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .and_then(|()| stream.flush())
            .map_err(|e| format!("send the upgrade request: {e}"))?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        let head_end = loop {
            let n = match stream.read(&mut chunk) {
                Ok(0) => return Err("closed during the handshake".to_owned()),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read the upgrade response: {e}")),
            };
            buf.extend_from_slice(&chunk[..n]);
            if let Some(at) = find(&buf, b"\r\n\r\n") {
                break at + 4;
            }
            if buf.len() > 16 * 1024 {
                return Err("an upgrade response head over 16 KiB".to_owned());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]);
        let status = head.lines().next().unwrap_or_default().to_owned();
        if !status.starts_with("HTTP/1.1 101") {
            let body = String::from_utf8_lossy(&buf[head_end..]);
            return Err(format!("refused: {status} {}", body.trim()));
        }
        let inflater = agreed_deflate(&head, dial.deflate)?;
        buf.drain(..head_end);
        Ok(RawWs {
            stream,
            buf,
            inflater,
        })
    }

    pub(crate) fn send_text(&mut self, text: &str) -> Result<(), String> {
        let mut frame = Vec::with_capacity(text.len() + 14);
        push_frame(&mut frame, OP_TEXT, text.as_bytes());
        self.stream
            .write_all(&frame)
            .and_then(|()| self.stream.flush())
            .map_err(|e| format!("write: {e}"))
    }

    /// The next text message, or `None` when the socket's read timeout (or
    /// non-blocking mode) says there is none yet. Pings are answered.
    pub(crate) fn read_text(&mut self) -> Result<Option<String>, String> {
        loop {
            match parse_frame_with(&self.buf, self.inflater.is_some()) {
                Parse::Frame {
                    fin,
                    opcode,
                    start,
                    end,
                    compressed,
                } => {
                    let mut payload = self.buf[start..end].to_vec();
                    self.buf.drain(..end);
                    if let (true, Some(inflater)) = (compressed, self.inflater.as_mut()) {
                        payload = inflater.inflate(&payload)?.to_vec();
                    }
                    match opcode {
                        OP_TEXT if fin => {
                            return String::from_utf8(payload)
                                .map(Some)
                                .map_err(|_| "a text frame that is not UTF-8".to_owned());
                        }
                        OP_TEXT => return Err("a fragmented message".to_owned()),
                        OP_CLOSE => {
                            return Err(format!(
                                "closed by the server: {}",
                                close_reason(&payload)
                            ));
                        }
                        OP_PING => {
                            let mut pong = Vec::with_capacity(payload.len() + 8);
                            push_frame(&mut pong, OP_PONG, &payload);
                            self.stream
                                .write_all(&pong)
                                .and_then(|()| self.stream.flush())
                                .map_err(|e| format!("write: {e}"))?;
                        }
                        _ => {}
                    }
                }
                Parse::Partial => {
                    let mut chunk = [0u8; 16 * 1024];
                    match self.stream.read(&mut chunk) {
                        Ok(0) => return Err("connection closed".to_owned()),
                        Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::WouldBlock
                                    | ErrorKind::TimedOut
                                    | ErrorKind::Interrupted
                            ) =>
                        {
                            return Ok(None);
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(format!("read: {e}")),
                    }
                }
                Parse::Bad(why) => return Err(why.to_owned()),
            }
        }
    }

    /// The next text message within the socket's read timeout.
    pub(crate) fn expect_text(&mut self) -> Result<String, String> {
        self.read_text()?
            .ok_or_else(|| format!("no message within {} s", STEP_TIMEOUT.as_secs()))
    }

    /// Whether the server still has this (silent) client: nothing to read,
    /// or only what an open connection gets.
    pub(crate) fn still_open(&mut self) -> bool {
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        loop {
            match self.read_text() {
                Ok(None) => return true,
                Ok(Some(_)) => {}
                Err(_) => return false,
            }
        }
    }
}

/// A client past the `connection` welcome, subscribed to `channel` if one is
/// given, connected as `dial` says.
pub(crate) fn open_client(
    dial: &Dial,
    addr: SocketAddr,
    path: &str,
    channel: Option<&str>,
) -> Result<RawWs, String> {
    let mut ws = RawWs::dial(addr, path, dial)?;
    let welcome = ws.expect_text()?;
    // `connection`, or `connection:established` in the payload envelope.
    if !welcome.contains(r#""type":"connection"#) {
        return Err(format!("expected the welcome, got {welcome}"));
    }
    if let Some(channel) = channel {
        let subscribe =
            format!(r#"{{"type":"subscribe","channel":"{channel}","correlationId":"sub"}}"#);
        ws.send_text(&subscribe)?;
        loop {
            let reply = ws.expect_text()?;
            if reply.contains(r#""type":"subscribed""#) {
                break;
            }
            if reply.contains(r#""type":"error""#) {
                return Err(format!("subscribe refused: {reply}"));
            }
        }
    }
    Ok(ws)
}

/// Clients that made it, the failures, how long it took, and how long each
/// successful one took.
pub(crate) struct Opened {
    pub(crate) clients: Vec<RawWs>,
    pub(crate) errors: Tally,
    pub(crate) took: Duration,
    pub(crate) latency: Histogram,
}

/// Opens `n` clients, `at_once` at a time (one thread each), until done,
/// [`PHASE_LIMIT`] passes or more than half have failed.
/// Client `i` connects on `paths[i % paths.len()]`, over plain TCP.
pub(crate) fn open_many(
    addr: SocketAddr,
    n: usize,
    at_once: usize,
    channel: Option<&str>,
    paths: &[&str],
) -> Opened {
    open_many_with(&Dial::default(), addr, n, at_once, channel, paths)
}

/// [`open_many`], each client connected as `dial` says.
pub(crate) fn open_many_with(
    dial: &Dial,
    addr: SocketAddr,
    n: usize,
    at_once: usize,
    channel: Option<&str>,
    paths: &[&str],
) -> Opened {
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let start = Instant::now();
    let parts: Vec<(Vec<RawWs>, Tally, Histogram)> = thread::scope(|scope| {
        let workers: Vec<_> = (0..at_once.clamp(1, n.max(1)))
            .map(|_| {
                let (next, failures) = (&next, &failures);
                thread::Builder::new()
                    .name("bench-connect".into())
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || {
                        let mut part = (Vec::new(), Tally::default(), Histogram::default());
                        while start.elapsed() < PHASE_LIMIT
                            && failures.load(Ordering::Relaxed) <= n / 2 + 100
                        {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= n {
                                break;
                            }
                            let began = Instant::now();
                            match open_client(dial, addr, paths[i % paths.len()], channel) {
                                Ok(ws) => {
                                    part.2.record(began.elapsed().as_micros() as u64);
                                    part.0.push(ws);
                                }
                                Err(e) => {
                                    failures.fetch_add(1, Ordering::Relaxed);
                                    part.1.add(e);
                                }
                            }
                        }
                        part
                    })
                    .expect("start a connect thread")
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("connect thread"))
            .collect()
    });
    let mut opened = Opened {
        clients: Vec::with_capacity(n),
        errors: Tally::default(),
        took: start.elapsed(),
        latency: Histogram::default(),
    };
    for (clients, errors, latency) in parts {
        opened.clients.extend(clients);
        opened.errors.merge(errors);
        opened.latency.merge(&latency);
    }
    let tried = next.load(Ordering::Relaxed).min(n);
    if tried < n {
        opened
            .errors
            .add(format!("gave up after {tried} of {n} attempts"));
    }
    opened
}

/// A client frame (masked) onto `out`.
pub(crate) fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
}

pub(crate) enum Parse {
    /// A whole frame: its payload is `start..end`, and `end` is its length.
    Frame {
        fin: bool,
        opcode: u8,
        start: usize,
        end: usize,
        /// RSV1: a permessage-deflate message (only when it was agreed).
        compressed: bool,
    },
    Partial,
    Bad(&'static str),
}

/// The server frame at the start of `buf`, if it has all arrived, on a
/// connection with no extension agreed: any RSV bit set is an error.
pub(crate) fn parse_frame(buf: &[u8]) -> Parse {
    parse_frame_with(buf, false)
}

/// The same on a connection that agreed permessage-deflate if `deflate`:
/// then RSV1 marks a compressed message, on a data frame that starts one
/// (RFC 7692 §6.1); RSV2 and RSV3 are errors either way.
pub(crate) fn parse_frame_with(buf: &[u8], deflate: bool) -> Parse {
    let [b0, b1, rest @ ..] = buf else {
        return Parse::Partial;
    };
    let opcode = b0 & 0x0f;
    let compressed = b0 & 0x40 != 0;
    if b0 & 0x30 != 0 {
        return Parse::Bad("a frame with RSV2 or RSV3 set");
    }
    if compressed && !deflate {
        return Parse::Bad("a frame with RSV1 set, no extension agreed");
    }
    if compressed && !matches!(opcode, 0x1 | 0x2) {
        return Parse::Bad("RSV1 on a control or continuation frame");
    }
    if b1 & 0x80 != 0 {
        return Parse::Bad("a masked frame from the server");
    }
    let (len, start) = match b1 & 0x7f {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 4),
            _ => return Parse::Partial,
        },
        127 => match rest.get(..8) {
            Some(bytes) => (u64::from_be_bytes(bytes.try_into().expect("8 bytes")), 10),
            None => return Parse::Partial,
        },
        n => (u64::from(n), 2),
    };
    if len > MAX_MESSAGE as u64 {
        return Parse::Bad("a frame over 16 MiB");
    }
    let end = start + len as usize;
    if buf.len() < end {
        return Parse::Partial;
    }
    Parse::Frame {
        fin: b0 & 0x80 != 0,
        opcode,
        start,
        end,
        compressed,
    }
}

/// `code reason` from a close frame's payload.
pub(crate) fn close_reason(payload: &[u8]) -> String {
    match payload {
        [a, b, reason @ ..] => format!(
            "close {} {}",
            u16::from_be_bytes([*a, *b]),
            String::from_utf8_lossy(reason)
        ),
        _ => "close (no code)".to_owned(),
    }
}

/// Where `needle` (at least two bytes) first occurs in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    // Scan for the second byte: the first is often a `"`.
    let mut from = 1;
    while let Some(at) = hay.get(from..)?.iter().position(|&b| b == needle[1]) {
        let start = from + at - 1;
        if hay[start..].starts_with(needle) {
            return Some(start);
        }
        from += at + 1;
    }
    None
}

/// The unsigned number right after `key` in `hay`.
pub(crate) fn number_after(hay: &[u8], key: &[u8]) -> Option<u64> {
    let digits = &hay[find(hay, key)? + key.len()..];
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    digits[..end].iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The unsigned number after `"name":` in a JSON text, without parsing it all.
pub(crate) fn field(text: &str, name: &str) -> Option<u64> {
    number_after(text.as_bytes(), format!("\"{name}\":").as_bytes())
}

/// wshub's Prometheus counters, as `name value` lines (plain HTTP).
pub(crate) fn metrics(addr: SocketAddr) -> String {
    Dial::default().metrics(addr)
}

/// The permessage-deflate the server agreed to in its 101 response `head`
/// (which must not name an extension that was not offered).
fn agreed_deflate(head: &str, offered: bool) -> Result<Option<Inflater>, String> {
    let agreed = head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-extensions")
            .then(|| value.trim().to_owned())
    });
    match agreed {
        None => Ok(None),
        Some(value) if !offered => Err(format!("an extension that was not offered: {value}")),
        Some(value) if !value.starts_with("permessage-deflate") => {
            Err(format!("an extension that was not offered: {value}"))
        }
        Some(value) => Ok(Some(Inflater::new(
            value.contains("server_no_context_takeover"),
        ))),
    }
}

pub(crate) fn metric(metrics: &str, name: &str) -> String {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or("?")
        .to_owned()
}
