//! `durable_objects.bindings` and `migrations`: the classes a Worker defines, checked in order
//! (a migration may only rename or delete a class that an earlier one created).

use std::collections::BTreeMap;

use crate::model::{DurableObjectBinding, Migration, RenamedClass, TransferredClass, WorkerConfig};
use crate::reader::{Diagnostics, Table};

use super::{binding_name, class_name, class_name_problem};

pub(super) fn durable_objects(
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

pub(super) fn migrations(diagnostics: &mut Diagnostics, root: &mut Table<'_>) -> Vec<Migration> {
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

/// Like wrangler: a Durable Object binding to a class of this Worker that no migration creates
/// is a warning (the class would have no namespace on Cloudflare).
pub(super) fn check_durable_object_migrations(
    diagnostics: &mut Diagnostics,
    config: &WorkerConfig,
) {
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
