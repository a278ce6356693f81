//! The push consumer's side of a delivery: the batch a handler gets, the per-message and
//! batch-wide acknowledgement calls, and the rules that turn them into one outcome per message.
//!
//! # The rules (spec §2, following workerd's `QueueMessage`/`QueueEvent`)
//! - The first call per message wins: `ack()` after `retry()` (or the reverse) has no effect.
//! - `ackAll()` and `retryAll()` exclude each other: the later one has no effect.
//! - After `ackAll()`, `ack()` is a no-op and `retry()` has no effect. After `retryAll()`,
//!   `ack()` has no effect and `retry()` still records the message's own delay.
//! - A per-message call made before a batch-wide one beats it.
//! - Otherwise: `ackAll()` acks, `retryAll()` retries, a handler that resolved acks, and a
//!   handler that failed retries. An explicit `ack()` always holds, so a handler that acks some
//!   messages and then fails retries only the rest.
//! - A retry's delay is the call's delay, else the consumer's `retry_delay`, else the queue's
//!   `delivery_delay`.
//!
//! Calls that have no effect log workerd's warning.

use super::limits::MAX_DELAY_SECONDS;
use super::message::{Body, RetryOptions};
use burrow_runtime::clock::LocalBoxFuture;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

/// What a handler's failure says; its message is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    /// The error's message.
    pub message: String,
}

impl HandlerError {
    /// An error with `message`.
    pub fn new(message: impl Into<String>) -> HandlerError {
        HandlerError {
            message: message.into(),
        }
    }
}

/// A queue consumer: the `queue(batch, env, ctx)` handler. The SDK and the JavaScript runtime
/// implement it; it runs on a shard thread, so its future need not be `Send`.
pub trait QueueHandler: Send + Sync + 'static {
    /// Handles one batch. Resolving acks every message not retried; failing retries every
    /// message not acked.
    fn queue(&self, batch: MessageBatch) -> LocalBoxFuture<'static, Result<(), HandlerError>>;
}

impl<F, Fut> QueueHandler for F
where
    F: Fn(MessageBatch) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + 'static,
{
    fn queue(&self, batch: MessageBatch) -> LocalBoxFuture<'static, Result<(), HandlerError>> {
        Box::pin(self(batch))
    }
}

