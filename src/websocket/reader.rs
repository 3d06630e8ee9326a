//! A client's frames read into whole messages, as RFC 6455 and RFC 7692
//! say: masking, fragmentation with control frames in between, the RSV
//! bits, UTF-8 (checked as each fragment arrives, so a bad message fails
//! fast), Close payloads, sizes refused from a frame's header before its
//! payload is read, and compressed messages inflated under the same cap.
//!
//! Runs on the reader thread of each connection; it only reads (a Ping's
//! answer and a Close's are the caller's to send).

use std::io::{self, Cursor, Read};

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

#[cfg(feature = "compression")]
use super::compress::{InflateError, Inflater};
use super::negotiate::Deflate;

/// The longest payload a control frame may have.
const MAX_CONTROL: u64 = 125;

/// A reader's first buffer: a few small messages (a subscribe, a ping)
/// and any frame header fit; a client that sends more gets the full
/// buffer on the read that fills this one.
pub const FIRST_BUFFER: usize = 512;

/// One thing a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A whole text message (inflated, if it came compressed), valid UTF-8.
    Text(String),
    /// A whole binary message.
    Binary(Vec<u8>),
    /// A Ping: answer it with a Pong carrying the same payload.
    Ping(Vec<u8>),
    /// A Pong.
    Pong(Vec<u8>),
    /// The client's Close, with its code and reason if it gave one (the
    /// code is one a peer may send, the reason UTF-8). Nothing more is
    /// read after it.
    Close(Option<CloseFrame>),
}

/// A Close frame's code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// A code a peer may send: 1000-1003, 1007-1014 or 3000-4999.
    pub code: u16,
    /// Why, in UTF-8 (may be empty).
    pub reason: String,
}

/// Why reading stopped. Each error but [`ReadError::Io`] and
/// [`ReadError::Eof`] is the client's fault and has its close code.
#[derive(Debug)]
pub enum ReadError {
    /// A message (or, compressed, what it inflates to) larger than the
    /// limit: close 1009.
    TooBig,
    /// A text message, or a Close reason, that is not UTF-8: close 1007.
    InvalidUtf8,
    /// A frame that breaks RFC 6455 or RFC 7692 (named here): close 1002.
    Protocol(&'static str),
    /// The connection ended without a Close.
    Eof,
    /// Reading from the connection failed.
    Io(io::Error),
}

impl ReadError {
    /// The close code this error calls for, if the client caused it.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            ReadError::TooBig => Some(1009),
            ReadError::InvalidUtf8 => Some(1007),
            ReadError::Protocol(_) => Some(1002),
            ReadError::Eof | ReadError::Io(_) => None,
        }
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooBig => f.write_str("message too big"),
            ReadError::InvalidUtf8 => f.write_str("invalid UTF-8"),
            ReadError::Protocol(why) => write!(f, "protocol error: {why}"),
            ReadError::Eof => f.write_str("connection closed without a Close frame"),
            ReadError::Io(err) => write!(f, "read failed: {err}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::UnexpectedEof => ReadError::Eof,
            _ => ReadError::Io(err),
        }
    }
}

/// A message whose first fragments have come.
#[derive(Debug)]
struct Partial {
    text: bool,
    data: Vec<u8>,
    /// How much of `data` is known to be valid UTF-8 (text only).
    checked: usize,
    /// It came compressed: its fragments are inflated as they come.
    #[cfg(feature = "compression")]
    inflater: Option<Inflater>,
}

/// Reads a client's messages from `stream` (the server side of RFC 6455:
/// frames must be masked).
///
/// Frames are read through a buffer that starts at [`FIRST_BUFFER`] bytes
/// (an idle client, which sends a few small messages, keeps no more) and
/// grows to `buffer_size` once a read fills it; a payload
/// larger than what it holds is read straight into the message. A message
/// over `max_message_size` is refused from its frame's header, before its
/// payload is read; a compressed one, once it inflates past it (having
/// made at most that many bytes and a step).
#[derive(Debug)]
pub struct Reader<R> {
    stream: R,
    /// The read buffer, zeroed once: `buf[pos..end]` is read and not yet used.
    buf: Vec<u8>,
    /// What `buf` grows to once a read fills it.
    buffer_size: usize,
    pos: usize,
    end: usize,
    max_message_size: usize,
    deflate: Option<Deflate>,
    partial: Option<Partial>,
    /// A compressed frame's payload, before it is inflated.
    #[cfg(feature = "compression")]
    compressed: Vec<u8>,
}

