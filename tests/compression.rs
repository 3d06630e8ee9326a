//! permessage-deflate over real sockets: what the 101 agrees to, a fan-out
//! reaching compressed and plain clients, compressed requests, and a
//! decompression bomb refused. The client here is written against RFC 7692
//! with `flate2` directly, not with the hub's own code.

#![cfg(feature = "compression")]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{Value, json};
use support::{DEADLINE, config, post, start, upgrade_head};

const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";
const AGREED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// What a server frame carried.
#[derive(Debug)]
struct Frame {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// A WebSocket client that speaks permessage-deflate with `flate2`.
struct DeflateClient {
    stream: TcpStream,
    /// The `Sec-WebSocket-Extensions` the server answered, if any.
    agreed: Option<String>,
}

impl DeflateClient {
    /// Upgrades with `offer` in `Sec-WebSocket-Extensions` (if any).
    fn connect(addr: SocketAddr, offer: Option<&str>) -> DeflateClient {
        let mut stream = TcpStream::connect(addr).expect("tcp connect");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        let extensions = offer
            .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extensions}\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).expect("the 101's head");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let agreed = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
            .map(str::to_owned);
        DeflateClient { stream, agreed }
    }

    /// Connects and reads the welcome and the auth message.
    fn joined(addr: SocketAddr, offer: Option<&str>) -> DeflateClient {
        let mut client = DeflateClient::connect(addr, offer);
        assert_eq!(client.recv().1["type"], "connection");
        assert_eq!(client.recv().1["type"], "auth");
        client
    }

    /// Sends one masked frame.
    fn send_frame(&mut self, first: u8, payload: &[u8]) {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut frame = vec![first];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        self.stream.write_all(&frame).expect("send a frame");
    }

    /// Sends `text` compressed, in one frame with RSV1.
    fn send_compressed(&mut self, text: &[u8]) {
        self.send_frame(0xc1, &deflate(text));
    }

    fn read_frame(&mut self) -> Frame {
        let mut head = [0u8; 2];
        self.stream.read_exact(&mut head).expect("a frame header");
        let len = match head[1] & 0x7f {
            126 => {
                let mut n = [0u8; 2];
                self.stream.read_exact(&mut n).unwrap();
                u16::from_be_bytes(n) as usize
            }
            127 => {
                let mut n = [0u8; 8];
                self.stream.read_exact(&mut n).unwrap();
                u64::from_be_bytes(n) as usize
            }
            n => n as usize,
        };
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let mut payload = vec![0; len];
        self.stream
            .read_exact(&mut payload)
            .expect("a frame payload");
        Frame {
            fin: head[0] & 0x80 != 0,
            rsv1: head[0] & 0x40 != 0,
            opcode: head[0] & 0x0f,
            payload,
        }
    }

    /// The next data message: whether it came compressed, and its JSON.
    /// Pings are skipped.
    fn recv(&mut self) -> (bool, Value) {
        let (frame, text) = self.recv_raw();
        (frame.rsv1, serde_json::from_slice(&text).expect("JSON"))
    }

    /// The next data frame as it came, and its payload inflated.
    fn recv_raw(&mut self) -> (Frame, Vec<u8>) {
        loop {
            let frame = self.read_frame();
            match frame.opcode {
                0x9 | 0xa => continue,
                0x1 => {
                    assert!(frame.fin, "the hub does not fragment");
                    let text = match frame.rsv1 {
                        true => inflate(&frame.payload),
                        false => frame.payload.clone(),
                    };
                    return (frame, text);
                }
                other => panic!("expected a text frame, got opcode {other}: {frame:?}"),
            }
        }
    }

    /// Reads until the Close: its code and reason.
    fn expect_close(&mut self) -> (u16, String) {
        loop {
            let frame = self.read_frame();
            if frame.opcode == 0x8 {
                assert!(!frame.rsv1, "control frames are never compressed");
                let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                let reason = String::from_utf8(frame.payload[2..].to_vec()).unwrap();
                return (code, reason);
            }
        }
    }
}

