//! Every name the protocol puts on the wire, each list in one place: error
//! codes, close codes with their reasons, presence statuses and the types
//! of the hub's own messages.
//!
//! Pure data. Each enum is declared with its wire names by [`wire_names!`],
//! which derives `as_str`, the reverse lookup and `Serialize` from that one
//! list, so a name cannot be spelled two ways.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares an enum whose variants each have one wire name, and derives
/// `ALL`, `as_str`, `from_wire`, `Display` and `Serialize` from the list.
macro_rules! wire_names {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )*
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every variant, in declaration order.
            #[allow(dead_code)]
            pub(crate) const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The name as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire, )*
                }
            }

            /// The variant with this wire name.
            #[allow(dead_code)]
            pub(crate) fn from_wire(name: &str) -> Option<$name> {
                match name {
                    $( $wire => Some($name::$variant), )*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

wire_names! {
    /// Error codes sent in `{"type":"error","data":{"code":...}}`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub enum ErrorCode {
        /// The frame is not JSON.
        InvalidJson = "invalid_json",
        /// JSON, but not a valid request (not an object, `type` missing, a field of the wrong type).
        InvalidMessage = "invalid_message",
        /// A `type` the hub does not know and no application handles.
        UnknownType = "unknown_type",
        /// A binary frame: the protocol is JSON in text frames.
        UnsupportedFrame = "unsupported_frame",
        /// The client may not do this.
        Forbidden = "forbidden",
        /// A channel or session name that breaks the naming rules.
        InvalidChannel = "invalid_channel",
        /// The client sends faster than its rate limit.
        RateLimited = "rate_limited",
        /// The client already holds the maximum number of subscriptions.
        TooManySubscriptions = "too_many_subscriptions",
        /// The message is larger than the hub accepts.
        PayloadTooLarge = "payload_too_large",
        /// Authentication is required and missing or invalid.
        Unauthorized = "unauthorized",
        /// The client's token expired.
        TokenExpired = "token_expired",
        /// The application cannot take the request now: its queue is full,
        /// or the service connection handling it left before answering.
        Busy = "busy",
        /// A `subscribe` still under way (with several hubs, waiting for
        /// Redis) was ended by an unsubscribe before it completed: the
        /// client's own, the backend's, or a refreshed token's. The client
        /// is not subscribed.
        Unsubscribed = "unsubscribed",
    }
}

wire_names! {
    /// A user's presence status (as the Code Cloud Agents clients expect).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum Status {
        /// Active.
        Online = "online",
        /// Idle.
        Away = "away",
        /// Do not disturb.
        Busy = "busy",
        /// Disconnected (sent by the hub when a user's last connection closes).
        Offline = "offline",
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Status, D::Error> {
        // Owned or borrowed: a `serde_json::Value` or an escaped string
        // cannot lend a `&str`.
        let name = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Status::from_wire(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown status {name:?}")))
    }
}

wire_names! {
    /// How a client's messages look on the wire: one hub serves clients
    /// written for each shape. Client messages are accepted in any of them.
    ///
    /// | | `standard` | `flat` | `payload` |
    /// | --- | --- | --- | --- |
    /// | payload | `data` | an object's fields next to `type` | `payload` |
    /// | timestamp | ISO-8601 | ISO-8601 | ms since the epoch |
    /// | welcome | `connection`, then `auth` | `connection` with `status: "connected"` | `connection:established` |
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub enum Envelope {
        /// `{"type", "data", "timestamp": ISO, ...}`: the default.
        #[default]
        Standard = "standard",
        /// `{"type", ...the data's own fields, "timestamp": ISO}` (the AI
        /// Canvas clients).
        Flat = "flat",
        /// `{"type", "payload", "timestamp": ms}` (the agent-service clients).
        Payload = "payload",
    }
}

impl Envelope {
    /// How many envelopes there are (to keep one encoding of each).
    pub(crate) const COUNT: usize = Envelope::ALL.len();

    /// The envelopes' wire names, for messages and help texts (a unit test
    /// keeps it equal to the variants).
    pub const NAMES: &'static str = "standard, flat or payload";

    /// Its place among the envelopes, for a per-envelope cache.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::str::FromStr for Envelope {
    type Err = String;

    /// `standard`, `flat` or `payload`.
    fn from_str(name: &str) -> Result<Envelope, String> {
        Envelope::from_wire(name)
            .ok_or_else(|| format!("unknown envelope {name:?}: use {}", Envelope::NAMES))
    }
}

wire_names! {
    /// The `type` of a message the hub itself originates. Clients may not
    /// publish under these names: they would pass for the hub's own.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Kind {
        Connection = "connection",
        Pong = "pong",
        Subscribed = "subscribed",
        Unsubscribed = "unsubscribed",
        Published = "published",
        Ack = "ack",
        Error = "error",
        UserPresence = "user_presence",
        Presence = "presence",
        ClientMessage = "client_message",
        BatchUpdate = "batch_update",
        Subscribers = "subscribers",
        Stats = "stats",
        Auth = "auth",
        Heartbeat = "heartbeat",
        ConnectionEstablished = "connection:established",
        ClientInfo = "client_info",
        AdminStats = "admin_stats",
        AdminHistory = "admin_history",
    }
}

/// The channel `user:<id>`: a user's own stream. Only that user (and
/// service connections) may follow it, and only the backend publish to it.
pub(crate) const USER_PREFIX: &str = "user:";

/// Channels named `private-*` are not public: anonymous clients and tokens
/// without a grant for them cannot read them.
pub(crate) const PRIVATE_PREFIX: &str = "private-";

/// Declares the close codes the hub sends: variant, code and reason, once.
macro_rules! closes {
    ( $( $(#[$vmeta:meta])* $variant:ident = ($code:literal, $reason:literal), )* ) => {
        /// Close codes the hub sends, each with its reason text.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Close {
            $( $(#[$vmeta])* $variant, )*
        }

        impl Close {
            /// The numeric close code.
            pub(crate) fn code(self) -> u16 {
                match self {
                    $( Close::$variant => $code, )*
                }
            }

            /// The short reason sent with the code.
            pub(crate) fn reason(self) -> &'static str {
                match self {
                    $( Close::$variant => $reason, )*
                }
            }
        }
    };
}

closes! {
    /// The client asked for it, or the application disconnected it.
    Normal = (1000, "Normal closure"),
    /// The server is shutting down.
    GoingAway = (1001, "Server shutting down"),
    /// The client broke the WebSocket protocol.
    Protocol = (1002, "Protocol error"),
    /// A text frame that is not UTF-8.
    InvalidUtf8 = (1007, "Invalid UTF-8"),
    /// Not authenticated.
    Unauthorized = (1008, "Unauthorized"),
    /// Far over the rate limit for long (or a flood of Pings or Pongs):
    /// back off, then reconnect.
    Abuse = (1013, "Rate limit exceeded"),
    /// A message larger than `max_message_size`.
    TooBig = (1009, "Message too big"),
    /// The hub failed internally.
    Internal = (1011, "Internal error"),
    /// The hub is at `max_connections`.
    ServerFull = (1013, "Server full"),
    /// The user is at `max_connections_per_user`.
    UserFull = (1013, "Too many connections for this user"),
    /// The address is at `max_connections_per_ip`.
    AddressFull = (1013, "Too many connections from this address"),
    /// The client did not read fast enough (its queue filled up).
    TooSlow = (1013, "Client too slow"),
    /// What the hub held for the client's streams while it caught up with
    /// Redis after a cut-off outgrew a client's queue: reconnect and resume.
    CatchUpTooLarge = (1013, "Too much to catch up: resume"),
    /// Redis did not answer (or could not be asked) what the client's
    /// streams missed while its hub was cut off, or no longer keeps all of
    /// it: reconnect and resume.
    CatchUpFailed = (1013, "Could not catch up: resume"),
    /// The client's token expired; reconnect with a fresh one.
    TokenExpired = (4001, "Token expired"),
}

/// A close code and reason the backend chose, for the clients it closes
/// ([`Handle::close`](crate::Handle::close), `POST /api/disconnect`, a
/// service connection's `disconnect`, another hub's): checked once, when
/// made, against the one rule (1000 or 3000 to 4999; a reason of at most
/// [`AppClose::MAX_REASON`] bytes, so the Close frame's payload fits in
/// 125).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppClose {
    code: u16,
    reason: String,
}

/// Which part of a close breaks the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadClose {
    Code,
    Reason,
}

impl BadClose {
    /// The field at fault: `code` or `reason`.
    pub(crate) fn field(self) -> &'static str {
        match self {
            BadClose::Code => "code",
            BadClose::Reason => "reason",
        }
    }

    /// The rule it breaks, as "must ...".
    pub(crate) fn rule(self) -> &'static str {
        match self {
            BadClose::Code => "must be 1000 or 3000 to 4999",
            BadClose::Reason => "must be at most 123 bytes",
        }
    }
}

