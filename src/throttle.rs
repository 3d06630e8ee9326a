//! Warnings that come in floods: at most one line a second for each kind.
//!
//! A refused connection, a slow consumer or a silent client is worth a
//! warning; ten thousand of them in a second (an attack, a network cut) are
//! worth one, with a count. Logging is a synchronous write, some of it on
//! the router thread, so a flood of lines must not be a way to slow the hub.
//!
//! Each call site owns a `static` [`Throttle`]; any thread may use it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::link::clock;

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

    /// `Some(n)` when this event may be logged, `n` being how many like it
    /// were held back since the last line; `None` to stay quiet.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = clock();
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
        if let Some(held) = THROTTLE.allow() {
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
            if let Some(held) = THROTTLE.allow() {
                match held {
                    0 => log::debug!($($arg)+),
                    held => log::debug!("{} ({held} more like it since the last one)", format_args!($($arg)+)),
                }
            }
        }
    }};
}

pub(crate) use debug_throttled;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_a_second_goes_through_and_the_rest_are_counted() {
        let throttle = Throttle::new();
        assert_eq!(throttle.allow(), Some(0));
        for _ in 0..99 {
            assert_eq!(throttle.allow(), None);
        }
        // A second later the next one goes, with the count.
        throttle.next.store(clock(), Ordering::Relaxed);
        assert_eq!(throttle.allow(), Some(99));
    }
}
