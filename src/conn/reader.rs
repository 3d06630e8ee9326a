//! One client's reader thread: frames in, typed events to the router.
//!
//! Started by the upgrade with a small stack (`thread_stack_size`). It
//! blocks in [`websocket::Reader::read`] on the shared socket, which
//! assembles fragments, checks the RFC's rules and inflates compressed
//! messages (permessage-deflate) under `max_message_size`, and for each
//! message or control frame: stamps the link as heard from (liveness never
//! waits for the router); applies the client's rate limit, so a flood over
//! it costs the router nothing; parses text into a typed request and sends
//! it on the clients lane, then waits while this connection's share of the
//! inbox, or the whole inbox, is full (TCP back-pressure on the flooder
//! alone). Pings are answered by queueing a Pong on the link itself.
//!
//! It never writes to the socket. On a TLS connection it reads through
//! the session (see [`crate::tls`]): it blocks in `read(2)` without the
//! session's lock, and records its side of the session makes (alerts,
//! KeyUpdate answers) go out through the link's writer, woken with an
//! empty frame. It ends on the client's Close (handed to the router, which
//! answers it after what is already queued), a read error, or when the
//! socket is cut.

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::Bytes;

use super::Shared;
use crate::config::Config;
use crate::inbox::{Ending, FrameRefusal, INPUT_OVERHEAD, Input};
use crate::link::Link;
use crate::protocol;
use crate::ratelimit::{RateLimiter, Verdict};
use crate::tls;
use crate::websocket::{self, Incoming, ReadError};
use crate::writer::Writers;

/// Most Pings and Pongs a client may send in a burst.
const CONTROL_BURST: u32 = 100;

/// The socket as a reader sees it: it only reads (through the TLS session,
/// on a TLS connection); the writer pool writes.
pub(super) struct ReadHalf<'a> {
    stream: &'a TcpStream,
    tls: Option<TlsRead<'a>>,
}

/// A TLS connection's reading side, and how to have the link's writer send
/// the records that reading makes.
struct TlsRead<'a> {
    session: &'a tls::Session,
    inbound: tls::Inbound,
    link: &'a Arc<Link>,
    writers: &'a Writers,
}

impl Read for ReadHalf<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else {
            return (&mut &*self.stream).read(buf);
        };
        let stream = self.stream;
        let (link, writers) = (tls.link, tls.writers);
        tls.inbound.read(
            tls.session,
            buf,
            // Blocks in read(2) without the session's lock.
            |raw| (&mut &*stream).read(raw),
            // Records of the session's own: an empty frame gives the link's
            // drainer a turn, which sends them.
            || {
                if link.push_control(Bytes::new()) {
                    writers.hand_off_one(Arc::clone(link));
                }
            },
        )
    }
}

/// The reader thread: reads `link` until the connection ends, then tells
/// the router why.
#[inline(never)]
pub(super) fn run(
    link: Arc<Link>,
    name: &str,
    rest: Vec<u8>,
    inbound: Option<tls::Inbound>,
    shared: &Shared,
    role: protocol::Role,
) {
    let config = &shared.config;
    let half = ReadHalf {
        stream: &link.stream,
        tls: link
            .tls
            .as_ref()
            .zip(inbound)
            .map(|(session, inbound)| TlsRead {
                session,
                inbound,
                link: &link,
                writers: &shared.writers,
            }),
    };
    let mut ws =
        websocket::Reader::with_read(half, rest, config.read_buffer_size, config.max_message_size)
            .deflate(link.deflate);
    let why = Reader::new(&link, name, shared, role).read_loop(&mut ws);
    log::debug!("reader of client {name} ended: {why:?}");
    let _ = shared.inbox.send(Input::Left {
        link: Arc::clone(&link),
        why,
    });
}

/// One reader's state.
struct Reader<'a> {
    link: &'a Arc<Link>,
    /// The client's public id, for the log.
    name: &'a str,
    shared: &'a Shared,
    /// What the client may say: a service connection has commands more.
    role: protocol::Role,
    /// The client's message rate limit; `None` when it is off, or for a
    /// service connection.
    rate: Option<RateLimiter>,
    pings: ControlBudget,
}

