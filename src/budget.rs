//! What the hub admits before the router sees a client: how many connection
//! and writer threads may run (a counter checked before every spawn, against
//! a ceiling the kernel can really honour), and how many connections may be
//! mid-handshake, in all and per address.
//!
//! [`Threads`] is shared (through an `Arc`) by the accept loop and the
//! connection threads; its counter is an atomic. [`Handshakes`] belongs to
//! the accept loop alone; connection threads give their slot back over a
//! channel.
//!
//! Why a ceiling at all: on Linux every thread costs four memory mappings
//! (its stack and guard page, and the signal stack and guard page Rust's
//! runtime adds). A process may hold `vm.max_map_count` mappings (65 530 by
//! default). When a new thread cannot map its signal stack, the runtime
//! aborts the whole process rather than failing the spawn, so the hub must
//! stop short of the limit: it refuses the connection instead.
//!
//! What is whose: the mappings are the process's, so that ceiling is one
//! [`Process`] budget for every hub of the process (a program that embeds
//! two hubs must not let each count on the whole of it). It is measured
//! once, when the first hub is made. Each hub takes its own threads (its
//! writers, the idle connection threads it may keep, its router, timer,
//! accept loop and cluster threads) from it for its life, and each
//! connection thread one place while it runs. Everything else is each
//! hub's own: its `max_threads` (or `max_connections + max_handshakes`),
//! its handshakes in all and per address, and every limit the router
//! keeps. A hub's connection thread takes a place in its hub's budget and
//! in the process's, and is refused if either is full.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{Receiver, Sender, unbounded};

/// Memory mappings one thread costs.
const MAPS_PER_THREAD: usize = 4;

/// A hub's threads outside its connection budget, at most, beside its
/// writers and idle connection threads: the router, the timer, the accept
/// loop, the linger thread (see `conn::linger`) and the two threads that
/// talk to Redis.
pub(crate) const OWN_THREADS: usize = 6;

/// Threads this process may still start before it runs out of memory
/// mappings; `None` where the kernel does not say (not Linux).
pub(crate) fn kernel_thread_limit() -> Option<usize> {
    let max_maps = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let used = std::fs::read_to_string("/proc/self/maps")
        .ok()?
        .lines()
        .count();
    Some(threads_within(max_maps, used))
}

/// The threads that fit in `max_maps` mappings with `used` already taken,
/// keeping a reserve for the heap, libraries and the allocator's arenas.
fn threads_within(max_maps: usize, used: usize) -> usize {
    let reserve = 2048 + max_maps / 20;
    max_maps.saturating_sub(used + reserve) / MAPS_PER_THREAD
}

/// The threads of every hub in this process, against what the kernel can
/// map; made with the first hub, never dropped.
#[derive(Debug)]
pub(crate) struct Process {
    live: AtomicUsize,
    most: usize,
}

impl Process {
    fn new(most: usize) -> Arc<Process> {
        Arc::new(Process {
            live: AtomicUsize::new(0),
            most,
        })
    }

    /// The budget of this process: what the kernel lets it still start
    /// when the first hub is made (no ceiling where the kernel does not
    /// say).
    fn shared() -> Arc<Process> {
        static PROCESS: OnceLock<Arc<Process>> = OnceLock::new();
        Arc::clone(
            PROCESS.get_or_init(|| Process::new(kernel_thread_limit().unwrap_or(usize::MAX))),
        )
    }

    /// Places left.
    fn room(&self) -> usize {
        self.most.saturating_sub(self.live.load(Ordering::Acquire))
    }

    /// One place; `false` when none is left.
    fn take(&self) -> bool {
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < self.most).then_some(live + 1)
            })
            .is_ok()
    }

    /// `n` places for threads that run whatever the budget says (a hub's
    /// own): counted, so that connection threads stop short of the limit.
    fn hold(&self, n: usize) {
        self.live.fetch_add(n, Ordering::AcqRel);
    }

    fn give(&self, n: usize) {
        self.live.fetch_sub(n, Ordering::AcqRel);
    }
}

/// One hub's live connection threads and its ceiling, within the
/// process's budget.
#[derive(Debug)]
pub(crate) struct Threads {
    live: AtomicUsize,
    most: usize,
    process: Arc<Process>,
    /// The hub's own threads, held in the process's budget while it lives.
    own: usize,
}

impl Threads {
    /// A hub's budget of `most` connection threads, within this process's;
    /// `own` places (its writers, idle connection threads, router...) are
    /// held in the process's budget until it is dropped.
    pub(crate) fn new(most: usize, own: usize) -> Arc<Threads> {
        Threads::within(Process::shared(), most, own)
    }

    fn within(process: Arc<Process>, most: usize, own: usize) -> Arc<Threads> {
        process.hold(own);
        Arc::new(Threads {
            live: AtomicUsize::new(0),
            most,
            process,
            own,
        })
    }

    /// The ceiling: the hub's own, or less while the process's budget (the
    /// kernel's mappings, shared with the other hubs) has less room.
    pub(crate) fn most(&self) -> usize {
        self.most.min(self.live() + self.process.room())
    }

    /// Threads alive now.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Takes a place for one more thread; `None` at the hub's ceiling or
    /// the process's. The place is given back when the slot is dropped
    /// (move it into the thread).
    pub(crate) fn reserve(self: &Arc<Self>) -> Option<ThreadSlot> {
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < self.most).then_some(live + 1)
            })
            .ok()?;
        if !self.process.take() {
            self.live.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ThreadSlot(Arc::clone(self)))
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.process.give(self.own);
    }
}

