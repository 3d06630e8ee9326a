//! The messages threads send each other.
//!
//! [`Event`] goes into the router's one channel (from connection threads,
//! handles, HTTP requests and the timer). [`Outbound`] and [`Control`] go to
//! one client's writer. Dropping every sender of a channel is how its
//! receiver learns to stop.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use crossbeam_channel::Sender;
use tungstenite::Bytes;
use tungstenite::protocol::CloseFrame;

use crate::auth::Identity;
use crate::protocol::{Rejection, Request};
use crate::publish::Publication;
use crate::stats::Stats;
use crate::subscriptions::ClientId;

/// Everything the router reacts to, one `match` arm each.
pub(crate) enum Event {
    /// A WebSocket handshake succeeded (connection thread).
    Joined(Box<Joining>),
    /// A text frame from a client, parsed (connection thread).
    Request {
        client: ClientId,
        request: Result<Request, Rejection>,
    },
    /// A frame the protocol refuses (connection thread).
    Refused { client: ClientId, why: Refusal },
    /// A Ping or Pong from a client: it is alive (connection thread).
    Alive(ClientId),
    /// A client's reader stopped: closed, gone or cut off (connection thread).
    Left(ClientId),
    /// A connection refused after its handshake, unauthorized (connection thread).
    Rejected,
    /// Publish an already-encoded message (handle or `POST /api/publish`);
    /// the reply is the number of clients it was queued for.
    Publish {
        publication: Publication,
        reply: Option<Sender<usize>>,
    },
    /// Close one client with 1000 (handle); the reply says whether it existed.
    Disconnect { client: String, reply: Sender<bool> },
    /// A copy of the counters, with the client list if asked (handle, HTTP).
    Stats { clients: bool, reply: Sender<Stats> },
    /// Close everyone with 1001 and stop (handle, signal).
    Shutdown,
}

/// What the router needs to adopt a new client.
pub(crate) struct Joining {
    pub id: ClientId,
    pub name: String,
    pub peer: SocketAddr,
    pub identity: Identity,
    pub session_id: Option<String>,
    pub stream: Arc<TcpStream>,
    pub outbound: Sender<Outbound>,
    /// Bytes of frames queued and not yet written, shared with the writer.
    pub queued_bytes: Arc<AtomicUsize>,
    pub control: Sender<Control>,
}

/// Frames the hub refuses, each answered in its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A binary message: error `unsupported_frame`, the connection stays.
    Binary,
    /// Larger than `max_message_size`: error `payload_too_large`, close 1009.
    TooBig,
    /// A text frame that is not UTF-8: close 1007.
    InvalidUtf8,
    /// A broken WebSocket frame: close 1002.
    Protocol,
    /// Pings or Pongs far beyond the control-frame budget: close 1008.
    ControlFlood,
}

impl Refusal {
    /// Whether the client is closed for it (the reader then stops parsing).
    pub(crate) fn closes(self) -> bool {
        !matches!(self, Refusal::Binary)
    }
}

/// The router's queue to one writer, in order. Only the router sends here,
/// which is what lets it enforce `max_queue` by looking at the length.
pub(crate) enum Outbound {
    /// A complete encoded frame (text or Ping), shared with other recipients.
    Frame(Bytes),
    /// A Close frame after everything queued before it; then the writer waits
    /// for the client's answer.
    Close(Bytes),
}

/// The writer's priority queue, read before [`Outbound`]. Small and bounded:
/// a reader that floods it blocks on itself only.
pub(crate) enum Control {
    /// Close at once, dropping what is queued (slow consumer) (router).
    Abort(Bytes),
    /// Answer the client's Ping (reader).
    Pong(Bytes),
    /// The client sent Close: answer it and end (reader).
    PeerClosed(Option<CloseFrame>),
    /// The reader stopped without a Close: end (reader).
    ReaderDone,
}
