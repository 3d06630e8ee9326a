//! One WebSocket connection as every thread sees it: its socket, when the
//! client was last heard from, and its outbound queue.
//!
//! A [`Link`] is shared (`Arc`) by the connection's reader thread, the
//! router and the writer pool; it has no thread of its own. The reader
//! stamps [`Link::heard`] on every frame, so liveness never waits for the
//! router. The router (and the reader, for Pongs) pushes encoded frames;
//! a writer drains them with non-blocking vectored sends.
//!
//! # Who writes
//!
//! Frames of two writers must never interleave on the wire, so at most one
//! thread drains a link at a time. The rule is the `scheduled` flag, changed
//! only under the queue's lock:
//! - a push to an idle link (`scheduled == false`) sets it and tells the
//!   pusher to hand the link to its writer (the router does so once per
//!   batch, and may drain a few links itself instead);
//! - the one holding the link drains it; it clears `scheduled` only when the
//!   queue is empty, under the same lock, so a push that comes later
//!   schedules the link again.
//!
//! The socket is shared: reads stay blocking (the reader), writes use
//! `MSG_DONTWAIT` on the same descriptor, so a full socket never blocks a
//! writer. On a TLS connection the drainer seals what it takes into its
//! scratch buffer under the session's lock, then sends the ciphertext the
//! same way outside it; what a full socket leaves is kept on the session
//! and goes first next time, as a frame cut short is (see [`crate::tls`]).
//! The link ends when its last `Arc` is dropped, which closes the
//! socket.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use socket2::SockRef;
use tungstenite::Bytes;

use crate::analytics::Meters;
use crate::subscriptions::ClientId;
use crate::tls;
use crate::websocket::Deflate;

/// Most frames gathered into one `sendmsg`.
const MAX_IOV: usize = 128;

/// Flags of every send: never block, never raise SIGPIPE.
const SEND_FLAGS: libc::c_int = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;

/// Milliseconds since the first call in this process: a cheap clock that
/// fits in an atomic. Readers write it, the router reads it.
pub(crate) fn clock() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// How much may wait for one client before it counts as a slow consumer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub messages: usize,
    pub bytes: usize,
}

/// What became of a frame offered to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// Queued. `schedule`: the link was idle, so the pusher must see that a
    /// writer gets it.
    Queued { schedule: bool },
    /// Over the queue's limits: a slow consumer. Nothing was queued.
    Slow,
    /// The link is closing or dead: nothing more goes out.
    Gone,
}

/// What a drain left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drained {
    /// Everything is written; the link is idle until the next push.
    Idle,
    /// The socket is full: wait until it is writable, then drain again.
    Blocked,
    /// Nothing more will be written: the Close went out, or writes failed.
    Finished,
}

/// Reusable buffers of whoever drains links (each writer, the router),
/// and the hub's meters, whose latency probe hears of every frame written.
#[derive(Default)]
pub(crate) struct Scratch {
    frames: VecDeque<Bytes>,
    meters: Option<Arc<Meters>>,
    /// Where TLS links' frames are sealed.
    tls: tls::Scratch,
}

impl Scratch {
    /// Buffers of a drainer that tells `meters` of the frames it writes.
    pub(crate) fn timed(meters: Arc<Meters>) -> Scratch {
        Scratch {
            meters: Some(meters),
            ..Scratch::default()
        }
    }
}