impl<'a> Reader<'a> {
    fn new(
        link: &'a Arc<Link>,
        name: &'a str,
        shared: &'a Shared,
        role: protocol::Role,
    ) -> Reader<'a> {
        let config = &shared.config;
        Reader {
            link,
            name,
            shared,
            role,
            // A service connection is the backend, trusted with floods of
            // its own (an agent streaming an answer): the inbox budget
            // still holds it back by TCP, but no rate limit cuts it off.
            rate: match role {
                protocol::Role::Service => None,
                protocol::Role::Client => RateLimiter::new(
                    config.rate_limit,
                    config.rate_window,
                    config.rate_burst,
                    Instant::now(),
                ),
            },
            pings: ControlBudget::new(config),
        }
    }

    /// Reads frames until the connection ends; returns why it ended.
    fn read_loop(&mut self, ws: &mut websocket::Reader<ReadHalf<'_>>) -> Ending {
        loop {
            let message = ws.read();
            if message.is_ok() {
                self.link.touch();
            }
            let refusal = match message {
                Ok(Incoming::Text(text)) => match self.rate_check() {
                    Verdict::Allowed => {
                        if !self.request(&text) {
                            return Ending::Gone;
                        }
                        continue;
                    }
                    Verdict::Limited => FrameRefusal::RateLimited {
                        correlation_id: protocol::inbound::correlation_of(&text),
                    },
                    Verdict::Abusive => FrameRefusal::Abuse,
                },
                Ok(Incoming::Binary(_)) => match self.rate_check() {
                    Verdict::Allowed => FrameRefusal::Binary,
                    Verdict::Limited => FrameRefusal::RateLimited {
                        correlation_id: None,
                    },
                    Verdict::Abusive => FrameRefusal::Abuse,
                },
                Ok(message @ (Incoming::Ping(_) | Incoming::Pong(_))) => match self.pings.check() {
                    ControlVerdict::Allowed => {
                        if let Incoming::Ping(payload) = message
                            && self
                                .link
                                .push_control(protocol::pong_frame(Bytes::from(payload)))
                        {
                            self.shared.writers.hand_off_one(Arc::clone(self.link));
                        }
                        continue;
                    }
                    ControlVerdict::Drop => continue,
                    ControlVerdict::Flood => FrameRefusal::ControlFlood,
                },
                Ok(Incoming::Close(frame)) => {
                    return Ending::PeerClosed(frame.map(|f| f.code));
                }
                Err(err) => {
                    let why = match err {
                        ReadError::TooBig => FrameRefusal::TooBig,
                        ReadError::InvalidUtf8 => FrameRefusal::InvalidUtf8,
                        ReadError::Protocol(_) => FrameRefusal::Protocol,
                        ReadError::Eof | ReadError::Io(_) => return Ending::Gone,
                    };
                    log::debug!("client {} sent a bad frame: {err}", self.name);
                    why
                }
            };
            let closes = refusal.closes();
            let sent = self.shared.inbox.send(Input::FrameRefused {
                link: Arc::clone(self.link),
                why: refusal,
            });
            if !sent {
                return Ending::Gone;
            }
            if closes {
                // The router closes this client; read nothing more from it.
                drain(ws.get_mut());
                return Ending::Gone;
            }
        }
    }

    fn rate_check(&mut self) -> Verdict {
        self.rate
            .as_mut()
            .map_or(Verdict::Allowed, |rate| rate.check(Instant::now()))
    }

    /// Parses one text frame and sends it to the router, then waits while
    /// the inbox has no room for this connection. `false` when the router
    /// is gone.
    fn request(&self, text: &str) -> bool {
        let request = protocol::parse(text, self.role);
        let cost = text.len() + INPUT_OVERHEAD;
        let budget = &self.shared.inbox.budget;
        budget.charge(self.link, cost);
        let sent = self.shared.inbox.send(Input::Request {
            link: Arc::clone(self.link),
            request,
            cost,
        });
        if !sent {
            budget.release(self.link, cost);
            return false;
        }
        budget.wait_for_room(self.link);
        true
    }
}

/// What to do with a client's Ping or Pong.
enum ControlVerdict {
    /// Within the budget: answer a Ping.
    Allowed,
    /// Over the budget: ignore it.
    Drop,
    /// Far over the budget, again and again: the client is closed (1013).
    Flood,
}

/// Control frames are not messages, so the rate limit does not see them;
/// this budget does, so that a flood of Pings or Pongs costs nothing. It
/// allows a burst of [`CONTROL_BURST`] and then two per second, or four
/// per heartbeat when heartbeats are faster, so that a client answering
/// every Ping is never refused.
struct ControlBudget {
    rate: Option<RateLimiter>,
}

impl ControlBudget {
    fn new(config: &Config) -> ControlBudget {
        let per_second = (4.0 / config.heartbeat_interval.as_secs_f64()).max(2.0);
        let window = Duration::from_secs_f64(f64::from(CONTROL_BURST) / per_second);
        ControlBudget {
            rate: RateLimiter::new(CONTROL_BURST, window, CONTROL_BURST, Instant::now()),
        }
    }

    fn check(&mut self) -> ControlVerdict {
        match self
            .rate
            .as_mut()
            .map_or(Verdict::Allowed, |rate| rate.check(Instant::now()))
        {
            Verdict::Allowed => ControlVerdict::Allowed,
            Verdict::Limited => ControlVerdict::Drop,
            Verdict::Abusive => ControlVerdict::Flood,
        }
    }
}

/// After a frame that breaks the stream, reads and discards until the
/// client or the router closes the socket, so the Close we send is not
/// lost to a reset caused by unread data.
///
/// Never inlined: its buffer would otherwise sit in the reader's frame and
/// make every idle reader touch another page of stack.
#[inline(never)]
fn drain(stream: &mut ReadHalf<'_>) {
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
