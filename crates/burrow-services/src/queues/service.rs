//! [`Queues`]: the node's queue service. It creates queues in the registry, hands out producer
//! handles, starts push dispatchers and pull consumers from `[[queues.consumers]]`, and reports
//! metrics.

use super::consumer::QueueHandler;
use super::dispatcher::{Dispatcher, PushSettings, Stop};
use super::error::Error;
use super::limits::{self, MAX_CONCURRENCY};
use super::metrics::QueueMetrics;
use super::object::{self, QueueClass};
use super::producer::Queue;
use super::pull::PullConsumer;
use super::registry::{self, QueueInfo, QueueSettings, RegistryClass};
use super::state::{CombineLimits, Partition, QueueState};
use burrow_config::{ConsumerKind, QueueConsumer, QueueProducer};
use burrow_runtime::clock::Clock;
use burrow_runtime::guest::ObjectClass;
use burrow_runtime::{Namespace, Runtime, Stub, id};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Service settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Settings of queues created implicitly (named in `wrangler.toml`, or as dead-letter queues).
    pub default_settings: QueueSettings,
    /// Most messages stored by one combined enqueue.
    pub max_combined_messages: usize,
    /// Most body bytes stored by one combined enqueue.
    pub max_combined_bytes: usize,
    /// Enqueue RPCs running at once per partition. One combines best: while it waits for its
    /// fsync everything else gathers for the next (measured: about 0.05 fsyncs per send against
    /// 0.06-0.07 with 2 or 4).
    pub max_in_flight_enqueues: usize,
    /// Body bytes waiting to be stored per partition before sends are refused as overloaded.
    pub max_pending_bytes: usize,
    /// Concurrent batches of a push consumer whose `max_concurrency` is unset.
    pub autoscale_concurrency: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            default_settings: QueueSettings::default(),
            max_combined_messages: 1_000,
            max_combined_bytes: 4 << 20,
            max_in_flight_enqueues: 1,
            max_pending_bytes: 64 << 20,
            autoscale_concurrency: 16,
        }
    }
}

/// The node's queues. Cheap to clone.
#[derive(Clone)]
pub struct Queues {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    partitions: Namespace,
    registry: Stub,
    clock: Arc<dyn Clock>,
    options: Options,
    queues: Mutex<HashMap<String, Arc<QueueState>>>,
    dispatchers: Mutex<Vec<Arc<Stop>>>,
    /// The settings of each running push consumer, by queue.
    consumers: Mutex<HashMap<String, Arc<Mutex<PushSettings>>>>,
}

/// New settings for a consumer, in Cloudflare's names; `None` keeps the current one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerUpdate {
    /// Messages per batch (1-100).
    pub batch_size: Option<u32>,
    /// Retries before a message is dead-lettered or dropped (0-100).
    pub max_retries: Option<u32>,
    /// How long a push consumer waits to fill a batch, in ms (0-60,000).
    pub max_wait_time_ms: Option<u64>,
    /// Batches delivered at once (1-250).
    pub max_concurrency: Option<u32>,
    /// Seconds before a retried message comes back (0-43,200).
    pub retry_delay: Option<u32>,
    /// A pull consumer's lease, in ms (1-43,200,000).
    pub visibility_timeout_ms: Option<u64>,
}

impl ConsumerUpdate {
    /// Checks every given setting against Cloudflare's range, naming the one out of range.
    pub fn validate(&self) -> Result<(), Error> {
        let check = |name: &str, value: Option<u64>, low: u64, high: u64| match value {
            Some(value) if !(low..=high).contains(&value) => Err(Error::InvalidSettings(format!(
                "{name} is {value}; it must be between {low} and {high}"
            ))),
            _ => Ok(()),
        };
        check("batch_size", self.batch_size.map(u64::from), 1, 100)?;
        check("max_retries", self.max_retries.map(u64::from), 0, 100)?;
        check("max_wait_time_ms", self.max_wait_time_ms, 0, 60_000)?;
        check(
            "max_concurrency",
            self.max_concurrency.map(u64::from),
            1,
            MAX_CONCURRENCY as u64,
        )?;
        check("retry_delay", self.retry_delay.map(u64::from), 0, 43_200)?;
        check(
            "visibility_timeout_ms",
            self.visibility_timeout_ms,
            1,
            43_200_000,
        )
    }
}

