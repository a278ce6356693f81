//! The wrangler configuration schema: which keys exist, their types, ranges and defaults, and the
//! checks across keys (unique binding names, migrations that declare every local Durable Object
//! class, duplicate cron triggers).
//!
//! Ranges are Cloudflare's documented limits (Queues: batch size 1-100, batch timeout 0-60 s,
//! retries 0-100, concurrency 1-250, delays up to 12 h). Wrangler itself checks only types and
//! leaves ranges to the Cloudflare API; Burrow has no API behind it, so it checks them here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde_json::Value;

use crate::cron;
use crate::model::{
    BurrowSettings, ConsumerKind, CronTrigger, DevSettings, Durability, DurableObjectBinding,
    KvNamespaceBinding, Migration, QueueConsumer, QueueProducer, RenamedClass, ServiceBinding,
    TransferredClass, VarValue, WorkerConfig, WorkflowBinding,
};
use crate::reader::{Diagnostics, Table};

/// Deploy-time keys with no meaning for a local server: accepted silently.
pub(crate) const DEPLOY_ONLY_KEYS: &[&str] = &[
    "$schema",
    "account_id",
    "workers_dev",
    "preview_urls",
    "routes",
    "route",
    "zone_id",
    "logpush",
    "upload_source_maps",
    "observability",
    "placement",
    "compliance_region",
    "send_metrics",
    "first_party_worker",
    "keep_vars",
    "usage_model",
    "logfwdr",
    "tail_consumers",
    "streaming_tail_consumers",
    "dependencies_instrumentation",
    "legacy_env",
];

/// Bindings Burrow does not provide yet: named together in one warning.
pub(crate) const UNSUPPORTED_BINDINGS: &[&str] = &[
    "d1_databases",
    "r2_buckets",
    "assets",
    "ai",
    "vectorize",
    "hyperdrive",
    "analytics_engine_datasets",
    "browser",
    "images",
    "media",
    "stream",
    "version_metadata",
    "mtls_certificates",
    "dispatch_namespaces",
    "pipelines",
    "secrets_store_secrets",
    "send_email",
    "ratelimits",
    "worker_loaders",
    "vpc_services",
    "vpc_networks",
    "containers",
    "cloudchamber",
    "ai_search_namespaces",
    "ai_search",
    "agent_memory",
    "websearch",
    "artifacts",
    "flagship",
    "connect",
    "unsafe",
    "unsafe_hello_world",
    "wasm_modules",
    "text_blobs",
    "data_blobs",
];

/// Wrangler settings that change behaviour but that Burrow does not implement yet: named
/// together in one warning.
pub(crate) const UNSUPPORTED_SETTINGS: &[&str] = &[
    "define",
    "alias",
    "rules",
    "build",
    "limits",
    "tsconfig",
    "jsx_factory",
    "jsx_fragment",
    "no_bundle",
    "minify",
    "keep_names",
    "find_additional_modules",
    "preserve_file_names",
    "base_dir",
    "node_compat",
    "site",
    "python_modules",
    "exports",
    "previews",
    "access",
    "cache",
    "pages_build_output_dir",
];

/// Keys an environment does not inherit from the top level (wrangler's `@nonInheritable`
/// fields): bindings and vars must be restated in every `[env.NAME]`.
pub(crate) fn is_non_inheritable(key: &str) -> bool {
    const NON_INHERITABLE: &[&str] = &[
        "vars",
        "define",
        "secrets",
        "durable_objects",
        "workflows",
        "kv_namespaces",
        "queues",
        "services",
        "tail_consumers",
        "streaming_tail_consumers",
    ];
    // `assets` is the one inheritable binding-like key.
    NON_INHERITABLE.contains(&key) || (UNSUPPORTED_BINDINGS.contains(&key) && key != "assets")
}

/// Queue delays (`delivery_delay`, `retry_delay`) top out at 12 hours.
const MAX_DELAY_SECONDS: i64 = 43_200;

const BINDING_NAME_RULE: &str = "letters, digits, _ and $, not starting with a digit";
const WORKER_NAME_RULE: &str = "lowercase letters, digits, - and _, not starting with -";
const WORKFLOW_NAME_RULE: &str =
    "1-64 letters, digits, _ and -, starting with a letter, digit or _";

