//! The Queues part of Cloudflare's v4 REST API, independent of any HTTP server: request and
//! response shapes, and one method per endpoint. The admin listener routes
//! `/client/v4/accounts/{account}/queues…` here.
//!
//! | endpoint | method |
//! |---|---|
//! | `GET /queues`, `POST /queues` | [`Api::list`], [`Api::create`] |
//! | `GET /queues/{id}`, `GET /queues/{id}/metrics` | [`Api::get`], [`Api::metrics`] |
//! | `POST /queues/{id}/messages`, `…/messages/batch` | [`Api::push`], [`Api::push_batch`] |
//! | `POST /queues/{id}/messages/pull`, `…/messages/ack` | [`Api::pull`], [`Api::ack`] |
//! | `POST /queues/{id}/purge` | [`Api::purge`] |
//!
//! A queue's id is its name in hex (Cloudflare's ids are opaque hex strings); every endpoint
//! also accepts the name. Pulled bodies travel as Cloudflare sends them: `text` as is, `json`,
//! `bytes` and `v8` in base64. Errors carry Cloudflare's Queues error codes ([`Error::code`]).

use super::error::Error;
use super::message::{BatchOptions, Body, ContentType, SendOptions, SendRequest};
use super::pull::{LeaseRetry, PullConsumer};
use super::registry::{QueueInfo, QueueSettings};
use super::service::{ConsumerUpdate, Queues};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use burrow_config::{ConsumerKind, QueueConsumer};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// `POST /queues`.
#[derive(Debug, Clone, Deserialize)]
pub struct CreateQueue {
    /// The name.
    pub queue_name: String,
    /// Optional settings.
    #[serde(default)]
    pub settings: Option<SettingsJson>,
}

/// A queue's `settings` object.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SettingsJson {
    /// Seconds every message waits before delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_delay: Option<u32>,
    /// Seconds an unacknowledged message is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_retention_period: Option<u32>,
    /// Whether delivery is paused (Burrow never pauses; `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_paused: Option<bool>,
}

/// One message of `POST …/messages` or `…/messages/batch`.
#[derive(Debug, Clone, Deserialize)]
pub struct PushMessage {
    /// The body: any JSON for `json`, a string for `text`, base64 for `bytes` and `v8`.
    pub body: Value,
    /// `json` (default), `text`, `bytes` or `v8`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Delay in seconds.
    #[serde(default)]
    pub delay_seconds: Option<u32>,
}

/// `POST …/messages/batch`.
#[derive(Debug, Clone, Deserialize)]
pub struct PushBatch {
    /// The messages.
    pub messages: Vec<PushMessage>,
    /// Delay of messages that name none.
    #[serde(default)]
    pub delay_seconds: Option<u32>,
}

/// `POST …/messages/pull`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PullRequest {
    /// At most 100; default 5.
    #[serde(default)]
    pub batch_size: Option<u32>,
    /// At most 12 hours; default 30 s.
    #[serde(default)]
    pub visibility_timeout_ms: Option<u64>,
}

/// A lease in an ack request.
#[derive(Debug, Clone, Deserialize)]
pub struct LeaseJson {
    /// The lease id from a pull.
    pub lease_id: String,
    /// For retries: seconds before redelivery.
    #[serde(default)]
    pub delay_seconds: Option<u32>,
}

/// `POST …/messages/ack`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AckRequest {
    /// Leases to acknowledge.
    #[serde(default)]
    pub acks: Vec<LeaseJson>,
    /// Leases to retry.
    #[serde(default)]
    pub retries: Vec<LeaseJson>,
}

/// The REST API over a node's queues.
#[derive(Clone)]
pub struct Api {
    queues: Queues,
    /// Pull consumers by queue name: configured ones, and ones made on the first pull of a queue
    /// that has no consumer.
    pull: Arc<Mutex<HashMap<String, PullConsumer>>>,
}

/// A queue's id: its name in hex.
pub fn queue_id(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The queue name behind an id or name from a URL.
fn queue_name(id_or_name: &str) -> String {
    let bytes = id_or_name.as_bytes();
    if bytes.len().is_multiple_of(2) && bytes.iter().all(u8::is_ascii_hexdigit) {
        let decoded: Option<Vec<u8>> = bytes
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            })
            .collect();
        if let Some(name) = decoded.and_then(|d| String::from_utf8(d).ok())
            && super::limits::check_queue_name(&name).is_ok()
        {
            return name;
        }
    }
    id_or_name.to_string()
}