impl<R: Read> Reader<R> {
    /// A reader of `stream` with a `buffer_size`-byte read buffer.
    pub fn new(stream: R, buffer_size: usize, max_message_size: usize) -> Reader<R> {
        Reader::with_read(stream, Vec::new(), buffer_size, max_message_size)
    }

    /// A reader of `stream` that has `read` first: what was read past the
    /// handshake's end.
    pub fn with_read(
        stream: R,
        read: Vec<u8>,
        buffer_size: usize,
        max_message_size: usize,
    ) -> Reader<R> {
        let end = read.len();
        let mut buf = read;
        // Room for a frame header at least.
        let buffer_size = buffer_size.max(64);
        buf.resize(end.max(buffer_size.min(FIRST_BUFFER)), 0);
        Reader {
            stream,
            buf,
            buffer_size,
            pos: 0,
            end,
            max_message_size,
            deflate: None,
            partial: None,
            #[cfg(feature = "compression")]
            compressed: Vec::new(),
        }
    }

    /// Accepts messages compressed with permessage-deflate (RSV1 on their
    /// first frame), as agreed at the handshake. Without it (or without
    /// the `compression` feature), RSV1 is a protocol error.
    #[must_use]
    pub fn deflate(mut self, deflate: Option<Deflate>) -> Reader<R> {
        self.deflate = deflate;
        self
    }

