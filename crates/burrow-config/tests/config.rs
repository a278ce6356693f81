//! Loading real-world wrangler files (fixtures/), environments, secrets, several Workers, and
//! every invalid-value case with the message it produces.

use std::fs;
use std::path::{Path, PathBuf};

use burrow_config::{
    BindingKind, ConsumerKind, Durability, DurableObjectBinding, Error, Format, KvNamespaceBinding,
    LoadOptions, Migration, QueueConsumer, QueueProducer, RenamedClass, ServiceBinding,
    StorageBackend, TransferredClass, VarValue, WorkerConfig, WorkflowBinding, find_config,
    load_dir, load_files, parse_worker,
};
use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn options(environment: Option<&str>) -> LoadOptions {
    LoadOptions {
        environment: environment.map(str::to_owned),
    }
}

fn parse_fixture(name: &str, environment: Option<&str>) -> (WorkerConfig, Vec<String>) {
    let path = fixture(name);
    let text = fs::read_to_string(&path).expect("fixture exists");
    parse_worker(&text, Format::of(&path), &path, &options(environment))
        .unwrap_or_else(|error| panic!("{name} should load: {error}"))
}

fn text(value: &str) -> VarValue {
    VarValue::Text(value.to_owned())
}

fn crons(config: &WorkerConfig) -> Vec<&str> {
    config
        .crons
        .iter()
        .map(|trigger| trigger.expression.as_str())
        .collect()
}

fn has_warning(warnings: &[String], fragments: &[&str]) -> bool {
    warnings
        .iter()
        .any(|warning| fragments.iter().all(|fragment| warning.contains(fragment)))
}

