//! One WebSocket connection to the hub: the URL, the TCP connection and the
//! handshake, the welcome, and reading frames within a deadline while the
//! heartbeat watchdog watches for silence.
//!
//! Owned by the [`Client`](super::Client) and used only on its thread (the
//! caller's): every read and write blocks that thread, up to a deadline.
//! A connection ends when it is dropped (the socket is closed then), after
//! the hub's Close, or when a read or write fails.

use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::client::ClientRequestBuilder;
use tungstenite::http::Uri;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{HandshakeError, Message, WebSocket};

use super::{Error, HubError, Result, Welcome};

/// Shortest read wait: the socket refuses a zero timeout.
const MIN_WAIT: Duration = Duration::from_millis(1);

/// How long a close handshake started by the client may take.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Where the hub is: from a `ws://host:port/path?query` URL (or `wss://`,
/// with the `tls` feature).
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `wss://`: the TLS settings every connection to it uses.
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
    url: String,
    host: String,
    port: u16,
    /// `host:port` as written (IPv6 in brackets), for the `Host` header.
    authority: String,
    path: String,
    /// The URL's own query, if it has one, without `?`.
    query: Option<String>,
}

impl Endpoint {
    /// The hub at `url`; for `wss://`, trusting the authorities in
    /// `ca_file` (PEM), or else the system's.
    pub(crate) fn parse(url: &str, ca_file: Option<&Path>) -> Result<Endpoint> {
        let invalid = |reason| Error::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        let secure = match uri.scheme_str() {
            Some("ws" | "http") => false,
            Some("wss" | "https") if cfg!(feature = "tls") => true,
            Some("wss" | "https") => {
                return Err(Error::TlsUnsupported {
                    url: url.to_owned(),
                });
            }
            Some(_) => return Err(invalid("the scheme must be ws:// or wss://")),
            None => return Err(invalid("no scheme: write ws://host:port/ws")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user information in a URL is not supported"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let port = authority
            .port_u16()
            .unwrap_or(if secure { 443 } else { 80 });
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        #[cfg(not(feature = "tls"))]
        let _ = ca_file;
        Ok(Endpoint {
            #[cfg(feature = "tls")]
            tls: match secure {
                true => Some(super::tls::client_config(ca_file)?),
                false => None,
            },
            url: url.to_owned(),
            host: host.to_owned(),
            port,
            authority,
            path: uri.path().to_owned(),
            query: uri.query().filter(|q| !q.is_empty()).map(str::to_owned),
        })
    }

    /// The URL as given, for messages.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The request URI, with the client's own query parameters added.
    fn request_uri(&self, params: &[(&str, &str)]) -> String {
        let mut uri = format!("ws://{}{}", self.authority, self.path);
        let mut separator = '?';
        if let Some(query) = &self.query {
            uri.push(separator);
            uri.push_str(query);
            separator = '&';
        }
        for (name, value) in params {
            uri.push(separator);
            uri.push_str(name);
            uri.push('=');
            encode_query_value(&mut uri, value);
            separator = '&';
        }
        uri
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode_query_value(out: &mut String, value: &str) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// What a connection is opened with.
pub(crate) struct Opening<'a> {
    pub(crate) token: Option<&'a str>,
    pub(crate) user_id: Option<&'a str>,
    pub(crate) session_id: Option<&'a str>,
    pub(crate) timeout: Duration,
    /// Silence past the hub's heartbeat before the watchdog gives up.
    pub(crate) heartbeat_grace: Duration,
}

/// How a connection ended: a close code (1006 when there was no Close
/// frame) and its reason.
#[derive(Debug)]
pub(crate) struct Gone {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

impl Gone {
    fn abnormal(reason: impl Into<String>) -> Gone {
        Gone {
            code: 1006,
            reason: reason.into(),
        }
    }
}

/// The client's socket: plain TCP, or TLS over it (`wss://`).
pub(crate) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket under it, for its timeouts.
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => &tls.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            #[cfg(feature = "tls")]
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// An open connection, past the hub's welcome.
pub(crate) struct Conn {
    ws: WebSocket<Stream>,
    /// When the hub was last heard from (any frame at all).
    last_heard: Instant,
    /// How much silence means the connection is dead, from the welcome's
    /// heartbeat: twice the hub's Ping period and a grace.
    watchdog: Option<Duration>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("peer", &self.ws.get_ref().tcp().peer_addr().ok())
            .field("last_heard", &self.last_heard.elapsed())
            .field("watchdog", &self.watchdog)
            .finish()
    }
}

impl Conn {
    /// Connects, upgrades and reads the welcome, within `opening.timeout`.
    pub(crate) fn open(endpoint: &Endpoint, opening: &Opening) -> Result<(Conn, Welcome)> {
        let deadline = Instant::now() + opening.timeout;
        let stream = connect_tcp(endpoint, opening.timeout)?;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_WAIT);
        let io = |source| Error::Connect {
            addr: endpoint.authority.clone(),
            source,
        };
        stream.set_nodelay(true).map_err(io)?;
        stream.set_read_timeout(Some(left)).map_err(io)?;
        stream
            .set_write_timeout(Some(opening.timeout))
            .map_err(io)?;
        #[cfg(feature = "tls")]
        let stream = match &endpoint.tls {
            Some(config) => {
                super::tls::handshake(config, &endpoint.host, &endpoint.authority, stream)?
            }
            None => Stream::Plain(stream),
        };
        #[cfg(not(feature = "tls"))]
        let stream = Stream::Plain(stream);

        let mut params = Vec::new();
        if let Some(user) = opening.user_id {
            params.push(("userId", user));
        }
        if let Some(session) = opening.session_id {
            params.push(("sessionId", session));
        }
        let uri: Uri = endpoint
            .request_uri(&params)
            .parse()
            .map_err(|_| Error::InvalidUrl {
                url: endpoint.url.clone(),
                reason: "a user or session id makes it an invalid URL",
            })?;
        let mut request = ClientRequestBuilder::new(uri);
        if let Some(token) = opening.token {
            // A header, not the query: query strings end up in proxy logs.
            request = request.with_header("Authorization", format!("Bearer {token}"));
        }
        let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
        let (ws, _) = tungstenite::client::client_with_config(request, stream, Some(config))
            .map_err(|err| match err {
                HandshakeError::Failure(tungstenite::Error::Http(response)) => Error::Http {
                    status: response.status().as_u16(),
                },
                HandshakeError::Failure(err) => Error::WebSocket(Box::new(err)),
                HandshakeError::Interrupted(_) => Error::Timeout {
                    waited: opening.timeout,
                },
            })?;
        let mut conn = Conn {
            ws,
            last_heard: Instant::now(),
            watchdog: None,
        };
        let welcome = conn.read_welcome(deadline, opening.timeout)?;
        conn.watchdog = welcome.heartbeat.map(|every| {
            every
                .saturating_mul(2)
                .saturating_add(opening.heartbeat_grace)
        });
        Ok((conn, welcome))
    }

    /// Reads up to the `connection` welcome. An `error` before it (say
    /// `unauthorized`) is kept for the close that follows.
    fn read_welcome(&mut self, deadline: Instant, timeout: Duration) -> Result<Welcome> {
        let mut refusal = None;
        loop {
            if Instant::now() >= deadline {
                return Err(Error::Timeout { waited: timeout });
            }
            let text = match self.read(deadline) {
                Ok(Some(text)) => text,
                Ok(None) => continue,
                Err(gone) => {
                    return Err(Error::Rejected {
                        code: gone.code,
                        reason: gone.reason,
                        error: refusal,
                    });
                }
            };
            let message: Value = serde_json::from_str(&text).map_err(|_| Error::Protocol {
                expected: "a JSON welcome",
                got: text.clone(),
            })?;
            match message["type"].as_str() {
                Some("connection") => {
                    return Welcome::from_data(&message["data"]).ok_or(Error::Protocol {
                        expected: "a welcome with a clientId",
                        got: text,
                    });
                }
                Some("error") => refusal = Some(HubError::from_data(&message["data"])),
                _ => {
                    return Err(Error::Protocol {
                        expected: "the `connection` welcome (standard envelope)",
                        got: text,
                    });
                }
            }
        }
    }

    /// Waits for the next text message until `deadline`: `Ok(None)` when
    /// nothing (or only a Ping or Pong) came. The hub's Pings are answered
    /// on the next read. `Err` when the connection is over: the hub closed
    /// it, it failed, or the watchdog heard nothing for too long.
    pub(crate) fn read(&mut self, deadline: Instant) -> std::result::Result<Option<String>, Gone> {
        let silent_until = self.watchdog.map(|limit| self.last_heard + limit);
        let until = silent_until.map_or(deadline, |silent| silent.min(deadline));
        let wait = until
            .saturating_duration_since(Instant::now())
            .max(MIN_WAIT);
        self.ws
            .get_mut()
            .tcp()
            .set_read_timeout(Some(wait))
            .map_err(|err| Gone::abnormal(err.to_string()))?;
        match self.ws.read() {
            Ok(message) => {
                self.last_heard = Instant::now();
                match message {
                    Message::Text(text) => Ok(Some(text.as_str().to_owned())),
                    Message::Close(frame) => {
                        // Sends the reply tungstenite queued.
                        let _ = self.ws.flush();
                        Err(match frame {
                            Some(CloseFrame { code, reason }) => Gone {
                                code: u16::from(code),
                                reason: reason.as_str().to_owned(),
                            },
                            None => Gone {
                                code: 1005,
                                reason: String::new(),
                            },
                        })
                    }
                    _ => Ok(None),
                }
            }
            Err(tungstenite::Error::Io(err))
                if matches!(
                    err.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                // A read that found nothing (or that a signal cut short): only
                // now does silence count.
                match (silent_until, self.watchdog) {
                    (Some(silent), Some(limit)) if Instant::now() >= silent => Err(Gone::abnormal(
                        format!("no frame from the hub for {limit:?}"),
                    )),
                    _ => Ok(None),
                }
            }
            Err(err) => Err(Gone::abnormal(err.to_string())),
        }
    }

    /// Sends one JSON message.
    pub(crate) fn send(&mut self, message: &Value) -> std::result::Result<(), Gone> {
        self.ws
            .send(Message::text(message.to_string()))
            .map_err(|err| Gone::abnormal(err.to_string()))
    }

    /// Closes with 1000 and waits (briefly) for the hub's answer.
    pub(crate) fn close(mut self, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: reason.into(),
        };
        if self.ws.close(Some(frame)).is_err() {
            return;
        }
        let deadline = Instant::now() + CLOSE_WAIT;
        while Instant::now() < deadline {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .max(MIN_WAIT);
            if self
                .ws
                .get_mut()
                .tcp()
                .set_read_timeout(Some(wait))
                .is_err()
            {
                return;
            }
            match self.ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::Io(err))
                    if matches!(
                        err.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                // Closed: the hub answered and dropped the connection.
                Err(_) => return,
            }
        }
    }

