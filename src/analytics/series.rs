//! The time series: for every metric, its last [`SECONDS`] one-second
//! values and its last [`MINUTES`] one-minute values, in two rings of
//! `u32` allocated once, when the hub starts, and never grown.
//!
//! Plain data, owned by the router (through [`Analytics`](super::Analytics)),
//! which pushes a row of every metric's value each second, and each minute.

use std::time::SystemTime;

/// One-second values kept per metric: the last five minutes.
pub(crate) const SECONDS: usize = 300;

/// One-minute values kept per metric: the last hour.
pub(crate) const MINUTES: usize = 60;

/// The last `depth` rows of one value per metric, oldest overwritten first.
#[derive(Debug)]
pub(crate) struct Ring {
    /// Metrics per row.
    width: usize,
    depth: usize,
    /// `depth` rows of `width` values, row `slot` at `slot * width`.
    values: Vec<u32>,
    /// The slot the next row goes into.
    head: usize,
    /// Rows held (at most `depth`).
    len: usize,
    /// When the newest row was taken.
    last: Option<SystemTime>,
}

impl Ring {
    pub(crate) fn new(width: usize, depth: usize) -> Ring {
        Ring {
            width,
            depth,
            values: vec![0; width * depth],
            head: 0,
            len: 0,
            last: None,
        }
    }

    /// Adds a row (one value per metric, in the metrics' order) taken `at`.
    pub(crate) fn push(&mut self, row: &[u32], at: SystemTime) {
        let start = self.head * self.width;
        let slot = &mut self.values[start..start + self.width];
        for (value, new) in slot.iter_mut().zip(row.iter().chain(std::iter::repeat(&0))) {
            *value = *new;
        }
        self.head = (self.head + 1) % self.depth;
        self.len = (self.len + 1).min(self.depth);
        self.last = Some(at);
    }

    /// One metric's values, oldest first.
    pub(crate) fn series(&self, metric: usize) -> Vec<u32> {
        let oldest = (self.head + self.depth - self.len) % self.depth;
        (0..self.len)
            .map(|i| self.values[((oldest + i) % self.depth) * self.width + metric])
            .collect()
    }

    /// When the newest row was taken, if there is one.
    pub(crate) fn last(&self) -> Option<SystemTime> {
        self.last
    }

    /// What the values take in memory.
    pub(crate) fn bytes(&self) -> usize {
        self.values.len() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_keeps_the_last_rows_oldest_first() {
        let mut ring = Ring::new(2, 3);
        assert_eq!(ring.series(0), Vec::<u32>::new());
        assert_eq!(ring.last(), None);
        for n in 1..=5 {
            ring.push(&[n, 10 * n], SystemTime::UNIX_EPOCH);
        }
        assert_eq!(ring.series(0), vec![3, 4, 5]);
        assert_eq!(ring.series(1), vec![30, 40, 50]);
        assert_eq!(ring.bytes(), 2 * 3 * 4, "fixed at its making");
        assert!(ring.last().is_some());
    }
}