/// Reads one Worker's configuration from the (environment-merged) root table.
pub(crate) fn worker(
    diagnostics: &mut Diagnostics,
    mut root: Table<'_>,
    config_dir: &Path,
) -> WorkerConfig {
    root.ignore(DEPLOY_ONLY_KEYS);
    root.ignore(&["env"]);
    report_unsupported(diagnostics, &mut root);

    let name = root.string(diagnostics, "name");
    if let Some(name) = &name
        && !is_worker_name(name)
    {
        diagnostics.problem(
            &root.key_path("name"),
            format!("= \"{name}\" is not a valid Worker name (allowed {WORKER_NAME_RULE})"),
        );
    }
    let main = root.non_empty_string(diagnostics, "main");
    let compatibility_date = root.string(diagnostics, "compatibility_date");
    if let Some(date) = &compatibility_date
        && !is_date(date)
    {
        diagnostics.problem(
            &root.key_path("compatibility_date"),
            format!("= \"{date}\" is not a date (allowed YYYY-MM-DD)"),
        );
    }
    let compatibility_flags = root.strings(diagnostics, "compatibility_flags", |_| None);

    let mut config = WorkerConfig {
        name,
        main,
        compatibility_date,
        compatibility_flags,
        vars: vars(diagnostics, &mut root),
        durable_objects: durable_objects(diagnostics, &mut root),
        migrations: migrations(diagnostics, &mut root),
        kv_namespaces: kv_namespaces(diagnostics, &mut root),
        queue_producers: Vec::new(),
        queue_consumers: Vec::new(),
        workflows: workflows(diagnostics, &mut root),
        crons: crons(diagnostics, &mut root),
        services: services(diagnostics, &mut root),
        required_secrets: required_secrets(diagnostics, &mut root),
        dev: dev(diagnostics, &mut root),
        burrow: burrow(diagnostics, &mut root, config_dir),
    };
    (config.queue_producers, config.queue_consumers) = queues(diagnostics, &mut root);
    root.finish(diagnostics);

    check_durable_object_migrations(diagnostics, &config);
    config
}

/// One warning for unsupported bindings, one for unsupported settings.
fn report_unsupported(diagnostics: &mut Diagnostics, root: &mut Table<'_>) {
    for (list, what) in [
        (UNSUPPORTED_BINDINGS, "bindings not supported by Burrow yet"),
        (UNSUPPORTED_SETTINGS, "settings not supported by Burrow yet"),
    ] {
        let present: Vec<String> = list
            .iter()
            .filter(|key| root.map().contains_key(**key))
            .map(|key| root.key_path(key))
            .collect();
        root.ignore(list);
        if !present.is_empty() {
            diagnostics.warn(format!("{what}, ignored: {}", present.join(", ")));
        }
    }
}

fn vars(diagnostics: &mut Diagnostics, root: &mut Table<'_>) -> BTreeMap<String, VarValue> {
    let Some(table) = root.table(diagnostics, "vars") else {
        return BTreeMap::new();
    };
    let mut vars = BTreeMap::new();
    for (name, value) in table.map() {
        diagnostics.register_binding(name, &table.key_path(name));
        let value = match value {
            Value::String(text) => VarValue::Text(text.clone()),
            other => VarValue::Json(other.clone()),
        };
        vars.insert(name.clone(), value);
    }
    vars
}

fn durable_objects(
    diagnostics: &mut Diagnostics,
    root: &mut Table<'_>,
) -> Vec<DurableObjectBinding> {
    let Some(mut table) = root.table(diagnostics, "durable_objects") else {
        return Vec::new();
    };
    let mut bindings = Vec::new();
    for mut entry in table.tables(diagnostics, "bindings") {
        let name = binding_name(diagnostics, &mut entry, "name");
        let class_name = class_name(diagnostics, &mut entry, "class_name");
        let script_name = entry.non_empty_string(diagnostics, "script_name");
        let environment = entry.non_empty_string(diagnostics, "environment");
        entry.finish(diagnostics);
        if let (Some(name), Some(class_name)) = (name, class_name) {
            bindings.push(DurableObjectBinding {
                name,
                class_name,
                script_name,
                environment,
            });
        }
    }
    table.finish(diagnostics);
    bindings
}

