//! `queues.producers` and `queues.consumers`, with Cloudflare's defaults and limits.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::{ConsumerKind, QueueConsumer, QueueProducer};
use crate::reader::{Diagnostics, Table};

use super::{binding_name, remote};

/// Queue delays (`delivery_delay`, `retry_delay`) top out at 12 hours.
const MAX_DELAY_SECONDS: i64 = 43_200;

/// Producers and consumers; a queue may have only one consumer.
pub(super) fn queues(
    diagnostics: &mut Diagnostics,
    root: &mut Table<'_>,
) -> (Vec<QueueProducer>, Vec<QueueConsumer>) {
    let Some(mut table) = root.table(diagnostics, "queues") else {
        return (Vec::new(), Vec::new());
    };
    let mut producers = Vec::new();
    for mut entry in table.tables(diagnostics, "producers") {
        let binding = binding_name(diagnostics, &mut entry, "binding");
        let queue = entry.required_string(diagnostics, "queue");
        let delivery_delay = entry.integer(diagnostics, "delivery_delay", 0..=MAX_DELAY_SECONDS);
        remote(diagnostics, &mut entry);
        entry.finish(diagnostics);
        if let (Some(binding), Some(queue)) = (binding, queue) {
            producers.push(QueueProducer {
                binding,
                queue,
                delivery_delay_seconds: delivery_delay.unwrap_or(0) as u32,
            });
        }
    }
    let mut consumers: Vec<QueueConsumer> = Vec::new();
    let mut consumer_paths: BTreeMap<String, String> = BTreeMap::new();
    for mut entry in table.tables(diagnostics, "consumers") {
        let queue_path = entry.key_path("queue");
        let queue = entry.required_string(diagnostics, "queue");
        let kind = match entry.string(diagnostics, "type").as_deref() {
            None | Some("worker") => ConsumerKind::Worker,
            Some("http_pull") => ConsumerKind::HttpPull,
            Some(other) => {
                diagnostics.problem(
                    &entry.key_path("type"),
                    format!(
                        "= \"{other}\" is not a consumer type (allowed \"worker\" or \"http_pull\")"
                    ),
                );
                ConsumerKind::Worker
            }
        };
        let max_batch_size = entry.integer(diagnostics, "max_batch_size", 1..=100);
        let max_batch_timeout = entry.number(diagnostics, "max_batch_timeout", 0.0..=60.0);
        let max_retries = entry.integer(diagnostics, "max_retries", 0..=100);
        let dead_letter_queue = entry.non_empty_string(diagnostics, "dead_letter_queue");
        let max_concurrency = match entry.map().get("max_concurrency") {
            // `null` means autoscale, as leaving it out does.
            Some(Value::Null) => {
                entry.ignore(&["max_concurrency"]);
                None
            }
            _ => entry.integer(diagnostics, "max_concurrency", 1..=250),
        };
        let retry_delay = entry.integer(diagnostics, "retry_delay", 0..=MAX_DELAY_SECONDS);
        let visibility_timeout_ms =
            entry.integer(diagnostics, "visibility_timeout_ms", 1..=43_200_000);
        if let (Some(queue), Some(dead_letter_queue)) = (&queue, &dead_letter_queue)
            && queue == dead_letter_queue
        {
            diagnostics.problem(
                    &entry.key_path("dead_letter_queue"),
                    format!("= \"{dead_letter_queue}\" is the consumer's own queue (allowed: any other queue)"),
                );
        }
        entry.finish(diagnostics);
        let Some(queue) = queue else { continue };
        if let Some(first) = consumer_paths.insert(queue.clone(), queue_path.clone()) {
            diagnostics.problem(
                &queue_path,
                format!("= \"{queue}\" already has a consumer at {first} (allowed: one consumer per queue)"),
            );
            continue;
        }
        consumers.push(QueueConsumer {
            queue,
            kind,
            max_batch_size: max_batch_size.unwrap_or(10) as u32,
            max_batch_timeout_ms: (max_batch_timeout.unwrap_or(5.0) * 1000.0).round() as u64,
            max_retries: max_retries.unwrap_or(3) as u32,
            dead_letter_queue,
            max_concurrency: max_concurrency.map(|value| value as u32),
            retry_delay_seconds: retry_delay.map(|value| value as u32),
            visibility_timeout_ms: visibility_timeout_ms.map(|value| value as u64),
        });
    }
    table.finish(diagnostics);
    (producers, consumers)
}
