//! The wrangler configuration schema: which keys exist, their types, ranges and defaults, and the
//! checks across keys (unique binding names, migrations that declare every local Durable Object
//! class, duplicate cron triggers).
//!
//! Ranges are Cloudflare's documented limits (Queues: batch size 1-100, batch timeout 0-60 s,
//! retries 0-100, concurrency 1-250, delays up to 12 h). Wrangler itself checks only types and
//! leaves ranges to the Cloudflare API; Burrow has no API behind it, so it checks them here.

mod durable_objects;
mod queues;
mod settings;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::cron;
use crate::model::{
    CronTrigger, KvNamespaceBinding, ServiceBinding, VarValue, WorkerConfig, WorkflowBinding,
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
        durable_objects: durable_objects::durable_objects(diagnostics, &mut root),
        migrations: durable_objects::migrations(diagnostics, &mut root),
        kv_namespaces: kv_namespaces(diagnostics, &mut root),
        queue_producers: Vec::new(),
        queue_consumers: Vec::new(),
        workflows: workflows(diagnostics, &mut root),
        crons: crons(diagnostics, &mut root),
        services: services(diagnostics, &mut root),
        required_secrets: required_secrets(diagnostics, &mut root),
        limits: settings::limits(diagnostics, &mut root),
        dev: settings::dev(diagnostics, &mut root),
        burrow: settings::burrow(diagnostics, &mut root, config_dir),
    };
    (config.queue_producers, config.queue_consumers) = queues::queues(diagnostics, &mut root);
    root.finish(diagnostics);

    durable_objects::check_durable_object_migrations(diagnostics, &config);
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