/// The outbound queue and its state, behind the link's lock.
#[derive(Debug, Default)]
struct Outbox {
    /// Frames not yet taken by whoever drains the link.
    frames: VecDeque<Bytes>,
    /// Bytes of `frames[0]` already written (a frame cut by a full socket).
    offset: usize,
    /// Frames and bytes queued and not yet written, including those the
    /// drainer holds: what the slow-consumer limits look at.
    queued_frames: usize,
    queued_bytes: usize,
    /// Someone (the router during a batch, or a writer) holds the link and
    /// will write what is queued.
    scheduled: bool,
    /// A Close is the last frame queued: nothing more is accepted.
    closing: bool,
    /// The drainer holds frames it took from `frames` and has not come back
    /// with yet.
    taken: bool,
    /// A slow consumer's close came while the drainer held frames: what it
    /// still holds is dropped, but for a frame it has begun, so the stream
    /// stays well formed.
    aborted: bool,
    /// Writes are over (the Close went out, or a write failed).
    finished: bool,
    /// No reader reads this socket (a refused client): once the Close is
    /// out, the writer reads and discards what the client still sends,
    /// until it closes, so the Close is not lost to a reset.
    linger: bool,
    /// Frames that left the queue since the link began (written, or
    /// dropped): the count a frame's position is measured in.
    retired: u64,
    /// The latest Ping is on the wire once `retired` reaches this.
    ping_due: Option<u64>,
    /// [`clock`] when the latest Ping went onto the wire (not when it was
    /// queued: behind a backlog, or on a starved hub, that can be much
    /// later). Liveness counts a client's silence from here.
    ping_sent: Option<u64>,
}

/// One connection, shared by its reader, the router and the writer pool.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) id: ClientId,
    pub(crate) stream: TcpStream,
    /// On a TLS port: the connection's session, shared by the reader and
    /// whoever drains the link.
    pub(crate) tls: Option<tls::Session>,
    /// The writer of the pool that drains this link.
    pub(crate) writer: usize,
    /// permessage-deflate, if the client agreed to it at the handshake:
    /// its reader inflates what it sends, and the router compresses what
    /// it queues (see [`Link::compressed`]).
    pub(crate) deflate: Option<Deflate>,
    /// [`clock`] when the reader last heard from the client.
    heard: AtomicU64,
    /// Bytes of this connection's events waiting in the router's inbox.
    pub(crate) inbox_share: AtomicUsize,
    /// The router's answer to the client's admission ([`Admission`]).
    admission: AtomicU8,
    /// The reader waiting for that answer.
    reader: Mutex<Option<std::thread::Thread>>,
    outbox: Mutex<Outbox>,
}

/// Whether the router has let a client in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Pending,
    Admitted,
    Refused,
}

impl Link {
    pub(crate) fn new(
        id: ClientId,
        stream: TcpStream,
        writer: usize,
        tls: Option<tls::Session>,
    ) -> Link {
        Link {
            id,
            stream,
            tls,
            writer,
            deflate: None,
            heard: AtomicU64::new(clock()),
            inbox_share: AtomicUsize::new(0),
            admission: AtomicU8::new(0),
            reader: Mutex::new(None),
            outbox: Mutex::new(Outbox::default()),
        }
    }

    /// The link of a client that agreed to permessage-deflate (`Some`).
    pub(crate) fn compressed(mut self, deflate: Option<Deflate>) -> Link {
        self.deflate = deflate;
        self
    }

    /// The router's answer to the client's admission so far.
    pub(crate) fn admission(&self) -> Admission {
        match self.admission.load(Ordering::Acquire) {
            0 => Admission::Pending,
            1 => Admission::Admitted,
            _ => Admission::Refused,
        }
    }

    /// Queues bytes to go first, before any frame (the upgrade's `101`
    /// response), without scheduling the link: they go out with the first
    /// frame the router queues (the welcome, or a refusal's Close), in one
    /// send. Only for a new link nobody else has seen yet.
    pub(crate) fn preamble(&self, bytes: Bytes) {
        let mut out = self.lock();
        out.queued_frames += 1;
        out.queued_bytes += bytes.len();
        out.frames.push_front(bytes);
    }

    /// Records the router's answer and wakes the reader if it waits.
    pub(crate) fn admit(&self, admitted: bool) {
        let answer = match admitted {
            true => 1,
            false => 2,
        };
        self.admission.store(answer, Ordering::Release);
        let waiting = self
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(reader) = waiting {
            reader.unpark();
        }
    }

