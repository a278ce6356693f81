//! Per-queue metrics: the durable counters the partitions keep, plus what this process measured
//! while delivering (batches, messages, and the delivery latency distribution).

use std::sync::atomic::{AtomicU64, Ordering};

/// A queue's figures, summed over its partitions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueMetrics {
    /// The queue.
    pub queue: String,
    /// Messages stored and not yet acknowledged (in flight and delayed ones included).
    pub backlog_messages: u64,
    /// Their body bytes.
    pub backlog_bytes: u64,
    /// Messages leased to a consumer now (push batches running, pull leases not yet expired).
    pub in_flight: u64,
    /// Messages waiting for a delivery delay or retry delay to end.
    pub delayed: u64,
    /// Exhausted messages on their way to the dead-letter queue.
    pub held_for_dead_letter: u64,
    /// Messages acknowledged (durable count).
    pub acked: u64,
    /// Retries (durable count).
    pub retried: u64,
    /// Messages moved to the dead-letter queue (durable count).
    pub dead_lettered: u64,
    /// Messages deleted after their last attempt because the consumer has no dead-letter queue.
    pub dropped: u64,
    /// Messages deleted at the end of the retention period.
    pub expired: u64,
    /// The oldest stored message's timestamp.
    pub oldest_message_timestamp_ms: Option<i64>,
    /// Batches delivered by this process since it started.
    pub batches_delivered: u64,
    /// Messages delivered by this process since it started.
    pub messages_delivered: u64,
    /// Median time from send to first delivery, in milliseconds (this process).
    pub delivery_latency_p50_ms: Option<u64>,
    /// 99th percentile of the same.
    pub delivery_latency_p99_ms: Option<u64>,
}

/// Buckets of the latency histogram: four per power of two, up to about 2^31 ms.
const BUCKETS: usize = 128;

/// What this process measured for one queue. Lock-free; shared by its dispatcher and readers.
#[derive(Debug)]
pub(crate) struct LiveMetrics {
    pub(crate) batches: AtomicU64,
    pub(crate) messages: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

impl Default for LiveMetrics {
    fn default() -> Self {
        LiveMetrics {
            batches: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

fn bucket_of(ms: u64) -> usize {
    // Exact below 3 ms; above, log2(ms + 1) in quarter steps (buckets 3-7 stay unused).
    let x = ms + 1;
    if x < 4 {
        return ms as usize;
    }
    let log2 = 63 - u64::from(x.leading_zeros());
    let fraction = (x >> (log2 - 2)) & 0b11;
    ((log2 * 4 + fraction) as usize).min(BUCKETS - 1)
}

/// The largest value that falls in `bucket` (a conservative percentile).
fn bucket_upper(bucket: usize) -> u64 {
    if bucket < 8 {
        return bucket.min(2) as u64;
    }
    let log2 = (bucket / 4) as u32;
    let fraction = (bucket % 4) as u64;
    let base = 1u64 << log2;
    let step = base / 4;
    base + (fraction + 1) * step - 2
}

impl LiveMetrics {
    pub(crate) fn record_batch(&self, messages: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.messages.fetch_add(messages as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_latency(&self, ms: u64) {
        self.latency[bucket_of(ms)].fetch_add(1, Ordering::Relaxed);
    }

    /// The `q` quantile (0..=1) of the recorded latencies.
    pub(crate) fn latency_quantile(&self, q: f64) -> Option<u64> {
        let counts: Vec<u64> = self
            .latency
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bucket_upper(bucket));
            }
        }
        Some(bucket_upper(BUCKETS - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_their_values() {
        for ms in [0u64, 1, 2, 3, 5, 17, 100, 999, 12_345, 1 << 30] {
            let bucket = bucket_of(ms);
            assert!(bucket_upper(bucket) >= ms, "{ms} > upper of {bucket}");
            if bucket > 0 {
                assert!(bucket_upper(bucket - 1) < ms, "{ms} fits a lower bucket");
            }
        }
    }

    #[test]
    fn quantiles_come_from_the_distribution() {
        let metrics = LiveMetrics::default();
        assert_eq!(metrics.latency_quantile(0.5), None);
        for _ in 0..99 {
            metrics.record_latency(10);
        }
        metrics.record_latency(5_000);
        let p50 = metrics.latency_quantile(0.5).unwrap();
        assert!((10..=12).contains(&p50), "{p50}");
        let p100 = metrics.latency_quantile(1.0).unwrap();
        assert!((5_000..6_000).contains(&p100), "{p100}");
    }
}
