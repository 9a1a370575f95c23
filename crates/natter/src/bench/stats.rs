//! Counting for the bench: a compact latency histogram and the exactly-once/in-order tally of
//! one chat as one connection sees it.

use std::time::Duration;

/// Sub-buckets per power of two: values are kept to within 1/128 (< 0.8 %).
const SUB: u64 = 128;

/// A log-linear histogram of durations at microsecond resolution; small enough to keep one per
/// connection and merge at the end.
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    counts: Vec<u32>,
    total: u64,
    max_us: u64,
}

impl Histogram {
    /// Count one duration.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let bucket = bucket_of(us);
        if bucket >= self.counts.len() {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] = self.counts[bucket].saturating_add(1);
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Add another histogram's counts to this one.
    pub fn merge(&mut self, other: &Self) {
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// How many durations were counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0.0 ..= 1.0), to within the bucket width; zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        if q >= 1.0 {
            return self.max();
        }
        let rank = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return Duration::from_micros(lower_bound(bucket).min(self.max_us));
            }
        }
        self.max()
    }

    /// The largest duration counted.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }
}

/// Values below 2·SUB get a bucket each; above, each power of two is split into SUB buckets.
fn bucket_of(us: u64) -> usize {
    if us < 2 * SUB {
        return us as usize;
    }
    let bits = 63 - u64::from(us.leading_zeros());
    let shift = bits - SUB.trailing_zeros() as u64;
    let mantissa = us >> shift;
    (2 * SUB + (shift - 1) * SUB + (mantissa - SUB)) as usize
}

fn lower_bound(bucket: usize) -> u64 {
    let b = bucket as u64;
    if b < 2 * SUB {
        return b;
    }
    let shift = (b - 2 * SUB) / SUB + 1;
    let mantissa = (b - 2 * SUB) % SUB + SUB;
    mantissa << shift
}

/// One connection's view of one chat whose messages are indexed 1 ..= `expected`: which indexes
/// it has (its own messages through their acks, the others' through deliveries), and whether
/// deliveries came exactly once and in increasing index order.
#[derive(Debug, Clone)]
pub struct Tally {
    expected: u64,
    seen: Vec<u64>,
    distinct: u64,
    last_delivered: u64,
    /// Deliveries that were duplicates, out of order, or outside 1 ..= `expected`.
    pub violations: u64,
}

impl Tally {
    /// A tally expecting indexes 1 ..= `expected`.
    pub fn new(expected: u64) -> Self {
        Self {
            expected,
            seen: vec![0; (expected as usize).div_ceil(64) + 1],
            distinct: 0,
            last_delivered: 0,
            violations: 0,
        }
    }

    /// A message delivered to this connection.
    pub fn delivered(&mut self, index: u64) {
        if index <= self.last_delivered || !self.mark(index) {
            self.violations += 1;
        }
        self.last_delivered = self.last_delivered.max(index);
    }

    /// This connection's own message, acknowledged by the server.
    pub fn acked(&mut self, index: u64) {
        if !self.mark(index) {
            self.violations += 1;
        }
    }

    /// Whether every index 1 ..= `expected` is here.
    pub fn complete(&self) -> bool {
        self.distinct == self.expected
    }

    /// Indexes still missing.
    pub fn missing(&self) -> u64 {
        self.expected - self.distinct
    }

    /// Record `index`; false if it is out of range or was already there.
    fn mark(&mut self, index: u64) -> bool {
        if index == 0 || index > self.expected {
            return false;
        }
        let (word, bit) = ((index / 64) as usize, index % 64);
        let fresh = self.seen[word] & (1 << bit) == 0;
        self.seen[word] |= 1 << bit;
        self.distinct += u64::from(fresh);
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_within_their_width() {
        for us in [0, 1, 255, 256, 257, 1000, 65_535, 1_000_000, 123_456_789] {
            let low = lower_bound(bucket_of(us));
            assert!(low <= us && us - low <= us / SUB, "{us} -> {low}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).as_micros();
        assert!((49_600..=50_000).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), Duration::from_millis(100));
        assert_eq!(h.count(), 100);
    }

    #[test]
    fn tally_finds_duplicates_gaps_and_disorder() {
        let mut t = Tally::new(4);
        t.acked(2);
        t.delivered(1);
        t.delivered(3);
        assert!(!t.complete());
        assert_eq!(t.missing(), 1);
        t.delivered(4);
        assert!(t.complete());
        assert_eq!(t.violations, 0);
        t.delivered(4);
        assert_eq!(t.violations, 1);
        let mut t = Tally::new(3);
        t.delivered(2);
        t.delivered(1);
        assert_eq!(t.violations, 1);
        t.delivered(9);
        assert_eq!(t.violations, 2);
    }
}