#[test]
fn full_toml_every_key() {
    let (config, warnings) = parse_fixture("full.toml", None);
    assert_eq!(config.name.as_deref(), Some("shop-api"));
    assert_eq!(config.main.as_deref(), Some("src/index.ts"));
    assert_eq!(config.compatibility_date.as_deref(), Some("2025-04-01"));
    assert_eq!(config.compatibility_flags, vec!["nodejs_compat"]);

    assert_eq!(config.vars.len(), 6);
    assert_eq!(config.vars["ENVIRONMENT"], text("production"));
    assert_eq!(config.vars["MAX_ITEMS"], VarValue::Json(json!(50)));
    assert_eq!(config.vars["RATIO"], VarValue::Json(json!(0.75)));
    assert_eq!(config.vars["FEATURE_ENABLED"], VarValue::Json(json!(true)));
    assert_eq!(
        config.vars["SERVICE_X"],
        VarValue::Json(json!({"URL": "https://x.example.com", "RETRIES": 3}))
    );
    assert_eq!(config.vars["REGIONS"], VarValue::Json(json!(["eu", "us"])));

    assert_eq!(
        config.durable_objects,
        vec![
            DurableObjectBinding {
                name: "CART".into(),
                class_name: "Cart".into(),
                script_name: None,
                environment: None,
            },
            DurableObjectBinding {
                name: "RATE_LIMITER".into(),
                class_name: "RateLimiter".into(),
                script_name: Some("limits-worker".into()),
                environment: Some("production".into()),
            },
        ]
    );
    assert_eq!(
        config.migrations,
        vec![
            Migration {
                tag: "v1".into(),
                new_classes: vec!["LegacySession".into()],
                ..Migration::default()
            },
            Migration {
                tag: "v2".into(),
                new_sqlite_classes: vec!["Cart".into(), "Inventory".into()],
                ..Migration::default()
            },
            Migration {
                tag: "v3".into(),
                renamed_classes: vec![RenamedClass {
                    from: "LegacySession".into(),
                    to: "Session".into(),
                }],
                deleted_classes: vec!["Inventory".into()],
                ..Migration::default()
            },
            Migration {
                tag: "v4".into(),
                transferred_classes: vec![TransferredClass {
                    from: "Checkout".into(),
                    from_script: "old-shop".into(),
                    to: "Checkout".into(),
                }],
                ..Migration::default()
            },
        ]
    );
    let classes = config.durable_object_classes();
    assert_eq!(classes.len(), 3);
    assert_eq!(classes["Cart"], StorageBackend::Sqlite);
    assert_eq!(classes["Session"], StorageBackend::KeyValue);
    assert_eq!(classes["Checkout"], StorageBackend::Sqlite);

    assert_eq!(
        config.kv_namespaces,
        vec![
            KvNamespaceBinding {
                binding: "SESSIONS".into(),
                id: Some("5f2d9a8c0b1e4c7d9e3f2a1b0c9d8e7f".into()),
                preview_id: Some("preview-sessions".into()),
            },
            KvNamespaceBinding {
                binding: "FLAGS".into(),
                id: None,
                preview_id: None,
            },
        ]
    );
    assert_eq!(config.kv_namespaces[1].namespace(), "FLAGS");

    assert_eq!(
        config.queue_producers,
        vec![
            QueueProducer {
                binding: "ORDERS".into(),
                queue: "orders".into(),
                delivery_delay_seconds: 0,
            },
            QueueProducer {
                binding: "EMAILS".into(),
                queue: "emails".into(),
                delivery_delay_seconds: 60,
            },
        ]
    );
    assert_eq!(
        config.queue_consumers,
        vec![
            QueueConsumer {
                queue: "orders".into(),
                kind: ConsumerKind::Worker,
                max_batch_size: 25,
                max_batch_timeout_ms: 2_500,
                max_retries: 5,
                dead_letter_queue: Some("orders-dlq".into()),
                max_concurrency: Some(4),
                retry_delay_seconds: Some(30),
                visibility_timeout_ms: None,
            },
            // Every default: batch 10, 5 s, 3 retries, autoscaled concurrency.
            QueueConsumer {
                queue: "orders-dlq".into(),
                kind: ConsumerKind::Worker,
                max_batch_size: 10,
                max_batch_timeout_ms: 5_000,
                max_retries: 3,
                dead_letter_queue: None,
                max_concurrency: None,
                retry_delay_seconds: None,
                visibility_timeout_ms: None,
            },
            QueueConsumer {
                queue: "exports".into(),
                kind: ConsumerKind::HttpPull,
                max_batch_size: 10,
                max_batch_timeout_ms: 5_000,
                max_retries: 3,
                dead_letter_queue: None,
                max_concurrency: None,
                retry_delay_seconds: None,
                visibility_timeout_ms: Some(60_000),
            },
        ]
    );
    assert_eq!(
        config.workflows,
        vec![
            WorkflowBinding {
                binding: "CHECKOUT_FLOW".into(),
                name: "checkout-flow".into(),
                class_name: "CheckoutWorkflow".into(),
                script_name: None,
            },
            WorkflowBinding {
                binding: "REFUNDS".into(),
                name: "refunds".into(),
                class_name: "RefundWorkflow".into(),
                script_name: Some("payments-worker".into()),
            },
        ]
    );
    assert_eq!(
        crons(&config),
        vec!["*/15 * * * *", "0 3 * * SUN", "59 23 LW * *"]
    );
    assert_eq!(
        config.services,
        vec![
            ServiceBinding {
                binding: "AUTH".into(),
                service: "auth-worker".into(),
                entrypoint: None,
                environment: None,
                props: None,
            },
            ServiceBinding {
                binding: "PAYMENTS".into(),
                service: "payments-worker".into(),
                entrypoint: Some("PaymentsApi".into()),
                environment: Some("production".into()),
                props: Some(json!({"tenant": "shop"})),
            },
        ]
    );
    assert_eq!(config.required_secrets, Some(vec!["STRIPE_KEY".to_owned()]));
    assert_eq!(config.dev.ip.as_deref(), Some("0.0.0.0"));
    assert_eq!(config.dev.port, Some(9000));

    let burrow = &config.burrow;
    assert_eq!(burrow.data_dir, Some(fixture("data")));
    assert_eq!(burrow.shards, 4);
    assert_eq!(burrow.durability, Durability::Relaxed);
    assert_eq!(burrow.admin_address.to_string(), "127.0.0.1:9788");
    assert_eq!(burrow.api_tokens, vec!["burrow-dev-token-0123456789"]);
    assert_eq!(burrow.max_open_objects, 2048);
    assert_eq!(burrow.workflow_max_steps, 20_000);
    assert_eq!(burrow.workflow_retention_days, 7);

    // account_id, workers_dev, routes and $schema are deploy-only: no warnings at all.
    assert_eq!(warnings, Vec::<String>::new());

    let kinds: Vec<(String, BindingKind)> = config
        .bindings()
        .into_iter()
        .map(|(name, kind, _)| (name, kind))
        .collect();
    assert!(kinds.contains(&("CART".into(), BindingKind::DurableObject)));
    assert!(kinds.contains(&("SESSIONS".into(), BindingKind::KvNamespace)));
    assert!(kinds.contains(&("EMAILS".into(), BindingKind::Queue)));
    assert!(kinds.contains(&("REFUNDS".into(), BindingKind::Workflow)));
    assert!(kinds.contains(&("PAYMENTS".into(), BindingKind::Service)));
    assert!(kinds.contains(&("RATIO".into(), BindingKind::Var)));
    assert_eq!(kinds.len(), 2 + 2 + 2 + 2 + 2 + 6);
}

#[test]
fn full_jsonc_with_comments_and_trailing_commas_equals_the_toml() {
    let (toml, _) = parse_fixture("full.toml", None);
    let (jsonc, warnings) = parse_fixture("full.jsonc", None);
    assert_eq!(jsonc, toml);
    assert_eq!(warnings, Vec::<String>::new());
    let (toml, _) = parse_fixture("full.toml", Some("staging"));
    let (jsonc, _) = parse_fixture("full.jsonc", Some("staging"));
    assert_eq!(jsonc, toml);
}

