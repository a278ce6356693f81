//! What the queue APIs refuse or fail with, in Cloudflare's words where Cloudflare has them.
//!
//! Producer limits carry the text Cloudflare's queue broker answers with (Miniflare mirrors it),
//! behind workerd's `Queue send failed: ` / `Queue sendBatch failed: ` prefix, so a JavaScript
//! guest can throw `Error(error.to_string())` and match the platform.

use super::limits::{MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_DELAY_SECONDS, MAX_MESSAGE_BYTES};
use std::fmt;

/// The producer call that failed, as workerd names it in its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `send()`.
    Send,
    /// `sendBatch()`.
    SendBatch,
}

impl fmt::Display for Operation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Operation::Send => "send",
            Operation::SendBatch => "sendBatch",
        })
    }
}

/// Everything the queue APIs refuse or fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A content type other than `json`, `text`, `bytes` or `v8` (a `TypeError` in JavaScript).
    #[error("Unsupported queue message content type: {0}")]
    UnsupportedContentType(String),
    /// `sendBatch([])` (a `TypeError` in JavaScript).
    #[error("sendBatch() requires at least one message")]
    EmptyBatch,
    /// One message over 128 KB.
    #[error(
        "Queue send failed: message length of {bytes} bytes exceeds limit of {MAX_MESSAGE_BYTES}"
    )]
    MessageTooLarge {
        /// The serialized body's size.
        bytes: usize,
    },
    /// More than 100 messages in one batch.
    #[error(
        "Queue sendBatch failed: batch message count of {count} exceeds limit of {MAX_BATCH_MESSAGES}"
    )]
    BatchTooManyMessages {
        /// Messages in the batch.
        count: usize,
    },
    /// A message over 128 KB inside a batch.
    #[error(
        "Queue sendBatch failed: message in batch has length {bytes} bytes which exceeds single message size limit of {MAX_MESSAGE_BYTES}"
    )]
    BatchMessageTooLarge {
        /// The largest serialized body in the batch.
        bytes: usize,
    },
    /// A batch over 256 KB.
    #[error(
        "Queue sendBatch failed: batch size of {bytes} bytes exceeds limit of {MAX_BATCH_BYTES}"
    )]
    BatchTooLarge {
        /// The serialized bodies' total size.
        bytes: usize,
    },
    /// A delay over 12 hours.
    #[error(
        "Queue {operation} failed: message delay {seconds} is invalid (allowed 0 to {MAX_DELAY_SECONDS} seconds)"
    )]
    InvalidDelay {
        /// The call.
        operation: Operation,
        /// The delay asked for.
        seconds: u64,
    },
    /// The queue's backlog bound would be crossed (Cloudflare: `Storage Limit Exceeded`).
    #[error(
        "Queue {operation} failed: Storage Limit Exceeded: queue {queue:?} holds {backlog_messages} messages ({backlog_bytes} bytes); its backlog limit is {max_messages} messages or {max_bytes} bytes per partition"
    )]
    BacklogFull {
        /// The call.
        operation: Operation,
        /// The queue.
        queue: String,
        /// Messages in the partition that refused.
        backlog_messages: u64,
        /// Body bytes in the partition that refused.
        backlog_bytes: u64,
        /// The queue's message bound per partition.
        max_messages: u64,
        /// The queue's byte bound per partition.
        max_bytes: u64,
    },
    /// Too many sends are waiting for this process to store them (Cloudflare's wording).
    #[error("Queue {operation} failed: Queue is overloaded. Please back off.")]
    Overloaded {
        /// The call.
        operation: Operation,
    },
    /// No queue has this name.
    #[error("Queue {0:?} does not exist")]
    QueueNotFound(String),
    /// A name that cannot be a queue's.
    #[error(
        "invalid queue name {0:?}: use 1 to 63 characters from a-z, A-Z, 0-9, '-' and '_' (Cloudflare's rule)"
    )]
    InvalidQueueName(String),
    /// A queue setting out of range.
    #[error("invalid queue settings: {0}")]
    InvalidSettings(String),
    /// A message the REST API cannot turn into a body.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// A pull request out of range.
    #[error("invalid pull request: {0}")]
    InvalidPull(String),
    /// A lease id this node never issued.
    #[error("invalid lease id {0:?}")]
    InvalidLeaseId(String),
    /// The queue already has a consumer.
    #[error("queue {0:?} already has a consumer (Cloudflare allows one per queue)")]
    ConsumerExists(String),
    /// The queue is bound in the configuration, which would bring it back.
    #[error(
        "queue {name:?} is bound in the configuration ({binding}); remove the binding and restart before deleting it"
    )]
    QueueInUse {
        /// The queue.
        name: String,
        /// Which configuration entry binds it.
        binding: String,
    },
    /// The object runtime failed (shutting down, storage failure).
    #[error("queue storage failed: {0}")]
    Storage(String),
}

impl Error {
    /// True for errors JavaScript reports as `TypeError`.
    pub fn is_type_error(&self) -> bool {
        matches!(self, Error::UnsupportedContentType(_) | Error::EmptyBatch)
    }

    /// Cloudflare's Queues error code (developers.cloudflare.com/queues/reference/error-codes).
    pub fn code(&self) -> u32 {
        match self {
            Error::QueueNotFound(_) => 10_104,
            Error::InvalidQueueName(_) => 10_107,
            Error::UnsupportedContentType(_)
            | Error::InvalidDelay { .. }
            | Error::InvalidMessage(_) => 10_203,
            Error::MessageTooLarge { .. } | Error::BatchMessageTooLarge { .. } => 10_204,
            Error::BatchTooLarge { .. } => 10_205,
            Error::BatchTooManyMessages { .. } => 10_206,
            Error::EmptyBatch
            | Error::InvalidSettings(_)
            | Error::InvalidPull(_)
            | Error::InvalidLeaseId(_) => 10_207,
            Error::Overloaded { .. } => 10_250,
            Error::BacklogFull { .. } => 10_251,
            Error::ConsumerExists(_) | Error::QueueInUse { .. } => 11_004,
            Error::Storage(_) => 15_000,
        }
    }

    /// The HTTP status the REST API answers with.
    pub fn status(&self) -> u16 {
        match self {
            Error::QueueNotFound(_) => 404,
            Error::MessageTooLarge { .. }
            | Error::BatchMessageTooLarge { .. }
            | Error::BatchTooLarge { .. }
            | Error::BatchTooManyMessages { .. } => 413,
            Error::Overloaded { .. } | Error::BacklogFull { .. } => 429,
            Error::ConsumerExists(_) | Error::QueueInUse { .. } => 409,
            Error::Storage(_) => 500,
            _ => 400,
        }
    }
}

impl From<burrow_runtime::ObjectError> for Error {
    fn from(error: burrow_runtime::ObjectError) -> Self {
        Error::Storage(error.message)
    }
}

impl From<super::wire::WireError> for Error {
    fn from(error: super::wire::WireError) -> Self {
        Error::Storage(error.to_string())
    }
}