    /// Starts a close without waiting for the answer (when dropped).
    pub(crate) fn close_now(&mut self) {
        let _ = self
            .ws
            .get_mut()
            .tcp()
            .set_write_timeout(Some(Duration::from_millis(100)));
        let _ = self.ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "Client closed".into(),
        }));
    }
}

/// The first address of the host that accepts a TCP connection in time.
fn connect_tcp(endpoint: &Endpoint, timeout: Duration) -> Result<TcpStream> {
    let fail = |source| Error::Connect {
        addr: endpoint.authority.clone(),
        source,
    };
    let addrs = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(fail)?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(err) => last = Some(err),
        }
    }
    Err(fail(last.unwrap_or_else(|| {
        std::io::Error::new(ErrorKind::NotFound, "the host has no address")
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_and_http_urls_are_accepted_and_wss_needs_the_tls_feature() {
        let endpoint = Endpoint::parse("ws://127.0.0.1:3000/ws", None).unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("127.0.0.1", 3000));
        assert_eq!(endpoint.request_uri(&[]), "ws://127.0.0.1:3000/ws");
        let endpoint = Endpoint::parse("http://localhost/ws", None).unwrap();
        assert_eq!(endpoint.request_uri(&[]), "ws://localhost:80/ws");
        let endpoint = Endpoint::parse("ws://[::1]:3000", None).unwrap();
        assert_eq!(endpoint.host, "::1");
        assert_eq!(endpoint.request_uri(&[]), "ws://[::1]:3000/");

        for url in ["wss://example.com/ws", "https://example.com/ws"] {
            #[cfg(not(feature = "tls"))]
            assert!(
                matches!(
                    Endpoint::parse(url, None),
                    Err(Error::TlsUnsupported { .. })
                ),
                "{url}"
            );
            #[cfg(feature = "tls")]
            {
                let endpoint = Endpoint::parse(url, None).unwrap();
                assert_eq!(endpoint.port, 443, "{url}");
                assert!(endpoint.tls.is_some(), "{url}");
            }
        }
        for url in [
            "ftp://example.com/",
            "example.com:3000/ws",
            "ws://",
            "ws://u:p@host/",
            "not a url",
        ] {
            assert!(
                matches!(Endpoint::parse(url, None), Err(Error::InvalidUrl { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn the_client_s_parameters_are_encoded_after_the_url_s_own_query() {
        let endpoint = Endpoint::parse("ws://h:1/ws?envelope=standard", None).unwrap();
        assert_eq!(
            endpoint.request_uri(&[("userId", "ana maria"), ("sessionId", "s/1&x=é")]),
            "ws://h:1/ws?envelope=standard&userId=ana%20maria&sessionId=s%2F1%26x%3D%C3%A9"
        );
        let endpoint = Endpoint::parse("ws://h:1/ws", None).unwrap();
        assert_eq!(
            endpoint.request_uri(&[("userId", "u1")]),
            "ws://h:1/ws?userId=u1"
        );
    }
}
