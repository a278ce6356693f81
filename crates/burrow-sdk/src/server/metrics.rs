//! `/metrics` on the admin listener, in Prometheus's text format (0.0.4): Worker requests by
//! status, object lifecycle, storage commits and journal fsyncs (with a latency histogram),
//! queue backlogs and deliveries, workflow instances by status, alarm lag, and JS CPU time.
//!
//! Every figure is read when scraped, from counters the components keep anyway (the runtime's
//! per-shard stats, the journal's counters, the queue partitions' durable counters, the workflow
//! index), so metrics cost nothing between scrapes. Counters restart at zero with the process,
//! except the queues' acked/retried/dead-lettered counts, which their partitions keep durably.
//! `burrow_js_cpu_seconds_total` is the time a JavaScript Worker's isolates spent running its
//! code; Rust guests run natively and are not metered (the family is then absent).

use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burrow_http::{Body, Handler, LocalBoxFuture, MakeHandler, ServerStats};
use burrow_runtime::Runtime;
use burrow_runtime::runtime::ALARM_LAG_BUCKETS_MS;
use burrow_services::queues::Queues;
use burrow_services::workflows::{ListOptions, Status, Workflows};
use burrow_storage::journal::SYNC_BUCKETS_MICROS;
use http::{Request, Response};

/// Worker responses by HTTP status: one counter per status code 100-599 (others count as 0).
pub(crate) struct RequestCounts {
    by_status: [AtomicU64; 600],
}

impl RequestCounts {
    pub(crate) fn new() -> Arc<RequestCounts> {
        Arc::new(RequestCounts {
            by_status: std::array::from_fn(|_| AtomicU64::new(0)),
        })
    }

    fn record(&self, status: u16) {
        let index = if (100..600).contains(&status) {
            usize::from(status)
        } else {
            0
        };
        self.by_status[index].fetch_add(1, Ordering::Relaxed);
    }
}

/// Wraps the ingress handler so that every response is counted by status.
pub(crate) fn count_requests(
    inner: Arc<dyn MakeHandler>,
    counts: Arc<RequestCounts>,
) -> Arc<dyn MakeHandler> {
    Arc::new(Counted { inner, counts })
}

struct Counted {
    inner: Arc<dyn MakeHandler>,
    counts: Arc<RequestCounts>,
}

impl MakeHandler for Counted {
    fn make(&self, shard: usize) -> Rc<dyn Handler> {
        Rc::new(CountedHandler {
            inner: self.inner.make(shard),
            counts: Arc::clone(&self.counts),
        })
    }
}

struct CountedHandler {
    inner: Rc<dyn Handler>,
    counts: Arc<RequestCounts>,
}

impl Handler for CountedHandler {
    fn call(&self, request: Request<Body>) -> LocalBoxFuture<'static, Response<Body>> {
        let response = self.inner.call(request);
        let counts = Arc::clone(&self.counts);
        Box::pin(async move {
            let response = response.await;
            counts.record(response.status().as_u16());
            response
        })
    }
}