/// `data` compressed as one message (RFC 7692 §7.2.1: a sync flush, its
/// last four bytes removed).
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let consumed = compress.total_in() as usize;
        compress
            .compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .unwrap();
        if compress.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// A compressed message inflated, with a fresh context (the hub agreed
/// `server_no_context_takeover`).
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut inflate = Decompress::new(false);
    let mut out = Vec::with_capacity(payload.len() * 8 + 1024);
    loop {
        let consumed = inflate.total_in() as usize;
        inflate
            .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            .expect("the hub's compressed data inflates");
        if inflate.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

/// Something like the seeds' `files` event: a list of changed files.
fn files_event(count: usize) -> Value {
    let files: Vec<Value> = (0..count)
        .map(|i| json!({"path": format!("src/module_{i}/mod.rs"), "status": "modified", "lines": i * 7}))
        .collect();
    json!({"files": files})
}

fn compressed_hub() -> support::TestHub {
    start(config().compression(true))
}

#[test]
fn the_101_accepts_a_browser_offer_without_context_takeover() {
    let hub = compressed_hub();
    let client = DeflateClient::connect(hub.addr, Some(BROWSER_OFFER));
    assert_eq!(client.agreed.as_deref(), Some(AGREED));
    // A client asking for small windows: the server's is repeated.
    let client = DeflateClient::connect(
        hub.addr,
        Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"),
    );
    assert_eq!(
        client.agreed.as_deref(),
        Some(format!("{AGREED}; server_max_window_bits=12").as_str())
    );
    // An offer the RFC says to decline is skipped for the next.
    let client = DeflateClient::connect(
        hub.addr,
        Some("permessage-deflate; mystery, permessage-deflate"),
    );
    assert_eq!(client.agreed.as_deref(), Some(AGREED));
    let (status, head, _) = upgrade_head(
        hub.addr,
        "/ws",
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=20\r\n",
    );
    assert_eq!(status, 101);
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions"),
        "{head}"
    );
}