fn migrations(diagnostics: &mut Diagnostics, root: &mut Table<'_>) -> Vec<Migration> {
    let mut migrations = Vec::new();
    let mut tags: BTreeMap<String, String> = BTreeMap::new();
    for mut entry in root.tables(diagnostics, "migrations") {
        let tag_path = entry.key_path("tag");
        let tag = entry.required_string(diagnostics, "tag");
        if let Some(tag) = &tag
            && let Some(first) = tags.insert(tag.clone(), tag_path.clone())
        {
            diagnostics.problem(
                &tag_path,
                format!("= \"{tag}\" duplicates {first} (allowed: a tag used once)"),
            );
        }
        let class_check = |name: &str| class_name_problem(name);
        let new_classes = entry.strings(diagnostics, "new_classes", class_check);
        let new_sqlite_classes = entry.strings(diagnostics, "new_sqlite_classes", class_check);
        let deleted_classes = entry.strings(diagnostics, "deleted_classes", class_check);
        let renamed_classes = entry
            .tables(diagnostics, "renamed_classes")
            .into_iter()
            .filter_map(|mut renamed| {
                let from = class_name(diagnostics, &mut renamed, "from");
                let to = class_name(diagnostics, &mut renamed, "to");
                renamed.finish(diagnostics);
                Some(RenamedClass {
                    from: from?,
                    to: to?,
                })
            })
            .collect();
        let transferred_classes = entry
            .tables(diagnostics, "transferred_classes")
            .into_iter()
            .filter_map(|mut transferred| {
                let from = class_name(diagnostics, &mut transferred, "from");
                let from_script = transferred.required_string(diagnostics, "from_script");
                let to = class_name(diagnostics, &mut transferred, "to");
                transferred.finish(diagnostics);
                Some(TransferredClass {
                    from: from?,
                    from_script: from_script?,
                    to: to?,
                })
            })
            .collect();
        let path = entry.path().to_owned();
        entry.finish(diagnostics);
        let migration = Migration {
            tag: tag.unwrap_or_default(),
            new_classes,
            new_sqlite_classes,
            renamed_classes,
            deleted_classes,
            transferred_classes,
        };
        migrations.push((path, migration));
    }
    check_migration_order(diagnostics, &migrations);
    migrations
        .into_iter()
        .map(|(_, migration)| migration)
        .collect()
}

/// Each migration may only rename or delete a class that earlier migrations created, and may
/// not create one that already exists.
fn check_migration_order(diagnostics: &mut Diagnostics, migrations: &[(String, Migration)]) {
    let mut live: BTreeMap<&str, String> = BTreeMap::new();
    for (path, migration) in migrations {
        let created = migration
            .new_classes
            .iter()
            .map(|class| (class, "new_classes"))
            .chain(
                migration
                    .new_sqlite_classes
                    .iter()
                    .map(|class| (class, "new_sqlite_classes")),
            );
        for (class, key) in created {
            if let Some(first) = live.get(class.as_str()) {
                diagnostics.problem(
                    &format!("{path}.{key}"),
                    format!(
                        "creates class \"{class}\", which {first} already created (allowed: classes not yet created)"
                    ),
                );
            } else {
                live.insert(class, format!("{path}.{key}"));
            }
        }
        for (index, renamed) in migration.renamed_classes.iter().enumerate() {
            if live.remove(renamed.from.as_str()).is_none() {
                diagnostics.problem(
                    &format!("{path}.renamed_classes[{index}].from"),
                    format!(
                        "= \"{}\" is not a class created by an earlier migration (allowed: {})",
                        renamed.from,
                        known_classes(&live)
                    ),
                );
            }
            live.insert(&renamed.to, format!("{path}.renamed_classes[{index}]"));
        }
        for (index, transferred) in migration.transferred_classes.iter().enumerate() {
            live.insert(
                &transferred.to,
                format!("{path}.transferred_classes[{index}]"),
            );
        }
        for (index, class) in migration.deleted_classes.iter().enumerate() {
            if live.remove(class.as_str()).is_none() {
                diagnostics.problem(
                    &format!("{path}.deleted_classes[{index}]"),
                    format!(
                        "= \"{class}\" is not a class created by an earlier migration (allowed: {})",
                        known_classes(&live)
                    ),
                );
            }
        }
    }
}

