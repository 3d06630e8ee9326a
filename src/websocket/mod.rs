//! The WebSocket layer under the hub (RFC 6455, and permessage-deflate from
//! RFC 7692): a client's frames read into whole messages, the extension
//! negotiated at the handshake, and messages compressed once for every
//! client that agreed to it.
//!
//! Pure code over any [`Read`](std::io::Read), with no threads of its own:
//! each client's reader thread runs a [`Reader`] on its socket until the
//! client closes or breaks the protocol; the upgrade calls [`negotiate`] on
//! the client's offer; the router compresses the frames it shares
//! ([`Compressor`], the `compression` feature), once per frame and window
//! size, however many clients get it.
//!
//! It is public so that a tool can run the exact code the hub runs: the
//! Autobahn echo service (`examples/autobahn_echo.rs`) echoes what a
//! [`Reader`] reads, so the conformance suite tests the hub's own framing,
//! fragmentation, UTF-8 and compression rules.
//!
//! # Example
//!
//! ```
//! use std::io::Cursor;
//! use wshub::websocket::{Incoming, Reader};
//!
//! // A masked text frame "Hi", as a client sends it.
//! let frame = [0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2];
//! let mut reader = Reader::new(Cursor::new(frame), 4096, 1 << 20);
//! assert_eq!(reader.read()?, Incoming::Text("Hi".to_owned()));
//! # Ok::<(), wshub::websocket::ReadError>(())
//! ```

#[cfg(feature = "compression")]
mod compress;
mod negotiate;
mod reader;
mod shared;

#[cfg(feature = "compression")]
pub use compress::Compressor;
pub use negotiate::{Deflate, negotiate};
pub use reader::{CloseFrame, Incoming, ReadError, Reader};
pub(crate) use shared::{Compression, SharedFrame};

/// The stack a reader thread needs beyond `thread_stack_size` to read a
/// client that agreed to `deflate`: `flate2` builds its inflater's state
/// (the 32 KiB window and its tables) on the stack before boxing it, which
/// takes about 48 KiB in a release build and 110 KiB in a debug one. It is
/// address space: only the pages an inflater touched stay resident.
pub(crate) fn stack_needed(deflate: Option<Deflate>) -> usize {
    match deflate {
        Some(_) if cfg!(feature = "compression") => 160 * 1024,
        _ => 0,
    }
}
