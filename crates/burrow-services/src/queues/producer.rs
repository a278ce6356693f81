//! The producer: `send` and `sendBatch` on a [`Queue`] handle, usable from any thread or shard.
//!
//! Every producer call is checked against Cloudflare's limits, then goes to one partition (round
//! robin) as one group through that partition's write pipeline ([`super::pipeline`]), which
//! combines concurrent calls into one RPC and one fsync. The call resolves once the commit that
//! stored it is durable. A group is stored whole or refused whole (the backlog bound), so a
//! batch is never split.

use super::error::{Error, Operation};
use super::limits::{self, MAX_DELAY_SECONDS};
use super::message::{BatchOptions, Body, SendOptions, SendRequest};
use super::pipeline;
use super::protocol::NewMessage;
use super::registry::QueueSettings;
use super::state::QueueState;
use std::sync::Arc;

/// A producer binding for one queue (`env.MY_QUEUE`). Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Queue {
    pub(crate) state: Arc<QueueState>,
    /// The binding's `delivery_delay`, which beats the queue's.
    delivery_delay_seconds: Option<u32>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Queue")
            .field("name", &self.state.name)
            .field("delivery_delay_seconds", &self.delivery_delay_seconds)
            .finish_non_exhaustive()
    }
}

impl Queue {
    pub(crate) fn new(state: Arc<QueueState>) -> Queue {
        Queue {
            state,
            delivery_delay_seconds: None,
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The queue's settings.
    pub fn settings(&self) -> QueueSettings {
        self.state.settings
    }

    /// This handle with a producer `delivery_delay` (checked by the config loader: ≤ 43,200 s).
    pub fn with_delivery_delay(mut self, seconds: u32) -> Queue {
        self.delivery_delay_seconds = Some(seconds.min(MAX_DELAY_SECONDS));
        self
    }

    fn default_delay(&self) -> u32 {
        self.delivery_delay_seconds
            .unwrap_or_else(|| self.state.delivery_delay_seconds())
    }

    /// `send(body, {delaySeconds})`: resolves once the message is durable.
    pub async fn send(&self, body: Body, options: SendOptions) -> Result<(), Error> {
        limits::check_message(&body)?;
        let delay = options
            .delay_seconds
            .unwrap_or_else(|| self.default_delay());
        limits::check_delay(Operation::Send, delay)?;
        let message = NewMessage {
            body,
            delay_ms: i64::from(delay) * 1000,
            id: None,
            timestamp_ms: None,
            prior_attempts: 0,
        };
        self.submit(Operation::Send, vec![message]).await
    }

    /// `sendBatch(messages, {delaySeconds})`: all stored, or none; resolves once durable.
    pub async fn send_batch(
        &self,
        messages: Vec<SendRequest>,
        options: BatchOptions,
    ) -> Result<(), Error> {
        limits::check_batch(messages.iter().map(|m| &m.body))?;
        let batch_delay = options.delay_seconds;
        let mut stored = Vec::with_capacity(messages.len());
        for message in messages {
            let delay = message
                .delay_seconds
                .or(batch_delay)
                .unwrap_or_else(|| self.default_delay());
            limits::check_delay(Operation::SendBatch, delay)?;
            stored.push(NewMessage {
                body: message.body,
                delay_ms: i64::from(delay) * 1000,
                id: None,
                timestamp_ms: None,
                prior_attempts: 0,
            });
        }
        self.submit(Operation::SendBatch, stored).await
    }

    /// Stores messages moved from another queue's consumer (ids, timestamps and attempts kept;
    /// Cloudflare's producer limits do not apply).
    pub(crate) async fn store_dead_letters(&self, messages: Vec<NewMessage>) -> Result<(), Error> {
        self.submit(Operation::SendBatch, messages).await
    }

    async fn submit(&self, operation: Operation, messages: Vec<NewMessage>) -> Result<(), Error> {
        let partition = self.state.pick_partition().clone();
        pipeline::store(&self.state, &partition, operation, messages).await
    }
}
