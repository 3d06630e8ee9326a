//! Reconnect delays: full-jitter exponential backoff.
//!
//! Pure code owned by the [`Client`](super::Client) and run on its thread
//! (the caller's); it has no thread and nothing to end. The random numbers
//! come from a small generator seeded by the standard library's per-process
//! random hash keys, so no dependency is needed for them.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The longest wait before reconnecting to a hub that said it is going away
/// (1001): long enough to spread its clients' returns, short enough to be
/// back at once as far as a person can tell.
pub(crate) const RESTART_JITTER: Duration = Duration::from_secs(1);

/// The delays before reconnect attempts: attempt `n` (0 for the first after
/// a connection ends) waits a uniformly random time in
/// `[0, min(max, initial × 2ⁿ)]`, so clients that lost the same hub at the
/// same moment do not all come back at once.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    rng: Rng,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            rng: Rng::seeded(),
        }
    }

    /// The delay before reconnect attempt `attempt`.
    pub(crate) fn delay(&mut self, attempt: u32) -> Duration {
        full_jitter(ceiling(attempt, self.initial, self.max), self.rng.unit())
    }

    /// A short random delay, for a hub that is restarting (1001): up to
    /// [`RESTART_JITTER`] (or the initial delay, if longer), so its clients
    /// do not all reconnect at the same instant.
    pub(crate) fn jitter(&mut self) -> Duration {
        full_jitter(self.initial.max(RESTART_JITTER), self.rng.unit())
    }
}

/// The longest delay of attempt `attempt`: `min(max, initial × 2^attempt)`.
pub(crate) fn ceiling(attempt: u32, initial: Duration, max: Duration) -> Duration {
    initial.saturating_mul(1 << attempt.min(30)).min(max)
}

/// A delay in `[0, ceiling]` for `unit` in `[0, 1)`.
pub(crate) fn full_jitter(ceiling: Duration, unit: f64) -> Duration {
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// xorshift64*: plenty for spreading reconnects, never for secrets.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x9e37_79b9_7f4a_7c15);
        // Never zero: xorshift would stay at zero.
        Rng(hasher.finish() | 1)
    }

    /// A number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        bits as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INITIAL: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(20);

    #[test]
    fn the_ceiling_doubles_from_the_initial_delay_up_to_the_maximum() {
        let ceilings: Vec<u128> = (0..8)
            .map(|n| ceiling(n, INITIAL, MAX).as_millis())
            .collect();
        assert_eq!(ceilings, [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000]);
        // Far attempts neither overflow nor pass the maximum.
        assert_eq!(ceiling(u32::MAX, INITIAL, MAX), MAX);
        assert_eq!(ceiling(64, Duration::MAX, Duration::MAX), Duration::MAX);
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let top = Duration::from_secs(4);
        assert_eq!(full_jitter(top, 0.0), Duration::ZERO);
        assert_eq!(full_jitter(top, 0.5), Duration::from_secs(2));
        assert!(full_jitter(top, 0.999_999) <= top);
        assert_eq!(full_jitter(top, 7.0), top, "out-of-range units are clamped");
    }

    #[test]
    fn delays_stay_within_their_attempt_s_bounds_and_are_spread() {
        let mut backoff = Backoff::new(INITIAL, MAX);
        for attempt in 0..12 {
            let top = ceiling(attempt, INITIAL, MAX);
            let delays: Vec<Duration> = (0..200).map(|_| backoff.delay(attempt)).collect();
            assert!(delays.iter().all(|d| *d <= top), "attempt {attempt}");
            // Full jitter: spread over the whole range, not bunched at the top.
            assert!(delays.iter().any(|d| *d < top / 4), "attempt {attempt}");
            assert!(delays.iter().any(|d| *d > top * 3 / 4), "attempt {attempt}");
        }
        // A restarting hub (1001): up to 1 s, whatever a small initial
        // delay, and spread over all of it; a longer initial delay stretches it.
        for initial in [Duration::from_millis(5), INITIAL] {
            let mut backoff = Backoff::new(initial, MAX);
            let jitters: Vec<Duration> = (0..200).map(|_| backoff.jitter()).collect();
            assert!(jitters.iter().all(|d| *d <= RESTART_JITTER));
            assert!(jitters.iter().any(|d| *d < RESTART_JITTER / 4));
            assert!(jitters.iter().any(|d| *d > RESTART_JITTER * 3 / 4));
        }
        let mut slow = Backoff::new(Duration::from_secs(3), MAX);
        assert!((0..200).all(|_| slow.jitter() <= Duration::from_secs(3)));
        assert!((0..200).any(|_| slow.jitter() > Duration::from_secs(2)));
    }

    #[test]
    fn a_maximum_below_the_initial_delay_is_raised_to_it() {
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert!((0..50).all(|n| backoff.delay(n) <= Duration::from_secs(2)));
    }

    #[test]
    fn units_are_in_zero_to_one() {
        let mut rng = Rng::seeded();
        let units: Vec<f64> = (0..10_000).map(|_| rng.unit()).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = units.iter().sum::<f64>() / units.len() as f64;
        assert!((0.45..0.55).contains(&mean), "mean {mean}");
    }
}
