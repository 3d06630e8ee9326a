//! Who a client is and what it may do.
//!
//! Pure code: connection threads build an [`Identity`] at the handshake, the
//! router asks it for permissions.

use std::time::SystemTime;

/// A client's identity, settled at the handshake (and by `refresh`).
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub user_id: Option<String>,
    pub access: Access,
    /// When the token stops being valid, if it expires.
    pub expires_at: Option<SystemTime>,
}

/// What kind of client this is.
#[derive(Debug, Clone)]
pub(crate) enum Access {
    /// No auth configured (development): the user id is whatever the query
    /// says and everything is open except client publishing (a flag).
    Open,
}

impl Identity {
    /// A development-mode client with the user id from the query.
    pub(crate) fn open(user_id: Option<String>) -> Identity {
        Identity {
            user_id,
            access: Access::Open,
            expires_at: None,
        }
    }

    /// Whether a token vouched for this client.
    pub(crate) fn authenticated(&self) -> bool {
        match self.access {
            Access::Open => false,
        }
    }

    /// Whether the client may subscribe to (and so read) `channel`.
    pub(crate) fn may_read_channel(&self, _channel: &str) -> bool {
        match self.access {
            Access::Open => true,
        }
    }

    /// Whether the client may publish, given the server's flag.
    pub(crate) fn may_publish(&self, allowed_by_flag: bool) -> bool {
        match self.access {
            Access::Open => allowed_by_flag,
        }
    }

    /// Whether the client may see sessions, user events and presence.
    pub(crate) fn sees_private_events(&self) -> bool {
        match self.access {
            Access::Open => true,
        }
    }
}