/// What one message ends as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ack,
    /// Retry after this many seconds (already resolved through the precedence rules).
    Retry {
        delay_seconds: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Explicit {
    Ack,
    Retry(Option<u32>),
}

#[derive(Debug, Default)]
struct Calls {
    ack_all: bool,
    /// `Some(delay)` once `retryAll()` was called.
    retry_all: Option<Option<u32>>,
    messages: Vec<Option<Explicit>>,
}

/// The calls a batch's handler made, shared by the batch and its messages.
#[derive(Debug, Clone)]
pub(crate) struct Decisions {
    calls: Arc<Mutex<Calls>>,
}

impl Decisions {
    fn new(messages: usize) -> Decisions {
        Decisions {
            calls: Arc::new(Mutex::new(Calls {
                messages: vec![None; messages],
                ..Calls::default()
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Calls) -> R) -> R {
        f(&mut self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Each message's outcome, given how the handler ended and the fallback retry delays.
    pub(crate) fn resolve(
        &self,
        handler_succeeded: bool,
        retry_delay_seconds: Option<u32>,
        queue_delay_seconds: u32,
    ) -> Vec<Outcome> {
        let retry = |delay: Option<u32>| Outcome::Retry {
            delay_seconds: delay
                .or(retry_delay_seconds)
                .unwrap_or(queue_delay_seconds)
                .min(MAX_DELAY_SECONDS),
        };
        self.with(|calls| {
            calls
                .messages
                .iter()
                .map(|explicit| match explicit {
                    Some(Explicit::Ack) => Outcome::Ack,
                    Some(Explicit::Retry(delay)) => retry(*delay),
                    None if calls.ack_all => Outcome::Ack,
                    None => match calls.retry_all {
                        Some(delay) => retry(delay),
                        None if handler_succeeded => Outcome::Ack,
                        None => retry(None),
                    },
                })
                .collect()
        })
    }
}

fn checked_delay(delay_seconds: Option<u32>) -> Option<u32> {
    delay_seconds.map(|seconds| {
        if seconds > MAX_DELAY_SECONDS {
            tracing::warn!(
                seconds,
                "retry delay over {MAX_DELAY_SECONDS} seconds; using {MAX_DELAY_SECONDS}"
            );
        }
        seconds.min(MAX_DELAY_SECONDS)
    })
}

/// Queue backlog figures sent with each batch (`batch.metadata.metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Messages in the partition the batch came from, this batch included.
    pub backlog_count: u64,
    /// Their body bytes.
    pub backlog_bytes: u64,
}

/// A batch delivered to a consumer (`MessageBatch`).
#[derive(Debug, Clone)]
pub struct MessageBatch {
    queue: Arc<str>,
    messages: Vec<Message>,
    metadata: BatchMetadata,
    decisions: Decisions,
}

impl MessageBatch {
    /// A batch of `messages` as `(id, timestamp_ms, body, attempts)`; the dispatcher builds them,
    /// and tests of handlers can too.
    pub fn new(
        queue: &str,
        messages: Vec<(String, i64, Body, u32)>,
        metadata: BatchMetadata,
    ) -> MessageBatch {
        let decisions = Decisions::new(messages.len());
        let messages = messages
            .into_iter()
            .enumerate()
            .map(|(index, (id, timestamp_ms, body, attempts))| Message {
                id,
                timestamp_ms,
                body,
                attempts,
                index,
                decisions: decisions.clone(),
            })
            .collect();
        MessageBatch {
            queue: Arc::from(queue),
            messages,
            metadata,
            decisions,
        }
    }

    /// The queue's name (`batch.queue`).
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The messages (`batch.messages`).
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Backlog figures (`batch.metadata`).
    pub fn metadata(&self) -> BatchMetadata {
        self.metadata
    }

    /// `ackAll()`: acknowledges every message not retried before.
    pub fn ack_all(&self) {
        self.decisions.with(|calls| {
            if calls.retry_all.is_some() {
                tracing::warn!(
                    "Received a call to ackAll() after retryAll() was already called. Calling ackAll() after calling retryAll() has no effect."
                );
                return;
            }
            calls.ack_all = true;
        });
    }

    /// `retryAll({delaySeconds})`: retries every message not acked before.
    pub fn retry_all(&self, options: RetryOptions) {
        let delay = checked_delay(options.delay_seconds);
        self.decisions.with(|calls| {
            if calls.ack_all {
                tracing::warn!(
                    "Received a call to retryAll() after ackAll() was already called. Calling retryAll() after calling ackAll() has no effect."
                );
                return;
            }
            // As workerd: a later retryAll() may still set the delay.
            let previous = calls.retry_all.flatten();
            calls.retry_all = Some(delay.or(previous));
        });
    }

    pub(crate) fn decisions(&self) -> &Decisions {
        &self.decisions
    }
}

/// One delivered message (`Message`).
#[derive(Debug, Clone)]
pub struct Message {
    id: String,
    timestamp_ms: i64,
    body: Body,
    attempts: u32,
    index: usize,
    decisions: Decisions,
}

impl Message {
    /// The message id (32 hex characters).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When it was sent, in epoch milliseconds (`timestamp`).
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    /// The body.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// Deliveries so far, this one included (starts at 1).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// `ack()`.
    pub fn ack(&self) {
        let id = &self.id;
        self.decisions.with(|calls| {
            if calls.ack_all {
                return;
            }
            if calls.retry_all.is_some() {
                tracing::warn!(
                    "Received a call to ack() on message {id} after retryAll() was already called. Calling ack() on a message after calling retryAll() has no effect."
                );
                return;
            }
            match calls.messages[self.index] {
                Some(Explicit::Retry(_)) => tracing::warn!(
                    "Received a call to ack() on message {id} after retry() was already called. Calling ack() on a message after calling retry() has no effect."
                ),
                Some(Explicit::Ack) => {}
                None => calls.messages[self.index] = Some(Explicit::Ack),
            }
        });
    }

    /// `retry({delaySeconds})`.
    pub fn retry(&self, options: RetryOptions) {
        let id = &self.id;
        let delay = checked_delay(options.delay_seconds);
        self.decisions.with(|calls| {
            if calls.ack_all {
                tracing::warn!(
                    "Received a call to retry() on message {id} after ackAll() was already called. Calling retry() on a message after calling ackAll() has no effect."
                );
                return;
            }
            match calls.messages[self.index] {
                Some(Explicit::Ack) => tracing::warn!(
                    "Received a call to retry() on message {id} after ack() was already called. Calling retry() on a message after calling ack() has no effect."
                ),
                Some(Explicit::Retry(_)) => {}
                None => calls.messages[self.index] = Some(Explicit::Retry(delay)),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> MessageBatch {
        MessageBatch::new(
            "q",
            (0..n)
                .map(|i| (format!("m{i}"), 0, Body::text("x"), 1))
                .collect(),
            BatchMetadata::default(),
        )
    }

    fn resolve(batch: &MessageBatch, succeeded: bool) -> Vec<Outcome> {
        batch.decisions().resolve(succeeded, Some(7), 3)
    }

    const ACK: Outcome = Outcome::Ack;
    fn retry(delay_seconds: u32) -> Outcome {
        Outcome::Retry { delay_seconds }
    }

    #[test]
    fn resolving_acks_and_failing_retries_unless_told_otherwise() {
        let b = batch(2);
        assert_eq!(resolve(&b, true), vec![ACK, ACK]);
        assert_eq!(resolve(&b, false), vec![retry(7), retry(7)]);
    }

    #[test]
    fn explicit_acks_survive_a_failure() {
        let b = batch(3);
        b.messages()[0].ack();
        b.messages()[1].retry(RetryOptions::delay(30));
        assert_eq!(resolve(&b, false), vec![ACK, retry(30), retry(7)]);
    }

    #[test]
    fn the_first_call_per_message_wins() {
        let b = batch(2);
        b.messages()[0].ack();
        b.messages()[0].retry(RetryOptions::delay(5));
        b.messages()[1].retry(RetryOptions::delay(5));
        b.messages()[1].retry(RetryOptions::delay(9));
        b.messages()[1].ack();
        assert_eq!(resolve(&b, true), vec![ACK, retry(5)]);
    }

    #[test]
    fn per_message_calls_beat_later_batch_calls() {
        let b = batch(3);
        b.messages()[0].retry(RetryOptions::default());
        b.ack_all();
        b.messages()[1].retry(RetryOptions::delay(1)); // no effect after ackAll
        assert_eq!(resolve(&b, true), vec![retry(7), ACK, ACK]);

        let b = batch(3);
        b.messages()[0].ack();
        b.retry_all(RetryOptions::delay(60));
        b.messages()[1].ack(); // no effect after retryAll
        b.messages()[2].retry(RetryOptions::delay(2)); // its own delay still counts
        assert_eq!(resolve(&b, true), vec![ACK, retry(60), retry(2)]);
    }

    #[test]
    fn ack_all_and_retry_all_exclude_each_other() {
        let b = batch(1);
        b.ack_all();
        b.retry_all(RetryOptions::delay(4));
        assert_eq!(
            resolve(&b, false),
            vec![ACK],
            "ackAll holds even when the handler fails"
        );
        let b = batch(1);
        b.retry_all(RetryOptions::default());
        b.ack_all();
        assert_eq!(resolve(&b, true), vec![retry(7)]);
    }

    #[test]
    fn delay_precedence_is_call_then_retry_delay_then_queue_default() {
        let b = batch(3);
        b.messages()[0].retry(RetryOptions::delay(11));
        b.messages()[1].retry(RetryOptions::default());
        b.messages()[2].retry(RetryOptions::delay(99_999));
        assert_eq!(
            b.decisions().resolve(true, Some(7), 3),
            vec![retry(11), retry(7), retry(MAX_DELAY_SECONDS)]
        );
        assert_eq!(
            b.decisions().resolve(true, None, 3),
            vec![retry(11), retry(3), retry(MAX_DELAY_SECONDS)]
        );
    }
}
