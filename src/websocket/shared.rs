//! A server frame shared by every client of a fan-out, and its compressed
//! variants, each built at most once, when a client first needs it.
//!
//! Pure code, run on the router thread. The router encodes a message once
//! per envelope into a [`SharedFrame`]; for each recipient,
//! [`Compression::frame_for`] hands out the plain bytes, or, for a client
//! that agreed to permessage-deflate, the compressed variant for its window
//! size, compressing the frame the first time one is asked for. Since no
//! compression context is kept between messages (the hub always agrees
//! `server_no_context_takeover`), one compressed frame serves every client
//! of that window size: a fan-out compresses once per envelope, never once
//! per recipient.

use tungstenite::Bytes;

#[cfg(feature = "compression")]
use super::Compressor;
use super::negotiate::Deflate;
#[cfg(feature = "compression")]
use super::negotiate::MAX_WINDOW_BITS;

/// One encoded server data frame, shared by the clients of a fan-out.
#[derive(Debug)]
pub(crate) struct SharedFrame {
    plain: Bytes,
    /// By window size (8 to 15 bits): the compressed frame, `Some(None)`
    /// once found not worth compressing.
    #[cfg(feature = "compression")]
    deflated: [Option<Option<Bytes>>; 8],
}

impl SharedFrame {
    /// `plain`: a complete, unmasked, uncompressed data frame.
    pub(crate) fn new(plain: Bytes) -> SharedFrame {
        SharedFrame {
            plain,
            #[cfg(feature = "compression")]
            deflated: Default::default(),
        }
    }
}

/// The router's side of permessage-deflate: one compressor for every
/// client, and the size below which messages go plain.
#[derive(Debug)]
pub(crate) struct Compression {
    /// Made the first time a frame is compressed; `None` until then.
    #[cfg(feature = "compression")]
    compressor: Option<Compressor>,
    #[cfg(feature = "compression")]
    min_size: usize,
}

impl Compression {
    /// Compression for messages of `min_size` bytes or more (with the
    /// `compression` feature; without it, no client ever agrees to any).
    pub(crate) fn new(min_size: usize) -> Compression {
        #[cfg(not(feature = "compression"))]
        let _ = min_size;
        Compression {
            #[cfg(feature = "compression")]
            compressor: None,
            #[cfg(feature = "compression")]
            min_size,
        }
    }

    /// What a client that agreed to `deflate` (or not) gets of `frame`:
    /// its compressed variant when it agreed, the payload is at least the
    /// minimum size, and compressing makes it smaller; else the plain bytes.
    pub(crate) fn frame_for(&mut self, frame: &mut SharedFrame, deflate: Option<Deflate>) -> Bytes {
        #[cfg(feature = "compression")]
        if let Some(deflate) = deflate
            && let Some(compressed) = self.compressed(frame, deflate)
        {
            return compressed;
        }
        #[cfg(not(feature = "compression"))]
        let _ = deflate;
        frame.plain.clone()
    }

    /// The compressed variant of `frame` for `deflate`'s window, made the
    /// first time it is asked for.
    #[cfg(feature = "compression")]
    fn compressed(&mut self, frame: &mut SharedFrame, deflate: Deflate) -> Option<Bytes> {
        let payload = payload_len(&frame.plain);
        if payload < self.min_size.max(1) {
            return None;
        }
        // A payload within the window is compressed in one piece, the same
        // for every window as large: those share the widest one's variant.
        let bits = match payload <= 1 << deflate.window_bits() {
            true => MAX_WINDOW_BITS,
            false => deflate.window_bits(),
        };
        let SharedFrame { plain, deflated } = frame;
        deflated[usize::from(bits - 8)]
            .get_or_insert_with(|| {
                self.compressor
                    .get_or_insert_with(Compressor::new)
                    .compress_frame(plain, deflate)
            })
            .clone()
    }
}

/// The payload length of an unmasked server frame.
#[cfg(feature = "compression")]
fn payload_len(frame: &[u8]) -> usize {
    let header = match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        Some(_) => 2,
        None => return 0,
    };
    frame.len().saturating_sub(header)
}

#[cfg(all(test, feature = "compression"))]
mod tests {
    use super::*;
    use crate::websocket::negotiate;

    fn text_frame(payload: &[u8]) -> Bytes {
        let mut frame = vec![0x81];
        match payload.len() {
            n if n < 126 => frame.push(n as u8),
            n => {
                frame.push(126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(payload);
        Bytes::from(frame)
    }

    #[test]
    fn a_fan_out_compresses_once_per_window_and_only_above_the_minimum() {
        let mut compression = Compression::new(256);
        let json = format!(
            r#"{{"type":"files","data":[{}]}}"#,
            r#"{"file":"src/a.rs"},"#.repeat(40)
        );
        let mut frame = SharedFrame::new(text_frame(json.as_bytes()));
        let wide = negotiate(["permessage-deflate"]);
        let narrow = negotiate(["permessage-deflate; server_max_window_bits=9"]);
        let first = compression.frame_for(&mut frame, wide);
        assert_eq!(first[0], 0xc1, "compressed");
        let again = compression.frame_for(&mut frame, wide);
        assert_eq!(
            first.as_ptr(),
            again.as_ptr(),
            "the second client shares the first one's bytes"
        );
        let small = compression.frame_for(&mut frame, narrow);
        assert_ne!(
            small.as_ptr(),
            first.as_ptr(),
            "a 512-byte window has its own"
        );
        assert_eq!(
            compression.frame_for(&mut frame, narrow).as_ptr(),
            small.as_ptr()
        );
        // A client without the extension gets the plain frame.
        assert_eq!(compression.frame_for(&mut frame, None)[0], 0x81);
        // Below the minimum, plain for everyone.
        let mut short = SharedFrame::new(text_frame(&[b'a'; 200]));
        assert_eq!(compression.frame_for(&mut short, wide)[0], 0x81);
    }
}
