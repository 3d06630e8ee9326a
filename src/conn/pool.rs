//! The connection threads: a pool that serves accepted sockets, so a new
//! connection does not cost a thread's creation and exit.
//!
//! The accept loop hands each accepted socket (with its handshake slot and
//! thread slot) to [`Pool::dispatch`]: an idle worker takes it, or a new
//! worker is started for it. A worker serves the connection's HTTP request
//! (see [`super::serve`]), which for a WebSocket ends once the client has
//! its own reader thread, then waits for the next socket. At most
//! [`MOST_IDLE`] workers wait at once; one idle for [`IDLE`] ends, so an
//! idle hub keeps no connection threads. Workers end when the pool is
//! dropped (the accept loop's end).

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::Shared;
use crate::budget::{HandshakeSlot, ThreadSlot};

/// Most workers waiting for a socket at once.
pub(crate) const MOST_IDLE: usize = 64;

/// How long a worker waits for a socket before it ends.
const IDLE: Duration = Duration::from_secs(10);

/// Stack of a connection thread: the HTTP request, token checks, the
/// upgrade. glibc caches the stacks of ended threads, their top pages still
/// resident, and hands a cached stack to a new thread asking for up to four
/// times less: this size keeps a connection thread's pages from ever
/// following a client's reader (64 KiB by default) for its life.
const STACK: usize = 512 * 1024;

/// One accepted socket, and the places it holds.
pub(crate) struct Job {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub handshake: HandshakeSlot,
    /// Its place in the thread budget, for as long as it is served.
    pub thread: ThreadSlot,
}

/// The jobs and the workers waiting for them. A plain lock and condition
/// variable: a waiting worker sleeps at once, where a channel would first
/// spin and yield (on a busy single core, each yield is a switch).
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Workers waiting and not yet matched with a job.
    idle: usize,
    /// The pool is gone: workers end once the queue is empty.
    closed: bool,
}

struct Shelf {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shelf {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The pool, owned by the accept loop.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    shelf: Arc<Shelf>,
}

impl Pool {
    pub(crate) fn new(shared: Arc<Shared>) -> Pool {
        Pool {
            shared,
            shelf: Arc::new(Shelf {
                queue: Mutex::new(Queue::default()),
                ready: Condvar::new(),
            }),
        }
    }

    /// Serves `job` on an idle worker, or on a new one.
    ///
    /// # Errors
    ///
    /// When no worker is idle and no thread can be started.
    pub(crate) fn dispatch(&self, job: Job) -> io::Result<()> {
        {
            let mut queue = self.shelf.lock();
            if queue.idle > 0 {
                // Matched with a waiting worker: it takes this job.
                queue.idle -= 1;
                queue.jobs.push_back(job);
                drop(queue);
                self.shelf.ready.notify_one();
                return Ok(());
            }
        }
        let worker = Worker {
            shared: Arc::clone(&self.shared),
            shelf: Arc::clone(&self.shelf),
        };
        thread::Builder::new()
            .name("wshub-conn".into())
            .stack_size(STACK)
            .spawn(move || worker.run(job))
            .map(drop)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shelf.lock().closed = true;
        self.shelf.ready.notify_all();
    }
}

/// One connection thread.
struct Worker {
    shared: Arc<Shared>,
    shelf: Arc<Shelf>,
}

impl Worker {
    /// Serves `first`, then whatever it is handed, until it has been idle
    /// too long or the pool is gone.
    fn run(self, first: Job) {
        let mut job = first;
        loop {
            let Job {
                stream,
                peer,
                handshake,
                thread,
            } = job;
            super::serve(stream, peer, &self.shared, handshake);
            drop(thread);
            match self.next() {
                Some(next) => job = next,
                None => return,
            }
        }
    }

    /// Waits for the next job; `None` to end.
    fn next(&self) -> Option<Job> {
        let mut queue = self.shelf.lock();
        if queue.idle >= MOST_IDLE || queue.closed {
            return None;
        }
        queue.idle += 1;
        let until = Instant::now() + IDLE;
        loop {
            // A job here was matched with one of the waiting workers, whose
            // idle count the dispatcher took: whoever wakes takes it.
            if let Some(job) = queue.jobs.pop_front() {
                return Some(job);
            }
            let left = until.saturating_duration_since(Instant::now());
            if queue.closed || left.is_zero() {
                // Unmatched: leave, and count one waiting worker less.
                queue.idle -= 1;
                return None;
            }
            queue = match self.shelf.ready.wait_timeout(queue, left) {
                Ok((queue, _)) => queue,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}