/// One thread's place in the budget, for as long as it lives.
#[derive(Debug)]
pub(crate) struct ThreadSlot(Arc<Threads>);

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
        self.0.process.give(1);
    }
}

/// Connections still sending their HTTP request, counted by the accept loop.
#[derive(Debug)]
pub(crate) struct Handshakes {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
    most: usize,
    most_per_address: usize,
    trusted: Vec<IpAddr>,
    done: Sender<IpAddr>,
    finished: Receiver<IpAddr>,
}

impl Handshakes {
    pub(crate) fn new(most: usize, most_per_address: usize, trusted: Vec<IpAddr>) -> Handshakes {
        let (done, finished) = unbounded();
        Handshakes {
            total: 0,
            by_address: HashMap::new(),
            most,
            most_per_address,
            trusted,
            done,
            finished,
        }
    }

    /// A slot for a handshake from `address`; `None` when the hub (or this
    /// address, unless it is a trusted proxy) has as many as allowed.
    pub(crate) fn admit(&mut self, address: IpAddr) -> Option<HandshakeSlot> {
        for ended in self.finished.try_iter() {
            self.total -= 1;
            if let Some(count) = self.by_address.get_mut(&ended) {
                *count -= 1;
                if *count == 0 {
                    self.by_address.remove(&ended);
                }
            }
        }
        let from_address = self.by_address.get(&address).copied().unwrap_or(0);
        let limited = !self.trusted.contains(&address);
        if self.total >= self.most || (limited && from_address >= self.most_per_address) {
            return None;
        }
        self.total += 1;
        *self.by_address.entry(address).or_default() += 1;
        Some(HandshakeSlot {
            address,
            done: self.done.clone(),
        })
    }
}

/// One handshake's place; dropping it (when the request is answered or the
/// upgrade done) gives the place back to the accept loop.
#[derive(Debug)]
pub(crate) struct HandshakeSlot {
    address: IpAddr,
    done: Sender<IpAddr>,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let _ = self.done.send(self.address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_kernel_limit_leaves_room_for_about_7500_clients() {
        // vm.max_map_count = 65530, a fresh process with ~60 mappings.
        let threads = threads_within(65_530, 60);
        assert_eq!(threads, 15_036);
        assert!(
            threads / 2 > 7000 && threads / 2 < 8182,
            "two threads per client, below the crash point"
        );
        assert_eq!(
            threads_within(1000, 60),
            0,
            "a tiny limit leaves nothing, without underflow"
        );
    }

    #[test]
    fn slots_are_refused_at_the_ceiling_and_given_back_on_drop() {
        let threads = Threads::within(Process::new(100), 2, 0);
        let a = threads.reserve().unwrap();
        let _b = threads.reserve().unwrap();
        assert!(threads.reserve().is_none());
        drop(a);
        assert!(threads.reserve().is_some());
    }

    #[test]
    fn each_hub_has_a_ceiling_of_its_own() {
        let process = Process::new(100);
        let one = Threads::within(Arc::clone(&process), 1, 0);
        let two = Threads::within(Arc::clone(&process), 1, 0);
        let _held = one.reserve().unwrap();
        assert!(one.reserve().is_none(), "one's ceiling");
        assert!(two.reserve().is_some(), "not two's: it has its own");
    }

    #[test]
    fn the_kernel_s_share_is_the_process_s_for_all_its_hubs() {
        // Room for 12 threads in the process; each hub keeps 4 of its own.
        let process = Process::new(12);
        let one = Threads::within(Arc::clone(&process), 100, 4);
        let two = Threads::within(Arc::clone(&process), 100, 4);
        assert_eq!((one.most(), two.most()), (4, 4));
        let held: Vec<ThreadSlot> = (0..3).map(|_| one.reserve().unwrap()).collect();
        let _other = two.reserve().unwrap();
        assert!(
            two.reserve().is_none() && one.reserve().is_none(),
            "the process is full, though neither hub is"
        );
        assert_eq!((one.most(), two.most()), (3, 1));
        drop(held);
        assert!(two.reserve().is_some(), "a place one gave back is two's");
        drop(one);
        assert_eq!(
            process.room(),
            12 - 4 - 1,
            "a hub gone gives its own places back: two's own and its one thread are left"
        );
    }

    #[test]
    fn handshakes_are_capped_in_all_and_per_address_but_not_for_proxies() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "203.0.113.7".parse().unwrap();
        let other: IpAddr = "203.0.113.8".parse().unwrap();
        let mut handshakes = Handshakes::new(4, 2, vec![local]);
        let a = handshakes.admit(remote).unwrap();
        let _b = handshakes.admit(remote).unwrap();
        assert!(handshakes.admit(remote).is_none(), "per address");
        let _c = handshakes.admit(other).unwrap();
        let _d = handshakes.admit(local).unwrap();
        assert!(
            handshakes.admit(local).is_none(),
            "in all, proxies included"
        );
        drop(a);
        assert!(
            handshakes.admit(remote).is_some(),
            "a slot given back is taken again"
        );
    }

    #[test]
    fn this_kernel_reports_a_limit() {
        if std::path::Path::new("/proc/sys/vm/max_map_count").exists() {
            assert!(kernel_thread_limit().is_some_and(|n| n > 0));
        }
    }
}
