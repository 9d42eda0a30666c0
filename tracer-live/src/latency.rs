//! How long events take from the kernel probe to the sink: a fixed-size histogram, so that
//! measuring every event costs no allocation on the hot path.

use std::fmt;

/// Sub-buckets per power of two: values land within 1/16 (6%) of their bucket's bound.
const SUB_BUCKETS: u32 = 16;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB_BUCKETS as usize;

#[derive(Clone)]
pub struct Latency {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max_ns: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max_ns: 0,
        }
    }
}

impl fmt::Debug for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Latency({self})")
    }
}

fn bucket_of(ns: u64) -> usize {
    if ns < u64::from(SUB_BUCKETS) {
        return ns as usize;
    }
    let exponent = 63 - ns.leading_zeros();
    let shift = exponent - SUB_BITS;
    let sub = (ns >> shift) as usize & (SUB_BUCKETS as usize - 1);
    (shift as usize + 1) * SUB_BUCKETS as usize + sub
}

/// The largest value that falls in `bucket`.
fn upper_bound(bucket: usize) -> u64 {
    let sub_buckets = SUB_BUCKETS as usize;
    if bucket < sub_buckets {
        return bucket as u64;
    }
    let shift = (bucket / sub_buckets - 1) as u32;
    let low = ((sub_buckets + bucket % sub_buckets) as u64) << shift;
    low + ((1u64 << shift) - 1)
}

impl Latency {
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket_of(ns)] += 1;
        self.total += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The latency that `quantile` (0.0..=1.0) of the events stayed under, rounded up to
    /// the histogram's resolution; 0 with no events.
    pub fn quantile_ns(&self, quantile: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((quantile.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_bound(bucket).min(self.max_ns);
            }
        }
        self.max_ns
    }
}

fn millis(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// `p50 0.412 ms, p99 2.310 ms, max 4.100 ms over 1234 events`: the bench parses this.
impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms over {} events",
            millis(self.quantile_ns(0.5)),
            millis(self.quantile_ns(0.99)),
            millis(self.max_ns),
            self.total
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        let mut previous = None;
        for ns in (0..5000).chain([u64::MAX / 3, u64::MAX]) {
            let bucket = bucket_of(ns);
            assert!(ns <= upper_bound(bucket), "{ns} above its bucket");
            if let Some(previous) = previous {
                assert!(bucket >= previous);
            }
            previous = Some(bucket);
            // Within 1/16 of the value.
            assert!(
                upper_bound(bucket) - ns <= ns / 16,
                "{ns}: {}",
                upper_bound(bucket)
            );
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut latency = Latency::default();
        assert_eq!(latency.quantile_ns(0.99), 0);
        for us in 1..=1000u64 {
            latency.record(us * 1000);
        }
        let p50 = latency.quantile_ns(0.5);
        let p99 = latency.quantile_ns(0.99);
        assert!((500_000..=531_250).contains(&p50), "{p50}");
        assert!((990_000..=1_000_000).contains(&p99), "{p99}");
        assert_eq!(latency.quantile_ns(1.0), 1_000_000);
        assert_eq!(latency.count(), 1000);
        assert_eq!(
            latency.to_string(),
            format!(
                "p50 {:.3} ms, p99 {:.3} ms, max 1.000 ms over 1000 events",
                p50 as f64 / 1e6,
                p99 as f64 / 1e6
            )
        );
    }
}
