//! The start-up summary in the log: each Worker with its bindings, classes, consumers and crons,
//! then where the server listens and keeps its data.

use std::path::{Path, PathBuf};

use burrow_config::{LoadedConfig, Worker};
use tracing::info;

use crate::server::ServeOptions;

/// Logs what will run.
pub fn log_summary(loaded: &LoadedConfig, options: &ServeOptions) {
    for (index, worker) in loaded.workers().enumerate() {
        let role = if index == 0 { "primary" } else { "auxiliary" };
        log_worker(worker, role);
    }
    info!(
        listen = %options.listen,
        admin = %options.admin_address,
        data_dir = %options.data_dir.display(),
        durability = ?loaded.burrow().durability,
        shards = options.shards,
        "starting"
    );
}

fn log_worker(worker: &Worker, role: &str) {
    let config = &worker.config;
    info!(
        worker = %worker.name(),
        role,
        config = %worker.file.display(),
        environment = worker.environment.as_deref().unwrap_or("(top level)"),
        main = %display_optional(worker.main_path().as_deref()),
        compatibility_date = config.compatibility_date.as_deref().unwrap_or("(none)"),
        "Worker"
    );
    let bindings = config.bindings();
    if bindings.is_empty() && worker.secrets.is_empty() {
        info!(worker = %worker.name(), "no bindings");
    }
    for (name, kind, target) in bindings {
        info!(worker = %worker.name(), "env.{name} ({}): {target}", kind.describe());
    }
    for name in worker.secrets.keys() {
        info!(worker = %worker.name(), "env.{name} (Secret): from {}", display_files(&worker.secrets_files));
    }
    for (class, backend) in config.durable_object_classes() {
        info!(worker = %worker.name(), "Durable Object class {class} ({backend:?} storage)");
    }
    for consumer in &config.queue_consumers {
        info!(
            worker = %worker.name(),
            queue = %consumer.queue,
            kind = ?consumer.kind,
            max_batch_size = consumer.max_batch_size,
            max_batch_timeout_ms = consumer.max_batch_timeout_ms,
            max_retries = consumer.max_retries,
            dead_letter_queue = consumer.dead_letter_queue.as_deref().unwrap_or("(none)"),
            "queue consumer"
        );
    }
    for trigger in &config.crons {
        info!(worker = %worker.name(), "cron trigger \"{}\"", trigger.expression);
    }
}

fn display_optional(path: Option<&Path>) -> String {
    path.map_or_else(|| "(none)".to_owned(), |path| path.display().to_string())
}

fn display_files(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|file| file.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
