//! The accept loop: it runs on the thread that calls [`Hub::run`] (a
//! thread of its own with [`Hub::spawn`]), blocks in `accept`, and hands
//! each socket at once to a connection thread of the pool (see [`pool`]),
//! with its handshake slot and thread slot; a socket there is no room for
//! gets a 503 without ever blocking the loop. Nothing else happens on this
//! thread: no handshake, no read.
//!
//! It ends when [`Stop::trigger`] sets the stop flag and wakes it with a
//! connection of its own (`accept` has no timeout), as
//! [`Handle::shutdown`](crate::Handle::shutdown) and the router thread's end
//! do.
//!
//! [`Hub::run`]: crate::Hub::run
//! [`Hub::spawn`]: crate::Hub::spawn
//! [`pool`]: super::pool

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use super::Shared;
use super::linger::Lingerer;
use super::pool::{Job, Pool};
use crate::analytics::Refusal;
use crate::budget::Handshakes;
use crate::throttle::{warn_refused, warn_throttled};

/// The accept loop: one thread per connection, nothing else.
pub(crate) fn run(listener: &TcpListener, shared: &Arc<Shared>, stop: &Stop) {
    let config = &shared.config;
    let pool = Pool::new(Arc::clone(shared));
    // Refused sockets are read to their end there, so the 503 is not lost
    // to a reset; without it they are closed at once.
    let lingerer = Lingerer::start()
        .inspect_err(|err| {
            log::warn!("cannot start the linger thread ({err}): refused connections close at once");
        })
        .ok();
    let mut handshakes = Handshakes::new(
        config.max_handshakes,
        config.max_handshakes_per_ip,
        config
            .trusted_proxies
            .iter()
            .map(|ip| ip.to_canonical())
            .collect(),
    );
    for accepted in listener.incoming() {
        if stop.is_set() {
            break;
        }
        let stream = match accepted {
            Ok(stream) => stream,
            Err(err) => {
                // Out of file descriptors or memory: wait a moment rather
                // than spin on an error that will repeat.
                warn_throttled!("accept failed: {err}");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(_) => continue,
        };
        let Some(handshake) = handshakes.admit(peer.ip().to_canonical()) else {
            let reason = "too many handshakes under way";
            warn_refused!(peer.ip().to_canonical(), reason;
                "refusing a connection from {}: {reason}",
                peer.ip()
            );
            shared.meters.refused(Refusal::Handshakes);
            busy(stream, shared, lingerer.as_ref());
            continue;
        };
        let Some(slot) = shared.threads.reserve() else {
            let reason = "no thread left for it";
            warn_refused!(peer.ip().to_canonical(), reason;
                "refusing a connection from {}: {reason} ({} threads are running)",
                peer.ip(),
                shared.threads.most()
            );
            shared.meters.refused(Refusal::Threads);
            busy(stream, shared, lingerer.as_ref());
            continue;
        };
        if !cfg!(target_os = "linux") {
            let _ = stream.set_nodelay(true);
        }
        let job = Job {
            stream,
            peer,
            handshake,
            thread: slot,
        };
        if let Err(err) = pool.dispatch(job) {
            log::error!("cannot start a connection thread: {err}");
        }
    }
}

/// Tells a connection the hub has no room for it, without ever blocking the
/// accept loop: a fresh socket's send buffer takes the few bytes at once.
/// Its write side is then shut (a FIN after the answer) and the socket
/// handed to the linger thread, which reads what the client still sends
/// until it closes: closed with its request unread, the socket would send
/// a reset, which can reach the client before the 503 does.
///
/// On a TLS port a 503 would need a handshake, which is what there is no
/// room for: the client gets a TLS alert (`close_notify`) instead, and its
/// TLS library reports the connection closed before the handshake.
fn busy(stream: TcpStream, shared: &Shared, lingerer: Option<&Lingerer>) {
    let body = r#"{"success":false,"code":"busy","error":"The hub is at its connection limit"}"#;
    let response = match &shared.tls {
        Some(tls) => tls.refusal().to_vec(),
        None => format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    };
    if stream.set_nonblocking(true).is_ok() {
        let _ = (&stream).write(&response);
        if let (Some(lingerer), Ok(())) = (lingerer, stream.shutdown(std::net::Shutdown::Write)) {
            lingerer.hold(stream);
        }
    }
}

/// The accept loop's stop flag and the address that wakes it.
#[derive(Debug)]
pub(crate) struct Stop {
    flag: AtomicBool,
    /// Set by [`Stop::drain`] (and by a stop): `GET /ready` answers 503.
    draining: AtomicBool,
    wake: SocketAddr,
}

impl Stop {
    /// The stop of an accept loop listening on `addr`.
    pub(crate) fn new(addr: SocketAddr) -> Stop {
        Stop {
            flag: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            wake: wake_addr(addr),
        }
    }

    /// Whether the loop was told to stop.
    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Marks the hub as draining; `true` the first time.
    pub(crate) fn drain(&self) -> bool {
        !self.draining.swap(true, Ordering::AcqRel)
    }

    /// Whether the hub drains (or stops): it wants no new clients.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Tells the loop to stop and wakes it (once; again does nothing).
    pub(crate) fn trigger(&self) {
        self.drain();
        if !self.flag.swap(true, Ordering::AcqRel) {
            // accept() has no timeout: a connection of our own wakes it.
            let _ = TcpStream::connect_timeout(&self.wake, Duration::from_secs(1));
        }
    }
}

/// Stops the accept loop when dropped (the router thread holds one).
pub(crate) struct WakeOnDrop(pub(crate) Arc<Stop>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

/// Where to connect to wake an accept loop bound to `addr`.
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let mut wake = addr;
    if addr.ip().is_unspecified() {
        wake.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    wake
}
