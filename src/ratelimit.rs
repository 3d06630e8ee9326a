//! Per-client message rate limits.
//!
//! A token bucket holds up to `burst` messages and refills at `rate` per
//! window, so a client may send `burst` messages at once and then `rate`
//! per window. A message over the limit is refused (the client gets
//! `rate_limited`, the connection stays). Refused messages drain a second
//! bucket, of [`ABUSE`] times the burst, that refills at `ABUSE - 1` times
//! the rate: only a client that keeps sending more than [`ABUSE`] times its
//! rate, until that many bursts beyond it were refused, is abusive (and
//! closed). A busy client that runs over now and then never gets there.
//!
//! Plain data, one per client, owned by the client's reader thread (so a
//! flood over the limit costs the router nothing); time is passed in. The
//! router uses [`TokenBucket`] alone for presence broadcasts.

use std::time::{Duration, Instant};

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the limit.
    Allowed,
    /// Over the limit: refuse it with `rate_limited`.
    Limited,
    /// Far over the limit, again and again: close the connection (1008).
    Abusive,
}

/// How far over its rate a client must keep sending to be closed: more
/// than this many times the rate, until this many bursts were refused
/// beyond it.
pub(crate) const ABUSE: u32 = 10;

/// A token bucket: holds up to `capacity` tokens and refills at
/// `capacity` per `window`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket (a capacity of at least one, a window of at least 1 ms).
    pub(crate) fn new(capacity: u32, window: Duration, now: Instant) -> TokenBucket {
        TokenBucket::refilling(capacity, capacity, window, now)
    }

    /// A full bucket of `capacity` tokens (at least one) that refills at
    /// `refill` per `window` (at least 1 ms).
    pub(crate) fn refilling(
        capacity: u32,
        refill: u32,
        window: Duration,
        now: Instant,
    ) -> TokenBucket {
        let capacity = f64::from(capacity.max(1));
        let window = window.max(Duration::from_millis(1));
        TokenBucket {
            capacity,
            per_second: f64::from(refill.max(1)) / window.as_secs_f64(),
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.per_second;
        self.last = now;
        self.tokens = (self.tokens + refill).min(self.capacity);
    }

    /// Takes a token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely by `now`.
    pub(crate) fn is_full(&self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens + refill >= self.capacity
    }
}

/// One client's buckets: its messages, and the strikes it may take over them.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    tokens: TokenBucket,
    strikes: TokenBucket,
}

impl RateLimiter {
    /// `rate` messages per `window`, in bursts of up to `burst`; `None`
    /// when `rate` is 0 (no limit).
    pub(crate) fn new(
        rate: u32,
        window: Duration,
        burst: u32,
        now: Instant,
    ) -> Option<RateLimiter> {
        if rate == 0 || window.is_zero() {
            return None;
        }
        Some(RateLimiter {
            tokens: TokenBucket::refilling(burst, rate, window, now),
            strikes: TokenBucket::refilling(
                burst.saturating_mul(ABUSE),
                rate.saturating_mul(ABUSE - 1),
                window,
                now,
            ),
        })
    }

    /// Counts one message at `now`.
    pub(crate) fn check(&mut self, now: Instant) -> Verdict {
        if self.tokens.take(now) {
            Verdict::Allowed
        } else if self.strikes.take(now) {
            Verdict::Limited
        } else {
            Verdict::Abusive
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn a_burst_passes_then_the_rate_refills() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(50, Duration::from_secs(1), 200, start).unwrap();
        for _ in 0..200 {
            assert_eq!(limiter.check(start), Verdict::Allowed);
        }
        assert_eq!(limiter.check(start), Verdict::Limited);
        // One message refills every 20 ms.
        assert_eq!(limiter.check(at(start, 10)), Verdict::Limited);
        assert_eq!(limiter.check(at(start, 40)), Verdict::Allowed);
        // Four seconds refill the whole burst.
        let later = at(start, 10_000);
        for _ in 0..200 {
            assert_eq!(limiter.check(later), Verdict::Allowed);
        }
    }

    #[test]
    fn a_client_at_its_rate_is_never_refused() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(50, Duration::from_secs(1), 200, start).unwrap();
        // Ten minutes at 50 a second, in clumps of 25 every half second.
        for tick in 0..1200 {
            for _ in 0..25 {
                assert_eq!(limiter.check(at(start, tick * 500)), Verdict::Allowed);
            }
        }
    }

    #[test]
    fn going_over_now_and_then_is_refused_never_abuse() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10, Duration::from_secs(1), 10, start).unwrap();
        // A minute at ten times the rate, 100 a second: refused, never closed.
        let mut refused = 0;
        for ms in 0..60_000 {
            if ms % 10 == 0 {
                match limiter.check(at(start, ms)) {
                    Verdict::Allowed => {}
                    Verdict::Limited => refused += 1,
                    Verdict::Abusive => panic!("closed at {ms} ms at ten times the rate"),
                }
            }
        }
        assert!(refused > 5000, "{refused}");
    }

    #[test]
    fn far_over_the_rate_for_long_enough_is_abuse() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10, Duration::from_secs(1), 10, start).unwrap();
        // At once: the burst, then ten bursts refused, then abuse.
        let verdicts: Vec<Verdict> = (0..111).map(|_| limiter.check(start)).collect();
        assert!(verdicts[..10].iter().all(|v| *v == Verdict::Allowed));
        assert!(verdicts[10..110].iter().all(|v| *v == Verdict::Limited));
        assert_eq!(verdicts[110], Verdict::Abusive);
        // Twenty times the rate (200 a second): about a second to get there.
        let mut limiter = RateLimiter::new(10, Duration::from_secs(1), 10, start).unwrap();
        let closed = (0..10_000u64)
            .find(|n| limiter.check(at(start, n * 5)) == Verdict::Abusive)
            .map(|n| n * 5)
            .expect("abuse");
        assert!((900..=1100).contains(&closed), "closed after {closed} ms");
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(RateLimiter::new(0, Duration::from_secs(60), 100, Instant::now()).is_none());
    }
}