#[test]
fn environment_overrides_inheritable_keys_and_drops_non_inheritable_ones() {
    let (config, warnings) = parse_fixture("full.toml", Some("staging"));
    assert_eq!(config.name.as_deref(), Some("shop-api-staging"));
    // Inherited from the top level.
    assert_eq!(config.main.as_deref(), Some("src/index.ts"));
    assert_eq!(config.compatibility_date.as_deref(), Some("2025-04-01"));
    assert_eq!(config.migrations.len(), 4);
    // Overridden.
    assert_eq!(crons(&config), vec!["0 * * * *"]);
    assert_eq!(config.burrow.durability, Durability::Full);
    assert_eq!(config.burrow.shards, 1);
    assert_eq!(config.vars.len(), 1);
    assert_eq!(config.vars["ENVIRONMENT"], text("staging"));
    assert_eq!(
        config.kv_namespaces[0].id.as_deref(),
        Some("staging-sessions")
    );
    // Not inherited, with wrangler's warning.
    assert!(config.durable_objects.is_empty());
    assert!(config.queue_producers.is_empty());
    assert!(config.queue_consumers.is_empty());
    assert!(config.workflows.is_empty());
    assert!(config.services.is_empty());
    for key in [
        "durable_objects",
        "queues",
        "workflows",
        "services",
        "secrets",
    ] {
        assert!(
            has_warning(&warnings, &[key, "not inherited", "env.staging"]),
            "{key}: {warnings:#?}"
        );
    }
    assert!(!has_warning(&warnings, &["vars"]), "{warnings:#?}");
}

#[test]
fn environment_without_a_name_gets_the_top_level_name_suffixed() {
    let (config, warnings) = parse_fixture("task-service.toml", Some("production"));
    assert_eq!(config.name.as_deref(), Some("my-worker-production"));
    assert_eq!(config.vars["LOG_LEVEL"], text("warn"));
    assert_eq!(
        config.kv_namespaces[0].id.as_deref(),
        Some("prod-kv-namespace-id")
    );
    assert_eq!(crons(&config).len(), 4);
    assert!(config.durable_objects.is_empty());
    assert!(has_warning(
        &warnings,
        &["durable_objects exists at the top level"]
    ));
}

#[test]
fn unknown_environment_is_an_error_naming_the_defined_ones() {
    let path = fixture("full.toml");
    let error = load_files(&[path], &options(Some("prod"))).expect_err("no env.prod");
    let message = error.to_string();
    assert!(matches!(error, Error::UnknownEnvironment { .. }));
    assert!(message.contains("full.toml"), "{message}");
    assert!(message.contains("\"prod\""), "{message}");
    assert!(message.contains("staging"), "{message}");

    // A file with no environments at all: a warning, and the top level is used.
    let (config, warnings) = parse_fixture("jobs.toml", Some("dev"));
    assert_eq!(config.name.as_deref(), Some("agent-worker-dev"));
    assert_eq!(config.durable_objects.len(), 1);
    assert!(has_warning(&warnings, &["no environment named \"dev\""]));
}

#[test]
fn seed_grove_durable_objects_queues_with_dlq_workflows_crons_kv() {
    let (config, warnings) = parse_fixture("grove.toml", None);
    assert_eq!(config.name.as_deref(), Some("grove-engine"));
    assert_eq!(config.vars["DIGEST_HOUR_UTC"], VarValue::Json(json!(7)));
    assert_eq!(config.durable_objects.len(), 2);
    assert_eq!(config.durable_object_classes().len(), 2);
    assert_eq!(config.kv_namespaces[0].binding, "CACHE");
    assert_eq!(config.queue_producers.len(), 6);
    let consumer = |queue: &str| {
        config
            .queue_consumers
            .iter()
            .find(|consumer| consumer.queue == queue)
            .unwrap_or_else(|| panic!("consumer for {queue}"))
    };
    assert_eq!(consumer("amber-processing-queue").max_retries, 5);
    assert_eq!(
        consumer("amber-processing-queue")
            .dead_letter_queue
            .as_deref(),
        Some("amber-dlq")
    );
    assert_eq!(consumer("ivy-transactional").max_batch_size, 1);
    assert_eq!(consumer("ivy-transactional").retry_delay_seconds, Some(60));
    assert_eq!(consumer("ivy-digest").max_batch_size, 100);
    assert_eq!(consumer("ivy-digest").max_batch_timeout_ms, 60_000);
    assert_eq!(consumer("ivy-digest").max_concurrency, Some(2));
    assert_eq!(consumer("petal-scan-queue").max_batch_size, 5);
    assert_eq!(consumer("moderation-dlq").max_batch_size, 1);
    assert_eq!(config.workflows.len(), 2);
    assert_eq!(config.workflows[1].class_name, "ModerationWorkflow");
    assert_eq!(crons(&config), vec!["0 7 * * *", "0 8 * * MON"]);
    // R2, D1 and Workers AI: named together in exactly one warning.
    let unsupported: Vec<&String> = warnings
        .iter()
        .filter(|warning| warning.contains("not supported"))
        .collect();
    assert_eq!(unsupported.len(), 1, "{warnings:#?}");
    for key in ["r2_buckets", "d1_databases", "ai"] {
        assert!(unsupported[0].contains(key), "{}", unsupported[0]);
    }
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
}