fn known_classes(live: &BTreeMap<&str, String>) -> String {
    if live.is_empty() {
        "none exist yet".to_owned()
    } else {
        live.keys().copied().collect::<Vec<_>>().join(", ")
    }
}

fn kv_namespaces(diagnostics: &mut Diagnostics, root: &mut Table<'_>) -> Vec<KvNamespaceBinding> {
    let mut namespaces = Vec::new();
    for mut entry in root.tables(diagnostics, "kv_namespaces") {
        let binding = binding_name(diagnostics, &mut entry, "binding");
        let id = entry.non_empty_string(diagnostics, "id");
        let preview_id = entry.non_empty_string(diagnostics, "preview_id");
        remote(diagnostics, &mut entry);
        entry.finish(diagnostics);
        if let Some(binding) = binding {
            namespaces.push(KvNamespaceBinding {
                binding,
                id,
                preview_id,
            });
        }
    }
    namespaces
}

fn queues(
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

fn workflows(diagnostics: &mut Diagnostics, root: &mut Table<'_>) -> Vec<WorkflowBinding> {
    let mut workflows: Vec<WorkflowBinding> = Vec::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for mut entry in root.tables(diagnostics, "workflows") {
        let binding = binding_name(diagnostics, &mut entry, "binding");
        let name_path = entry.key_path("name");
        let name = entry.required_string(diagnostics, "name");
        let name = name.filter(|name| {
            let valid = is_workflow_name(name);
            if !valid {
                diagnostics.problem(
                    &name_path,
                    format!(
                        "= \"{name}\" is not a valid Workflow name (allowed {WORKFLOW_NAME_RULE})"
                    ),
                );
            } else if let Some(first) = names.insert(name.clone(), name_path.clone()) {
                diagnostics.problem(
                    &name_path,
                    format!("= \"{name}\" duplicates {first} (allowed: each Workflow name once)"),
                );
                return false;
            }
            valid
        });
        let class_name = class_name(diagnostics, &mut entry, "class_name");
        let script_name = entry.non_empty_string(diagnostics, "script_name");
        remote(diagnostics, &mut entry);
        entry.finish(diagnostics);
        if let (Some(binding), Some(name), Some(class_name)) = (binding, name, class_name) {
            workflows.push(WorkflowBinding {
                binding,
                name,
                class_name,
                script_name,
            });
        }
    }
    workflows
}

fn crons(diagnostics: &mut Diagnostics, root: &mut Table<'_>) -> Vec<CronTrigger> {
    let Some(mut table) = root.table(diagnostics, "triggers") else {
        return Vec::new();
    };
    let path = table.key_path("crons");
    let expressions = table.strings(diagnostics, "crons", |_| None);
    table.finish(diagnostics);
    let mut triggers: Vec<CronTrigger> = Vec::new();
    for (index, expression) in expressions.into_iter().enumerate() {
        let item_path = format!("{path}[{index}]");
        let schedule = match cron::parse(&expression) {
            Ok(schedule) => schedule,
            Err(error) => {
                diagnostics.problem(
                    &item_path,
                    format!("= \"{expression}\" is not a valid cron expression: {error}"),
                );
                continue;
            }
        };
        if let Some(first) = triggers.iter().find(|trigger| trigger.schedule == schedule) {
            // Cloudflare rejects the same schedule twice, however it is spelled.
            diagnostics.problem(
                &item_path,
                format!(
                    "= \"{expression}\" is the same schedule as \"{}\" (allowed: each schedule once)",
                    first.expression
                ),
            );
            continue;
        }
        if !schedule.fires_ever() {
            diagnostics.warn(format!(
                "{item_path} = \"{expression}\" never fires (no date matches it)"
            ));
        }
        triggers.push(CronTrigger {
            expression,
            schedule,
        });
    }
    triggers
}

fn services(diagnostics: &mut Diagnostics, root: &mut Table<'_>) -> Vec<ServiceBinding> {
    let mut services = Vec::new();
    for mut entry in root.tables(diagnostics, "services") {
        let binding = binding_name(diagnostics, &mut entry, "binding");
        let service = entry.required_string(diagnostics, "service");
        let entrypoint_path = entry.key_path("entrypoint");
        let entrypoint = entry.non_empty_string(diagnostics, "entrypoint");
        if let Some(entrypoint) = &entrypoint
            && let Some(detail) = class_name_problem(entrypoint)
        {
            diagnostics.problem(&entrypoint_path, detail);
        }
        let environment = entry.non_empty_string(diagnostics, "environment");
        let props = entry
            .table(diagnostics, "props")
            .map(|props| Value::Object(props.map().clone()));
        remote(diagnostics, &mut entry);
        entry.finish(diagnostics);
        if let (Some(binding), Some(service)) = (binding, service) {
            services.push(ServiceBinding {
                binding,
                service,
                entrypoint,
                environment,
                props,
            });
        }
    }
    services
}

fn required_secrets(diagnostics: &mut Diagnostics, root: &mut Table<'_>) -> Option<Vec<String>> {
    let mut table = root.table(diagnostics, "secrets")?;
    let required = table.strings(diagnostics, "required", |name| {
        (!is_binding_name(name)).then(|| {
            format!("= \"{name}\" is not a valid secret name (allowed {BINDING_NAME_RULE})")
        })
    });
    table.finish(diagnostics);
    Some(required)
}

fn dev(diagnostics: &mut Diagnostics, root: &mut Table<'_>) -> DevSettings {
    let Some(mut table) = root.table(diagnostics, "dev") else {
        return DevSettings::default();
    };
    let settings = DevSettings {
        ip: table.non_empty_string(diagnostics, "ip"),
        port: table
            .integer(diagnostics, "port", 0..=65_535)
            .map(|port| port as u16),
    };
    // wrangler's other `[dev]` keys concern its own tooling (inspector, protocols, containers).
    table.ignore(&[
        "inspector_port",
        "inspector_ip",
        "local_protocol",
        "upstream_protocol",
        "host",
        "enable_containers",
        "container_engine",
        "generate_types",
    ]);
    table.finish(diagnostics);
    settings
}

fn burrow(
    diagnostics: &mut Diagnostics,
    root: &mut Table<'_>,
    config_dir: &Path,
) -> BurrowSettings {
    let mut settings = BurrowSettings::defaults();
    let Some(mut table) = root.table(diagnostics, "burrow") else {
        return settings;
    };
    if let Some(data_dir) = table.non_empty_string(diagnostics, "data_dir") {
        settings.data_dir = Some(config_dir.join(data_dir));
    }
    if let Some(shards) = table.integer(diagnostics, "shards", 1..=1_024) {
        settings.shards = shards as usize;
    }
    match table.string(diagnostics, "durability").as_deref() {
        None | Some("full") => {}
        Some("relaxed") => settings.durability = Durability::Relaxed,
        Some(other) => diagnostics.problem(
            &table.key_path("durability"),
            format!("= \"{other}\" is not a durability mode (allowed \"full\" or \"relaxed\")"),
        ),
    }
    if let Some(address) = table.string(diagnostics, "admin_address") {
        match address.parse::<SocketAddr>() {
            Ok(address) => settings.admin_address = address,
            Err(_) => diagnostics.problem(
                &table.key_path("admin_address"),
                format!(
                    "= \"{address}\" is not an address (allowed IP:PORT, e.g. \"127.0.0.1:8788\")"
                ),
            ),
        }
    }
    settings.api_tokens = table.strings(diagnostics, "api_tokens", |token| {
        let valid = token.len() >= 16 && token.bytes().all(|byte| byte.is_ascii_graphic());
        (!valid).then(|| {
            "is not a usable token (allowed: at least 16 printable ASCII characters, no spaces)"
                .to_owned()
        })
    });
    if let Some(max) = table.integer(diagnostics, "max_open_objects", 1..=1_000_000) {
        settings.max_open_objects = max as usize;
    }
    if let Some(max) = table.integer(diagnostics, "workflow_max_steps", 1..=1_000_000) {
        settings.workflow_max_steps = max as u32;
    }
    if let Some(days) = table.integer(diagnostics, "workflow_retention_days", 1..=3_650) {
        settings.workflow_retention_days = days as u32;
    }
    table.finish(diagnostics);
    settings
}

/// `remote = true` asks wrangler to use the deployed resource; Burrow only has local ones.
fn remote(diagnostics: &mut Diagnostics, entry: &mut Table<'_>) {
    let path = entry.key_path("remote");
    if entry.boolean(diagnostics, "remote") == Some(true) {
        diagnostics.warn(format!(
            "{path} = true: remote bindings are not supported; Burrow uses a local resource"
        ));
    }
}

/// A required binding name, unique among the Worker's bindings (as wrangler requires).
fn binding_name(diagnostics: &mut Diagnostics, entry: &mut Table<'_>, key: &str) -> Option<String> {
    let name = entry.required_string(diagnostics, key)?;
    let path = entry.key_path(key);
    if !is_binding_name(&name) {
        diagnostics.problem(
            &path,
            format!("= \"{name}\" is not a valid binding name (allowed {BINDING_NAME_RULE})"),
        );
        return None;
    }
    if !diagnostics.register_binding(&name, &path) {
        return None;
    }
    Some(name)
}

/// A required JavaScript class name.
fn class_name(diagnostics: &mut Diagnostics, entry: &mut Table<'_>, key: &str) -> Option<String> {
    let name = entry.required_string(diagnostics, key)?;
    if let Some(detail) = class_name_problem(&name) {
        diagnostics.problem(&entry.key_path(key), detail);
        return None;
    }
    Some(name)
}

fn class_name_problem(name: &str) -> Option<String> {
    (!is_binding_name(name))
        .then(|| format!("= \"{name}\" is not a valid class name (allowed {BINDING_NAME_RULE})"))
}

/// Binding names are JavaScript identifiers, as legacy wrangler enforced: `env.NAME` must work.
pub(crate) fn is_binding_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(first) if first.is_ascii_alphabetic() || first == b'_' || first == b'$')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$')
}

