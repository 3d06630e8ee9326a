//! The writer pool: a few threads (one per CPU by default) that write every
//! client's queued frames. No thread per client for writing.
//!
//! Each [`Link`] belongs to one writer (`link.writer`). Whoever schedules a
//! link (see [`crate::link`]) hands it to that writer with
//! [`Writers::hand_off`]; the router does so once per batch of work, so a
//! fan-out to a thousand clients wakes each writer once, not a thousand
//! times, and a writer that is already awake is not woken at all.
//!
//! A writer thread blocks in `epoll` (through `mio`) on its wake-up and on
//! the writability of the sockets that were full. For each link handed to
//! it, it drains the link with non-blocking vectored sends; a link whose
//! socket fills up waits for writability while the writer serves the others.
//! Writes never block a writer, so one slow client costs the others nothing.
//!
//! A refused client has no reader: once its Close is out, its writer
//! lingers on the socket, reading and dropping what the client still sends
//! until it closes (or the router cuts it), so refusing costs no thread.
//!
//! Writers end when [`Writers::stop`] is called (the router does, on its
//! way out).

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::link::{Drained, Link, Scratch};

/// The token of a writer's own wake-up; links use their client number.
const WAKE: Token = Token(usize::MAX);

/// Most readiness events taken from one `epoll_wait`.
const EVENTS: usize = 1024;

/// One writer's mailbox, shared with everyone who hands it links.
struct Mailbox {
    /// Links handed off and not yet taken.
    pending: Mutex<Vec<Arc<Link>>>,
    /// The writer is (about to be) asleep in `epoll_wait`: wake it.
    sleeping: AtomicBool,
    waker: Waker,
    stop: AtomicBool,
}

/// Where the router hands the links it queued frames for, once per batch:
/// the writer pool ([`Writers`]), or, in the router's unit tests, a
/// stand-in that writes them on the spot (`router/harness.rs`).
pub(crate) trait Outlet: Send + Sync {
    /// How many writers there are; a link belongs to `link.writer` of them.
    fn count(&self) -> usize;
    /// Gives `links` (all of writer `writer`) to their writer, waking it if
    /// it sleeps. Leaves `links` empty.
    fn hand_off(&self, writer: usize, links: &mut Vec<Arc<Link>>);
    /// Tells every writer to stop now.
    fn stop(&self);
}

impl Outlet for Writers {
    fn count(&self) -> usize {
        Writers::count(self)
    }

    fn hand_off(&self, writer: usize, links: &mut Vec<Arc<Link>>) {
        Writers::hand_off(self, writer, links);
    }

    fn stop(&self) {
        Writers::stop(self);
    }
}

/// The pool, as the router and the readers see it.
pub(crate) struct Writers {
    mailboxes: Vec<Arc<Mailbox>>,
}

impl Writers {
    /// Starts `count` writer threads (at least one).
    ///
    /// # Errors
    ///
    /// When `epoll` or a thread cannot be created.
    pub(crate) fn start(count: usize) -> io::Result<(Arc<Writers>, Vec<JoinHandle<()>>)> {
        let mut mailboxes = Vec::new();
        let mut threads = Vec::new();
        for n in 0..count.max(1) {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKE)?;
            let mailbox = Arc::new(Mailbox {
                pending: Mutex::new(Vec::new()),
                sleeping: AtomicBool::new(false),
                waker,
                stop: AtomicBool::new(false),
            });
            let mine = Arc::clone(&mailbox);
            let spawned = thread::Builder::new()
                .name(format!("wshub-writer-{n}"))
                .spawn(move || Writer::new(mine, poll).run());
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    // Stop the ones already running before failing.
                    Writers { mailboxes }.stop();
                    return Err(err);
                }
            }
            mailboxes.push(mailbox);
        }
        Ok((Arc::new(Writers { mailboxes }), threads))
    }

    /// How many writers there are.
    pub(crate) fn count(&self) -> usize {
        self.mailboxes.len()
    }

    /// Gives `links` (all of writer `writer`) to their writer, waking it if
    /// it sleeps. Leaves `links` empty.
    pub(crate) fn hand_off(&self, writer: usize, links: &mut Vec<Arc<Link>>) {
        if links.is_empty() {
            return;
        }
        let mailbox = &self.mailboxes[writer % self.mailboxes.len()];
        mailbox
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(links);
        mailbox.wake_if_asleep();
    }

    /// Gives one link to its writer.
    pub(crate) fn hand_off_one(&self, link: Arc<Link>) {
        let writer = link.writer;
        self.hand_off(writer, &mut vec![link]);
    }

    /// Tells every writer to stop now.
    pub(crate) fn stop(&self) {
        for mailbox in &self.mailboxes {
            mailbox.stop.store(true, Ordering::SeqCst);
            // A failed wake means the writer is gone already.
            let _ = mailbox.waker.wake();
        }
    }
}

