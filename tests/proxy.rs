//! A hub behind a trusted proxy: the client's address comes from the
//! proxy's `Forwarded` or `X-Forwarded-For`, and only from a trusted
//! proxy. The "proxy" here is a client connecting from 127.0.0.2.

mod support;

use std::net::{SocketAddr, TcpStream};

use serde_json::json;
use socket2::{Domain, Socket, Type};
use support::{DEADLINE, TestHub};
use tungstenite::WebSocket;
use tungstenite::client::IntoClientRequest;
use wshub::{Config, Hub};

/// A WebSocket client connecting from `local`, sending `headers`.
fn connect(
    local: &str,
    hub: SocketAddr,
    headers: &[(&'static str, &str)],
) -> Result<WebSocket<TcpStream>, String> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    let local: SocketAddr = format!("{local}:0").parse().expect("an address");
    socket
        .bind(&local.into())
        .unwrap_or_else(|err| panic!("bind to {local}: {err}"));
    socket.connect(&hub.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(DEADLINE)).ok();
    let mut request = format!("ws://{hub}/ws").into_client_request().unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .append(*name, value.parse().expect("a header value"));
    }
    tungstenite::client::client(request, stream)
        .map(|(ws, _)| ws)
        .map_err(|err| match err {
            tungstenite::HandshakeError::Failure(err) => err.to_string(),
            tungstenite::HandshakeError::Interrupted(_) => "interrupted".to_owned(),
        })
}

/// Whether the hub welcomed the client (`Ok`) or closed it (the code and
/// reason).
fn welcomed(ws: &mut WebSocket<TcpStream>) -> Result<(), (u16, String)> {
    loop {
        match ws.read().expect("a welcome or a Close") {
            tungstenite::Message::Text(text) => {
                let welcome: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(welcome["type"], "connection", "{welcome}");
                return Ok(());
            }
            tungstenite::Message::Close(Some(close)) => {
                return Err((close.code.into(), close.reason.to_string()));
            }
            _ => {}
        }
    }
}

fn behind_a_proxy() -> Config {
    support::config()
        .max_connections_per_ip(1)
        .trusted_proxies(vec!["127.0.0.2".parse().unwrap()])
}

#[test]
fn per_address_limits_apply_to_the_forwarded_addresses_not_the_proxy() {
    let hub = support::start(behind_a_proxy());
    let xff = |ip| [("X-Forwarded-For", ip)];
    let mut a = connect("127.0.0.2", hub.addr, &xff("203.0.113.1")).unwrap();
    assert_eq!(welcomed(&mut a), Ok(()));
    // Another client through the same proxy is another address...
    let mut b = connect("127.0.0.2", hub.addr, &xff("203.0.113.2")).unwrap();
    assert_eq!(welcomed(&mut b), Ok(()));
    let forwarded = [("Forwarded", "for=\"203.0.113.3:4711\";proto=https")];
    let mut c = connect("127.0.0.2", hub.addr, &forwarded).unwrap();
    assert_eq!(welcomed(&mut c), Ok(()));
    // ...and a second one from the first address is over its limit.
    let mut again = connect("127.0.0.2", hub.addr, &xff("203.0.113.1")).unwrap();
    assert_eq!(
        welcomed(&mut again),
        Err((1013, "Too many connections from this address".to_owned()))
    );
}

#[test]
fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let hub = support::start(behind_a_proxy());
    // 127.0.0.1 is not a trusted proxy here: it is one address, whatever
    // it claims to forward.
    let mut a = connect("127.0.0.1", hub.addr, &[("X-Forwarded-For", "203.0.113.1")]).unwrap();
    assert_eq!(welcomed(&mut a), Ok(()));
    let mut b = connect("127.0.0.1", hub.addr, &[("X-Forwarded-For", "203.0.113.2")]).unwrap();
    assert_eq!(
        welcomed(&mut b),
        Err((1013, "Too many connections from this address".to_owned()))
    );
}

#[test]
fn a_backend_sees_the_forwarded_address() {
    let mut hub = Hub::with_config(behind_a_proxy()).unwrap();
    let requests = hub.requests();
    let addr = hub.local_addr();
    let hub = TestHub {
        server: hub.spawn().unwrap(),
        addr,
    };
    let headers = [("X-Forwarded-For", "198.51.100.9, 127.0.0.2")];
    let mut ws = connect("127.0.0.2", hub.addr, &headers).unwrap();
    assert_eq!(welcomed(&mut ws), Ok(()));
    ws.send(tungstenite::Message::text(
        json!({"type": "lookup", "correlationId": "r1"}).to_string(),
    ))
    .unwrap();
    let request = requests
        .recv_timeout(DEADLINE)
        .expect("the hub runs")
        .expect("the request");
    assert_eq!(request.address(), "198.51.100.9");
}
