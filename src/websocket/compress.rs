//! permessage-deflate's payload transforms (RFC 7692 §7.2): a message
//! compressed into a server frame with RSV1 set ([`Compressor`]), and a
//! client's compressed message inflated under a cap ([`Inflater`]).
//!
//! Pure code over `flate2` (its pure-Rust `miniz_oxide` backend). The
//! router owns one [`Compressor`] for every client (no context is kept
//! between messages, so one serves all); a reader thread makes an
//! [`Inflater`] for each compressed message it receives and drops it after,
//! so an idle connection holds no inflate window.

use std::io::Cursor;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tungstenite::Bytes;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Data, OpCode};

use super::negotiate::{Deflate, MAX_WINDOW_BITS};

/// The DEFLATE level: the fastest, as Centrifugo's default. JSON compresses
/// well even so; a higher level costs more CPU on the router per byte than
/// it saves on the wire.
const LEVEL: u32 = 1;

/// What every compressed message ends with and RFC 7692 leaves off the
/// wire (an empty stored block: a sync flush's end).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Compresses server messages, one at a time, keeping nothing between
/// them (the hub always agrees `server_no_context_takeover`).
///
/// ```
/// use wshub::websocket::{Compressor, Deflate};
/// let mut compressor = Compressor::new();
/// let text = r#"{"type":"event","data":"#.to_owned() + &"[1,2,3],".repeat(100) + "0}";
/// let frame = compressor.frame(true, text.as_bytes(), Deflate::default()).unwrap();
/// assert_eq!(frame[0], 0xc1, "FIN, RSV1 and text");
/// assert!(frame.len() < text.len() / 4);
/// ```
#[derive(Debug)]
pub struct Compressor {
    deflate: Compress,
    /// The compressed payload being built, reused between messages.
    out: Vec<u8>,
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor::new()
    }
}

impl Compressor {
    /// A compressor (about 300 KiB of tables, allocated once).
    pub fn new() -> Compressor {
        Compressor {
            deflate: Compress::new(Compression::new(LEVEL), false),
            out: Vec::new(),
        }
    }

    /// A complete server data frame (FIN, RSV1) holding `payload`
    /// compressed for a client that agreed to `deflate`; `None` when
    /// compressing would not make the frame smaller (then send it plain).
    pub fn frame(&mut self, text: bool, payload: &[u8], deflate: Deflate) -> Option<Vec<u8>> {
        if payload.is_empty() {
            return None;
        }
        self.compress(payload, deflate.window_bits());
        if self.out.len() >= payload.len() {
            return None;
        }
        let header = FrameHeader {
            rsv1: true,
            opcode: OpCode::Data(if text { Data::Text } else { Data::Binary }),
            ..FrameHeader::default()
        };
        let len = self.out.len() as u64;
        let mut frame = Vec::with_capacity(header.len(len) + self.out.len());
        // Formatting into a Vec cannot fail.
        let _ = header.format(len, &mut frame);
        frame.extend_from_slice(&self.out);
        Some(frame)
    }

    /// The compressed variant of `frame`, a complete unmasked,
    /// uncompressed server data frame (as the hub encodes its messages),
    /// or `None` when it is not one, or compressing would not make it
    /// smaller.
    pub(crate) fn compress_frame(&mut self, frame: &[u8], deflate: Deflate) -> Option<Bytes> {
        let mut cursor = Cursor::new(frame);
        let (header, len) = FrameHeader::parse(&mut cursor).ok()??;
        let text = match header.opcode {
            OpCode::Data(Data::Text) => true,
            OpCode::Data(Data::Binary) => false,
            _ => return None,
        };
        let start = usize::try_from(cursor.position()).ok()?;
        let payload = frame.get(start..)?;
        if !header.is_final || header.rsv1 || header.mask.is_some() || payload.len() as u64 != len {
            return None;
        }
        self.frame(text, payload, deflate).map(Bytes::from)
    }

    /// Compresses `payload` into `self.out` as one message, without the
    /// final [`TAIL`], referring back at most `2^window_bits` bytes.
    ///
    /// The compressor's own window is 32 KiB. For a client that asked for a
    /// smaller one, the message goes in pieces of that size, each ended by
    /// a full flush, which forgets everything before it: no piece refers
    /// into another, so no reference reaches further back than the piece.
    fn compress(&mut self, payload: &[u8], window_bits: u8) {
        self.out.clear();
        self.deflate.reset();
        let piece = match window_bits {
            MAX_WINDOW_BITS => payload.len(),
            bits => 1 << bits,
        };
        let mut pieces = payload.chunks(piece.max(1)).peekable();
        while let Some(input) = pieces.next() {
            let flush = match pieces.peek() {
                Some(_) => FlushCompress::Full,
                None => FlushCompress::Sync,
            };
            self.deflate_all(input, flush);
        }
        if self.out.ends_with(&TAIL) {
            self.out.truncate(self.out.len() - TAIL.len());
        }
    }

