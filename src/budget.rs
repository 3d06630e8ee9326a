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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender, unbounded};

/// Memory mappings one thread costs.
const MAPS_PER_THREAD: usize = 4;

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

/// The live-thread counter and its ceiling.
#[derive(Debug)]
pub(crate) struct Threads {
    live: AtomicUsize,
    most: usize,
}

impl Threads {
    pub(crate) fn new(most: usize) -> Arc<Threads> {
        Arc::new(Threads {
            live: AtomicUsize::new(0),
            most,
        })
    }

    /// The ceiling.
    pub(crate) fn most(&self) -> usize {
        self.most
    }

    /// Threads alive now.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Takes a place for one more thread; `None` at the ceiling. The place
    /// is given back when the slot is dropped (move it into the thread).
    pub(crate) fn reserve(self: &Arc<Self>) -> Option<ThreadSlot> {
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                (live < self.most).then_some(live + 1)
            })
            .ok()
            .map(|_| ThreadSlot(Arc::clone(self)))
    }
}

/// One thread's place in the budget, for as long as it lives.
#[derive(Debug)]
pub(crate) struct ThreadSlot(Arc<Threads>);

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
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
        let threads = Threads::new(2);
        let a = threads.reserve().unwrap();
        let _b = threads.reserve().unwrap();
        assert!(threads.reserve().is_none());
        drop(a);
        assert!(threads.reserve().is_some());
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