    /// The reader's wait for the router's answer (parked, not spinning).
    pub(crate) fn wait_for_admission(&self) {
        if self.admission() != Admission::Pending {
            return;
        }
        *self.reader.lock().unwrap_or_else(PoisonError::into_inner) = Some(std::thread::current());
        // The answer may have come between the look and the registration;
        // `unpark` before `park` makes `park` return at once.
        while self.admission() == Admission::Pending {
            std::thread::park();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Outbox> {
        // Nothing panics while holding it; if something did, the queue is
        // still consistent enough to finish with.
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that the client sent something (any frame): it is alive.
    pub(crate) fn touch(&self) {
        self.heard.store(clock(), Ordering::Relaxed);
    }

    /// [`clock`] when the client was last heard from.
    pub(crate) fn heard(&self) -> u64 {
        self.heard.load(Ordering::Relaxed)
    }

    /// How long the client has been silent, as of `now` ([`clock`]).
    pub(crate) fn silent_for(&self, now: u64) -> Duration {
        Duration::from_millis(now.saturating_sub(self.heard()))
    }

    /// Frames queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.lock().queued_frames
    }

    /// Frames and bytes queued and not yet written.
    pub(crate) fn backlog(&self) -> (usize, usize) {
        let out = self.lock();
        (out.queued_frames, out.queued_bytes)
    }

    /// Queues `frame` unless the queue is at its `limits` (then: a slow
    /// consumer). One frame larger than the byte limit still goes to a
    /// client with nothing queued.
    pub(crate) fn push(&self, frame: Bytes, limits: QueueLimits) -> Push {
        let mut out = self.lock();
        if out.closing || out.finished {
            return Push::Gone;
        }
        if out.queued_frames >= limits.messages
            || (out.queued_bytes > 0 && out.queued_bytes + frame.len() > limits.bytes)
        {
            return Push::Slow;
        }
        Push::Queued {
            schedule: out.enqueue(frame),
        }
    }

    /// Queues a protocol Ping as [`Link::push`] does, and notes where it is
    /// in the queue, so that [`Link::ping_sent`] says when it really went
    /// out.
    pub(crate) fn push_ping(&self, frame: Bytes, limits: QueueLimits) -> Push {
        let mut out = self.lock();
        if out.closing || out.finished {
            return Push::Gone;
        }
        if out.queued_frames >= limits.messages
            || (out.queued_bytes > 0 && out.queued_bytes + frame.len() > limits.bytes)
        {
            return Push::Slow;
        }
        let schedule = out.enqueue(frame);
        out.ping_due = Some(out.retired + out.queued_frames as u64);
        out.ping_sent = None;
        Push::Queued { schedule }
    }

    /// [`clock`] when the latest Ping went onto the wire; `None` while it
    /// is still queued (or none was sent).
    pub(crate) fn ping_sent(&self) -> Option<u64> {
        self.lock().ping_sent
    }

    /// Queues a control frame (a Pong) past the limits, which the reader's
    /// control-frame budget bounds instead; on a TLS link, an empty frame
    /// gives the drainer a turn to send the session's own records. `true`:
    /// hand the link to its writer.
    pub(crate) fn push_control(&self, frame: Bytes) -> bool {
        let mut out = self.lock();
        if out.closing || out.finished {
            return false;
        }
        out.enqueue(frame)
    }

    /// Queues a Close as the last frame: after everything queued, or, when
    /// `abort`, in place of it (a slow consumer; a frame already begun is
    /// finished first). `true`: hand the link to its writer.
    pub(crate) fn close(&self, frame: Bytes, abort: bool) -> bool {
        let mut guard = self.lock();
        let out = &mut *guard;
        if out.closing || out.finished {
            return false;
        }
        if abort {
            // What the drainer holds is trimmed when it comes back.
            out.aborted = out.taken;
            let keep = usize::from(out.offset > 0).min(out.frames.len());
            let mut dropped_frames = 0;
            for dropped in out.frames.drain(keep..) {
                out.queued_frames -= 1;
                out.queued_bytes -= dropped.len();
                dropped_frames += 1;
            }
            out.retire(dropped_frames);
        }
        out.closing = true;
        out.enqueue(frame)
    }

    /// Queues `frames` (the last a Close) for a client that has no reader,
    /// and makes the writer linger on its socket once they are out (see
    /// [`Link::discard_input`]). `true`: hand the link to its writer.
    pub(crate) fn refuse(&self, frames: Vec<Bytes>) -> bool {
        let mut guard = self.lock();
        let out = &mut *guard;
        if out.closing || out.finished {
            return false;
        }
        out.closing = true;
        out.linger = true;
        let mut schedule = false;
        for frame in frames {
            schedule |= out.enqueue(frame);
        }
        schedule
    }

    /// Whether this link has no reader and must be lingered on.
    pub(crate) fn lingers(&self) -> bool {
        self.lock().linger
    }

    /// For a link with no reader: reads and drops what the client sends,
    /// without blocking. `true` once the client has closed (or the socket
    /// failed, or sent more than it should): the link can go.
    pub(crate) fn discard_input(&self) -> bool {
        const MOST: usize = 1 << 20;
        // No reader shares this socket: it may be non-blocking for good.
        if self.stream.set_nonblocking(true).is_err() {
            return true;
        }
        let mut sink = [0u8; 4096];
        let mut read = 0;
        loop {
            match (&self.stream).read(&mut sink) {
                Ok(0) => return true,
                Ok(n) => {
                    read += n;
                    if read > MOST {
                        return true;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }

    /// Ends the connection at once, both ways: wakes a reader blocked in
    /// `read` and fails any write. Nothing more is queued.
    pub(crate) fn cut(&self) {
        {
            let mut out = self.lock();
            out.finished = true;
            out.frames.clear();
            out.queued_frames = 0;
            out.queued_bytes = 0;
        }
        // An error only means the socket is gone already.
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Writes what is queued, without ever blocking, until the queue is
    /// empty or the socket is full. Only the thread that holds the link
    /// (see the module docs) may call it.
    pub(crate) fn drain(&self, scratch: &mut Scratch) -> Drained {
        let mut batch = std::mem::take(&mut scratch.frames);
        let mut offset;
        {
            let mut out = self.lock();
            if out.finished {
                out.scheduled = false;
                return Drained::Finished;
            }
            std::mem::swap(&mut out.frames, &mut batch);
            offset = std::mem::take(&mut out.offset);
            out.taken = true;
        }
        let meters = scratch.meters.as_deref();
        let drained = loop {
            let (frames, bytes, outcome) =
                self.write(&mut batch, &mut offset, meters, &mut scratch.tls);
            let mut guard = self.lock();
            let out = &mut *guard;
            out.queued_frames -= frames;
            out.queued_bytes -= bytes;
            out.retire(frames);
            out.taken = false;
            if std::mem::take(&mut out.aborted) {
                // A slow consumer: of what was held, only a frame already
                // begun still goes; the Close is queued behind it.
                let keep = usize::from(offset > 0).min(batch.len());
                let mut dropped_frames = 0;
                for dropped in batch.drain(keep..) {
                    out.queued_frames -= 1;
                    out.queued_bytes -= dropped.len();
                    dropped_frames += 1;
                }
                out.retire(dropped_frames);
            }
            match outcome {
                // `All` leaves the batch empty. More came while writing: take it too.
                Written::All if !out.frames.is_empty() => {
                    std::mem::swap(&mut out.frames, &mut batch);
                    offset = std::mem::take(&mut out.offset);
                    out.taken = true;
                }
                // On TLS, close_notify follows the Close: one more turn.
                Written::All
                    if out.closing
                        && !out.finished
                        && self.tls.as_ref().is_some_and(tls::Session::end) =>
                {
                    out.taken = true;
                }
                Written::All => {
                    out.scheduled = false;
                    if out.closing && !out.finished {
                        out.finished = true;
                        drop(guard);
                        // Nothing more will be sent: say so at the TCP level
                        // too. The reader goes on until the client's Close.
                        let _ = self.stream.shutdown(Shutdown::Write);
                        break Drained::Finished;
                    }
                    break if out.finished {
                        Drained::Finished
                    } else {
                        Drained::Idle
                    };
                }
                Written::Blocked => {
                    // Put back what is left, in front of what came meanwhile.
                    while let Some(frame) = batch.pop_back() {
                        out.frames.push_front(frame);
                    }
                    out.offset = offset;
                    break Drained::Blocked;
                }
                Written::Failed => {
                    out.finished = true;
                    out.scheduled = false;
                    out.frames.clear();
                    out.queued_frames = 0;
                    out.queued_bytes = 0;
                    batch.clear();
                    drop(guard);
                    let _ = self.stream.shutdown(Shutdown::Both);
                    break Drained::Finished;
                }
            }
        };
        batch.clear();
        scratch.frames = batch;
        drained
    }

    /// Sends `batch` (its first frame from `offset`) until it is all written
    /// or the socket is full, telling `meters` of each frame written in
    /// full (on TLS: sealed). Returns the frames and bytes fully written (on
    /// TLS: sealed).
    fn write(
        &self,
        batch: &mut VecDeque<Bytes>,
        offset: &mut usize,
        meters: Option<&Meters>,
        scratch: &mut tls::Scratch,
    ) -> (usize, usize, Written) {
        match &self.tls {
            Some(session) => self.write_sealed(session, batch, offset, meters, scratch),
            None => self.write_plain(batch, offset, meters),
        }
    }

    /// [`Link::write`] on TLS: what a full socket left last time, then turn
    /// after turn, frames sealed under the session's lock (at most 64 KiB of
    /// them) and sent outside it. What the socket does not take is kept on
    /// the session; `offset` is how far into the first frame sealing went.
    fn write_sealed(
        &self,
        session: &tls::Session,
        batch: &mut VecDeque<Bytes>,
        offset: &mut usize,
        meters: Option<&Meters>,
        scratch: &mut tls::Scratch,
    ) -> (usize, usize, Written) {
        let socket = SockRef::from(&self.stream);
        {
            let mut tail = session.tail();
            let unsent = tail.unsent().len();
            if unsent > 0 {
                let sent = match send_all(&socket, tail.unsent()) {
                    Ok(sent) => sent,
                    Err(failed) => return (0, 0, failed),
                };
                tail.advance(sent);
                if sent < unsent {
                    return (0, 0, Written::Blocked);
                }
            }
        }
        let (mut frames, mut bytes) = (0, 0);
        loop {
            // The latency probe's frame, if this turn seals it: told once
            // its ciphertext is all on the wire (a sample whose ciphertext
            // a full socket keeps for later is dropped; the next is armed
            // afresh).
            let mut probe = None;
            match session.seal(batch, offset, scratch, |frame| {
                if meters.is_some_and(|m| m.latency.is_for(frame)) {
                    probe = Some(frame.clone());
                }
            }) {
                Ok((sealed_frames, sealed_bytes)) => {
                    frames += sealed_frames;
                    bytes += sealed_bytes;
                }
                Err(_) => return (frames, bytes, Written::Failed),
            }
            let sealed = scratch.sealed();
            if sealed.is_empty() {
                // Nothing was left to seal, and rustls had nothing to send.
                return (frames, bytes, Written::All);
            }
            let sent = match send_all(&socket, sealed) {
                Ok(sent) => sent,
                Err(failed) => return (frames, bytes, failed),
            };
            if sent < sealed.len() {
                session.tail().keep(&sealed[sent..]);
                return (frames, bytes, Written::Blocked);
            }
            if let (Some(meters), Some(frame)) = (meters, probe) {
                meters.latency.written(&frame);
            }
        }
    }

    /// [`Link::write`] on plain TCP: vectored sends of the frames themselves.
    fn write_plain(
        &self,
        batch: &mut VecDeque<Bytes>,
        offset: &mut usize,
        meters: Option<&Meters>,
    ) -> (usize, usize, Written) {
        let socket = SockRef::from(&self.stream);
        let (mut frames, mut bytes) = (0, 0);
        while !batch.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            for (slice, frame) in slices.iter_mut().zip(batch.iter()) {
                let start = if count == 0 { *offset } else { 0 };
                *slice = IoSlice::new(&frame[start..]);
                count += 1;
            }
            let mut sent = match socket.send_vectored_with_flags(&slices[..count], SEND_FLAGS) {
                Ok(0) => return (frames, bytes, Written::Failed),
                Ok(sent) => sent,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    return (frames, bytes, Written::Blocked);
                }
                Err(_) => return (frames, bytes, Written::Failed),
            };
            // Retire every frame written in full; note how far into the next.
            while let Some(front) = batch.front() {
                let left = front.len() - *offset;
                if sent < left {
                    *offset += sent;
                    break;
                }
                sent -= left;
                *offset = 0;
                frames += 1;
                bytes += front.len();
                if let Some(meters) = meters {
                    meters.latency.written(front);
                }
                batch.pop_front();
            }
        }
        (frames, bytes, Written::All)
    }
}

/// Sends `bytes` until they are all out or the socket is full: how many
/// went, or [`Written::Failed`].
fn send_all(socket: &SockRef<'_>, bytes: &[u8]) -> Result<usize, Written> {
    let mut sent = 0;
    while sent < bytes.len() {
        match socket.send_with_flags(&bytes[sent..], SEND_FLAGS) {
            Ok(0) => return Err(Written::Failed),
            Ok(n) => sent += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => return Err(Written::Failed),
        }
    }
    Ok(sent)
}

/// How far one write went.
enum Written {
    All,
    Blocked,
    Failed,
}

impl Outbox {
    /// Counts `frames` that left the queue; stamps the pending Ping once it
    /// is among them.
    fn retire(&mut self, frames: usize) {
        self.retired += frames as u64;
        if self.ping_due.is_some_and(|due| self.retired >= due) {
            self.ping_due = None;
            self.ping_sent = Some(clock());
        }
    }

    /// Appends a frame; `true` when the link was idle and must be scheduled.
    fn enqueue(&mut self, frame: Bytes) -> bool {
        self.queued_frames += 1;
        self.queued_bytes += frame.len();
        self.frames.push_back(frame);
        !std::mem::replace(&mut self.scheduled, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    const ROOMY: QueueLimits = QueueLimits {
        messages: 1 << 20,
        bytes: 1 << 30,
    };

    /// A link to a socket whose other end the test reads.
    fn pair() -> (Link, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (Link::new(ClientId(1), server, 0, None), client)
    }

    fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        stream.read_exact(&mut buf).unwrap();
        buf
    }

    #[test]
    fn the_first_push_schedules_and_a_drain_releases() {
        let (link, mut peer) = pair();
        let mut scratch = Scratch::default();
        assert_eq!(
            link.push(Bytes::from_static(b"ab"), ROOMY),
            Push::Queued { schedule: true }
        );
        assert_eq!(
            link.push(Bytes::from_static(b"cd"), ROOMY),
            Push::Queued { schedule: false },
            "already scheduled: nobody else hands it off"
        );
        assert_eq!(link.drain(&mut scratch), Drained::Idle);
        assert_eq!(read_exactly(&mut peer, 4), b"abcd");
        assert_eq!(link.queued(), 0);
        assert_eq!(
            link.push(Bytes::from_static(b"e"), ROOMY),
            Push::Queued { schedule: true },
            "idle again: the next push schedules it"
        );
    }

    #[test]
    fn limits_make_a_slow_consumer_but_one_big_frame_fits_an_empty_queue() {
        let (link, _peer) = pair();
        let limits = QueueLimits {
            messages: 2,
            bytes: 10,
        };
        let big = Bytes::from(vec![b'x'; 100]);
        assert!(matches!(
            link.push(big.clone(), limits),
            Push::Queued { .. }
        ));
        assert_eq!(link.push(Bytes::from_static(b"y"), limits), Push::Slow);
        let (link, _peer) = pair();
        link.push(Bytes::from_static(b"1"), limits);
        link.push(Bytes::from_static(b"2"), limits);
        assert_eq!(link.push(Bytes::from_static(b"3"), limits), Push::Slow);
    }

    #[test]
    fn a_full_socket_blocks_without_blocking_and_resumes_mid_frame() {
        let (link, mut peer) = pair();
        let mut scratch = Scratch::default();
        // Far more than the socket buffers hold.
        let frame = Bytes::from(vec![7u8; 1 << 20]);
        for _ in 0..32 {
            link.push(frame.clone(), ROOMY);
        }
        assert_eq!(link.drain(&mut scratch), Drained::Blocked);
        let queued = link.queued();
        assert!(queued > 0 && queued <= 32);
        // Read everything while draining whenever the socket takes more.
        let total = 32usize << 20;
        let mut got = 0;
        let mut buf = vec![0u8; 1 << 16];
        while got < total {
            got += peer.read(&mut buf).unwrap();
            if link.queued() > 0 {
                link.drain(&mut scratch);
            }
        }
        assert_eq!(got, total, "every byte of every frame, none twice");
        assert_eq!(link.queued(), 0);
    }

    #[test]
    fn an_abort_drops_the_queue_but_finishes_a_begun_frame_then_closes() {
        let (link, mut peer) = pair();
        let mut scratch = Scratch::default();
        let frame = Bytes::from(vec![1u8; 1 << 20]);
        for _ in 0..16 {
            link.push(frame.clone(), ROOMY);
        }
        assert_eq!(link.drain(&mut scratch), Drained::Blocked);
        let begun = {
            let out = link.lock();
            out.offset
        };
        link.close(Bytes::from_static(b"CLOSE"), true);
        // Read until EOF: whatever was in flight, then the rest of the begun
        // frame, then the Close, then the end of the stream.
        let mut received = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            if link.drain(&mut scratch) == Drained::Finished {
                peer.read_to_end(&mut received).unwrap();
                break;
            }
            let n = peer.read(&mut buf).unwrap();
            received.extend_from_slice(&buf[..n]);
        }
        assert!(
            received.ends_with(b"CLOSE"),
            "{} bytes, ends {:?}",
            received.len(),
            &received[received.len().saturating_sub(8)..]
        );
        let body = received.len() - 5;
        assert_eq!(body % (1 << 20), 0, "only whole frames: {body} bytes");
        assert!(begun == 0 || body > 0);
        assert!(body < 16 << 20, "the queued frames were dropped");
        assert_eq!(link.push(Bytes::from_static(b"late"), ROOMY), Push::Gone);
    }

    #[test]
    fn a_ping_is_stamped_when_it_goes_out_not_when_it_is_queued() {
        let (link, mut peer) = pair();
        let mut scratch = Scratch::default();
        // A backlog far larger than the socket takes, then the Ping.
        let frame = Bytes::from(vec![7u8; 1 << 20]);
        for _ in 0..16 {
            link.push(frame.clone(), ROOMY);
        }
        link.push_ping(Bytes::from_static(b"PING"), ROOMY);
        assert_eq!(link.drain(&mut scratch), Drained::Blocked);
        assert_eq!(link.ping_sent(), None, "still behind the backlog");
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0;
        while got < (16 << 20) + 4 {
            got += peer.read(&mut buf).unwrap();
            if link.queued() > 0 {
                link.drain(&mut scratch);
            }
        }
        assert_eq!(link.queued(), 0);
        assert!(link.ping_sent().is_some(), "stamped once written");
        // A new Ping clears the stamp until it, too, is out.
        link.push_ping(Bytes::from_static(b"PING"), ROOMY);
        assert_eq!(link.ping_sent(), None);
        assert_eq!(link.drain(&mut scratch), Drained::Idle);
        assert!(link.ping_sent().is_some());
    }

    #[test]
    fn a_dead_peer_finishes_the_link() {
        let (link, peer) = pair();
        drop(peer);
        let mut scratch = Scratch::default();
        let frame = Bytes::from(vec![0u8; 1 << 16]);
        let mut drained = Drained::Idle;
        for _ in 0..64 {
            if let Push::Gone = link.push(frame.clone(), ROOMY) {
                break;
            }
            drained = link.drain(&mut scratch);
            if drained == Drained::Finished {
                break;
            }
        }
        assert_eq!(drained, Drained::Finished, "a reset socket ends the link");
        assert_eq!(link.push(frame, ROOMY), Push::Gone);
    }
}