    /// Feeds all of `input` and flushes it out.
    fn deflate_all(&mut self, mut input: &[u8], flush: FlushCompress) {
        loop {
            if self.out.capacity() - self.out.len() < 64 {
                self.out.reserve((input.len() / 2).max(256));
            }
            let before = self.deflate.total_in();
            if self
                .deflate
                .compress_vec(input, &mut self.out, flush)
                .is_err()
            {
                // Only a misuse of the stream can fail; ours is reset per message.
                return;
            }
            input = &input[(self.deflate.total_in() - before) as usize..];
            // Done once everything went in and the flush did not fill the
            // room it had (else more output is pending).
            if input.is_empty() && self.out.len() < self.out.capacity() {
                return;
            }
        }
    }
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// It inflates to more than the cap.
    TooBig,
    /// It is not valid DEFLATE data.
    Corrupt,
}

/// Bytes inflated per step: the most a message can cost beyond its cap.
const STEP: usize = 16 * 1024;

/// Inflates one client message (no context is kept between messages:
/// the hub always agrees `client_no_context_takeover`).
pub(crate) struct Inflater {
    inflate: Decompress,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inflater")
    }
}

impl Inflater {
    /// Never inlined, and cold: `flate2` builds the inflater's state (about
    /// 48 KiB) on the stack before boxing it. Inlined into a reader's loop,
    /// that frame would be probed page by page on every reader's entry, so
    /// every idle client would keep 56 KiB of stack resident, and a reader
    /// on the 32 KiB minimum stack would overflow. Only a reader that agreed
    /// to compression has the stack for it ([`super::stack_needed`]).
    #[cold]
    #[inline(never)]
    pub(crate) fn new() -> Inflater {
        Inflater {
            inflate: Decompress::new(false),
        }
    }

