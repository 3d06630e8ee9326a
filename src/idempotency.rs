//! Idempotency keys (`idempotencyKey` on a publish): a retry with the same
//! key within [`TTL`] gets the first attempt's answer and is not delivered
//! again.
//!
//! The key's own rule (its length) is the protocol's
//! ([`check_idempotency_key`](crate::protocol::check_idempotency_key)).
//!
//! Pure logic, used on the router thread: [`Once`] names a key in its scope
//! (who publishes, to which target) as a digest, so what is remembered has
//! a fixed size whatever the key; [`Recent`] remembers the answers to the
//! keys of this hub, at most [`MOST`] of them and none past [`TTL`]. With
//! Redis the publish script keeps the same digest for the same time, so
//! the hubs agree (see [`crate::cluster`]).

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ring::digest::{Context, SHA256};

/// How long a key is remembered: longer than any sensible retry.
pub(crate) const TTL: Duration = Duration::from_secs(5 * 60);

/// Most keys a hub remembers: past it the oldest are forgotten first. At
/// about 100 bytes each, 3 MiB at most.
pub(crate) const MOST: usize = 32 * 1024;

/// A key in its scope: who publishes and where, as one digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Once([u8; 32]);

impl Once {
    /// The key `key` of the publisher `scope` for the target `target`.
    /// Each part is length-prefixed, so no two triples share a digest.
    pub(crate) fn new(scope: &str, target: &str, key: &str) -> Once {
        let mut hash = Context::new(&SHA256);
        for part in [scope, target, key] {
            hash.update(&(part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        let mut digest = [0; 32];
        digest.copy_from_slice(hash.finish().as_ref());
        Once(digest)
    }

    /// Its name in Redis keys.
    pub(crate) fn hex(&self) -> String {
        let mut hex = String::with_capacity(64);
        for byte in self.0 {
            let _ = write!(hex, "{byte:02x}");
        }
        hex
    }
}

/// The first answers to the keys seen lately, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    answers: HashMap<Once, usize>,
    order: VecDeque<(Instant, Once)>,
}

impl Recent {
    /// The first answer to `once`, if it is remembered.
    pub(crate) fn get(&mut self, once: &Once, now: Instant) -> Option<usize> {
        self.forget_expired(now);
        self.answers.get(once).copied()
    }

    /// Remembers the first answer to `once` (a later one changes nothing).
    pub(crate) fn remember(&mut self, once: Once, answer: usize, now: Instant) {
        self.forget_expired(now);
        if self.answers.contains_key(&once) {
            return;
        }
        while self.order.len() >= MOST {
            if let Some((_, oldest)) = self.order.pop_front() {
                self.answers.remove(&oldest);
            }
        }
        self.answers.insert(once, answer);
        self.order.push_back((now, once));
    }

    /// How many keys it remembers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.answers.len()
    }

    fn forget_expired(&mut self, now: Instant) {
        while let Some((at, once)) = self.order.front() {
            if now.saturating_duration_since(*at) < TTL {
                break;
            }
            self.answers.remove(once);
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_scoped_by_publisher_and_target() {
        let a = Once::new("backend", "c:news", "k1");
        assert_eq!(a, Once::new("backend", "c:news", "k1"));
        assert_ne!(a, Once::new("u:alice", "c:news", "k1"));
        assert_ne!(a, Once::new("backend", "c:other", "k1"));
        assert_ne!(a, Once::new("backend", "c:news", "k2"));
        // Parts cannot run into each other.
        assert_ne!(Once::new("ab", "c", "k"), Once::new("a", "bc", "k"));
        assert_eq!(a.hex().len(), 64);
    }

    #[test]
    fn keys_are_forgotten_after_their_time() {
        let mut recent = Recent::default();
        let start = Instant::now();
        let once = Once::new("s", "t", "k");
        recent.remember(once, 3, start);
        recent.remember(once, 9, start);
        assert_eq!(recent.get(&once, start + TTL / 2), Some(3));
        assert_eq!(recent.get(&once, start + TTL), None);
        assert_eq!(recent.len(), 0);
    }

    #[test]
    fn memory_is_bounded_by_count() {
        let mut recent = Recent::default();
        let now = Instant::now();
        for n in 0..MOST + 10 {
            recent.remember(Once::new("s", "t", &n.to_string()), n, now);
        }
        assert_eq!(recent.len(), MOST);
        assert_eq!(recent.get(&Once::new("s", "t", "0"), now), None);
        let last = (MOST + 9).to_string();
        assert_eq!(recent.get(&Once::new("s", "t", &last), now), Some(MOST + 9));
    }
}