    /// The stream, to read and drop what is left after an error.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.stream
    }

    /// Reads until a whole message or a control frame has come.
    ///
    /// # Errors
    ///
    /// [`ReadError`]: what the client broke, or how the connection ended.
    /// After an error the reader is done; the caller closes the connection.
    pub fn read(&mut self) -> Result<Incoming, ReadError> {
        loop {
            if let Some(incoming) = self.read_frame()? {
                return Ok(incoming);
            }
        }
    }

    /// Reads one frame: what it completes, if anything.
    fn read_frame(&mut self) -> Result<Option<Incoming>, ReadError> {
        let (header, len) = self.read_header()?;
        if header.rsv2 || header.rsv3 {
            return Err(ReadError::Protocol("RSV2 or RSV3 set"));
        }
        let Some(mask) = header.mask else {
            return Err(ReadError::Protocol("an unmasked frame from a client"));
        };
        match header.opcode {
            OpCode::Control(control) => {
                if !header.is_final {
                    return Err(ReadError::Protocol("a fragmented control frame"));
                }
                if len > MAX_CONTROL {
                    return Err(ReadError::Protocol("a control frame over 125 bytes"));
                }
                if header.rsv1 {
                    return Err(ReadError::Protocol("RSV1 on a control frame"));
                }
                let mut payload = Vec::with_capacity(len as usize);
                self.read_payload(len as usize, mask, &mut payload)?;
                match control {
                    Control::Ping => Ok(Some(Incoming::Ping(payload))),
                    Control::Pong => Ok(Some(Incoming::Pong(payload))),
                    Control::Close => close(&payload).map(|close| Some(Incoming::Close(close))),
                    Control::Reserved(_) => Err(ReadError::Protocol("a reserved opcode")),
                }
            }
            OpCode::Data(data) => {
                let started = match (data, &self.partial) {
                    (Data::Continue, None) => {
                        return Err(ReadError::Protocol("a continuation with no message"));
                    }
                    (Data::Continue, Some(_)) => {
                        if header.rsv1 {
                            return Err(ReadError::Protocol("RSV1 on a continuation frame"));
                        }
                        false
                    }
                    (Data::Text | Data::Binary, Some(_)) => {
                        return Err(ReadError::Protocol("a new message inside a fragmented one"));
                    }
                    (Data::Text | Data::Binary, None) => true,
                    (Data::Reserved(_), _) => {
                        return Err(ReadError::Protocol("a reserved opcode"));
                    }
                };
                if started {
                    self.partial = Some(self.start(data == Data::Text, header.rsv1)?);
                }
                self.data_frame(len, mask, header.is_final)
            }
        }
    }

    /// The state of a message whose first frame has come.
    fn start(&self, text: bool, compressed: bool) -> Result<Partial, ReadError> {
        #[cfg(feature = "compression")]
        let inflater = match (compressed, self.deflate) {
            (false, _) => None,
            (true, Some(_)) => Some(Inflater::new()),
            (true, None) => return Err(ReadError::Protocol("RSV1 set, no extension agreed")),
        };
        #[cfg(not(feature = "compression"))]
        if compressed {
            return Err(ReadError::Protocol("RSV1 set, no extension agreed"));
        }
        Ok(Partial {
            text,
            data: Vec::new(),
            checked: 0,
            #[cfg(feature = "compression")]
            inflater,
        })
    }

    /// Reads a data frame's payload into the message; returns the message
    /// if the frame was its last.
    fn data_frame(
        &mut self,
        len: u64,
        mask: [u8; 4],
        fin: bool,
    ) -> Result<Option<Incoming>, ReadError> {
        let max = self.max_message_size;
        let mut partial = self
            .partial
            .take()
            .ok_or(ReadError::Protocol("a continuation with no message"))?;
        #[cfg(feature = "compression")]
        if let Some(inflater) = partial.inflater.as_mut() {
            // Compressed data is at most a little larger than what it
            // inflates to (stored blocks): a frame past that is refused
            // before it is read.
            if len > (max + max / 64 + 1024) as u64 {
                return Err(ReadError::TooBig);
            }
            let mut compressed = std::mem::take(&mut self.compressed);
            compressed.clear();
            self.read_payload(len as usize, mask, &mut compressed)?;
            let inflated = inflater.inflate(&compressed, fin, &mut partial.data, max);
            // A large frame's buffer is not kept for the connection's life.
            if compressed.capacity() <= self.buf.len() {
                self.compressed = compressed;
            }
            match inflated {
                Ok(()) => {}
                Err(InflateError::TooBig) => return Err(ReadError::TooBig),
                Err(InflateError::Corrupt) => {
                    return Err(ReadError::Protocol("compressed data that does not inflate"));
                }
            }
            return self.finish_frame(partial, fin);
        }
        if len > (max - partial.data.len()) as u64 {
            return Err(ReadError::TooBig);
        }
        self.read_payload(len as usize, mask, &mut partial.data)?;
        self.finish_frame(partial, fin)
    }

    /// After a data frame: checks the UTF-8 that came so far, and hands
    /// out the message if the frame was its last.
    fn finish_frame(
        &mut self,
        mut partial: Partial,
        fin: bool,
    ) -> Result<Option<Incoming>, ReadError> {
        if !fin {
            if partial.text {
                check_utf8(&mut partial)?;
            }
            self.partial = Some(partial);
            return Ok(None);
        }
        match partial.text {
            true => String::from_utf8(partial.data)
                .map(|text| Some(Incoming::Text(text)))
                .map_err(|_| ReadError::InvalidUtf8),
            false => Ok(Some(Incoming::Binary(partial.data))),
        }
    }

    /// Reads until a frame header is buffered, and consumes it.
    fn read_header(&mut self) -> Result<(FrameHeader, u64), ReadError> {
        loop {
            let mut cursor = Cursor::new(&self.buf[self.pos..self.end]);
            match FrameHeader::parse(&mut cursor) {
                Ok(Some(header)) => {
                    self.pos += cursor.position() as usize;
                    return Ok(header);
                }
                Ok(None) => {}
                Err(_) => return Err(ReadError::Protocol("a reserved opcode")),
            }
            if self.fill()? == 0 {
                return Err(ReadError::Eof);
            }
        }
    }

    /// Reads more into the buffer, after moving what is left of it (less
    /// than a header) to its start; 0 at the end of the stream.
    fn fill(&mut self) -> Result<usize, ReadError> {
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    if self.end == self.buf.len() {
                        // The client sends more than the buffer holds.
                        self.grow();
                    }
                    return Ok(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Grows the buffer to its full size, once.
    fn grow(&mut self) {
        if self.buf.len() < self.buffer_size {
            self.buf.resize(self.buffer_size, 0);
        }
    }

    /// Reads `len` bytes of payload onto `out` and unmasks them: through
    /// the buffer (with the frames after it) while what is missing is less
    /// than the buffer holds, straight from the stream past that.
    fn read_payload(
        &mut self,
        len: usize,
        mask: [u8; 4],
        out: &mut Vec<u8>,
    ) -> Result<(), ReadError> {
        let start = out.len();
        let mut missing = len;
        loop {
            let take = missing.min(self.end - self.pos);
            out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            missing -= take;
            if missing == 0 {
                break;
            }
            if missing >= self.buf.len() && self.buf.len() < self.buffer_size {
                self.grow();
                continue;
            }
            if missing >= self.buf.len() {
                let at = out.len();
                out.resize(at + missing, 0);
                self.stream.read_exact(&mut out[at..])?;
                break;
            }
            if self.fill()? == 0 {
                return Err(ReadError::Eof);
            }
        }
        unmask(&mut out[start..], mask);
        Ok(())
    }
}

/// Checks the UTF-8 of a text message's fragments so far; an incomplete
/// character at the end may be completed by the next fragment.
fn check_utf8(partial: &mut Partial) -> Result<(), ReadError> {
    match std::str::from_utf8(&partial.data[partial.checked..]) {
        Ok(_) => partial.checked = partial.data.len(),
        Err(err) if err.error_len().is_none() => partial.checked += err.valid_up_to(),
        Err(_) => return Err(ReadError::InvalidUtf8),
    }
    Ok(())
}

/// A Close frame's payload: nothing, or a code a peer may send and a UTF-8
/// reason.
fn close(payload: &[u8]) -> Result<Option<CloseFrame>, ReadError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ReadError::Protocol("a Close payload of one byte")),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                return Err(ReadError::Protocol("a close code a peer may not send"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| ReadError::InvalidUtf8)?;
            Ok(Some(CloseFrame {
                code,
                reason: reason.to_owned(),
            }))
        }
    }
}