#[test]
fn seed_flowcraft_jsonc_pull_consumer_and_coordination_object() {
    let (config, warnings) = parse_fixture("flowcraft.jsonc", None);
    assert_eq!(config.name.as_deref(), Some("flowcraft-worker"));
    assert_eq!(
        config.kv_namespaces[0].id.as_deref(),
        Some("your-status-namespace-id")
    );
    assert_eq!(config.queue_producers[0].binding, "JOBS");
    let consumer = &config.queue_consumers[0];
    assert_eq!(consumer.kind, ConsumerKind::HttpPull);
    assert_eq!(consumer.visibility_timeout_ms, Some(300_000));
    assert_eq!(
        config.durable_object_classes()["DurableObjectCoordinationStore"],
        StorageBackend::Sqlite
    );
    assert_eq!(crons(&config), vec!["*/5 * * * *"]);
    assert!(warnings.is_empty(), "{warnings:#?}");
}

#[test]
fn seed_task_service_vars_kv_services_queues_crons() {
    let (config, warnings) = parse_fixture("task-service.toml", None);
    assert_eq!(config.vars["API_BASE_URL"], text("https://api.example.com"));
    assert_eq!(config.durable_objects[0].class_name, "TaskQueue");
    assert_eq!(
        config.services[1].entrypoint.as_deref(),
        Some("TaskService")
    );
    let consumer = &config.queue_consumers[0];
    assert_eq!(consumer.max_batch_timeout_ms, 30_000);
    assert_eq!(consumer.max_concurrency, Some(1));
    assert_eq!(consumer.dead_letter_queue.as_deref(), Some("failed-tasks"));
    assert_eq!(config.queue_consumers[1].max_batch_size, 1);
    assert_eq!(
        crons(&config),
        vec!["0 */6 * * *", "0 0 * * *", "0 0 * * 2", "*/15 * * * *"]
    );
    assert!(warnings.is_empty(), "{warnings:#?}");
}

#[test]
fn seed_jobs_one_object_per_job() {
    let (config, warnings) = parse_fixture("jobs.toml", None);
    assert_eq!(config.durable_objects[0].name, "AGENT_JOB");
    assert_eq!(config.vars["MAX_ITERATIONS"], VarValue::Json(json!(10)));
    assert!(warnings.is_empty(), "{warnings:#?}");
}

/// Parses an inline `wrangler.toml`.
fn parse_toml(text: &str, environment: Option<&str>) -> Result<(WorkerConfig, Vec<String>), Error> {
    parse_worker(
        text,
        Format::Toml,
        Path::new("wrangler.toml"),
        &options(environment),
    )
}

