//! Per-client message rate limits.
//!
//! A token bucket holds up to `limit` messages and refills at `limit` per
//! window, so a client may burst `limit` messages and then send one every
//! `window / limit` on average. Messages refused for the limit drain a
//! second bucket of the same size and rate: a client that goes over its
//! limit by as many messages again, faster than they refill, is abusive.
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
        let capacity = f64::from(capacity.max(1));
        let window = window.max(Duration::from_millis(1));
        TokenBucket {
            capacity,
            per_second: capacity / window.as_secs_f64(),
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
    /// `limit` messages per `window`; `None` when `limit` is 0 (no limit).
    pub(crate) fn new(limit: u32, window: Duration, now: Instant) -> Option<RateLimiter> {
        if limit == 0 || window.is_zero() {
            return None;
        }
        Some(RateLimiter {
            tokens: TokenBucket::new(limit, window, now),
            strikes: TokenBucket::new(limit, window, now),
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

    #[test]
    fn a_burst_up_to_the_limit_passes_then_refills_over_the_window() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(100, Duration::from_secs(60), start).unwrap();
        for _ in 0..100 {
            assert_eq!(limiter.check(start), Verdict::Allowed);
        }
        assert_eq!(limiter.check(start), Verdict::Limited);
        // One message refills every 0.6 s.
        assert_eq!(
            limiter.check(start + Duration::from_millis(300)),
            Verdict::Limited
        );
        assert_eq!(
            limiter.check(start + Duration::from_millis(1000)),
            Verdict::Allowed
        );
        // A whole window refills the whole burst.
        let later = start + Duration::from_secs(120);
        for _ in 0..100 {
            assert_eq!(limiter.check(later), Verdict::Allowed);
        }
    }

    #[test]
    fn going_over_by_as_much_again_is_abuse() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10, Duration::from_secs(60), start).unwrap();
        let verdicts: Vec<Verdict> = (0..21).map(|_| limiter.check(start)).collect();
        assert!(verdicts[..10].iter().all(|v| *v == Verdict::Allowed));
        assert!(verdicts[10..20].iter().all(|v| *v == Verdict::Limited));
        assert_eq!(verdicts[20], Verdict::Abusive);
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(RateLimiter::new(0, Duration::from_secs(60), Instant::now()).is_none());
    }
}
