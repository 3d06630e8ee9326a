//! Warnings that come in floods: at most one line a second for each kind.
//!
//! A refused connection, a slow consumer or a silent client is worth a
//! warning; ten thousand of them in a second (an attack, a network cut) are
//! worth one, with a count. Logging is a synchronous write, some of it on
//! the router thread, so a flood of lines must not be a way to slow the hub.
//!
//! Each call site owns a `static` [`Throttle`]; any thread may use it.
//!
//! Refused connections are throttled by reason and address instead
//! ([`warn_refused`]): a second reason, or another address, within the same
//! second is a line of its own, not a count under the first one. Their
//! table ([`Refusals`]) is shared by the accept thread, the connection
//! threads and the router, behind a lock held only to look one key up.

use std::collections::VecDeque;
use std::collections::hash_map::{Entry, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock, PoisonError};
use std::time::Instant;

/// Milliseconds since the throttles were first asked: their own clock, so
/// that this module, used by nearly every other, uses none of them.
pub(crate) fn clock() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Lets one event a second through, and counts the others.
#[derive(Debug)]
pub(crate) struct Throttle {
    /// [`clock`] from which the next line may be logged.
    next: AtomicU64,
    /// Events held back since the last line.
    held: AtomicU64,
}

impl Throttle {
    pub(crate) const fn new() -> Throttle {
        Throttle {
            next: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this event, at `now` ([`clock`]), may be logged,
    /// `n` being how many like it were held back since the last line;
    /// `None` to stay quiet.
    pub(crate) fn allow(&self, now: u64) -> Option<u64> {
        let next = self.next.load(Ordering::Relaxed);
        if now >= next
            && self
                .next
                .compare_exchange(next, now + 1000, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held.swap(0, Ordering::AcqRel));
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// `log::warn!`, at most once a second for this call site, saying how many
/// were held back.
macro_rules! warn_throttled {
    ($($arg:tt)+) => {{
        static THROTTLE: $crate::throttle::Throttle = $crate::throttle::Throttle::new();
        if let Some(held) = THROTTLE.allow($crate::throttle::clock()) {
            match held {
                0 => log::warn!($($arg)+),
                held => log::warn!("{} ({held} more like it since the last one)", format_args!($($arg)+)),
            }
        }
    }};
}

pub(crate) use warn_throttled;

/// `log::debug!`, at most once a second for this call site, saying how many
/// were held back: for what anyone can cause at will (garbage on the TLS
/// port) and only an operator looking into it wants to see.
macro_rules! debug_throttled {
    ($($arg:tt)+) => {{
        static THROTTLE: $crate::throttle::Throttle = $crate::throttle::Throttle::new();
        if log::log_enabled!(log::Level::Debug) {
            if let Some(held) = THROTTLE.allow($crate::throttle::clock()) {
                match held {
                    0 => log::debug!($($arg)+),
                    held => log::debug!("{} ({held} more like it since the last one)", format_args!($($arg)+)),
                }
            }
        }
    }};
}

pub(crate) use debug_throttled;

/// How long a (reason, address) stays quiet after its line: the ones in
/// between are counted, and said with the next.
pub(crate) const REFUSAL_QUIET_MS: u64 = 10_000;
/// The most (reason, address) keys remembered; the oldest goes first.
pub(crate) const REFUSAL_KEYS: usize = 1024;
/// The most refusal lines a second, every key together: a flood from many
/// addresses (or many reasons) is no way to slow the hub by its log.
pub(crate) const REFUSAL_LINES_PER_SECOND: u32 = 20;

/// Which refusals may be logged now: each (reason, address) once every
/// [`REFUSAL_QUIET_MS`], the others counted, and no more than
/// [`REFUSAL_LINES_PER_SECOND`] lines a second in all. Pure: the time is
/// the caller's.
#[derive(Debug)]
pub(crate) struct Refusals {
    /// A reason is kept as its hash (keyed per process), not its text.
    hasher: RandomState,
    keys: HashMap<(u64, IpAddr), Key>,
    /// The keys in the order they came, for evicting the oldest.
    order: VecDeque<(u64, IpAddr)>,
    capacity: usize,
    /// The second the line budget is for, and the lines it has left.
    second: u64,
    lines_left: u32,
}

/// What is known of one (reason, address).
#[derive(Debug)]
struct Key {
    /// When it may be logged again.
    next: u64,
    /// Refusals held back since its last line.
    held: u64,
}

impl Refusals {
    pub(crate) fn new(capacity: usize) -> Refusals {
        Refusals {
            hasher: RandomState::new(),
            keys: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            // No second yet: the first refusal starts one.
            second: u64::MAX,
            lines_left: 0,
        }
    }

    /// A refusal for `reason` from `addr` at `now` (ms): `Some(n)` when it
    /// may be logged, `n` being how many like it were held back since its
    /// last line; `None` to count it and stay quiet.
    pub(crate) fn allow(&mut self, reason: &str, addr: IpAddr, now: u64) -> Option<u64> {
        let key = (self.hasher.hash_one(reason), addr);
        if !self.keys.contains_key(&key)
            && self.keys.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.keys.remove(&oldest);
        }
        let entry = match self.keys.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                self.order.push_back(key);
                entry.insert(Key { next: now, held: 0 })
            }
        };
        if now < entry.next {
            entry.held += 1;
            return None;
        }
        if now / 1000 != self.second {
            self.second = now / 1000;
            self.lines_left = REFUSAL_LINES_PER_SECOND;
        }
        if self.lines_left == 0 {
            // Over the budget: said with this key's next line.
            entry.held += 1;
            return None;
        }
        self.lines_left -= 1;
        entry.next = now + REFUSAL_QUIET_MS;
        Some(std::mem::take(&mut entry.held))
    }
}

/// The refusals of the whole process: every hub in it shares one log.
pub(crate) static REFUSALS: LazyLock<Mutex<Refusals>> =
    LazyLock::new(|| Mutex::new(Refusals::new(REFUSAL_KEYS)));

/// Whether a refusal for `reason` from `addr` at `now` ([`clock`]) may
/// be logged, and how many like it were held back (see [`Refusals::allow`]).
pub(crate) fn refusal_allowed(reason: &str, addr: IpAddr, now: u64) -> Option<u64> {
    let mut refusals = REFUSALS.lock().unwrap_or_else(PoisonError::into_inner);
    refusals.allow(reason, addr, now)
}

/// `log::warn!` for a refused connection: once per reason and address
/// every [`REFUSAL_QUIET_MS`], saying how many were held back since.
///
/// `warn_refused!(addr, reason; "refused {addr}: {reason}")`: `reason` (a
/// `&str`) is the key with `addr` and should be in the line.
macro_rules! warn_refused {
    ($addr:expr, $reason:expr; $($arg:tt)+) => {{
        if let Some(held) = $crate::throttle::refusal_allowed($reason, $addr, $crate::throttle::clock()) {
            match held {
                0 => log::warn!($($arg)+),
                held => log::warn!("{} (and {held} more since)", format_args!($($arg)+)),
            }
        }
    }};
}

pub(crate) use warn_refused;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_a_second_goes_through_and_the_rest_are_counted() {
        let throttle = Throttle::new();
        assert_eq!(throttle.allow(5), Some(0));
        for t in 0..99 {
            assert_eq!(throttle.allow(6 + t), None);
        }
        // A second later the next one goes, with the count.
        assert_eq!(throttle.allow(1005), Some(99));
    }

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn each_reason_and_address_gets_its_own_line() {
        let mut refusals = Refusals::new(16);
        assert_eq!(refusals.allow("forbidden origin", addr(1), 0), Some(0));
        // Another reason from the same address, the same instant.
        assert_eq!(refusals.allow("unauthorized", addr(1), 1), Some(0));
        // The first reason from another address.
        assert_eq!(refusals.allow("forbidden origin", addr(2), 2), Some(0));
        assert_eq!(refusals.allow("forbidden origin", addr(1), 3), None);
    }