#[test]
fn every_invalid_value_names_file_key_and_allowed_values() {
    const CONSUMER: &str = "[[queues.consumers]]\nqueue = \"jobs\"\n";
    // (file text, --env, key path, fragment of the message after the key)
    let consumer = |line: &str| format!("{CONSUMER}{line}\n");
    let cases: Vec<(String, Option<&str>, &str, &str)> = vec![
        (consumer("max_batch_size = 500"), None, "queues.consumers[0].max_batch_size", "= 500 is out of range (allowed 1..=100)"),
        (consumer("max_batch_size = 0"), None, "queues.consumers[0].max_batch_size", "= 0 is out of range (allowed 1..=100)"),
        (consumer("max_batch_size = \"ten\""), None, "queues.consumers[0].max_batch_size", "has the wrong type: a string (allowed an integer in 1..=100)"),
        (consumer("max_batch_size = 2.5"), None, "queues.consumers[0].max_batch_size", "(allowed an integer in 1..=100)"),
        (consumer("max_batch_timeout = 61"), None, "queues.consumers[0].max_batch_timeout", "= 61 is out of range (allowed 0..=60)"),
        (consumer("max_batch_timeout = -1"), None, "queues.consumers[0].max_batch_timeout", "is out of range (allowed 0..=60)"),
        (consumer("max_retries = 101"), None, "queues.consumers[0].max_retries", "= 101 is out of range (allowed 0..=100)"),
        (consumer("max_concurrency = 251"), None, "queues.consumers[0].max_concurrency", "= 251 is out of range (allowed 1..=250)"),
        (consumer("max_concurrency = 0"), None, "queues.consumers[0].max_concurrency", "(allowed 1..=250)"),
        (consumer("retry_delay = 43201"), None, "queues.consumers[0].retry_delay", "(allowed 0..=43200)"),
        (consumer("visibility_timeout_ms = 0"), None, "queues.consumers[0].visibility_timeout_ms", "(allowed 1..=43200000)"),
        (consumer("type = \"push\""), None, "queues.consumers[0].type", "(allowed \"worker\" or \"http_pull\")"),
        (consumer("dead_letter_queue = \"jobs\""), None, "queues.consumers[0].dead_letter_queue", "own queue (allowed: any other queue)"),
        (format!("{CONSUMER}{CONSUMER}"), None, "queues.consumers[1].queue", "already has a consumer at queues.consumers[0].queue"),
        ("[[queues.consumers]]\nmax_batch_size = 5\n".into(), None, "queues.consumers[0].queue", "is missing (allowed a non-empty string)"),
        ("[[queues.producers]]\nbinding = \"Q\"\nqueue = \"q\"\ndelivery_delay = -1\n".into(), None, "queues.producers[0].delivery_delay", "(allowed 0..=43200)"),
        ("queues = [\"a\"]\n".into(), None, "queues", "has the wrong type: an array (allowed a table)"),
        ("[triggers]\ncrons = [\"0 0 * * 0\"]\n".into(), None, "triggers.crons[0]", "is not a valid cron expression: day-of-week field \"0\": 0 is out of range; Sunday is 1 or SUN (allowed 1-7 (1 = Sunday) or SUN-SAT"),
        ("[triggers]\ncrons = [\"61 * * * *\"]\n".into(), None, "triggers.crons[0]", "minute field \"61\": 61 is out of range (allowed 0-59)"),
        ("[triggers]\ncrons = [\"* * * *\"]\n".into(), None, "triggers.crons[0]", "found 4 fields"),
        ("[triggers]\ncrons = [\"0 9 * * MON-FRI\", \"0 9 * * 2-6\"]\n".into(), None, "triggers.crons[1]", "same schedule as \"0 9 * * MON-FRI\" (allowed: each schedule once)"),
        ("[triggers]\ncrons = \"* * * * *\"\n".into(), None, "triggers.crons", "has the wrong type: a string (allowed an array of strings)"),
        ("[[kv_namespaces]]\nbinding = \"my-kv\"\n".into(), None, "kv_namespaces[0].binding", "is not a valid binding name (allowed letters, digits, _ and $"),
        ("[[kv_namespaces]]\nbinding = \"KV\"\nid = \"\"\n".into(), None, "kv_namespaces[0].id", "is empty (allowed a non-empty string)"),
        // seeds/004 binds TASK_QUEUE twice (a Durable Object and a queue producer).
        ("[[durable_objects.bindings]]\nname = \"TASK_QUEUE\"\nclass_name = \"TaskQueue\"\n[[queues.producers]]\nbinding = \"TASK_QUEUE\"\nqueue = \"tasks\"\n".into(), None, "queues.producers[0].binding", "duplicates the binding name at durable_objects.bindings[0].name (allowed: each binding name once)"),
        ("[vars]\nCACHE = \"x\"\n[[kv_namespaces]]\nbinding = \"CACHE\"\n".into(), None, "kv_namespaces[0].binding", "duplicates the binding name at vars.CACHE"),
        ("[[durable_objects.bindings]]\nname = \"COUNTER\"\n".into(), None, "durable_objects.bindings[0].class_name", "is missing (allowed a non-empty string)"),
        ("[[durable_objects.bindings]]\nname = \"COUNTER\"\nclass_name = \"Counter-Class\"\n".into(), None, "durable_objects.bindings[0].class_name", "is not a valid class name"),
        ("[[migrations]]\ntag = \"v1\"\n[[migrations]]\ntag = \"v1\"\n".into(), None, "migrations[1].tag", "duplicates migrations[0].tag (allowed: a tag used once)"),
        ("[[migrations]]\nnew_classes = [\"A\"]\n".into(), None, "migrations[0].tag", "is missing"),
        ("[[migrations]]\ntag = \"v1\"\nrenamed_classes = [{ from = \"Old\", to = \"New\" }]\n".into(), None, "migrations[0].renamed_classes[0].from", "is not a class created by an earlier migration (allowed: none exist yet)"),
        ("[[migrations]]\ntag = \"v1\"\nnew_classes = [\"A\"]\n[[migrations]]\ntag = \"v2\"\ndeleted_classes = [\"B\"]\n".into(), None, "migrations[1].deleted_classes[0]", "(allowed: A)"),
        ("[[migrations]]\ntag = \"v1\"\nnew_classes = [\"A\"]\nnew_sqlite_classes = [\"A\"]\n".into(), None, "migrations[0].new_sqlite_classes", "already created"),
        ("[[workflows]]\nbinding = \"W\"\nname = \"bad name\"\nclass_name = \"W\"\n".into(), None, "workflows[0].name", "is not a valid Workflow name (allowed 1-64 letters"),
        ("[[workflows]]\nbinding = \"A\"\nname = \"flow\"\nclass_name = \"A\"\n[[workflows]]\nbinding = \"B\"\nname = \"flow\"\nclass_name = \"B\"\n".into(), None, "workflows[1].name", "duplicates workflows[0].name"),
        ("[[services]]\nbinding = \"AUTH\"\n".into(), None, "services[0].service", "is missing"),
        ("name = \"My Worker\"\n".into(), None, "name", "is not a valid Worker name (allowed lowercase letters, digits, - and _"),
        ("main = 5\n".into(), None, "main", "has the wrong type: an integer (allowed a string)"),
        ("compatibility_date = \"2024-13-01\"\n".into(), None, "compatibility_date", "is not a date (allowed YYYY-MM-DD)"),
        ("compatibility_flags = \"nodejs_compat\"\n".into(), None, "compatibility_flags", "(allowed an array of strings)"),
        ("vars = \"x\"\n".into(), None, "vars", "has the wrong type: a string (allowed a table)"),
        ("[dev]\nport = 70000\n".into(), None, "dev.port", "(allowed 0..=65535)"),
        ("[burrow]\nshards = 0\n".into(), None, "burrow.shards", "= 0 is out of range (allowed 1..=1024)"),
        ("[burrow]\ndurability = \"fast\"\n".into(), None, "burrow.durability", "(allowed \"full\" or \"relaxed\")"),
        ("[burrow]\nadmin_address = \"localhost\"\n".into(), None, "burrow.admin_address", "(allowed IP:PORT"),
        ("[burrow]\napi_tokens = [\"short\"]\n".into(), None, "burrow.api_tokens[0]", "(allowed: at least 16 printable ASCII characters"),
        ("[burrow]\nmax_open_objects = 0\n".into(), None, "burrow.max_open_objects", "(allowed 1..=1000000)"),
        ("[burrow]\nworkflow_retention_days = 0\n".into(), None, "burrow.workflow_retention_days", "(allowed 1..=3650)"),
        ("[env]\nstaging = 1\n".into(), Some("staging"), "env.staging", "(allowed a table)"),
        // Values from an environment carry the environment's path.
        ("[env.staging]\nqueues.consumers = [{ queue = \"q\", max_batch_size = 500 }]\n".into(), Some("staging"), "env.staging.queues.consumers[0].max_batch_size", "= 500 is out of range (allowed 1..=100)"),
    ];
    for (text, environment, key, fragment) in &cases {
        let error = parse_toml(text, *environment).expect_err(text);
        let message = error.to_string();
        let line = message
            .lines()
            .find(|line| line.starts_with(&format!("wrangler.toml: {key} ")))
            .unwrap_or_else(|| panic!("no line for {key} in {message:?} (from {text:?})"));
        assert!(
            line.contains(fragment),
            "{line:?} should contain {fragment:?}"
        );
        assert!(
            line.contains("allowed"),
            "{line:?} should name what is allowed"
        );
    }
}