impl Mailbox {
    /// Wakes the writer if it is asleep or about to be (see [`Writer::run`]).
    fn wake_if_asleep(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            // Fails only if the writer's epoll is gone, i.e. it stopped.
            let _ = self.waker.wake();
        }
    }

    /// Moves the pending links into `work`.
    fn take(&self, work: &mut Vec<Arc<Link>>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        work.append(&mut pending);
    }

    fn has_pending(&self) -> bool {
        !self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }
}

/// One writer thread's own state.
struct Writer {
    mailbox: Arc<Mailbox>,
    poll: Poll,
    events: Events,
    /// Links to drain now.
    work: Vec<Arc<Link>>,
    /// Links whose socket is full, waiting for writability, by token.
    waiting: HashMap<Token, Arc<Link>>,
    /// Tokens registered with `epoll`: the waiting ones, and those just
    /// woken that are being drained again.
    registered: HashSet<Token>,
    /// Refused links whose Close is out, watched for readability until the
    /// client closes.
    lingering: HashMap<Token, Arc<Link>>,
    scratch: Scratch,
}

impl Writer {
    fn new(mailbox: Arc<Mailbox>, poll: Poll) -> Writer {
        Writer {
            mailbox,
            poll,
            events: Events::with_capacity(EVENTS),
            work: Vec::new(),
            waiting: HashMap::new(),
            registered: HashSet::new(),
            lingering: HashMap::new(),
            scratch: Scratch::default(),
        }
    }

    /// The writer's loop: take what was handed off, drain it, sleep in
    /// `epoll_wait` when there is nothing to do.
    fn run(mut self) {
        loop {
            self.mailbox.take(&mut self.work);
            if self.work.is_empty() {
                if self.mailbox.stop.load(Ordering::SeqCst) {
                    break;
                }
                // Say we sleep, then look once more: a hand-off after the
                // look sees `sleeping` and wakes us; one before it is seen.
                self.mailbox.sleeping.store(true, Ordering::SeqCst);
                if self.mailbox.has_pending() || self.mailbox.stop.load(Ordering::SeqCst) {
                    self.mailbox.sleeping.store(false, Ordering::SeqCst);
                    continue;
                }
                self.sleep();
                self.mailbox.sleeping.store(false, Ordering::SeqCst);
                continue;
            }
            let mut work = std::mem::take(&mut self.work);
            for link in work.drain(..) {
                self.drain(link);
            }
            self.work = work;
        }
        log::debug!("writer stopped");
    }

    /// Waits for a wake-up or for full sockets to take more.
    fn sleep(&mut self) {
        if let Err(err) = self.poll.poll(&mut self.events, None) {
            if err.kind() != io::ErrorKind::Interrupted {
                log::error!("a writer cannot wait for its sockets: {err}");
            }
            return;
        }
        let mut done = Vec::new();
        for event in self.events.iter() {
            let token = event.token();
            if token == WAKE {
                continue;
            }
            if let Some(link) = self.waiting.remove(&token) {
                self.work.push(link);
            } else if let Some(link) = self.lingering.get(&token)
                && link.discard_input()
            {
                done.push(token);
            }
        }
        for token in done {
            if let Some(link) = self.lingering.remove(&token) {
                self.forget(&link, token);
            }
        }
    }

    /// Stops watching a link's socket.
    fn forget(&mut self, link: &Link, token: Token) {
        if self.registered.remove(&token) {
            let fd = link.stream.as_raw_fd();
            // An error means the socket is gone already.
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
    }

    /// A refused link's Close is out: linger until the client closes.
    fn linger(&mut self, link: Arc<Link>, token: Token) {
        if link.discard_input() {
            return self.forget(&link, token);
        }
        let fd = link.stream.as_raw_fd();
        let watched = match self.registered.insert(token) {
            true => self
                .poll
                .registry()
                .register(&mut SourceFd(&fd), token, Interest::READABLE),
            false => self
                .poll
                .registry()
                .reregister(&mut SourceFd(&fd), token, Interest::READABLE),
        };
        match watched {
            Ok(()) => {
                self.lingering.insert(token, link);
            }
            Err(_) => self.forget(&link, token),
        }
    }

    /// Drains one link; a full socket is watched until it is writable.
    fn drain(&mut self, link: Arc<Link>) {
        let token = Token(link.id.0 as usize);
        let fd = link.stream.as_raw_fd();
        match link.drain(&mut self.scratch) {
            Drained::Blocked => {
                if self.registered.insert(token) {
                    // Edge-triggered: adding a socket that is already
                    // writable reports it at once, so no wake-up is lost.
                    let added = self.poll.registry().register(
                        &mut SourceFd(&fd),
                        token,
                        Interest::WRITABLE,
                    );
                    if let Err(err) = added {
                        log::error!("cannot watch a full socket, cutting it: {err}");
                        self.registered.remove(&token);
                        link.cut();
                        return;
                    }
                }
                self.waiting.insert(token, link);
            }
            Drained::Finished if link.lingers() => self.linger(link, token),
            Drained::Idle | Drained::Finished => self.forget(&link, token),
        }
    }
}
