//! The boundary between the CLI and the server: everything `dev` and `serve` decided (validated
//! configuration, listeners, data directory) goes in, and the server runs until SIGTERM or
//! SIGINT, then shuts down gracefully and returns.
//!
//! The start-up and shutdown themselves (engine, migrations, shards, object runtime, ingress,
//! admin API) are `burrow_sdk::server`, the same code every Rust app runs; this file only says
//! what the binary runs in it: the JavaScript Worker of `main` (`burrow_js`).

use std::sync::Arc;

use burrow_config::LoadedConfig;
use burrow_http::{MakeHandler, handler_fn, text_response};
use burrow_js::{ErrorPages, JsWorker, Limits};
use burrow_runtime::clock::SystemClock;
use burrow_sdk::queue::QueueGuest;
use burrow_sdk::server::{self, Guest, Mode, ServeOptions, Stopped};
use burrow_services::workflows::{Options, Workflows};
use http::StatusCode;

/// How often `burrow dev` looks for changed source files.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(300);

/// Runs the server until a shutdown signal, then shuts it down gracefully.
pub(crate) fn run_server(loaded: LoadedConfig, options: ServeOptions) -> anyhow::Result<()> {
    run_server_until(loaded, options, Arc::new(tokio::sync::Notify::new()))?;
    Ok(())
}

/// Like [`run_server`], but also stops when `restart` is notified (see [`server::run_until`]).
pub(crate) fn run_server_until(
    loaded: LoadedConfig,
    options: ServeOptions,
    restart: Arc<tokio::sync::Notify>,
) -> anyhow::Result<Stopped> {
    let guest = if burrow_js::is_javascript(&loaded.primary) {
        let errors = match options.mode {
            Mode::Dev => ErrorPages::Dev,
            Mode::Serve => ErrorPages::Plain,
        };
        let worker = JsWorker::new(&loaded.primary, limits(&loaded), errors)?;
        if options.watch {
            worker.watch(WATCH_INTERVAL)?;
        }
        let services = service_bindings(&loaded, &worker, errors)?;
        let scheduled = worker.scheduled_handler();
        let workflows = workflows(&loaded, &worker);
        let (queues, queue_env) = QueueGuest::producers();
        let queues = queues.with_handler(worker.queue_handler());
        let producers: Vec<String> = loaded
            .primary
            .config
            .queue_producers
            .iter()
            .map(|producer| producer.binding.clone())
            .collect();
        let metered = worker.clone();
        let cpu_time: burrow_sdk::server::CpuTime = Arc::new(move || metered.cpu_time());
        Guest {
            classes: worker.object_classes(),
            worker: Box::new(move |runtime| {
                let mut queues = std::collections::BTreeMap::new();
                for binding in producers {
                    let queue = queue_env
                        .queue(&binding)
                        .map_err(|error| server::Error::Guest(error.to_string()))?;
                    queues.insert(binding, queue);
                }
                for service in &services {
                    service
                        .start(runtime, Default::default())
                        .map_err(|error| server::Error::Guest(error.to_string()))?;
                }
                worker
                    .start(runtime, queues)
                    .map_err(|error| server::Error::Guest(error.to_string()))?;
                Ok(worker.handler())
            }),
            scheduled: Some(scheduled),
            workflows,
            queues,
            cpu_time: Some(cpu_time),
        }
    } else {
        let handler = no_worker();
        Guest {
            classes: Vec::new(),
            worker: Box::new(move |_runtime| Ok(handler)),
            scheduled: None,
            workflows: None,
            queues: Default::default(),
            cpu_time: None,
        }
    };
    Ok(server::run_until(loaded, options, guest, restart)?)
}

/// The Workflows of the primary Worker's `[[workflows]]` (each `class_name` a class its main
/// module exports), with their bindings given to the Worker; `None` without any.
fn workflows(loaded: &LoadedConfig, worker: &Arc<JsWorker>) -> Option<Workflows> {
    let mut builder = Workflows::builder(Options::from_settings(loaded.burrow()));
    let mut entries = Vec::new();
    for entry in &loaded.primary.config.workflows {
        if let Some(script) = &entry.script_name {
            tracing::warn!(
                binding = %entry.binding,
                script_name = %script,
                "Workflow bindings to another Worker's workflow are not supported; left out of env"
            );
            continue;
        }
        builder = builder.workflow(&entry.name, worker.workflow_definition(&entry.class_name));
        entries.push(entry);
    }
    if entries.is_empty() {
        return None;
    }
    let workflows = builder.build(Arc::new(SystemClock));
    let bindings = entries
        .iter()
        .filter_map(|entry| {
            let workflow = workflows.get(&entry.name).ok()?;
            Some((entry.binding.clone(), workflow))
        })
        .collect();
    worker.set_workflow_bindings(bindings);
    Some(workflows)
}

/// Gives the primary Worker its `services` bindings: each names the primary itself or an
/// auxiliary Worker (another `-c` configuration), which must be JavaScript. Returns the auxiliary
/// Workers to start.
fn service_bindings(
    loaded: &LoadedConfig,
    worker: &Arc<JsWorker>,
    errors: ErrorPages,
) -> anyhow::Result<Vec<Arc<JsWorker>>> {
    let mut started: std::collections::BTreeMap<String, Arc<JsWorker>> = Default::default();
    let mut bindings = std::collections::BTreeMap::new();
    for binding in &loaded.primary.config.services {
        let target = if binding.service == loaded.primary.name() {
            worker.clone()
        } else if let Some(target) = started.get(&binding.service) {
            target.clone()
        } else {
            let config = loaded.worker_named(&binding.service).ok_or_else(|| {
                anyhow::anyhow!(
                    "service binding {:?}: no Worker named {:?} is loaded; pass its configuration with another -c",
                    binding.binding,
                    binding.service
                )
            })?;
            if !config.config.durable_objects.is_empty() {
                anyhow::bail!(
                    "service binding {:?}: the Worker {:?} has Durable Object bindings; Burrow runs Durable Object classes of the first configuration only",
                    binding.binding,
                    binding.service
                );
            }
            let target = JsWorker::new(config, Limits::default(), errors)?;
            started.insert(binding.service.clone(), target.clone());
            target
        };
        bindings.insert(
            binding.binding.clone(),
            (target, binding.entrypoint.clone()),
        );
    }
    worker.set_service_bindings(bindings);
    Ok(started.into_values().collect())
}

/// The limits of the primary Worker's isolates: Cloudflare's defaults, and `limits.cpu_ms`.
fn limits(loaded: &LoadedConfig) -> Limits {
    let mut limits = Limits::default();
    if let Some(cpu_ms) = loaded.primary.config.limits.cpu_ms {
        limits.cpu = std::time::Duration::from_millis(cpu_ms);
    }
    limits
}

/// The ingress's handler when `main` is not JavaScript (or is missing): every request gets 503.
fn no_worker() -> Arc<dyn MakeHandler> {
    handler_fn(|_request| async {
        text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "Burrow: this project's `main` is not a JavaScript or TypeScript module",
        )
    })
}