#[test]
fn the_exact_message_for_an_out_of_range_batch_size() {
    let error = parse_toml(
        "[[queues.consumers]]\nqueue = \"q\"\nmax_batch_size = 500\n",
        None,
    )
    .expect_err("500 is too big");
    assert_eq!(
        error.to_string(),
        "wrangler.toml: queues.consumers[0].max_batch_size = 500 is out of range (allowed 1..=100)"
    );
}

#[test]
fn every_problem_in_a_file_is_reported() {
    let text = "\
name = \"Bad Name\"
[[queues.consumers]]
queue = \"q\"
max_batch_size = 500
max_retries = -1
[triggers]
crons = [\"0 0 * * 0\"]
";
    let Err(Error::Invalid { file, problems }) = parse_toml(text, None) else {
        panic!("expected an invalid-values error");
    };
    assert_eq!(file, Path::new("wrangler.toml"));
    let keys: Vec<&str> = problems
        .iter()
        .map(|problem| problem.key.as_str())
        .collect();
    assert_eq!(
        keys,
        vec![
            "name",
            "triggers.crons[0]",
            "queues.consumers[0].max_batch_size",
            "queues.consumers[0].max_retries",
        ]
    );
}

#[test]
fn unknown_keys_warn_with_their_path_and_never_fail() {
    let text = "\
name = \"w\"
mystery = 1
[[queues.consumers]]
queue = \"q\"
max_batch_sizee = 5
[[kv_namespaces]]
binding = \"KV\"
remote = true
[[durable_objects.bindings]]
name = \"COUNTER\"
class_name = \"Counter\"
[[durable_objects.bindings]]
name = \"OTHER\"
class_name = \"Other\"
script_name = \"other-worker\"
[build]
command = \"npm run build\"
[[r2_buckets]]
binding = \"B\"
bucket_name = \"b\"
[assets]
directory = \"public\"
";
    let (config, warnings) = parse_toml(text, None).expect("warnings only");
    assert_eq!(config.queue_consumers[0].max_batch_size, 10);
    assert!(
        has_warning(&warnings, &["unknown key mystery"]),
        "{warnings:#?}"
    );
    assert!(has_warning(
        &warnings,
        &["unknown key queues.consumers[0].max_batch_sizee"]
    ));
    assert!(has_warning(&warnings, &["kv_namespaces[0].remote = true"]));
    assert!(has_warning(&warnings, &["settings not supported", "build"]));
    assert!(has_warning(
        &warnings,
        &["bindings not supported", "r2_buckets", "assets"]
    ));
    // Like wrangler: a local class no migration creates is a warning; script_name needs none.
    assert!(
        has_warning(&warnings, &["(Counter)", "no migration creates"]),
        "{warnings:#?}"
    );
    assert!(!has_warning(&warnings, &["Other"]));
    assert_eq!(warnings.len(), 6, "{warnings:#?}");
}

#[test]
fn syntax_errors_give_line_and_column() {
    let toml = parse_toml("name = \"w\"\n\n[vars\nA = 1\n", None).expect_err("bad TOML");
    let Error::Syntax { line, column, .. } = &toml else {
        panic!("expected a syntax error, got {toml:?}");
    };
    assert_eq!((*line, *column), (3, 6), "{toml}");
    assert!(
        toml.to_string().starts_with("wrangler.toml:3:6: "),
        "{toml}"
    );

    let json = "{\n  // fine\n  \"name\": \"w\",\n  \"main\" \"src/index.js\"\n}";
    let error = parse_worker(
        json,
        Format::Jsonc,
        Path::new("wrangler.jsonc"),
        &options(None),
    )
    .expect_err("bad JSON");
    assert!(
        error.to_string().starts_with("wrangler.jsonc:4:10: "),
        "{error}"
    );

    let error = parse_worker(
        "{\n /* open",
        Format::Json,
        Path::new("wrangler.json"),
        &options(None),
    )
    .expect_err("unterminated comment");
    assert_eq!(
        error.to_string(),
        "wrangler.json:2:2: unterminated /* comment"
    );

    let error = parse_worker(
        "[1]",
        Format::Json,
        Path::new("wrangler.json"),
        &options(None),
    )
    .expect_err("not an object");
    assert!(
        error.to_string().contains("must be a JSON object"),
        "{error}"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create dir");
    }
    fs::write(&path, text).expect("write");
    path
}

#[test]
fn lookup_order_follows_wrangler() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        find_config(dir.path()),
        Err(Error::NotFound { .. })
    ));
    write(dir.path(), "wrangler.toml", "name = \"from-toml\"\n");
    assert_eq!(
        find_config(dir.path()).expect("found"),
        dir.path().join("wrangler.toml")
    );
    write(
        dir.path(),
        "wrangler.jsonc",
        "{ \"name\": \"from-jsonc\", }",
    );
    assert_eq!(
        find_config(dir.path()).expect("found"),
        dir.path().join("wrangler.jsonc")
    );
    write(dir.path(), "wrangler.json", "{ \"name\": \"from-json\" }");
    let loaded = load_dir(dir.path(), &options(None)).expect("loads");
    assert_eq!(loaded.primary.config.name.as_deref(), Some("from-json"));
    assert_eq!(loaded.primary.format, Format::Json);

    let missing = dir.path().join("missing");
    let error = load_dir(&missing, &options(None)).expect_err("missing dir");
    assert!(error.to_string().contains("missing"), "{error}");
}

