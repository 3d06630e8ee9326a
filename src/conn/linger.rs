//! Refused connections closed without a reset. A socket the accept loop
//! has no room for gets its 503 at once and its write side shut (a FIN
//! after the answer); closing it then, with the client's request unread,
//! would send a TCP reset instead, which can reach the client before it
//! read the 503 (it sees "connection reset" and no reason). So the socket
//! is handed here, where what the client still sends is read and thrown
//! away until it closes, at most [`LINGER`] and [`MOST_BYTES`] each, then
//! the socket is closed.
//!
//! One thread, `wshub-linger`, started with the accept loop, holds up to
//! [`MOST_HELD`] sockets in one `epoll` (`mio`); past that a refused
//! socket is closed at once, as before: refusing never costs more than
//! admitting. It ends when the accept loop drops its [`Lingerer`], closing
//! what it still holds.

use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, bounded};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

/// How long a refused socket is read before it is closed anyway.
pub(crate) const LINGER: Duration = Duration::from_secs(2);
/// Refused sockets held at once; more are closed at once.
pub(crate) const MOST_HELD: usize = 256;
/// Bytes read from one refused socket before it is closed anyway.
const MOST_BYTES: usize = 64 * 1024;
const WAKE: Token = Token(usize::MAX);

/// The accept loop's side: hands refused sockets to the linger thread.
pub(crate) struct Lingerer {
    sender: Option<Sender<TcpStream>>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Lingerer {
    /// Starts the `wshub-linger` thread.
    pub(crate) fn start() -> std::io::Result<Lingerer> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (sender, receiver) = bounded(MOST_HELD);
        let thread = thread::Builder::new()
            .name("wshub-linger".into())
            .spawn(move || run(poll, &receiver))?;
        Ok(Lingerer {
            sender: Some(sender),
            waker,
            thread: Some(thread),
        })
    }

    /// Holds `stream`, whose answer is written and write side shut, until
    /// the client closes (or [`LINGER`]); closes it at once when
    /// [`MOST_HELD`] are held already.
    pub(crate) fn hold(&self, stream: TcpStream) {
        let Some(sender) = &self.sender else {
            return;
        };
        match sender.try_send(stream) {
            Ok(()) => {
                let _ = self.waker.wake();
            }
            // Full: dropping it closes it, as it was before lingering.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
        }
    }
}

impl Drop for Lingerer {
    fn drop(&mut self) {
        drop(self.sender.take());
        let _ = self.waker.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Lingerer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lingerer").finish_non_exhaustive()
    }
}

/// A refused socket being read to its end.
struct Held {
    stream: TcpStream,
    until: Instant,
    read: usize,
}

/// The linger thread's loop: takes sockets, reads them until they close or
/// their time is up, ends when the accept loop's side is dropped.
fn run(mut poll: Poll, receiver: &Receiver<TcpStream>) {
    let mut events = Events::with_capacity(64);
    let mut held: HashMap<Token, Held> = HashMap::new();
    let mut next = 0usize;
    let mut scratch = vec![0u8; 16 * 1024];
    loop {
        let timeout = held
            .values()
            .map(|h| h.until.saturating_duration_since(Instant::now()))
            .min();
        if let Err(err) = poll.poll(&mut events, timeout)
            && err.kind() != ErrorKind::Interrupted
        {
            log::error!("the linger thread cannot poll ({err}): refused sockets close at once");
            return;
        }
        for event in &events {
            let token = event.token();
            if token == WAKE {
                continue;
            }
            if let Some(h) = held.get_mut(&token)
                && discard(h, &mut scratch)
                && let Some(done) = held.remove(&token)
            {
                let _ = poll
                    .registry()
                    .deregister(&mut SourceFd(&done.stream.as_raw_fd()));
            }
        }
        loop {
            match receiver.try_recv() {
                // Holding as many as it may: closed at once.
                Ok(_) if held.len() >= MOST_HELD => {}
                Ok(stream) => {
                    next = (next + 1) % (usize::MAX - 1);
                    let token = Token(next);
                    let fd = stream.as_raw_fd();
                    let registered =
                        poll.registry()
                            .register(&mut SourceFd(&fd), token, Interest::READABLE);
                    if registered.is_ok() {
                        held.insert(
                            token,
                            Held {
                                stream,
                                until: Instant::now() + LINGER,
                                read: 0,
                            },
                        );
                    }
                }
                Err(TryRecvError::Empty) => break,
                // The accept loop ended: close everything.
                Err(TryRecvError::Disconnected) => return,
            }
        }
        let now = Instant::now();
        held.retain(|_, h| {
            let keep = h.until > now;
            if !keep {
                let _ = poll
                    .registry()
                    .deregister(&mut SourceFd(&h.stream.as_raw_fd()));
            }
            keep
        });
    }
}

/// Reads and throws away what `held` has; `true` when it is done (the
/// client closed, failed, or sent more than [`MOST_BYTES`]).
fn discard(held: &mut Held, scratch: &mut [u8]) -> bool {
    loop {
        match (&held.stream).read(scratch) {
            Ok(0) => return true,
            Ok(n) => {
                held.read += n;
                if held.read > MOST_BYTES {
                    return true;
                }
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => return false,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}
