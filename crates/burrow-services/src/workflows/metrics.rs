//! Counters and the step-latency histogram of the node's workflows, shared by every shard.
//!
//! Step latency is the time from one step's result being durable to the next step's callback
//! starting in the same run: the engine's own overhead between steps. The histogram has
//! fixed buckets a sixteenth of a power of two wide (at most 6.25 % above the true value), so
//! recording is one atomic add and the memory is bounded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets per power of two.
const SUB: usize = 16;
/// Up to 2^40 µs.
const BUCKETS: usize = SUB * 38;

/// The node's workflow counters.
#[derive(Debug)]
pub(crate) struct Metrics {
    steps_completed: AtomicU64,
    instances_finished: AtomicU64,
    gaps: [AtomicU64; BUCKETS],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            steps_completed: AtomicU64::new(0),
            instances_finished: AtomicU64::new(0),
            gaps: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// A snapshot of [`Metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// `step.do` results stored.
    pub steps_completed: u64,
    /// Instances that ended (complete, errored or terminated).
    pub instances_finished: u64,
    /// Step latencies recorded.
    pub step_gaps: u64,
    /// Median step latency, in microseconds (bucket upper bound).
    pub step_gap_p50_us: u64,
    /// 99th percentile step latency, in microseconds (bucket upper bound).
    pub step_gap_p99_us: u64,
}

fn bucket(micros: u64) -> usize {
    if micros < SUB as u64 {
        return micros as usize;
    }
    let power = 63 - micros.leading_zeros() as usize;
    let sub = ((micros >> (power - 4)) & (SUB as u64 - 1)) as usize;
    (SUB * (power - 3) + sub).min(BUCKETS - 1)
}

fn upper_bound(index: usize) -> u64 {
    if index < SUB {
        return index as u64 + 1;
    }
    let power = index / SUB + 3;
    let sub = (index % SUB) as u64;
    (1u64 << power) + ((sub + 1) << (power - 4))
}

impl Metrics {
    pub(crate) fn record_step_gap(&self, gap: Duration) {
        let micros = u64::try_from(gap.as_micros()).unwrap_or(u64::MAX);
        self.gaps[bucket(micros)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn step_completed(&self) {
        self.steps_completed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn instance_finished(&self) {
        self.instances_finished.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let counts: Vec<u64> = self
            .gaps
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let percentile = |fraction: f64| {
            if total == 0 {
                return 0;
            }
            let rank = ((total as f64) * fraction).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (index, count) in counts.iter().enumerate() {
                seen += count;
                if seen >= rank {
                    return upper_bound(index);
                }
            }
            upper_bound(BUCKETS - 1)
        };
        MetricsSnapshot {
            steps_completed: self.steps_completed.load(Ordering::Relaxed),
            instances_finished: self.instances_finished.load(Ordering::Relaxed),
            step_gaps: total,
            step_gap_p50_us: percentile(0.50),
            step_gap_p99_us: percentile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_their_values() {
        for micros in [
            0u64, 1, 3, 15, 16, 17, 31, 32, 100, 1_000, 123_456, 10_000_000,
        ] {
            let index = bucket(micros);
            assert!(upper_bound(index) > micros, "{micros} in bucket {index}");
            if index > 0 {
                assert!(
                    upper_bound(index - 1) <= micros,
                    "{micros} in bucket {index}"
                );
            }
        }
    }

    #[test]
    fn percentiles_come_from_the_recorded_gaps() {
        let metrics = Metrics::default();
        for _ in 0..99 {
            metrics.record_step_gap(Duration::from_micros(100));
        }
        metrics.record_step_gap(Duration::from_millis(50));
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.step_gaps, 100);
        assert!((100..=108).contains(&snapshot.step_gap_p50_us));
        assert!((100..=108).contains(&snapshot.step_gap_p99_us));
        metrics.record_step_gap(Duration::from_millis(50));
        assert!(metrics.snapshot().step_gap_p99_us >= 50_000);
    }
}