#[test]
fn dev_vars_are_secrets_that_override_vars() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "wrangler.toml",
        "name = \"w\"\nmain = \"src/index.js\"\n[vars]\nAPI_URL = \"https://prod\"\nLEVEL = 3\n[env.staging]\nvars = { API_URL = \"https://staging\" }\n",
    );
    write(dir.path(), "src/index.js", "export default {}\n");
    write(
        dir.path(),
        ".dev.vars",
        "API_URL=http://localhost:3000\nSECRET_KEY=\"s3cret\"\n",
    );
    write(
        dir.path(),
        ".dev.vars.staging",
        "SECRET_KEY=staging-secret\n",
    );

    let loaded = load_dir(dir.path(), &options(None)).expect("loads");
    let worker = &loaded.primary;
    assert_eq!(worker.secrets_files, vec![dir.path().join(".dev.vars")]);
    assert_eq!(worker.secrets["SECRET_KEY"], "s3cret");
    let values = worker.env_values();
    assert_eq!(values["API_URL"], text("http://localhost:3000"));
    assert_eq!(values["LEVEL"], VarValue::Json(json!(3)));
    assert_eq!(values["SECRET_KEY"], text("s3cret"));
    assert_eq!(worker.main_path(), Some(dir.path().join("src/index.js")));
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);

    // With --env staging, .dev.vars.staging is preferred over .dev.vars.
    let loaded = load_dir(dir.path(), &options(Some("staging"))).expect("loads");
    let values = loaded.primary.env_values();
    assert_eq!(values["API_URL"], text("https://staging"));
    assert_eq!(values["SECRET_KEY"], text("staging-secret"));
    assert_eq!(loaded.primary.config.name.as_deref(), Some("w-staging"));
}

