//! One connection's TLS session, and how its threads share it.
//!
//! A [`Session`] is the rustls server connection behind a `Mutex` that is
//! held for CPU work only (decrypting, encrypting, copying records out),
//! never across a socket read or send, so the client's reader and whoever
//! drains its link never wait for each other's system calls:
//! - the **reader** (or, before the upgrade, the connection thread) reads
//!   ciphertext from the socket into its own [`Inbound`] buffer without
//!   the lock, then takes it to feed rustls and take the plaintext;
//! - the **drainer** (a writer, or the router for a few links: only one at
//!   a time, see [`crate::link`]) takes it to seal queued frames into its
//!   [`Scratch`], then sends the ciphertext with `MSG_DONTWAIT` outside it;
//!   what the socket does not take is kept on the session (its tail) and
//!   goes first on the drainer's next turn.
//!
//! Records only the reader's side produces (alerts, KeyUpdate answers) are
//! left in rustls for the drainer, which copies them out on its next turn:
//! the reader asks for that turn (the `wake` of [`Inbound::read`]) before it
//! blocks again. The session ends
//! with the link that holds it.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rustls::ServerConnection;
use tungstenite::Bytes;

/// Most plaintext sealed in one turn of a drainer (one hold of the lock, a
/// few dozen microseconds of AES-GCM): the ciphertext a full socket leaves
/// on a link is at most about this.
const CHUNK: usize = 64 * 1024;

/// One connection's TLS session, shared by its reader and its drainer.
pub(crate) struct Session {
    conn: Mutex<ServerConnection>,
    /// Ciphertext sealed and not yet taken by the socket; only the link's
    /// drainer touches it.
    tail: Mutex<Tail>,
    /// `close_notify` is queued: nothing more is sealed after it.
    ended: AtomicBool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// Ciphertext a full socket did not take.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    bytes: Vec<u8>,
    sent: usize,
}

impl Tail {
    /// What is still to send.
    pub(crate) fn unsent(&self) -> &[u8] {
        &self.bytes[self.sent..]
    }

    /// `n` more bytes went out; once all of it has, its memory goes too.
    pub(crate) fn advance(&mut self, n: usize) {
        self.sent += n;
        if self.sent >= self.bytes.len() {
            *self = Tail::default();
        }
    }

    /// Keeps `bytes` to send first next time.
    pub(crate) fn keep(&mut self, bytes: &[u8]) {
        self.bytes.drain(..self.sent);
        self.sent = 0;
        self.bytes.extend_from_slice(bytes);
    }
}

/// A drainer's reusable buffers (each writer's, and the router's).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Frames gathered into one plaintext, so that small frames share
    /// records (one AEAD operation and 22 bytes of overhead per 16 KiB,
    /// not per frame).
    plain: Vec<u8>,
    /// The ciphertext of one turn.
    sealed: Vec<u8>,
}

impl Scratch {
    /// The ciphertext of the last turn ([`Session::seal`]).
    pub(crate) fn sealed(&self) -> &[u8] {
        &self.sealed
    }
}

