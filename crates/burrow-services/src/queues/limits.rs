//! Cloudflare's documented queue limits (1 KB = 1000 bytes, as Cloudflare measures), Burrow's own
//! bounds, and the checks a producer's messages go through before anything is stored.

use super::error::{Error, Operation};
use super::message::Body;

/// Largest serialized message body (Cloudflare: 128 KB).
pub const MAX_MESSAGE_BYTES: usize = 128_000;
/// Most messages in one `sendBatch` (Cloudflare: 100).
pub const MAX_BATCH_MESSAGES: usize = 100;
/// Largest total of serialized bodies in one `sendBatch` (Cloudflare: 256 KB).
pub const MAX_BATCH_BYTES: usize = 256_000;
/// Longest delivery or retry delay (Cloudflare: 12 hours).
pub const MAX_DELAY_SECONDS: u32 = 43_200;

/// Default retention of a message that is never acknowledged (Cloudflare: 4 days).
pub const DEFAULT_RETENTION_SECONDS: u32 = 4 * 24 * 3600;
/// Shortest retention a queue may have (Cloudflare: 60 s).
pub const MIN_RETENTION_SECONDS: u32 = 60;
/// Longest retention a queue may have (Cloudflare: 14 days).
pub const MAX_RETENTION_SECONDS: u32 = 14 * 24 * 3600;

/// Default bound on messages held per partition. Cloudflare bounds a queue at 25 GB; one object's
/// database tops out at 10 GB, so Burrow bounds each partition well below that.
pub const DEFAULT_MAX_BACKLOG_MESSAGES: u64 = 10_000_000;
/// Default bound on body bytes held per partition (see [`DEFAULT_MAX_BACKLOG_MESSAGES`]).
pub const DEFAULT_MAX_BACKLOG_BYTES: u64 = 4_000_000_000;

/// Most partitions a queue may have.
pub const MAX_PARTITIONS: u32 = 64;

/// Most messages in one pull (Cloudflare: 100).
pub const MAX_PULL_BATCH_SIZE: u32 = 100;
/// Messages in one pull when the request names no `batch_size` (Cloudflare: 5).
pub const DEFAULT_PULL_BATCH_SIZE: u32 = 5;
/// Visibility timeout of a pull without one (Cloudflare: 30 s).
pub const DEFAULT_VISIBILITY_TIMEOUT_MS: u64 = 30_000;
/// Longest visibility timeout of a pull (Cloudflare: 12 hours).
pub const MAX_VISIBILITY_TIMEOUT_MS: u64 = 43_200_000;

/// How long a push consumer may hold a batch (Cloudflare: 15 minutes of wall time per
/// invocation). A batch still unsettled then is treated as failed, and its lease runs out.
pub const CONSUMER_WALL_TIME_MS: u64 = 15 * 60 * 1000;

/// Concurrent batches per queue when `max_concurrency` is unset (Cloudflare autoscales to 250).
pub const MAX_CONCURRENCY: u32 = 250;

/// Checks a queue name: Cloudflare allows 1-63 characters of letters, digits, `-` and `_`.
pub fn check_queue_name(name: &str) -> Result<(), Error> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidQueueName(name.to_string()))
    }
}

/// Checks a delay in seconds.
pub(crate) fn check_delay(operation: Operation, seconds: u32) -> Result<(), Error> {
    if seconds > MAX_DELAY_SECONDS {
        return Err(Error::InvalidDelay {
            operation,
            seconds: u64::from(seconds),
        });
    }
    Ok(())
}

/// Checks one `send`'s body.
pub(crate) fn check_message(body: &Body) -> Result<(), Error> {
    let bytes = body.len();
    if bytes > MAX_MESSAGE_BYTES {
        return Err(Error::MessageTooLarge { bytes });
    }
    Ok(())
}

/// Checks a `sendBatch`, in the order Cloudflare's broker checks: count, largest, total.
pub(crate) fn check_batch<'a>(
    bodies: impl ExactSizeIterator<Item = &'a Body>,
) -> Result<(), Error> {
    let count = bodies.len();
    if count == 0 {
        return Err(Error::EmptyBatch);
    }
    if count > MAX_BATCH_MESSAGES {
        return Err(Error::BatchTooManyMessages { count });
    }
    let (largest, total) = bodies.fold((0usize, 0usize), |(largest, total), body| {
        (largest.max(body.len()), total + body.len())
    });
    if largest > MAX_MESSAGE_BYTES {
        return Err(Error::BatchMessageTooLarge { bytes: largest });
    }
    if total > MAX_BATCH_BYTES {
        return Err(Error::BatchTooLarge { bytes: total });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_cloudflare_rules() {
        assert!(check_queue_name("jobs-v2_eu").is_ok());
        assert!(check_queue_name("").is_err());
        assert!(check_queue_name("has space").is_err());
        assert!(check_queue_name("a/b").is_err());
        assert!(check_queue_name(&"q".repeat(64)).is_err());
    }

    #[test]
    fn batch_checks_run_in_cloudflares_order() {
        let small = Body::text("x");
        let big = Body::bytes(vec![0u8; MAX_MESSAGE_BYTES + 1]);
        let many: Vec<Body> = (0..101).map(|_| big.clone()).collect();
        assert_eq!(
            check_batch(many.iter()),
            Err(Error::BatchTooManyMessages { count: 101 })
        );
        assert_eq!(
            check_batch([small.clone(), big.clone()].iter()),
            Err(Error::BatchMessageTooLarge {
                bytes: MAX_MESSAGE_BYTES + 1
            })
        );
        let full = Body::bytes(vec![0u8; 100_000]);
        assert_eq!(
            check_batch([full.clone(), full.clone(), full].iter()),
            Err(Error::BatchTooLarge { bytes: 300_000 })
        );
        assert_eq!(check_batch([].iter()), Err(Error::EmptyBatch));
        assert_eq!(
            Error::BatchTooLarge { bytes: 300_000 }.to_string(),
            "Queue sendBatch failed: batch size of 300000 bytes exceeds limit of 256000"
        );
    }
}
