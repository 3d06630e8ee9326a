//! Delivery latency: how long a publication waits between its arrival at
//! the router and the first write of it to a client's socket, measured on
//! a sample, counted in a histogram of atomics.
//!
//! The router arms the probe with a sampled publication's frame (the
//! encoded bytes every recipient's queue shares) and the time it arrived
//! ([`Latency::arm`]). Whoever drains a link (a writer, or the router for
//! a few links) tells the probe of each frame it wrote in full
//! ([`Latency::written`]): one relaxed load and a comparison of addresses,
//! no lock and no allocation. The first write of the armed frame claims
//! the probe (a compare-and-swap, so one write only) and adds its delay
//! to the histogram. The router keeps a reference to the armed frame, so
//! its address cannot be another frame's while it is armed.
//!
//! The histogram's buckets are fixed (1, 2, 5 per decade, 10 µs to 10 s,
//! then +Inf): `/metrics` shows them as a Prometheus histogram, and each
//! second the router reads them to chart percentiles ([`percentile`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// The upper bounds of the buckets, in microseconds; one more bucket holds
/// everything above the last.
pub(crate) const BOUNDS_US: [u64; 19] = [
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000,
    500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000,
];

/// How many buckets there are, +Inf included.
pub(crate) const BUCKETS: usize = BOUNDS_US.len() + 1;

/// Bucket counts, in the order of [`BOUNDS_US`], then +Inf.
pub(crate) type Counts = [u64; BUCKETS];

/// The histogram and its probe, shared by the router and the writers.
#[derive(Debug)]
pub(crate) struct Latency {
    /// What `born` counts from.
    epoch: Instant,
    counts: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
    /// The longest delay since the router last took it.
    max_us: AtomicU64,
    /// The address of the armed frame's bytes, 0 when none is.
    armed: AtomicUsize,
    /// When the armed frame's publication arrived, in ns since `epoch`.
    born: AtomicU64,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency {
            epoch: Instant::now(),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
            armed: AtomicUsize::new(0),
            born: AtomicU64::new(0),
        }
    }
}

impl Latency {
    fn since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The router: the first write of `frame` is timed from `born`. Whatever
    /// was armed before is forgotten.
    pub(crate) fn arm(&self, frame: &[u8], born: Instant) {
        // Sequentially consistent, with `claim`: a write that reads this
        // `born` can no longer claim the frame armed before it.
        self.armed.store(0, Ordering::SeqCst);
        self.born.store(self.since_epoch(born), Ordering::SeqCst);
        self.armed.store(frame.as_ptr() as usize, Ordering::SeqCst);
    }

    /// The router: `frame` was queued for nobody, so it will never be
    /// written; the probe is free again.
    pub(crate) fn disarm(&self, frame: &[u8]) {
        let _ = self.armed.compare_exchange(
            frame.as_ptr() as usize,
            0,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// Whether a frame is armed and not written yet.
    pub(crate) fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed) != 0
    }

    /// Whether `frame` is the armed frame (a TLS drainer holds on to it
    /// until its ciphertext is sent).
    #[inline]
    pub(crate) fn is_for(&self, frame: &[u8]) -> bool {
        let armed = self.armed.load(Ordering::Relaxed);
        armed != 0 && armed == frame.as_ptr() as usize
    }

    /// Whoever drains a link: `frame` was written in full. Costs one
    /// relaxed load unless it is the armed frame.
    #[inline]
    pub(crate) fn written(&self, frame: &[u8]) {
        let armed = self.armed.load(Ordering::Relaxed);
        if armed != 0 && armed == frame.as_ptr() as usize {
            self.claim(armed);
        }
    }