    #[test]
    fn a_key_is_quiet_for_a_while_then_says_how_many_were_held_back() {
        let mut refusals = Refusals::new(16);
        assert_eq!(refusals.allow("r", addr(1), 0), Some(0));
        for t in 1..38 {
            assert_eq!(refusals.allow("r", addr(1), t * 100), None);
        }
        assert_eq!(refusals.allow("r", addr(1), REFUSAL_QUIET_MS - 1), None);
        assert_eq!(refusals.allow("r", addr(1), REFUSAL_QUIET_MS), Some(38));
        assert_eq!(refusals.allow("r", addr(1), REFUSAL_QUIET_MS + 1), None);
    }

    #[test]
    fn the_table_is_bounded_and_the_oldest_key_goes_first() {
        let mut refusals = Refusals::new(3);
        for (i, t) in [(1, 0), (2, 1), (3, 2)] {
            assert_eq!(refusals.allow("r", addr(i), t), Some(0));
        }
        // A fourth evicts the first, which is then new again.
        assert_eq!(refusals.allow("r", addr(4), 3), Some(0));
        assert_eq!(refusals.keys.len(), 3);
        assert_eq!(refusals.allow("r", addr(2), 4), None);
        assert_eq!(refusals.allow("r", addr(1), 5), Some(0));
        assert_eq!(refusals.keys.len(), 3);
        assert_eq!(refusals.order.len(), 3);
    }

    #[test]
    fn lines_a_second_are_bounded_and_the_held_ones_are_said_later() {
        let mut refusals = Refusals::new(REFUSAL_KEYS);
        let budget = REFUSAL_LINES_PER_SECOND as u8;
        for i in 0..budget {
            assert_eq!(refusals.allow("r", addr(i), 0), Some(0));
        }
        // Over the budget: counted, under its own key.
        assert_eq!(refusals.allow("r", addr(budget), 10), None);
        assert_eq!(refusals.allow("r", addr(budget), 20), None);
        // The next second it has a line, with the two it held.
        assert_eq!(refusals.allow("r", addr(budget), 1000), Some(2));
    }
}