/// XORs `data` with the frame's mask, eight bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (byte, key) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
        out
    }

    #[test]
    fn an_idle_reader_keeps_its_small_first_buffer() {
        let mut bytes = frame(0x81, br#"{"type":"subscribe","channel":"news"}"#);
        bytes.extend(frame(0x81, br#"{"type":"ping"}"#));
        let mut reader = Reader::new(Cursor::new(bytes), 4096, 1 << 20);
        for _ in 0..2 {
            assert!(matches!(reader.read(), Ok(Incoming::Text(_))));
        }
        assert_eq!(reader.buf.len(), FIRST_BUFFER);
    }

    #[test]
    fn a_reader_grows_its_buffer_once_a_read_fills_it_and_loses_nothing() {
        let texts: Vec<String> = (0..40).map(|i| format!("{i:0>100}")).collect();
        let mut bytes: Vec<u8> = texts
            .iter()
            .flat_map(|t| frame(0x81, t.as_bytes()))
            .collect();
        let big = "b".repeat(3000);
        bytes.extend(frame(0x81, big.as_bytes()));
        let mut reader = Reader::new(Cursor::new(bytes), 4096, 1 << 20);
        for text in texts.iter().chain([&big]) {
            match reader.read() {
                Ok(Incoming::Text(got)) => assert_eq!(&got, text),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(reader.buf.len(), 4096);
    }

    #[test]
    fn a_payload_larger_than_the_first_buffer_grows_it_before_reading_past_it() {
        let big = "c".repeat(2000);
        let bytes = frame(0x81, big.as_bytes());
        let mut reader = Reader::new(Cursor::new(bytes), 4096, 1 << 20);
        match reader.read() {
            Ok(Incoming::Text(got)) => assert_eq!(got, big),
            other => panic!("{other:?}"),
        }
        assert_eq!(reader.buf.len(), 4096);
    }

    fn read_all(bytes: Vec<u8>, max: usize) -> Vec<Result<Incoming, String>> {
        // A tiny buffer, so frames straddle reads.
        drain(Reader::new(Cursor::new(bytes), 16, max))
    }

    /// Every message `reader` reads, up to its end or its first error.
    fn drain(mut reader: Reader<Cursor<Vec<u8>>>) -> Vec<Result<Incoming, String>> {
        let mut out = Vec::new();
        loop {
            match reader.read() {
                Ok(incoming) => out.push(Ok(incoming)),
                Err(ReadError::Eof) => return out,
                Err(err) => {
                    out.push(Err(err.to_string()));
                    return out;
                }
            }
        }
    }

    #[test]
    fn fragments_with_pings_between_make_one_message() {
        let mut bytes = frame(0x01, "Hello, ".as_bytes());
        bytes.extend(frame(0x89, b"p"));
        bytes.extend(frame(0x00, "wörld".as_bytes()));
        bytes.extend(frame(0x8a, b""));
        bytes.extend(frame(0x80, &[b'!'; 300]));
        bytes.extend(frame(0x82, &[1, 2, 3]));
        bytes.extend(frame(0x88, &[0x03, 0xe8, b'o', b'k']));
        let read = read_all(bytes, 1 << 20);
        let text = format!("Hello, wörld{}", "!".repeat(300));
        assert_eq!(
            read,
            vec![
                Ok(Incoming::Ping(b"p".to_vec())),
                Ok(Incoming::Pong(Vec::new())),
                Ok(Incoming::Text(text)),
                Ok(Incoming::Binary(vec![1, 2, 3])),
                Ok(Incoming::Close(Some(CloseFrame {
                    code: 1000,
                    reason: "ok".to_owned()
                }))),
            ]
        );
    }

    #[test]
    fn each_broken_rule_is_refused() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (frame(0xa1, b"x"), "RSV2"),
            (frame(0x91, b"x"), "RSV2 or RSV3"),
            (frame(0xc1, b"x"), "no extension agreed"),
            (frame(0x83, b"x"), "reserved opcode"),
            (frame(0x8b, b""), "reserved opcode"),
            (frame(0x09, b""), "fragmented control"),
            (frame(0x89, &[0; 126]), "over 125"),
            (frame(0x80, b"x"), "continuation with no message"),
            (
                [frame(0x01, b"a"), frame(0x81, b"b")].concat(),
                "new message inside",
            ),
            (frame(0x88, &[3]), "one byte"),
            (frame(0x88, &[0x03, 0xed]), "may not send"),
            (frame(0x88, &[0x03, 0xe8, 0xff]), "invalid UTF-8"),
            (frame(0x81, &[0xff]), "invalid UTF-8"),
            (vec![0x81, 0x01, b'x'], "unmasked"),
        ];
        for (bytes, why) in cases {
            let read = read_all(bytes, 1 << 20);
            let last = read.last().unwrap();
            assert!(matches!(last, Err(e) if e.contains(why)), "{why}: {read:?}");
        }
    }

    #[test]
    fn invalid_utf8_fails_at_the_fragment_not_the_end() {
        // The second fragment makes it invalid; the third never comes.
        let mut bytes = frame(0x01, "κόσμε".as_bytes());
        bytes.extend(frame(0x00, &[0xce, 0xba, 0xed, 0xa0, 0x80]));
        let read = read_all(bytes, 1 << 20);
        assert_eq!(read, vec![Err("invalid UTF-8".to_owned())]);
        // A character split between fragments is fine.
        let mut bytes = frame(0x01, &[b'a', 0xce]);
        bytes.extend(frame(0x80, &[0xba]));
        assert_eq!(
            read_all(bytes, 1 << 20),
            vec![Ok(Incoming::Text("aκ".to_owned()))]
        );
    }

    #[test]
    fn too_big_is_refused_from_the_header() {
        // The header says 1 MiB; no payload follows, and none is waited for.
        let mut bytes = vec![0x82, 0x80 | 127];
        bytes.extend_from_slice(&(1u64 << 20).to_be_bytes());
        bytes.extend_from_slice(&MASK);
        assert_eq!(
            read_all(bytes, 1000),
            vec![Err("message too big".to_owned())]
        );
        // Fragments count together.
        let mut bytes = frame(0x02, &[0; 600]);
        bytes.extend(frame(0x80, &[0; 600]));
        assert_eq!(
            read_all(bytes, 1000),
            vec![Err("message too big".to_owned())]
        );
        // Exactly the limit is fine.
        assert_eq!(
            read_all(frame(0x82, &[7; 1000]), 1000),
            vec![Ok(Incoming::Binary(vec![7; 1000]))]
        );
    }

    #[test]
    fn unmask_matches_the_plain_loop() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut fast = data.clone();
            unmask(&mut fast, MASK);
            let slow: Vec<u8> = data
                .iter()
                .zip(MASK.iter().cycle())
                .map(|(b, m)| b ^ m)
                .collect();
            assert_eq!(fast, slow);
        }
    }

    #[cfg(feature = "compression")]
    mod compressed {
        use super::*;
        use crate::websocket::Compressor;

        /// `text` compressed as a client would send it: the payload of a
        /// server frame from the compressor, split in `parts` frames.
        fn compressed_frames(text: &[u8], parts: usize) -> Vec<u8> {
            let server = Compressor::new()
                .frame(true, text, Deflate::default())
                .unwrap();
            let start = match server[1] & 0x7f {
                126 => 4,
                127 => 10,
                _ => 2,
            };
            let data = &server[start..];
            let size = data.len().div_ceil(parts);
            let chunks: Vec<&[u8]> = data.chunks(size).collect();
            let mut bytes = Vec::new();
            for (i, chunk) in chunks.iter().enumerate() {
                let fin = if i + 1 == chunks.len() { 0x80 } else { 0 };
                let first = match i {
                    0 => 0x41, // RSV1, text
                    _ => 0x00,
                };
                bytes.extend(frame(first | fin, chunk));
            }
            bytes
        }

        fn read_deflate(bytes: Vec<u8>, max: usize) -> Vec<Result<Incoming, String>> {
            drain(Reader::new(Cursor::new(bytes), 16, max).deflate(Some(Deflate::default())))
        }

        #[test]
        fn a_compressed_message_in_fragments_is_inflated() {
            let text = "{\"type\":\"publish\",\"data\":\"".to_owned() + &"abc".repeat(2000) + "\"}";
            for parts in [1, 2, 7] {
                let mut bytes = compressed_frames(text.as_bytes(), parts);
                bytes.extend(frame(0x81, b"plain"));
                assert_eq!(
                    read_deflate(bytes, 1 << 20),
                    vec![
                        Ok(Incoming::Text(text.clone())),
                        Ok(Incoming::Text("plain".to_owned()))
                    ]
                );
            }
        }

        #[test]
        fn a_decompression_bomb_is_too_big() {
            let bomb = vec![b'a'; 4 << 20];
            let bytes = compressed_frames(&bomb, 1);
            assert!(bytes.len() < 64 * 1024);
            assert_eq!(
                read_deflate(bytes, 64 * 1024),
                vec![Err("message too big".to_owned())]
            );
        }

        #[test]
        fn rsv1_on_a_continuation_or_a_control_frame_is_refused() {
            let mut bytes = compressed_frames(b"hello hello hello hello", 2);
            // Set RSV1 on the continuation.
            let second = bytes.iter().rposition(|&b| b == 0x80).unwrap();
            bytes[second] = 0xc0;
            let read = read_deflate(bytes, 1 << 20);
            assert!(matches!(read.last(), Some(Err(e)) if e.contains("RSV1 on a continuation")));
            let read = read_deflate(frame(0xc9, b""), 1 << 20);
            assert!(matches!(read.last(), Some(Err(e)) if e.contains("RSV1 on a control")));
        }

        #[test]
        fn invalid_utf8_inside_compressed_text_is_refused() {
            let bytes = compressed_frames(&[&b"ab".repeat(100)[..], &[0xff]].concat(), 1);
            assert_eq!(
                read_deflate(bytes, 1 << 20),
                vec![Err("invalid UTF-8".to_owned())]
            );
        }
    }
}