/// Epoch milliseconds as RFC 3339 (UTC), as Cloudflare writes `created_on`.
pub fn rfc3339(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let time = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

fn queue_json(info: &QueueInfo) -> Value {
    let created = rfc3339(info.created_ms);
    json!({
        "queue_id": queue_id(&info.name),
        "queue_name": info.name,
        "created_on": created,
        "modified_on": created,
        "producers": [],
        "producers_total_count": 0,
        "consumers": [],
        "consumers_total_count": 0,
        "settings": {
            "delivery_delay": info.settings.delivery_delay_seconds,
            "message_retention_period": info.settings.retention_seconds,
            "delivery_paused": false,
        },
    })
}

/// Turns a pushed message into a body: Cloudflare's REST API takes `text` and `json`; Burrow
/// also takes `bytes` and `v8` in base64.
fn push_body(message: PushMessage) -> Result<Body, Error> {
    let content_type = match message.content_type.as_deref() {
        None => ContentType::Json,
        Some(text) => ContentType::parse(text)?,
    };
    let invalid = |what: &str| Error::InvalidMessage(format!("a {what} message needs {what}"));
    match content_type {
        ContentType::Json => Body::json(&message.body)
            .map_err(|error| Error::InvalidMessage(format!("the body is not JSON: {error}"))),
        ContentType::Text => match message.body {
            Value::String(text) => Ok(Body::text(text)),
            _ => Err(Error::InvalidMessage(
                "a text message needs a string body".to_string(),
            )),
        },
        ContentType::Bytes | ContentType::V8 => {
            let Value::String(text) = message.body else {
                return Err(invalid("base64 body"));
            };
            let bytes = BASE64.decode(text.as_bytes()).map_err(|error| {
                Error::InvalidMessage(format!("the body is not base64: {error}"))
            })?;
            Ok(Body::new(content_type, bytes))
        }
    }
}

/// A pulled body as Cloudflare returns it: text as is, everything else in base64.
pub fn pulled_body(body: &Body) -> String {
    match (body.content_type(), body.as_text()) {
        (ContentType::Text, Some(text)) => text.to_string(),
        _ => BASE64.encode(body.as_bytes()),
    }
}

fn backlog_json(metrics: &super::metrics::QueueMetrics) -> Value {
    json!({
        "backlog_count": metrics.backlog_messages,
        "backlog_bytes": metrics.backlog_bytes,
        "oldest_message_timestamp_ms": metrics.oldest_message_timestamp_ms.unwrap_or(0),
    })
}

impl Api {
    /// The API over `queues`, with the configured pull consumers.
    pub fn new(queues: Queues, pull_consumers: Vec<PullConsumer>) -> Api {
        let pull = pull_consumers
            .into_iter()
            .map(|consumer| (consumer.queue().to_string(), consumer))
            .collect();
        Api {
            queues,
            pull: Arc::new(Mutex::new(pull)),
        }
    }

    /// The queues behind the API.
    pub fn queues(&self) -> &Queues {
        &self.queues
    }

    /// `GET /queues`: every queue.
    pub async fn list(&self) -> Result<Vec<Value>, Error> {
        Ok(self.queues.list().await?.iter().map(queue_json).collect())
    }

    /// `POST /queues`: creates a queue (an existing one is returned as it is).
    pub async fn create(&self, request: CreateQueue) -> Result<Value, Error> {
        let mut settings = QueueSettings::default();
        if let Some(json) = request.settings {
            if let Some(delay) = json.delivery_delay {
                settings.delivery_delay_seconds = delay;
            }
            if let Some(retention) = json.message_retention_period {
                settings.retention_seconds = retention;
            }
        }
        let info = self.queues.create(&request.queue_name, settings).await?;
        Ok(queue_json(&info))
    }

    /// `GET /queues/{id}`.
    pub async fn get(&self, id: &str) -> Result<Value, Error> {
        let name = queue_name(id);
        let info = self
            .queues
            .info(&name)
            .await?
            .ok_or(Error::QueueNotFound(name))?;
        Ok(queue_json(&info))
    }

    /// `PUT /queues/{id}/consumers/{consumer}`: new settings for the queue's consumer (pull or
    /// push), used from the next batch or pull on. Returns the settings now in force.
    pub fn update_consumer(&self, id: &str, update: &ConsumerUpdate) -> Result<Value, Error> {
        update.validate()?;
        let name = queue_name(id);
        let mut pull = self.pull.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(consumer) = pull.get_mut(&name) {
            if update.batch_size.is_some()
                || update.max_wait_time_ms.is_some()
                || update.max_concurrency.is_some()
            {
                return Err(Error::InvalidSettings(
                    "batch_size, max_wait_time_ms and max_concurrency belong to push consumers; an http_pull consumer chooses its batch size per pull".to_string(),
                ));
            }
            if let Some(retries) = update.max_retries {
                consumer.max_attempts = retries + 1;
            }
            if let Some(delay) = update.retry_delay {
                consumer.retry_delay_seconds = Some(delay);
            }
            if let Some(visibility) = update.visibility_timeout_ms {
                consumer.visibility_timeout_ms = Some(visibility);
            }
            return Ok(json!({
                "max_retries": consumer.max_attempts - 1,
                "retry_delay": consumer.retry_delay_seconds.unwrap_or(0),
                "visibility_timeout_ms": consumer.visibility_timeout_ms.unwrap_or(30_000),
            }));
        }
        drop(pull);
        if update.visibility_timeout_ms.is_some() {
            return Err(Error::InvalidSettings(
                "visibility_timeout_ms belongs to http_pull consumers".to_string(),
            ));
        }
        let settings = self.queues.update_consumer(&name, update)?;
        Ok(serde_json::to_value(settings).unwrap_or(Value::Null))
    }

    /// `DELETE /queues/{id}`.
    pub async fn delete(&self, id: &str) -> Result<Value, Error> {
        let name = queue_name(id);
        let pulled = self
            .pull
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(&name);
        if pulled {
            return Err(Error::QueueInUse {
                name,
                binding: "a pull consumer in [[queues.consumers]]".to_string(),
            });
        }
        self.queues.delete(&name).await?;
        Ok(Value::Null)
    }

    /// `GET /queues/{id}/metrics`: Cloudflare's backlog figures, plus Burrow's counters.
    pub async fn metrics(&self, id: &str) -> Result<Value, Error> {
        let metrics = self.queues.metrics(&queue_name(id)).await?;
        let mut result = backlog_json(&metrics);
        let extra = json!({
            "in_flight": metrics.in_flight,
            "delayed": metrics.delayed,
            "acked": metrics.acked,
            "retried": metrics.retried,
            "dead_lettered": metrics.dead_lettered,
            "dropped": metrics.dropped,
            "expired": metrics.expired,
            "delivery_latency_p50_ms": metrics.delivery_latency_p50_ms,
            "delivery_latency_p99_ms": metrics.delivery_latency_p99_ms,
        });
        if let (Value::Object(result), Value::Object(extra)) = (&mut result, extra) {
            result.extend(extra);
        }
        Ok(result)
    }

    async fn send_metadata(&self, name: &str) -> Result<Value, Error> {
        let metrics = self.queues.metrics(name).await?;
        Ok(json!({ "metadata": { "metrics": backlog_json(&metrics) } }))
    }

    /// `POST /queues/{id}/messages`: sends one message.
    pub async fn push(&self, id: &str, message: PushMessage) -> Result<Value, Error> {
        let name = queue_name(id);
        let queue = self.queues.queue(&name).await?;
        let options = SendOptions {
            delay_seconds: message.delay_seconds,
        };
        queue.send(push_body(message)?, options).await?;
        self.send_metadata(&name).await
    }

    /// `POST /queues/{id}/messages/batch`: sends up to 100 messages, all or none.
    pub async fn push_batch(&self, id: &str, batch: PushBatch) -> Result<Value, Error> {
        let name = queue_name(id);
        let queue = self.queues.queue(&name).await?;
        let messages = batch
            .messages
            .into_iter()
            .map(|message| {
                let delay_seconds = message.delay_seconds;
                Ok(SendRequest {
                    body: push_body(message)?,
                    delay_seconds,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        queue
            .send_batch(
                messages,
                BatchOptions {
                    delay_seconds: batch.delay_seconds,
                },
            )
            .await?;
        self.send_metadata(&name).await
    }

    async fn pull_consumer(&self, name: &str) -> Result<PullConsumer, Error> {
        if let Some(consumer) = self
            .pull
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Ok(consumer.clone());
        }
        if self.queues.info(name).await?.is_none() {
            return Err(Error::QueueNotFound(name.to_string()));
        }
        // No consumer configured: pull with Cloudflare's defaults.
        let consumer = self
            .queues
            .pull_consumer(&QueueConsumer {
                queue: name.to_string(),
                kind: ConsumerKind::HttpPull,
                max_batch_size: 10,
                max_batch_timeout_ms: 5_000,
                max_retries: 3,
                dead_letter_queue: None,
                max_concurrency: None,
                retry_delay_seconds: None,
                visibility_timeout_ms: None,
            })
            .await?;
        Ok(self
            .pull
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_string())
            .or_insert(consumer)
            .clone())
    }

    /// `POST /queues/{id}/messages/pull`.
    pub async fn pull(&self, id: &str, request: PullRequest) -> Result<Value, Error> {
        let consumer = self.pull_consumer(&queue_name(id)).await?;
        let batch = consumer
            .pull(request.batch_size, request.visibility_timeout_ms)
            .await?;
        let messages: Vec<Value> = batch
            .messages
            .iter()
            .map(|message| {
                let mut metadata = json!({
                    "CF-sourceMessageSource": "api",
                    "CF-Content-Type": message.body.content_type().as_str(),
                });
                if message.dead_letter_attempts > 0 {
                    metadata["Burrow-Dead-Letter-Attempts"] = json!(message.dead_letter_attempts);
                }
                json!({
                    "body": pulled_body(&message.body),
                    "id": message.id,
                    "timestamp_ms": message.timestamp_ms,
                    "attempts": message.attempts,
                    "metadata": metadata,
                    "lease_id": message.lease_id,
                })
            })
            .collect();
        Ok(json!({
            "message_backlog_count": batch.backlog_count,
            "messages": messages,
        }))
    }

    /// `POST /queues/{id}/messages/ack`.
    pub async fn ack(&self, id: &str, request: AckRequest) -> Result<Value, Error> {
        let consumer = self.pull_consumer(&queue_name(id)).await?;
        let acks: Vec<String> = request.acks.into_iter().map(|a| a.lease_id).collect();
        let retries: Vec<LeaseRetry> = request
            .retries
            .into_iter()
            .map(|r| LeaseRetry {
                lease_id: r.lease_id,
                delay_seconds: r.delay_seconds,
            })
            .collect();
        let outcome = consumer.ack(&acks, &retries).await?;
        let mut warnings = Vec::new();
        if outcome.ignored > 0 {
            warnings.push(format!(
                "{} leases had expired or were already settled",
                outcome.ignored
            ));
        }
        Ok(json!({
            "ackCount": outcome.acked,
            "retryCount": outcome.retried,
            "warnings": warnings,
        }))
    }

    /// `POST /queues/{id}/purge`: deletes every message.
    pub async fn purge(&self, id: &str) -> Result<Value, Error> {
        self.queues.purge(&queue_name(id)).await?;
        Ok(json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_names_and_names_work_too() {
        assert_eq!(queue_id("jobs"), "6a6f6273");
        assert_eq!(queue_name("6a6f6273"), "jobs");
        assert_eq!(queue_name("jobs"), "jobs");
        assert_eq!(
            queue_name("abcd"),
            "abcd",
            "hex that is no valid name stays"
        );
    }

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn pushed_bodies_follow_their_content_type() {
        let message = |body: Value, content_type: Option<&str>| PushMessage {
            body,
            content_type: content_type.map(str::to_string),
            delay_seconds: None,
        };
        let json_body = push_body(message(json!({"a": 1}), None)).unwrap();
        assert_eq!(json_body.as_text(), Some(r#"{"a":1}"#));
        let text = push_body(message(json!("hi"), Some("text"))).unwrap();
        assert_eq!(
            (text.content_type(), text.as_text()),
            (ContentType::Text, Some("hi"))
        );
        let bytes = push_body(message(json!("AAH/"), Some("bytes"))).unwrap();
        assert_eq!(bytes.as_bytes().as_ref(), &[0, 1, 255]);
        assert_eq!(pulled_body(&bytes), "AAH/");
        assert_eq!(pulled_body(&text), "hi");
        assert!(matches!(
            push_body(message(json!(5), Some("text"))),
            Err(Error::InvalidMessage(_))
        ));
        assert!(matches!(
            push_body(message(json!("x"), Some("xml"))),
            Err(Error::UnsupportedContentType(_))
        ));
    }
}