    /// Inflates one frame's payload onto `out`, which may hold at most
    /// `cap` bytes: past it, [`InflateError::TooBig`], having produced at
    /// most `cap + 1` bytes. `last`: the message's final frame, after which
    /// the [`TAIL`] the sender left off is fed.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        cap: usize,
    ) -> Result<(), InflateError> {
        self.feed(input, out, cap)?;
        if last {
            self.feed(&TAIL, out, cap)?;
        }
        Ok(())
    }

    fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        cap: usize,
    ) -> Result<(), InflateError> {
        loop {
            // One byte more than the cap may be made: that is how a message
            // over it is told from one exactly at it.
            let room = (cap + 1).saturating_sub(out.len());
            if room == 0 {
                return Err(InflateError::TooBig);
            }
            let step = room.min(STEP);
            let len = out.len();
            if out.capacity() < len + step {
                // Grow by doubling, but never past the cap.
                let want = (out.capacity() * 2).max(len + step).min(cap + 1);
                out.reserve_exact(want - len);
            }
            out.resize(len + step, 0);
            let before_in = self.inflate.total_in();
            let before_out = self.inflate.total_out();
            let status = self
                .inflate
                .decompress(input, &mut out[len..], FlushDecompress::Sync);
            let produced = (self.inflate.total_out() - before_out) as usize;
            let consumed = (self.inflate.total_in() - before_in) as usize;
            out.truncate(len + produced);
            input = &input[consumed..];
            match status {
                Err(_) => return Err(InflateError::Corrupt),
                // A final block ended the stream: what follows is ignored.
                Ok(Status::StreamEnd) => return self.capped(out, cap),
                Ok(Status::Ok | Status::BufError) => {}
            }
            if out.len() > cap {
                return Err(InflateError::TooBig);
            }
            // Done once the input is used up and the output did not fill
            // the room it had (nothing is pending).
            if input.is_empty() && produced < step {
                return Ok(());
            }
            if consumed == 0 && produced == 0 {
                return Err(InflateError::Corrupt);
            }
        }
    }

    fn capped(&self, out: &[u8], cap: usize) -> Result<(), InflateError> {
        match out.len() > cap {
            true => Err(InflateError::TooBig),
            false => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(compressed: &[u8], cap: usize) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        Inflater::new().inflate(compressed, true, &mut out, cap)?;
        Ok(out)
    }

    fn payload_of(frame: &[u8]) -> &[u8] {
        let start = match frame[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        &frame[start..]
    }

    fn json(size: usize) -> Vec<u8> {
        let mut text = String::from("[");
        let mut n = 0u64;
        while text.len() < size {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push_str(&format!(
                r#"{{"file":"src/{}.rs","line":{},"event":"change"}},"#,
                n >> 52,
                n >> 40 & 0xfff
            ));
        }
        text.truncate(size);
        text.into_bytes()
    }

    #[test]
    fn a_message_round_trips_at_every_window_size() {
        let mut compressor = Compressor::new();
        for size in [1, 100, 255, 256, 257, 5000, 70_000, 300_000] {
            let message = json(size);
            for bits in 8..=15 {
                let deflate = Deflate {
                    window_bits: bits,
                    bounded: true,
                };
                let Some(frame) = compressor.frame(true, &message, deflate) else {
                    assert!(size < 300, "{size} bytes of JSON compress");
                    continue;
                };
                assert_eq!(frame[0], 0xc1);
                let back = inflate_all(payload_of(&frame), 1 << 20).unwrap();
                assert_eq!(back, message, "{size} bytes, window {bits}");
            }
        }
    }

    /// Each piece of a message compressed for a small window inflates on its
    /// own, from a fresh inflater, to exactly that piece: none refers back
    /// into another, so no reference reaches further than the window.
    #[test]
    fn a_small_window_never_refers_back_past_its_size() {
        let mut compressor = Compressor::new();
        // Repeats across every piece boundary: a compressor that kept its
        // dictionary would refer into the previous piece, and a fresh
        // inflater would then make other bytes.
        let message = json(1000).repeat(20);
        for bits in 8..15u8 {
            // The pieces as `compress` cuts them, and where each ends in
            // the output.
            compressor.out.clear();
            compressor.deflate.reset();
            let pieces: Vec<&[u8]> = message.chunks(1 << bits).collect();
            let mut ends = Vec::new();
            for (i, piece) in pieces.iter().enumerate() {
                let flush = match i + 1 < pieces.len() {
                    true => FlushCompress::Full,
                    false => FlushCompress::Sync,
                };
                compressor.deflate_all(piece, flush);
                ends.push(compressor.out.len());
            }
            let mut start = 0;
            for (piece, end) in pieces.iter().zip(ends) {
                let mut alone = Vec::new();
                Inflater::new()
                    .inflate(&compressor.out[start..end], false, &mut alone, 1 << 20)
                    .unwrap();
                assert_eq!(&alone, piece, "window {bits}");
                start = end;
            }
            // And `frame` cuts it the same way.
            let deflate = Deflate {
                window_bits: bits,
                bounded: true,
            };
            let frame = compressor.frame(true, &message, deflate).unwrap();
            assert_eq!(inflate_all(payload_of(&frame), 1 << 20).unwrap(), message);
        }
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let mut compressor = Compressor::new();
        let zeros = vec![0u8; 10 << 20];
        let frame = compressor.frame(false, &zeros, Deflate::default()).unwrap();
        let bomb = payload_of(&frame);
        assert!(
            bomb.len() < 64 * 1024,
            "{} bytes inflate to 10 MiB",
            bomb.len()
        );
        let mut out = Vec::new();
        let err = Inflater::new()
            .inflate(bomb, true, &mut out, 64 * 1024)
            .unwrap_err();
        assert_eq!(err, InflateError::TooBig);
        assert!(out.len() <= 64 * 1024 + 1, "{} bytes made", out.len());
        assert!(
            out.capacity() <= 64 * 1024 + 1,
            "{} bytes held",
            out.capacity()
        );
        // Exactly at the cap is fine.
        let exact = inflate_all(bomb, 10 << 20).unwrap();
        assert_eq!(exact.len(), 10 << 20);
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        assert_eq!(
            inflate_all(&[0xff, 0xff, 0xff, 0xff, 0x00], 1000),
            Err(InflateError::Corrupt)
        );
    }

    #[test]
    fn the_shared_frame_gets_its_compressed_variant() {
        let message = json(2000);
        let mut plain = vec![0x81, 126];
        plain.extend_from_slice(&(message.len() as u16).to_be_bytes());
        plain.extend_from_slice(&message);
        let mut compressor = Compressor::new();
        let compressed = compressor
            .compress_frame(&plain, Deflate::default())
            .unwrap();
        assert_eq!(compressed[0], 0xc1);
        assert_eq!(
            inflate_all(payload_of(&compressed), 1 << 20).unwrap(),
            message
        );
        // Control frames and incompressible data stay as they are.
        assert_eq!(
            compressor.compress_frame(&[0x89, 0x00], Deflate::default()),
            None
        );
        assert_eq!(
            compressor.compress_frame(&[0x81, 0x02, b'{', b'}'], Deflate::default()),
            None
        );
    }
}