/// Where the figures come from.
#[derive(Clone)]
pub(crate) struct Sources {
    pub(crate) worker: String,
    pub(crate) requests: Arc<RequestCounts>,
    pub(crate) ingress: ServerStats,
    pub(crate) runtime: Runtime,
    pub(crate) queues: Queues,
    pub(crate) workflows: Option<Workflows>,
    pub(crate) cpu_time: Option<super::CpuTime>,
}

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(text: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A histogram from non-cumulative bucket counts; `scale` turns a bound into seconds.
fn histogram(
    text: &mut String,
    name: &str,
    bounds: &[u64],
    counts: &[u64],
    sum_seconds: f64,
    scale: f64,
) {
    let mut cumulative = 0;
    for (bound, count) in bounds.iter().zip(counts) {
        cumulative += count;
        let _ = writeln!(
            text,
            "{name}_bucket{{le=\"{}\"}} {cumulative}",
            *bound as f64 * scale
        );
    }
    cumulative += counts.last().copied().unwrap_or(0);
    let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(text, "{name}_sum {sum_seconds}");
    let _ = writeln!(text, "{name}_count {cumulative}");
}

/// The whole exposition.
pub(crate) async fn render(sources: &Sources) -> String {
    let mut text = String::new();
    let worker = label(&sources.worker);

    family(
        &mut text,
        "burrow_requests_total",
        "counter",
        "Worker ingress responses, by worker and HTTP status.",
    );
    for (status, count) in sources.requests.by_status.iter().enumerate() {
        let count = count.load(Ordering::Relaxed);
        if count > 0 {
            let _ = writeln!(
                text,
                "burrow_requests_total{{worker=\"{worker}\",status=\"{status}\"}} {count}"
            );
        }
    }
    family(
        &mut text,
        "burrow_http_open_connections",
        "gauge",
        "Connections open on a listener.",
    );
    let _ = writeln!(
        text,
        "burrow_http_open_connections{{listener=\"ingress\"}} {}",
        sources.ingress.active_connections()
    );
    if let Some(cpu_time) = &sources.cpu_time {
        family(
            &mut text,
            "burrow_js_cpu_seconds_total",
            "counter",
            "Time the Worker's JavaScript ran (events, promise jobs, timers), by worker.",
        );
        let _ = writeln!(
            text,
            "burrow_js_cpu_seconds_total{{worker=\"{worker}\"}} {}",
            cpu_time().as_secs_f64()
        );
    }

    let stats = sources.runtime.stats().await;
    for (name, kind, help, value) in [
        (
            "burrow_object_activations_total",
            "counter",
            "Durable Object instances constructed.",
            stats.activations,
        ),
        (
            "burrow_object_hibernations_total",
            "counter",
            "Durable Object instances dropped after idling.",
            stats.hibernations,
        ),
        (
            "burrow_object_evictions_total",
            "counter",
            "Durable Objects whose storage was closed and state dropped.",
            stats.evictions,
        ),
        (
            "burrow_objects_active",
            "gauge",
            "Durable Objects with a live instance.",
            stats.active,
        ),
        (
            "burrow_alarms_armed",
            "gauge",
            "Alarm timers armed.",
            stats.armed_alarms,
        ),
        (
            "burrow_websockets_open",
            "gauge",
            "Hibernatable WebSockets open.",
            stats.websockets,
        ),
    ] {
        family(&mut text, name, kind, help);
        let _ = writeln!(text, "{name} {value}");
    }
    family(
        &mut text,
        "burrow_alarm_lag_seconds",
        "histogram",
        "How late alarms started: from the scheduled time to the handler being called.",
    );
    histogram(
        &mut text,
        "burrow_alarm_lag_seconds",
        &ALARM_LAG_BUCKETS_MS,
        &stats.alarm_lag_histogram,
        stats.alarm_lag_ms_sum as f64 / 1e3,
        1e-3,
    );

    let journal = sources.runtime.engine().journal().stats();
    family(
        &mut text,
        "burrow_storage_commits_total",
        "counter",
        "Storage commits made durable (journal records).",
    );
    let _ = writeln!(text, "burrow_storage_commits_total {}", journal.records);
    family(
        &mut text,
        "burrow_journal_batches_total",
        "counter",
        "Journal batches written (group commits).",
    );
    let _ = writeln!(text, "burrow_journal_batches_total {}", journal.batches);
    family(
        &mut text,
        "burrow_journal_bytes_total",
        "counter",
        "Bytes written to the journal.",
    );
    let _ = writeln!(text, "burrow_journal_bytes_total {}", journal.bytes);
    family(
        &mut text,
        "burrow_journal_fsync_seconds",
        "histogram",
        "Journal fsyncs (sync_data calls) and how long each took.",
    );
    histogram(
        &mut text,
        "burrow_journal_fsync_seconds",
        &SYNC_BUCKETS_MICROS,
        &journal.sync_histogram,
        journal.sync_micros as f64 / 1e6,
        1e-6,
    );

    queue_metrics(&mut text, &sources.queues).await;
    if let Some(workflows) = &sources.workflows {
        workflow_metrics(&mut text, workflows).await;
    }
    text
}

async fn queue_metrics(text: &mut String, queues: &Queues) {
    let listed = match queues.list().await {
        Ok(listed) => listed,
        Err(error) => {
            tracing::warn!(%error, "metrics: cannot list queues");
            Vec::new()
        }
    };
    let mut rows = Vec::new();
    for info in listed {
        match queues.metrics(&info.name).await {
            Ok(metrics) => rows.push(metrics),
            Err(error) => tracing::warn!(queue = info.name, %error, "metrics: cannot read a queue"),
        }
    }
    type Field = fn(&burrow_services::queues::QueueMetrics) -> u64;
    let families: [(&str, &str, &str, Field); 8] = [
        (
            "burrow_queue_backlog_messages",
            "gauge",
            "Messages stored and not yet acknowledged, by queue.",
            |m| m.backlog_messages,
        ),
        (
            "burrow_queue_backlog_bytes",
            "gauge",
            "Body bytes of those messages, by queue.",
            |m| m.backlog_bytes,
        ),
        (
            "burrow_queue_in_flight_messages",
            "gauge",
            "Messages leased to a consumer now, by queue.",
            |m| m.in_flight,
        ),
        (
            "burrow_queue_deliveries_total",
            "counter",
            "Messages delivered to push consumers by this process, by queue.",
            |m| m.messages_delivered,
        ),
        (
            "burrow_queue_acked_total",
            "counter",
            "Messages acknowledged, by queue (kept durably).",
            |m| m.acked,
        ),
        (
            "burrow_queue_retries_total",
            "counter",
            "Message retries, by queue (kept durably).",
            |m| m.retried,
        ),
        (
            "burrow_queue_dead_letters_total",
            "counter",
            "Messages moved to the dead-letter queue, by queue (kept durably).",
            |m| m.dead_lettered,
        ),
        (
            "burrow_queue_dropped_total",
            "counter",
            "Messages deleted after their last attempt without a dead-letter queue, by queue.",
            |m| m.dropped,
        ),
    ];
    for (name, kind, help, field) in families {
        family(text, name, kind, help);
        for metrics in &rows {
            let _ = writeln!(
                text,
                "{name}{{queue=\"{}\"}} {}",
                label(&metrics.queue),
                field(metrics)
            );
        }
    }
}

async fn workflow_metrics(text: &mut String, workflows: &Workflows) {
    family(
        text,
        "burrow_workflow_instances",
        "gauge",
        "Workflow instances, by workflow and status.",
    );
    for name in workflows.names() {
        let Ok(workflow) = workflows.get(&name) else {
            continue;
        };
        for status in Status::ALL {
            if status == Status::Unknown {
                continue;
            }
            let options = ListOptions {
                status: Some(status),
                page: 1,
                per_page: 1,
            };
            match workflow.list(options).await {
                Ok(page) => {
                    let _ = writeln!(
                        text,
                        "burrow_workflow_instances{{workflow=\"{}\",status=\"{}\"}} {}",
                        label(&name),
                        status.as_str(),
                        page.total
                    );
                }
                Err(error) => {
                    tracing::warn!(workflow = name, %error, "metrics: cannot count instances");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_an_infinite_bucket() {
        let mut text = String::new();
        histogram(&mut text, "x", &[1, 10], &[2, 3, 4], 1.5, 1e-3);
        assert_eq!(
            text,
            "x_bucket{le=\"0.001\"} 2\nx_bucket{le=\"0.01\"} 5\nx_bucket{le=\"+Inf\"} 9\n\
             x_sum 1.5\nx_count 9\n"
        );
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