impl Session {
    pub(crate) fn new(mut conn: ServerConnection) -> Session {
        // The drainer bounds what it seals per turn itself (CHUNK); rustls
        // must take each turn whole.
        conn.set_buffer_limit(None);
        Session {
            conn: Mutex::new(conn),
            tail: Mutex::new(Tail::default()),
            ended: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ServerConnection> {
        // Nothing panics while holding it; if something did, rustls's own
        // state says whether the session can go on.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reader's side of this session, with a buffer of `size` bytes for
    /// ciphertext read from the socket.
    pub(crate) fn inbound(&self, size: usize) -> Inbound {
        Inbound {
            raw: vec![0; size.max(1024)].into_boxed_slice(),
            start: 0,
            end: 0,
            wake: false,
        }
    }

    /// Whether the handshake is still under way.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.lock().is_handshaking()
    }

    /// The TLS version and cipher suite agreed, for logs.
    pub(crate) fn describe(&self) -> String {
        let conn = self.lock();
        let version = conn
            .protocol_version()
            .map_or_else(|| "?".to_owned(), |v| format!("{v:?}"));
        let suite = conn
            .negotiated_cipher_suite()
            .map_or_else(|| "?".to_owned(), |s| format!("{:?}", s.suite()));
        format!("{version} {suite}")
    }

    /// Appends the records waiting to go out (handshake messages, alerts,
    /// tickets) to `out`.
    pub(crate) fn records(&self, out: &mut Vec<u8>) {
        let mut conn = self.lock();
        // Writing to a Vec cannot fail.
        while conn.write_tls(out).unwrap_or(0) > 0 {}
    }

    /// Seals `plaintext` and appends its records (and any waiting) to `out`.
    ///
    /// # Errors
    ///
    /// When rustls refuses to seal (the session has failed).
    pub(crate) fn seal_all(&self, plaintext: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut conn = self.lock();
        conn.writer().write_all(plaintext)?;
        while conn.write_tls(out)? > 0 {}
        Ok(())
    }

    /// Queues `close_notify`, once: `true` if it was queued now.
    pub(crate) fn end(&self) -> bool {
        if self.ended.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.lock().send_close_notify();
        true
    }

    /// The drainer's turn: seals frames from the front of `batch` (the
    /// first from `offset`; at most [`CHUNK`] bytes in all) into
    /// `scratch.sealed`, with any records the reader's side left. Returns
    /// the frames and bytes sealed whole, each also given to `sealed_whole`;
    /// a frame sealed in part leaves `offset` where its sealing stopped.
    ///
    /// # Errors
    ///
    /// When rustls refuses to seal (the session has failed).
    pub(crate) fn seal(
        &self,
        batch: &mut VecDeque<Bytes>,
        offset: &mut usize,
        scratch: &mut Scratch,
        mut sealed_whole: impl FnMut(&Bytes),
    ) -> io::Result<(usize, usize)> {
        let (mut frames, mut bytes) = (0, 0);
        scratch.plain.clear();
        scratch.sealed.clear();
        while let Some(front) = batch.front() {
            let room = CHUNK - scratch.plain.len();
            if room == 0 {
                break;
            }
            let piece = &front[*offset..];
            let take = piece.len().min(room);
            scratch.plain.extend_from_slice(&piece[..take]);
            if take < piece.len() {
                *offset += take;
                break;
            }
            *offset = 0;
            frames += 1;
            bytes += front.len();
            sealed_whole(front);
            batch.pop_front();
        }
        let mut conn = self.lock();
        if !scratch.plain.is_empty() {
            conn.writer().write_all(&scratch.plain)?;
        }
        while conn.write_tls(&mut scratch.sealed)? > 0 {}
        Ok((frames, bytes))
    }

    /// The ciphertext a full socket left, for the drainer only.
    pub(crate) fn tail(&self) -> MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Plaintext rustls holds: `None` when it has none now, `Some(0)` once
    /// the client has closed.
    fn plaintext(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.lock().reader().read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
            // A TCP end without close_notify: an end all the same (the
            // WebSocket above says whether it was a clean one).
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Ok(Some(0)),
            Err(err) => Err(err),
        }
    }
}

/// The reading side of a session: ciphertext read from the socket and not
/// yet taken by rustls. Owned by the connection thread, then by the reader.
#[derive(Debug)]
pub(crate) struct Inbound {
    raw: Box<[u8]>,
    /// `raw[start..end]` is read and not yet fed.
    start: usize,
    end: usize,
    /// Feeding left records for the drainer to send.
    wake: bool,
}

impl Inbound {
    /// Room to read ciphertext into (call [`Inbound::filled`] after).
    pub(crate) fn space(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.raw.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.raw[self.end..]
    }

    /// `n` bytes were read into [`Inbound::space`].
    pub(crate) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.raw.len());
    }

    /// The first bytes read, before anything is fed.
    pub(crate) fn unread(&self) -> &[u8] {
        &self.raw[self.start..self.end]
    }

    /// Feeds what was read to `session` and processes it.
    ///
    /// # Errors
    ///
    /// When the client broke TLS (a bad record, a failed handshake): rustls
    /// has queued an alert, which [`Session::records`] gives.
    pub(crate) fn feed(&mut self, session: &Session) -> io::Result<()> {
        let mut conn = session.lock();
        while self.start < self.end {
            let mut unread = &self.raw[self.start..self.end];
            match conn.read_tls(&mut unread) {
                // close_notify came: nothing after it counts.
                Ok(0) => {
                    self.start = self.end;
                    break;
                }
                Ok(n) => self.start += n,
                // Plaintext is full: take it first.
                Err(_) => break,
            }
            let processed = conn.process_new_packets();
            self.wake |= conn.wants_write();
            if let Err(err) = processed {
                return Err(io::Error::new(io::ErrorKind::InvalidData, err));
            }
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(())
    }

    /// Reads plaintext into `buf`: what the session holds, or else more
    /// ciphertext from `fill` (a socket read, called without the session's
    /// lock). `Ok(0)` at the end of the connection. When what was fed left
    /// records only a drainer sends (a KeyUpdate's answer, an alert),
    /// `wake` is called at once, before any further read can block.
    ///
    /// # Errors
    ///
    /// What `fill` returns, or a TLS failure (`InvalidData`).
    pub(crate) fn read(
        &mut self,
        session: &Session,
        buf: &mut [u8],
        mut fill: impl FnMut(&mut [u8]) -> io::Result<usize>,
        mut wake: impl FnMut(),
    ) -> io::Result<usize> {
        loop {
            if self.start < self.end {
                let fed = self.feed(session);
                if std::mem::take(&mut self.wake) {
                    wake();
                }
                fed?;
            }
            if let Some(n) = session.plaintext(buf)? {
                return Ok(n);
            }
            if self.start < self.end {
                // rustls took none of it and gave nothing back.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "TLS records that cannot be taken",
                ));
            }
            let n = fill(self.space())?;
            if n == 0 {
                return Ok(0);
            }
            self.filled(n);
        }
    }
}
