//! `[limits]` (the Worker's resource limits), `[dev]` (wrangler's local listener settings) and
//! `[burrow]` (Burrow's own settings).

use std::net::SocketAddr;
use std::path::Path;

use crate::model::{BurrowSettings, DevSettings, Durability, WorkerLimits};
use crate::reader::{Diagnostics, Table};

/// `[limits]`: `cpu_ms` (1..=300,000, Cloudflare's range); `subrequests` is accepted and not
/// enforced yet.
pub(super) fn limits(diagnostics: &mut Diagnostics, root: &mut Table<'_>) -> WorkerLimits {
    let Some(mut table) = root.table(diagnostics, "limits") else {
        return WorkerLimits::default();
    };
    let limits = WorkerLimits {
        cpu_ms: table
            .integer(diagnostics, "cpu_ms", 1..=300_000)
            .map(|cpu_ms| cpu_ms as u64),
    };
    table.ignore(&["subrequests"]);
    table.finish(diagnostics);
    limits
}

pub(super) fn dev(diagnostics: &mut Diagnostics, root: &mut Table<'_>) -> DevSettings {
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

pub(super) fn burrow(
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
