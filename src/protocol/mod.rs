//! The wire protocol: what clients send, what the hub answers, and how a
//! message becomes the bytes of one WebSocket frame.
//!
//! Pure code with no threads of its own, in four parts:
//! - [`inbound`]: parsing a client's text frame into a typed request;
//! - [`outbound`]: the envelope of every server message and its data;
//! - [`codes`]: every wire name (error codes, close codes, statuses, the
//!   hub's message types), each list in one place;
//! - [`frame`]: encoding a message once into a complete frame that every
//!   recipient of a fan-out shares.
//!
//! `docs/protocol.md` describes it as built.

pub(crate) mod codes;
pub(crate) mod fields;
pub(crate) mod frame;
pub(crate) mod inbound;
pub(crate) mod outbound;

pub(crate) use codes::{AppClose, BadClose, Close, Kind, PRIVATE_PREFIX, USER_PREFIX};
pub use codes::{Envelope, ErrorCode, Status};
pub(crate) use frame::{close_reply, ping_frame, pong_frame};
pub use inbound::MAX_NAME_LEN;
pub use inbound::Topic;
pub(crate) use inbound::{
    ClientMessage, Destination, ErrorReply, Outgoing, Rejection, Request, Role, Since, Who,
    check_idempotency_key, check_name, parse,
};
pub use outbound::Timestamp;
pub(crate) use outbound::{
    AuthResult, Delivered, Empty, Message, Origin, Position, PresenceData, PresenceList,
    Subscribed, Welcome, error_data, raw,
};