#[test]
fn env_files_are_the_fallback_and_required_secrets_filter() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "wrangler.toml",
        "name = \"w\"\n[vars]\nMODE = \"x\"\n[secrets]\nrequired = [\"TOKEN\", \"MISSING_ONE\"]\n",
    );
    write(dir.path(), ".env", "TOKEN=a\nMODE=from-env\nUNDECLARED=z\n");
    write(dir.path(), ".env.local", "TOKEN=b\n");
    let loaded = load_dir(dir.path(), &options(None)).expect("loads");
    let worker = &loaded.primary;
    assert_eq!(worker.secrets_files.len(), 2);
    assert_eq!(worker.secrets.get("TOKEN").map(String::as_str), Some("b"));
    assert_eq!(
        worker.secrets.get("MODE").map(String::as_str),
        Some("from-env")
    );
    assert!(!worker.secrets.contains_key("UNDECLARED"));
    assert!(has_warning(
        &loaded.warnings,
        &["missing required secrets: MISSING_ONE"]
    ));
    assert!(has_warning(&loaded.warnings, &["wrangler.toml: "]));
}

#[test]
fn several_workers_bound_by_service_bindings_and_script_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let api = write(
        dir.path(),
        "api/wrangler.toml",
        "name = \"api\"\n[[services]]\nbinding = \"AUTH\"\nservice = \"auth\"\n[[services]]\nbinding = \"BILLING\"\nservice = \"billing\"\n[[durable_objects.bindings]]\nname = \"SESSIONS\"\nclass_name = \"Session\"\nscript_name = \"auth\"\n[[durable_objects.bindings]]\nname = \"GHOST\"\nclass_name = \"Ghost\"\nscript_name = \"auth\"\n",
    );
    let auth = write(
        dir.path(),
        "auth/wrangler.jsonc",
        "{\n \"name\": \"auth\",\n \"migrations\": [{\"tag\": \"v1\", \"new_sqlite_classes\": [\"Session\"]}],\n \"burrow\": {\"shards\": 2},\n}",
    );
    let loaded = load_files(&[api.clone(), auth.clone()], &options(None)).expect("loads");
    assert_eq!(loaded.primary.name(), "api");
    assert_eq!(loaded.auxiliary.len(), 1);
    assert_eq!(
        loaded
            .worker_named("auth")
            .map(|worker| worker.file.clone()),
        Some(auth.clone())
    );
    assert_eq!(loaded.workers().count(), 2);
    let warnings = &loaded.warnings;
    assert!(
        has_warning(warnings, &["BILLING", "\"billing\"", "not loaded"]),
        "{warnings:#?}"
    );
    assert!(!has_warning(warnings, &["AUTH "]), "{warnings:#?}");
    assert!(
        has_warning(warnings, &["GHOST", "no migration of Worker \"auth\""]),
        "{warnings:#?}"
    );
    assert!(!has_warning(warnings, &["SESSIONS"]), "{warnings:#?}");
    assert!(has_warning(
        warnings,
        &["[burrow] is read from the first configuration only"]
    ));
    assert_eq!(warnings.len(), 3, "{warnings:#?}");

    // Two Workers with one name, or two consumers of one queue, conflict.
    let twin = write(
        dir.path(),
        "twin/wrangler.toml",
        "name = \"auth\"\n[[queues.consumers]]\nqueue = \"q\"\n",
    );
    let other = write(
        dir.path(),
        "other/wrangler.toml",
        "name = \"other\"\n[[queues.consumers]]\nqueue = \"q\"\n",
    );
    let error = load_files(
        &[api.clone(), auth.clone(), twin.clone(), other],
        &options(None),
    )
    .expect_err("conflicts");
    let message = error.to_string();
    assert!(
        message.contains("name = \"auth\" is also the name of the Worker in"),
        "{message}"
    );
    assert!(
        message.contains("queue = \"q\" already has a consumer in"),
        "{message}"
    );

    let unnamed = write(dir.path(), "unnamed/wrangler.toml", "main = \"x.js\"\n");
    let error = load_files(&[api, unnamed], &options(None)).expect_err("unnamed auxiliary");
    assert!(error.to_string().contains("name is missing"), "{error}");
}