impl AppClose {
    /// Most bytes of a reason: a Close frame's payload is at most 125
    /// bytes, two of them the code.
    pub(crate) const MAX_REASON: usize = 123;

    /// The reason of a close that gives none.
    pub(crate) const DEFAULT_REASON: &'static str = "Disconnected by the server";

    /// A close with `code` and `reason`, if they keep the rule.
    pub(crate) fn new(code: u16, reason: impl Into<String>) -> Result<AppClose, BadClose> {
        let reason = reason.into();
        if code != 1000 && !(3000..=4999).contains(&code) {
            return Err(BadClose::Code);
        }
        if reason.len() > AppClose::MAX_REASON {
            return Err(BadClose::Reason);
        }
        Ok(AppClose { code, reason })
    }

    /// As given, or 1000 and [`DEFAULT_REASON`](AppClose::DEFAULT_REASON)
    /// for what is not.
    pub(crate) fn or_default(
        code: Option<u16>,
        reason: Option<String>,
    ) -> Result<AppClose, BadClose> {
        AppClose::new(
            code.unwrap_or(1000),
            reason.unwrap_or_else(|| AppClose::DEFAULT_REASON.to_owned()),
        )
    }

    pub(crate) fn code(&self) -> u16 {
        self.code
    }

    pub(crate) fn reason(&self) -> &str {
        &self.reason
    }
}