#[test]
fn without_compression_on_an_offer_is_not_taken_and_rsv1_is_a_protocol_error() {
    let hub = start(config());
    let mut client = DeflateClient::joined(hub.addr, Some(BROWSER_OFFER));
    assert_eq!(client.agreed, None);
    client.send_compressed(br#"{"type":"ping"}"#);
    assert_eq!(client.expect_close(), (1002, "Protocol error".to_owned()));
}

#[test]
fn a_fan_out_goes_compressed_to_clients_that_agreed_and_plain_to_others() {
    let hub = compressed_hub();
    let mut first = DeflateClient::joined(hub.addr, Some(BROWSER_OFFER));
    let mut second = DeflateClient::joined(
        hub.addr,
        Some("permessage-deflate; client_max_window_bits; server_max_window_bits=15"),
    );
    let mut plain = DeflateClient::joined(hub.addr, None);
    for client in [&mut first, &mut second, &mut plain] {
        client.send_frame(0x81, br#"{"type":"subscribe","channel":"room"}"#);
        let (compressed, reply) = client.recv();
        assert_eq!(reply["type"], "subscribed");
        assert!(!compressed, "a reply under the minimum size goes plain");
    }
    let data = files_event(40);
    let (status, body) = post(
        hub.addr,
        "/api/publish",
        &json!({"channel": "room", "type": "files", "data": data}).to_string(),
    );
    assert_eq!((status, &body["data"]["delivered"]), (200, &json!(3)));
    let (first_frame, first_text) = first.recv_raw();
    let (second_frame, second_text) = second.recv_raw();
    let (plain_frame, plain_text) = plain.recv_raw();
    assert!(first_frame.rsv1 && second_frame.rsv1 && !plain_frame.rsv1);
    assert_eq!(
        first_frame.payload, second_frame.payload,
        "both compressed clients get the same compressed bytes"
    );
    assert!(
        first_frame.payload.len() * 4 < plain_frame.payload.len(),
        "{} compressed bytes for {} plain",
        first_frame.payload.len(),
        plain_frame.payload.len()
    );
    assert_eq!(first_text, plain_text);
    assert_eq!(second_text, plain_text);
    let message: Value = serde_json::from_slice(&plain_text).unwrap();
    assert_eq!(
        (&message["type"], &message["data"]),
        (&json!("files"), &data)
    );
    // Under the minimum size, plain for everyone.
    let (status, _) = post(
        hub.addr,
        "/api/publish",
        r#"{"channel":"room","type":"tick","data":1}"#,
    );
    assert_eq!(status, 200);
    for client in [&mut first, &mut second, &mut plain] {
        let (compressed, message) = client.recv();
        assert_eq!(message["type"], "tick");
        assert!(!compressed);
    }
}

#[test]
fn a_compressed_request_is_inflated_and_answered() {
    let hub = start(config().compression(true).allow_client_publish(true));
    let mut client = DeflateClient::joined(hub.addr, Some(BROWSER_OFFER));
    client.send_compressed(br#"{"type":"subscribe","channel":"room","correlationId":"s1"}"#);
    let (_, reply) = client.recv();
    assert_eq!(
        (&reply["type"], &reply["correlationId"]),
        (&json!("subscribed"), &json!("s1"))
    );
    // A large publish, compressed, in three fragments with a Ping between.
    let data = files_event(100);
    let request = json!({"type": "publish", "channel": "room", "event": "files", "data": data});
    let compressed = deflate(request.to_string().as_bytes());
    let third = compressed.len() / 3;
    client.send_frame(0x41, &compressed[..third]);
    client.send_frame(0x89, b"between");
    client.send_frame(0x00, &compressed[third..2 * third]);
    client.send_frame(0x80, &compressed[2 * third..]);
    let pong = client.read_frame();
    assert_eq!((pong.opcode, &pong.payload[..]), (0xa, &b"between"[..]));
    let (compressed, event) = client.recv();
    assert!(compressed);
    assert_eq!((&event["type"], &event["data"]), (&json!("files"), &data));
}

#[test]
fn a_decompression_bomb_is_payload_too_large_and_closed_1009() {
    let hub = start(config().compression(true).max_message_size(64 * 1024));
    let mut bystander = DeflateClient::joined(hub.addr, Some(BROWSER_OFFER));
    let mut bomber = DeflateClient::joined(hub.addr, Some(BROWSER_OFFER));
    // 64 MiB of a JSON string in about 64 KiB on the wire.
    let mut bomb = br#"{"type":"publish","channel":"room","data":""#.to_vec();
    bomb.resize(64 << 20, b'a');
    let compressed = deflate(&bomb);
    assert!(compressed.len() < 128 * 1024, "{} bytes", compressed.len());
    bomber.send_frame(0xc1, &compressed);
    let (_, error) = bomber.recv();
    assert_eq!(error["type"], "error");
    assert_eq!(error["data"]["code"], "payload_too_large");
    assert_eq!(bomber.expect_close(), (1009, "Message too big".to_owned()));
    // The hub is unaffected.
    bystander.send_frame(0x81, br#"{"type":"ping","correlationId":"p"}"#);
    assert_eq!(bystander.recv().1["type"], "pong");
    let stats = hub.handle().stats().unwrap();
    assert_eq!(stats.active_connections, 1);
}

#[test]
fn compressed_data_that_does_not_inflate_is_a_protocol_error() {
    let hub = compressed_hub();
    let mut client = DeflateClient::joined(hub.addr, Some(BROWSER_OFFER));
    client.send_frame(0xc1, &[0xff, 0xff, 0xff, 0xff, 0x00]);
    assert_eq!(client.expect_close(), (1002, "Protocol error".to_owned()));
}

#[test]
fn rsv1_on_a_control_frame_is_a_protocol_error() {
    let hub = compressed_hub();
    let mut client = DeflateClient::joined(hub.addr, Some(BROWSER_OFFER));
    client.send_frame(0xc9, b"");
    assert_eq!(client.expect_close(), (1002, "Protocol error".to_owned()));
}