    /// The first write of the armed frame: its delay goes into the histogram.
    #[cold]
    fn claim(&self, armed: usize) {
        if self.armed.load(Ordering::SeqCst) != armed {
            return;
        }
        let born = self.born.load(Ordering::SeqCst);
        if self
            .armed
            .compare_exchange(armed, 0, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let now = self.since_epoch(Instant::now());
        self.record(now.saturating_sub(born) / 1_000);
    }

    /// Adds one delay, in microseconds.
    pub(crate) fn record(&self, us: u64) {
        let bucket = BOUNDS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(BOUNDS_US.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Every bucket's count since start.
    pub(crate) fn counts(&self) -> Counts {
        std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed))
    }

    /// The sum of every delay since start, in microseconds.
    pub(crate) fn sum_us(&self) -> u64 {
        self.sum_us.load(Ordering::Relaxed)
    }

    /// The longest delay since the last call (the router's, once a second).
    pub(crate) fn take_max(&self) -> u64 {
        self.max_us.swap(0, Ordering::Relaxed)
    }
}

/// The `p`th percentile (0 to 1) of the delays counted in `counts`, in
/// microseconds, interpolated within its bucket and never above `max`
/// (the longest seen); 0 when nothing was counted.
pub(crate) fn percentile(counts: &Counts, p: f64, max: u64) -> u64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((p * total as f64).ceil() as u64).clamp(1, total);
    let mut below = 0;
    for (i, count) in counts.iter().enumerate() {
        if below + count >= rank {
            let low = if i == 0 { 0 } else { BOUNDS_US[i - 1] };
            let high = BOUNDS_US.get(i).copied().unwrap_or(max.max(low));
            let within = (rank - below) as f64 / *count as f64;
            let value = low as f64 + (high - low) as f64 * within;
            return (value.round() as u64).min(max.max(1));
        }
        below += count;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_write_of_the_armed_frame_is_timed() {
        let latency = Latency::default();
        let frame = vec![1u8; 16];
        let other = vec![2u8; 16];
        latency.written(&frame);
        assert_eq!(latency.counts().iter().sum::<u64>(), 0, "nothing armed");
        latency.arm(&frame, Instant::now());
        assert!(latency.is_armed());
        latency.written(&other);
        assert!(latency.is_armed(), "another frame does not claim it");
        latency.written(&frame);
        latency.written(&frame);
        assert_eq!(latency.counts().iter().sum::<u64>(), 1, "once per arming");
        assert!(!latency.is_armed());
        latency.arm(&other, Instant::now());
        latency.disarm(&other);
        latency.written(&other);
        assert_eq!(latency.counts().iter().sum::<u64>(), 1, "disarmed");
    }

    #[test]
    fn delays_fall_in_their_buckets() {
        let latency = Latency::default();
        for us in [0, 10, 11, 450, 1_000_000, 60_000_000] {
            latency.record(us);
        }
        let counts = latency.counts();
        assert_eq!(counts[0], 2, "0 and 10 are in the first bucket");
        assert_eq!(counts[1], 1);
        assert_eq!(counts[5], 1, "450 is in (200, 500]");
        assert_eq!(counts[15], 1, "1 s is in (500 ms, 1 s]");
        assert_eq!(counts[BUCKETS - 1], 1, "a minute is above every bound");
        assert_eq!(latency.sum_us(), 61_000_471);
        assert_eq!(latency.take_max(), 60_000_000);
        assert_eq!(latency.take_max(), 0, "taken");
    }

    #[test]
    fn percentiles_interpolate_within_a_bucket_and_stay_below_the_max() {
        let mut counts = [0; BUCKETS];
        assert_eq!(percentile(&counts, 0.5, 0), 0);
        // 100 delays in (100, 200] µs.
        counts[4] = 100;
        assert_eq!(percentile(&counts, 0.5, 190), 150);
        assert_eq!(percentile(&counts, 0.99, 190), 190, "capped by the max");
        counts[BUCKETS - 1] = 1;
        assert_eq!(percentile(&counts, 1.0, 20_000_000), 20_000_000);
        assert!(percentile(&counts, 0.01, 20_000_000) <= 200);
    }
}