impl From<Close> for AppClose {
    /// One of the hub's own closes, sent for the backend (a disconnect is
    /// [`Close::Normal`]).
    fn from(close: Close) -> AppClose {
        AppClose {
            code: close.code(),
            reason: close.reason().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_names_list_every_envelope_in_order() {
        let names: Vec<&str> = Envelope::ALL.iter().map(|e| e.as_str()).collect();
        let listed = match names.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        assert_eq!(Envelope::NAMES, listed);
        for (i, envelope) in Envelope::ALL.iter().enumerate() {
            assert_eq!(envelope.index(), i, "index() is the place in ALL");
        }
    }

    #[test]
    fn wire_names_round_trip_and_serialise_as_themselves() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_wire(code.as_str()), Some(*code));
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        for status in Status::ALL {
            let json = serde_json::to_string(status).unwrap();
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), *status);
        }
        assert!(serde_json::from_str::<Status>("\"sleeping\"").is_err());
        assert_eq!(Kind::from_wire("batch_update"), Some(Kind::BatchUpdate));
        assert_eq!(Kind::from_wire("event"), None);
    }

    #[test]
    fn a_backends_close_is_checked_once_against_one_rule() {
        assert!(AppClose::new(1000, "").is_ok());
        assert!(AppClose::new(4999, "x".repeat(AppClose::MAX_REASON)).is_ok());
        for code in [999, 1001, 1011, 2999, 5000] {
            assert_eq!(AppClose::new(code, ""), Err(BadClose::Code), "{code}");
        }
        let long = "x".repeat(AppClose::MAX_REASON + 1);
        assert_eq!(AppClose::new(4000, long), Err(BadClose::Reason));
        let default = AppClose::or_default(None, None).unwrap();
        assert_eq!(
            (default.code(), default.reason()),
            (1000, AppClose::DEFAULT_REASON)
        );
        assert_eq!(AppClose::from(Close::Normal).reason(), "Normal closure");
    }

    #[test]
    fn close_codes_carry_their_reasons() {
        assert_eq!(Close::TooSlow.code(), 1013);
        assert_eq!(Close::TooSlow.reason(), "Client too slow");
        assert_eq!(Close::TokenExpired.code(), 4001);
    }
}