/// wrangler's rule for Worker names: `^[a-z0-9_][a-z0-9-_]*$`.
pub(crate) fn is_worker_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(first) if first.is_ascii_lowercase() || first.is_ascii_digit() || first == b'_')
        && bytes.all(|byte| {
            byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-'
        })
}

fn is_workflow_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 64
        && matches!(bytes.next(), Some(first) if first.is_ascii_alphanumeric() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// `YYYY-MM-DD` naming a real day.
fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return false;
    };
    let digits = |part: &str, length: usize| {
        part.len() == length && part.bytes().all(|byte| byte.is_ascii_digit())
    };
    if !digits(year, 4) || !digits(month, 2) || !digits(day, 2) {
        return false;
    }
    let (Ok(year), Ok(month), Ok(day)) =
        (year.parse::<i64>(), month.parse::<u8>(), day.parse::<u8>())
    else {
        return false;
    };
    (1..=12).contains(&month) && day >= 1 && day <= cron::days_in_month(year, month)
}

/// Like wrangler: a Durable Object binding to a class of this Worker that no migration creates
/// is a warning (the class would have no namespace on Cloudflare).
fn check_durable_object_migrations(diagnostics: &mut Diagnostics, config: &WorkerConfig) {
    let classes = config.durable_object_classes();
    let own_name = config.name.as_deref();
    let missing: Vec<&str> = config
        .durable_objects
        .iter()
        .filter(|binding| {
            binding.script_name.is_none() || binding.script_name.as_deref() == own_name
        })
        .filter(|binding| !classes.contains_key(&binding.class_name))
        .map(|binding| binding.class_name.as_str())
        .collect();
    if !missing.is_empty() {
        diagnostics.warn(format!(
            "durable_objects binds classes of this Worker ({}) that no migration creates; add a \
             [[migrations]] entry with new_sqlite_classes = [{}] (Cloudflare will not deploy \
             them without one)",
            missing.join(", "),
            missing
                .iter()
                .map(|class| format!("\"{class}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        assert!(is_binding_name("MY_KV"));
        assert!(is_binding_name("$cache"));
        assert!(!is_binding_name("my-kv"));
        assert!(!is_binding_name("1KV"));
        assert!(!is_binding_name(""));
        assert!(is_worker_name("my-worker_2"));
        assert!(!is_worker_name("My Worker"));
        assert!(!is_worker_name("-x"));
        assert!(is_workflow_name("order-flow"));
        assert!(!is_workflow_name(&"x".repeat(65)));
        assert!(is_date("2024-02-29"));
        assert!(!is_date("2023-02-29"));
        assert!(!is_date("2024-1-01"));
    }
}
