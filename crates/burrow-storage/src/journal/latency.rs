//! Commit latency: how long each record waited from its append until the driver published it
//! durable, kept as a fixed-size log-linear histogram (16 buckets per power of two, so any
//! percentile read from it is within 6.25 % of the true value).
//!
//! This is the storage engine's own view of a commit: it ends when the durable handle resolves
//! (its waker is called), not when the committing thread next gets a CPU to notice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two.
const SUB_BUCKETS: u64 = 16;
/// Buckets cover 0 µs up to 2^30 µs (about 18 minutes); longer waits count in the last one.
const MAX_POWER: u64 = 30;
const BUCKETS: usize = (SUB_BUCKETS * (MAX_POWER - 3)) as usize;

/// The bucket of a wait of `micros`.
fn bucket_of(micros: u64) -> usize {
    if micros < SUB_BUCKETS {
        return micros as usize;
    }
    let power = u64::from(63 - micros.leading_zeros());
    if power >= MAX_POWER {
        return BUCKETS - 1;
    }
    let sub = (micros >> (power - 4)) & (SUB_BUCKETS - 1);
    (SUB_BUCKETS * (power - 3) + sub) as usize
}

/// The smallest wait, in µs, that falls into `bucket`.
fn bucket_floor(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < SUB_BUCKETS {
        return bucket;
    }
    let power = bucket / SUB_BUCKETS + 3;
    let sub = bucket % SUB_BUCKETS;
    (SUB_BUCKETS + sub) << (power - 4)
}

/// The live histogram, updated by the driver as it publishes batches.
pub(super) struct Recorder {
    counts: Box<[AtomicU64]>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Recorder {
    pub(super) fn record(&self, waited: Duration) {
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> CommitLatency {
        CommitLatency {
            counts: self
                .counts
                .iter()
                .map(|count| count.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// A snapshot of the journal's commit-latency histogram ([`super::Journal::commit_latency`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitLatency {
    counts: Vec<u64>,
}

impl CommitLatency {
    /// Records counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What was recorded after `earlier` (a snapshot of the same journal).
    pub fn since(&self, earlier: &CommitLatency) -> CommitLatency {
        CommitLatency {
            counts: self
                .counts
                .iter()
                .zip(&earlier.counts)
                .map(|(now, then)| now.saturating_sub(*then))
                .collect(),
        }
    }

    /// The `p`th percentile (0..=100) in µs: the upper end of the bucket holding that rank, so
    /// never below the true value; 0 when nothing was recorded.
    pub fn percentile_micros(&self, p: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * total as f64).ceil().clamp(1.0, total as f64) as u64;
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_floor(bucket + 1).saturating_sub(1);
            }
        }
        bucket_floor(BUCKETS)
    }

    /// How many records waited at most `micros` (rounded to the bucket holding `micros`).
    pub fn count_at_most(&self, micros: u64) -> u64 {
        self.counts[..=bucket_of(micros)].iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        for bucket in 0..BUCKETS - 1 {
            let floor = bucket_floor(bucket);
            assert_eq!(bucket_of(floor), bucket, "floor of bucket {bucket}");
            assert_eq!(bucket_of(bucket_floor(bucket + 1) - 1), bucket);
            assert!(bucket_floor(bucket + 1) > floor);
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_within_one_sixteenth_above_the_truth() {
        let recorder = Recorder::default();
        for micros in 1..=10_000u64 {
            recorder.record(Duration::from_micros(micros));
        }
        let latency = recorder.snapshot();
        assert_eq!(latency.count(), 10_000);
        for (p, truth) in [
            (50.0, 5_000u64),
            (90.0, 9_000),
            (99.0, 9_900),
            (100.0, 10_000),
        ] {
            let got = latency.percentile_micros(p);
            assert!(
                got >= truth && got <= truth + truth / 16,
                "p{p}: {got} µs for a true {truth} µs"
            );
        }
        let later = {
            recorder.record(Duration::from_micros(20_000));
            recorder.snapshot()
        };
        let delta = later.since(&latency);
        assert_eq!(delta.count(), 1);
        assert!(delta.percentile_micros(50.0) >= 20_000);
        assert_eq!(latency.count_at_most(15), 15);
    }
}
