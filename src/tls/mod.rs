//! TLS on the hub's port (`--tls-cert`, `--tls-key`): `wss://` and
//! `https://`, with rustls and its `ring` provider, TLS 1.2 and 1.3 only,
//! ALPN `http/1.1`.
//!
//! TLS stays a byte transport under the WebSocket and HTTP code; nothing
//! above it knows. It has no thread of its own:
//! - the **connection thread** runs the handshake, blocking, within the
//!   request's deadline (`handshake_timeout`), then reads the HTTP request
//!   and writes its answer through the session (see `conn::Timed`);
//! - an upgraded client's [`Session`] is then shared by its **reader**
//!   and whoever **drains** its link (a writer, or the router for a few
//!   links): a `Mutex` around the rustls connection, held for CPU work
//!   only, never across a socket read or send. The reader blocks in
//!   `read(2)` without it, then takes it to decrypt what came
//!   ([`Inbound`]); the drainer takes it to encrypt queued frames into its
//!   scratch buffer, then sends the ciphertext with `MSG_DONTWAIT` outside
//!   it, keeping an unsent tail on the session for its next turn. Records
//!   the reader's side makes (alerts, KeyUpdate answers) are sent by the
//!   drainer: the reader wakes it with an empty frame on the link.
//! - `Certificates` is the certificate every new handshake gets: read at
//!   start and again by [`Handle::reload_tls`](crate::Handle::reload_tls)
//!   (the binary: on `SIGHUP`). Sessions under way keep theirs.
//!
//! Without the `tls` feature the same names exist as types with no value,
//! so the code above compiles unchanged and never takes a TLS path.

#[cfg(feature = "tls")]
mod certs;
#[cfg(not(feature = "tls"))]
mod off;
#[cfg(feature = "tls")]
mod session;

pub(crate) use crate::error::TlsError;

#[cfg(feature = "tls")]
pub(crate) use certs::Tls;
#[cfg(not(feature = "tls"))]
pub(crate) use off::{Inbound, Scratch, Session, Tls};
#[cfg(feature = "tls")]
pub(crate) use session::{Inbound, Scratch, Session};

/// Whether the first bytes of a connection are a TLS handshake record (a
/// ClientHello), not plain text.
pub(crate) fn looks_like_tls(first: &[u8]) -> bool {
    // ContentType handshake (22), then a record version 3.x.
    matches!(first, [0x16] | [0x16, 0x03, ..])
}

/// Whether the first bytes of a connection look like a plain HTTP request
/// (a method in capitals): someone asked for `http://` or `ws://` on a
/// TLS port.
pub(crate) fn looks_like_http(first: &[u8]) -> bool {
    let method = first.iter().take_while(|b| b.is_ascii_uppercase()).count();
    method > 0 && (method == first.len() || first.get(method) == Some(&b' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_hello_and_a_plain_request_are_told_apart_by_their_first_bytes() {
        assert!(looks_like_tls(&[0x16, 0x03, 0x01, 0x02, 0x00]));
        assert!(looks_like_tls(&[0x16]));
        assert!(!looks_like_tls(b"GET / HTTP/1.1\r\n"));
        assert!(!looks_like_tls(&[0x16, 0x01]));
        assert!(looks_like_http(b"GET /health HTTP/1.1\r\n"));
        assert!(looks_like_http(b"POST"));
        assert!(!looks_like_http(&[0x16, 0x03, 0x01]));
        assert!(!looks_like_http(b"get / HTTP/1.1"));
        assert!(!looks_like_http(b""));
        assert!(!looks_like_http(b"\x00GET"));
    }
}
