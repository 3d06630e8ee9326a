//! The close-code table: what the client does after a connection ends.
//!
//! Pure code with no state, run on the thread that drives the
//! [`Client`](super::Client) (the caller's); nothing to end.

/// What a close code tells a client to do next, by the protocol's table.
///
/// The [`Client`](super::Client) follows it by itself; it is public so an
/// application can show what will happen, or follow the same table with a
/// client of its own.
///
/// ```
/// use wshub::client::CloseAction;
///
/// assert_eq!(CloseAction::for_code(1001), CloseAction::Reconnect);
/// assert_eq!(CloseAction::for_code(1013), CloseAction::Backoff);
/// assert_eq!(CloseAction::for_code(4001), CloseAction::RefreshToken);
/// assert_eq!(CloseAction::for_code(1008), CloseAction::Stop);
/// assert_eq!(CloseAction::for_code(4000), CloseAction::Backoff); // the application's: come back
/// assert_eq!(CloseAction::for_code(4500), CloseAction::Stop); // the application's: stay away
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseAction {
    /// Reconnect soon, after a random delay of up to 1 s (or the backoff's
    /// initial delay, if longer), so the clients of a restarting hub do not
    /// all come back at the same instant: the hub is shutting down or
    /// restarting (1001).
    Reconnect,
    /// Reconnect after a full-jitter exponential backoff, then recover every
    /// stream: the connection was lost (1006), the hub failed (1011), was full,
    /// found the client too slow or far over its rate limit (1013), the
    /// application asked for it (4000 to 4499), or the code is unknown.
    Backoff,
    /// Ask the token provider for a fresh token, then reconnect (4001: the
    /// token expired). Without a provider, stop.
    RefreshToken,
    /// Do not reconnect: closed on purpose (1000), a protocol violation
    /// (1002, 1003, 1007, 1009, 1010), refused (1008: unauthorized), or the
    /// application said so (4500 to 4999).
    Stop,
}

impl CloseAction {
    /// The action for a close code (1006 for a connection that ended
    /// without a Close frame or never opened).
    ///
    /// ```
    /// use wshub::client::CloseAction;
    ///
    /// assert_eq!(CloseAction::for_code(1006), CloseAction::Backoff);
    /// assert_eq!(CloseAction::for_code(3000), CloseAction::Backoff); // unknown
    /// assert_eq!(CloseAction::for_code(4499), CloseAction::Backoff);
    /// assert_eq!(CloseAction::for_code(4999), CloseAction::Stop);
    /// ```
    ///
    /// Application codes follow Centrifugo's convention: 4000 to 4499 mean
    /// "reconnect" (with backoff), 4500 to 4999 "do not".
    pub fn for_code(code: u16) -> CloseAction {
        match code {
            1001 => CloseAction::Reconnect,
            4001 => CloseAction::RefreshToken,
            1000 | 1002 | 1003 | 1007..=1010 | 4500..=4999 => CloseAction::Stop,
            _ => CloseAction::Backoff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CloseAction::{self, *};

    #[test]
    fn every_code_of_the_protocol_has_its_action() {
        let table = [
            (1000, Stop),
            (1001, Reconnect),
            (1002, Stop),
            (1003, Stop),
            (1005, Backoff),
            (1006, Backoff),
            (1007, Stop),
            (1008, Stop),
            (1009, Stop),
            (1010, Stop),
            (1011, Backoff),
            (1012, Backoff),
            (1013, Backoff),
            (1014, Backoff),
            (3000, Backoff),
            (3999, Backoff),
            (4000, Backoff),
            (4001, RefreshToken),
            (4002, Backoff),
            (4499, Backoff),
            (4500, Stop),
            (4999, Stop),
            (5000, Backoff),
            (0, Backoff),
        ];
        for (code, action) in table {
            assert_eq!(CloseAction::for_code(code), action, "close code {code}");
        }
    }
}