/// A push consumer's settings after a change, in Cloudflare's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ConsumerSettings {
    /// Messages per batch.
    pub batch_size: u32,
    /// Retries before dead-lettering.
    pub max_retries: u32,
    /// Wait to fill a batch, in ms.
    pub max_wait_time_ms: u64,
    /// Batches at once.
    pub max_concurrency: u32,
    /// Seconds before a retried message comes back.
    pub retry_delay: u32,
}

fn partition_name(queue: &str, index: u32) -> String {
    format!("{queue}#{index}")
}

impl Queues {
    /// The system classes to pass to [`Runtime::start`].
    pub fn classes() -> Vec<(String, Arc<dyn ObjectClass>)> {
        vec![
            (object::CLASS_NAME.to_string(), Arc::new(QueueClass) as _),
            (
                registry::CLASS_NAME.to_string(),
                Arc::new(RegistryClass) as _,
            ),
        ]
    }

    /// The service over a runtime started with [`Queues::classes`]. `clock` must be the runtime's.
    pub fn new(
        runtime: &Runtime,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Result<Queues, Error> {
        let missing = |class: &str| {
            Error::Storage(format!(
                "the runtime has no {class} class: pass Queues::classes() to Runtime::start"
            ))
        };
        let partitions = runtime
            .namespace(object::CLASS_NAME)
            .ok_or_else(|| missing(object::CLASS_NAME))?;
        let registry = runtime
            .namespace(registry::CLASS_NAME)
            .ok_or_else(|| missing(registry::CLASS_NAME))?
            .get_by_name(registry::OBJECT_NAME);
        Ok(Queues {
            inner: Arc::new(Inner {
                runtime: runtime.clone(),
                partitions,
                registry,
                clock,
                options,
                queues: Mutex::new(HashMap::new()),
                dispatchers: Mutex::new(Vec::new()),
                consumers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Creates a queue, or returns the one that exists (with the settings it was created with).
    pub async fn create(&self, name: &str, settings: QueueSettings) -> Result<QueueInfo, Error> {
        limits::check_queue_name(name)?;
        settings.validate()?;
        let bytes = self
            .inner
            .registry
            .call(
                registry::method::CREATE,
                registry::encode_create(name, &settings),
            )
            .await?;
        let (info, created) = registry::decode_created(bytes)?;
        if created {
            tracing::info!(
                queue = name,
                partitions = info.settings.partitions,
                "queue created"
            );
        }
        Ok(info)
    }

    /// A queue's registry entry.
    pub async fn info(&self, name: &str) -> Result<Option<QueueInfo>, Error> {
        let bytes = self
            .inner
            .registry
            .call(registry::method::GET, registry::encode_name(name))
            .await?;
        Ok(registry::decode_found(bytes)?)
    }

    /// Every queue, by name.
    pub async fn list(&self) -> Result<Vec<QueueInfo>, Error> {
        let bytes = self
            .inner
            .registry
            .call(registry::method::LIST, bytes::Bytes::new())
            .await?;
        Ok(registry::decode_list(bytes)?)
    }

    /// The producer handle of an existing queue.
    pub async fn queue(&self, name: &str) -> Result<Queue, Error> {
        Ok(Queue::new(self.state(name, false).await?))
    }

    /// The handle of a `[[queues.producers]]` binding; creates the queue if it is absent.
    pub async fn producer(&self, producer: &QueueProducer) -> Result<Queue, Error> {
        let queue = Queue::new(self.state(&producer.queue, true).await?);
        Ok(if producer.delivery_delay_seconds > 0 {
            queue.with_delivery_delay(producer.delivery_delay_seconds)
        } else {
            queue
        })
    }

    async fn state(&self, name: &str, create: bool) -> Result<Arc<QueueState>, Error> {
        if let Some(state) = self.lock_queues().get(name) {
            return Ok(state.clone());
        }
        let info = if create {
            self.create(name, self.inner.options.default_settings)
                .await?
        } else {
            self.info(name)
                .await?
                .ok_or_else(|| Error::QueueNotFound(name.to_string()))?
        };
        let shards = self.inner.runtime.shards().clone();
        let namespace = self.inner.partitions.id();
        let partitions = (0..info.settings.partitions)
            .map(|index| {
                let stub = self
                    .inner
                    .partitions
                    .get_by_name(&partition_name(name, index));
                let shard = id::shard_of(&namespace, stub.id(), shards.count());
                Arc::new(Partition {
                    index,
                    stub,
                    shard,
                    pending: Mutex::new(super::pipeline::Pending::default()),
                    arrived: tokio::sync::Notify::new(),
                })
            })
            .collect();
        let options = &self.inner.options;
        let state = Arc::new(QueueState::new(
            info.name,
            info.settings,
            partitions,
            shards,
            CombineLimits {
                max_messages: options.max_combined_messages.max(1),
                max_bytes: options.max_combined_bytes.max(1),
                max_in_flight: options.max_in_flight_enqueues.max(1),
                max_pending_bytes: options.max_pending_bytes,
            },
        ));
        // Two first calls may race; the first one in the map wins and both use it.
        Ok(self
            .lock_queues()
            .entry(name.to_string())
            .or_insert(state)
            .clone())
    }

    fn lock_queues(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<QueueState>>> {
        self.inner
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn attach(
        &self,
        consumer: &QueueConsumer,
    ) -> Result<(Arc<QueueState>, Option<Queue>), Error> {
        let state = self.state(&consumer.queue, true).await?;
        if state.has_consumer.swap(true, Ordering::SeqCst) {
            return Err(Error::ConsumerExists(consumer.queue.clone()));
        }
        let dead_letter = match &consumer.dead_letter_queue {
            Some(name) => match self.state(name, true).await {
                Ok(state) => Some(Queue::new(state)),
                Err(error) => {
                    state.has_consumer.store(false, Ordering::SeqCst);
                    return Err(error);
                }
            },
            None => None,
        };
        Ok((state, dead_letter))
    }

    /// Starts the push consumer of a `[[queues.consumers]]` entry (type `worker`): a dispatcher
    /// delivering batches to `handler`. Creates the queue and its dead-letter queue if absent.
    pub async fn start_consumer(
        &self,
        consumer: &QueueConsumer,
        handler: Arc<dyn QueueHandler>,
    ) -> Result<(), Error> {
        if consumer.kind != ConsumerKind::Worker {
            return Err(Error::InvalidSettings(format!(
                "queue {:?} has an http_pull consumer; it cannot also push to a handler",
                consumer.queue
            )));
        }
        let (state, dead_letter) = self.attach(consumer).await?;
        let max_concurrency = consumer
            .max_concurrency
            .unwrap_or(self.inner.options.autoscale_concurrency)
            .clamp(1, MAX_CONCURRENCY) as usize;
        let stop = Arc::new(Stop::default());
        let settings = Arc::new(Mutex::new(PushSettings {
            max_batch_size: consumer.max_batch_size.max(1),
            max_batch_timeout_ms: consumer.max_batch_timeout_ms as i64,
            max_attempts: consumer.max_retries + 1,
            retry_delay_seconds: consumer.retry_delay_seconds,
            max_concurrency,
        }));
        self.inner
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(consumer.queue.clone(), Arc::clone(&settings));
        let dispatcher = Dispatcher {
            queue: state.clone(),
            dead_letter,
            settings,
            handler,
            clock: self.inner.clock.clone(),
            stop: stop.clone(),
        };
        let shard = state.partitions[0].shard;
        if let Err(error) = state.shards.spawn(shard, move || dispatcher.run()) {
            state.has_consumer.store(false, Ordering::SeqCst);
            return Err(Error::Storage(error.to_string()));
        }
        self.inner
            .dispatchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(stop);
        tracing::info!(queue = %consumer.queue, max_batch_size = consumer.max_batch_size, max_concurrency, "queue consumer started");
        Ok(())
    }

    /// The pull consumer of a `[[queues.consumers]]` entry (any type: a pull consumer is the
    /// HTTP API's view of the queue). Creates the queue and its dead-letter queue if absent.
    pub async fn pull_consumer(&self, consumer: &QueueConsumer) -> Result<PullConsumer, Error> {
        let (state, dead_letter) = self.attach(consumer).await?;
        Ok(PullConsumer {
            queue: state,
            dead_letter,
            max_attempts: consumer.max_retries + 1,
            retry_delay_seconds: consumer.retry_delay_seconds,
            visibility_timeout_ms: consumer.visibility_timeout_ms,
            next_partition: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// A queue's metrics: durable counters from its partitions, plus this process's deliveries.
    pub async fn metrics(&self, name: &str) -> Result<QueueMetrics, Error> {
        let state = self.state(name, false).await?;
        let mut metrics = QueueMetrics {
            queue: state.name.clone(),
            ..QueueMetrics::default()
        };
        for partition in &state.partitions {
            let stats = partition.stats().await?;
            metrics.backlog_messages += stats.backlog_messages;
            metrics.backlog_bytes += stats.backlog_bytes;
            metrics.in_flight += stats.in_flight;
            metrics.delayed += stats.delayed;
            metrics.held_for_dead_letter += stats.held_for_dead_letter;
            metrics.acked += stats.acked;
            metrics.retried += stats.retried;
            metrics.dead_lettered += stats.dead_lettered;
            metrics.dropped += stats.dropped;
            metrics.expired += stats.expired;
            metrics.oldest_message_timestamp_ms = match (
                metrics.oldest_message_timestamp_ms,
                stats.oldest_timestamp_ms,
            ) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let live = &state.live;
        metrics.batches_delivered = live.batches.load(Ordering::Relaxed);
        metrics.messages_delivered = live.messages.load(Ordering::Relaxed);
        metrics.delivery_latency_p50_ms = live.latency_quantile(0.5);
        metrics.delivery_latency_p99_ms = live.latency_quantile(0.99);
        Ok(metrics)
    }

    /// Deletes every message of a queue.
    pub async fn purge(&self, name: &str) -> Result<(), Error> {
        let state = self.state(name, false).await?;
        for partition in &state.partitions {
            partition.purge().await?;
        }
        Ok(())
    }

    /// Changes the settings of a running push consumer; the next batch uses them. The change
    /// lasts until the process stops: `[[queues.consumers]]` is what the next start uses.
    pub fn update_consumer(
        &self,
        queue: &str,
        update: &ConsumerUpdate,
    ) -> Result<ConsumerSettings, Error> {
        update.validate()?;
        let consumers = self
            .inner
            .consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let settings = consumers
            .get(queue)
            .ok_or_else(|| Error::QueueNotFound(queue.to_string()))?;
        let mut settings = settings.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(size) = update.batch_size {
            settings.max_batch_size = size;
        }
        if let Some(retries) = update.max_retries {
            settings.max_attempts = retries + 1;
        }
        if let Some(wait) = update.max_wait_time_ms {
            settings.max_batch_timeout_ms = wait as i64;
        }
        if let Some(concurrency) = update.max_concurrency {
            settings.max_concurrency = concurrency as usize;
        }
        if let Some(delay) = update.retry_delay {
            settings.retry_delay_seconds = Some(delay);
        }
        tracing::info!(queue, ?update, "queue consumer settings changed");
        Ok(ConsumerSettings {
            batch_size: settings.max_batch_size,
            max_retries: settings.max_attempts - 1,
            max_wait_time_ms: settings.max_batch_timeout_ms.max(0) as u64,
            max_concurrency: settings.max_concurrency as u32,
            retry_delay: settings.retry_delay_seconds.unwrap_or(0),
        })
    }

    /// Deletes a queue: its messages, then its registry entry. The caller makes sure nothing
    /// configured sends to it or consumes it (the configuration would only bring it back).
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        if self.info(name).await?.is_none() {
            return Err(Error::QueueNotFound(name.to_string()));
        }
        self.purge(name).await?;
        let bytes = self
            .inner
            .registry
            .call(registry::method::DELETE, registry::encode_name(name))
            .await?;
        registry::decode_deleted(bytes)?;
        self.lock_queues().remove(name);
        tracing::info!(queue = name, "queue deleted");
        Ok(())
    }

    /// Stops every dispatcher: no new batches; waits up to `grace` for running ones to settle.
    pub async fn stop(&self, grace: Duration) {
        let stops: Vec<Arc<Stop>> = std::mem::take(
            &mut *self
                .inner
                .dispatchers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for stop in &stops {
            stop.stop();
        }
        let deadline = Instant::now() + grace;
        for stop in &stops {
            while !stop.done.load(Ordering::SeqCst) && Instant::now() < deadline {
                let _ =
                    tokio::time::timeout(Duration::from_millis(20), stop.finished.notified()).await;
            }
        }
    }
}
