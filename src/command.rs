//! Server-side control of clients: what the library ([`Handle`]), the HTTP
//! API and service connections may ask of the router about other clients
//! (subscribe them, close them, set their metadata, list them), and its
//! answer.
//!
//! Pure data. A [`Command`] travels to the router on its API lane (see
//! [`crate::inbox`]) or, for a client of another hub, through Redis (see
//! [`crate::cluster::wire`]); the router carries it out in
//! `router/control.rs`.
//!
//! [`Handle`]: crate::Handle

use crate::protocol::{AppClose, Topic};
use crate::publish::Target;
use crate::stats::{ClientStats, PresenceEntry};

/// Server-side control of clients, from the library, the HTTP API or a
/// service connection.
#[derive(Debug)]
pub(crate) enum Command {
    /// Subscribe a client to a channel or session (the backend is trusted:
    /// only the subscription limit applies).
    Subscribe { client: String, topic: Topic },
    /// Unsubscribe a client from a topic, or (`None`) from every session.
    Unsubscribe {
        client: String,
        topic: Option<Topic>,
    },
    /// Close every client of a target with this code and reason.
    Close { target: Target, close: AppClose },
    /// Merge key/values into a client's metadata (`null` removes a key).
    SetMeta {
        client: String,
        meta: serde_json::Map<String, serde_json::Value>,
    },
    /// Who is subscribed to a topic.
    Subscribers { topic: Topic },
    /// Every user online and their status.
    Presence,
}

/// The router's answer to a [`Command`].
#[derive(Debug)]
pub(crate) enum Answer {
    /// Whether the client existed (and the command applied).
    Done(bool),
    /// How many clients it applied to.
    Count(usize),
    Clients(Vec<ClientStats>),
    Presence(Vec<PresenceEntry>),
    /// Refused: why.
    Refused(String),
    /// Not done now, for a while only (the queue to Redis is full): why;
    /// try again.
    Busy(String),
}
