//! Messages as the bytes of one WebSocket frame, ready to share.
//!
//! Pure code. A server frame is unmasked, so a message can be encoded once
//! and the same bytes written to every recipient of a fan-out: [`encode`]
//! serialises JSON straight into a complete text frame, and the control
//! frames (Ping, Pong, Close) are built here too.

use serde::Serialize;
use tungstenite::Bytes;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame, FrameHeader};

use crate::protocol::{AppClose, Close};

/// The longest header of an unmasked server frame: 2 bytes + a 64-bit length.
const MAX_SERVER_HEADER: usize = 10;

/// Serialises `message` as JSON straight into a server text frame.
///
/// The JSON is written after room for the longest frame header; the header is
/// then written just before it, so the frame is built with no copy and can be
/// shared by every recipient of a fan-out.
pub(crate) fn encode<T: Serialize + ?Sized>(message: &T) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&[0; MAX_SERVER_HEADER]);
    if let Err(err) = serde_json::to_writer(&mut buf, message) {
        // Only a Serialize impl that fails can get here; ours do not, and
        // application data arrives as already-validated raw JSON.
        log::error!("could not serialise a message: {err}");
        buf.truncate(MAX_SERVER_HEADER);
        buf.extend_from_slice(
            br#"{"type":"error","data":{"code":"internal","error":"Internal error"}}"#,
        );
    }
    let len = (buf.len() - MAX_SERVER_HEADER) as u64;
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    let start = MAX_SERVER_HEADER - header.len(len);
    let mut slot = &mut buf[start..MAX_SERVER_HEADER];
    // Writing at most 10 bytes into a 10-byte slice sized by `header.len`: cannot fail.
    let _ = header.format(len, &mut slot);
    Bytes::from(buf).slice(start..)
}

/// A protocol Ping frame with an empty payload.
pub(crate) fn ping_frame() -> Bytes {
    Bytes::from_static(&[0x89, 0x00])
}

/// A Pong frame answering a Ping with `payload`.
pub(crate) fn pong_frame(payload: Bytes) -> Bytes {
    control_frame(Frame::pong(payload))
}

impl Close {
    /// The encoded Close frame, with this code and reason.
    pub(crate) fn frame(self) -> Bytes {
        close_frame(self.code(), self.reason())
    }
}

impl AppClose {
    /// The encoded Close frame, with this code and reason.
    pub(crate) fn frame(&self) -> Bytes {
        close_frame(self.code(), self.reason())
    }
}

/// A Close frame with `code` and `reason`.
fn close_frame(code: u16, reason: &str) -> Bytes {
    control_frame(Frame::close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    })))
}

/// The Close frame that answers a client's Close: its code echoed, or none.
pub(crate) fn close_reply(code: Option<u16>) -> Bytes {
    control_frame(Frame::close(code.map(|code| CloseFrame {
        code: CloseCode::from(code),
        reason: "".into(),
    })))
}

fn control_frame(frame: Frame) -> Bytes {
    let mut buf = Vec::with_capacity(frame.len());
    // Formatting into a Vec cannot fail.
    let _ = frame.format(&mut buf);
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON payload of an unmasked server frame.
    pub(crate) fn payload(frame: &Bytes) -> serde_json::Value {
        let len = frame[1] & 0x7f;
        let start = match len {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        serde_json::from_slice(&frame[start..]).expect("frame payload is JSON")
    }

    #[test]
    fn encode_builds_one_complete_text_frame() {
        for size in [0usize, 10, 200, 70_000] {
            let data = "x".repeat(size);
            let frame = encode(&serde_json::json!({"type": "event", "data": data}));
            assert_eq!(frame[0], 0x81, "FIN + text opcode");
            let value = payload(&frame);
            assert_eq!(value["type"], "event");
            assert_eq!(value["data"].as_str().unwrap().len(), size);
        }
    }

    #[test]
    fn close_frames_carry_code_and_reason() {
        let frame = Close::TooSlow.frame();
        assert_eq!(frame[0], 0x88);
        assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1013);
        assert_eq!(&frame[4..], b"Client too slow");
        let reply = close_reply(Some(1000));
        assert_eq!(&reply[..], &[0x88, 0x02, 0x03, 0xe8]);
        assert_eq!(&close_reply(None)[..], &[0x88, 0x00]);
    }
}
