//! wrangler `migrations` applied to namespaces: creation, renames that keep every ID, deletions
//! recorded for the runtime, re-application as a no-op, and each inconsistency refused with a
//! message naming the tag and the class, without changing anything.

use std::fs;

use burrow_config::{DurableObjectBinding, Migration, RenamedClass, TransferredClass};
use burrow_runtime::namespace::{Applied, Change, DeletedNamespace, Error, Namespaces};

fn migration(tag: &str) -> Migration {
    Migration {
        tag: tag.to_owned(),
        ..Migration::default()
    }
}

fn names(classes: &[&str]) -> Vec<String> {
    classes.iter().map(|class| (*class).to_owned()).collect()
}

fn create(tag: &str, sqlite: &[&str]) -> Migration {
    Migration {
        new_sqlite_classes: names(sqlite),
        ..migration(tag)
    }
}

fn rename(tag: &str, from: &str, to: &str) -> Migration {
    Migration {
        renamed_classes: vec![RenamedClass {
            from: from.to_owned(),
            to: to.to_owned(),
        }],
        ..migration(tag)
    }
}

fn delete(tag: &str, classes: &[&str]) -> Migration {
    Migration {
        deleted_classes: names(classes),
        ..migration(tag)
    }
}

fn binding(name: &str, class: &str) -> DurableObjectBinding {
    DurableObjectBinding {
        name: name.to_owned(),
        class_name: class.to_owned(),
        script_name: None,
        environment: None,
    }
}

/// Opens a fresh data directory and applies `migrations`.
fn installed(migrations: &[Migration]) -> (tempfile::TempDir, Namespaces) {
    let temp = tempfile::tempdir().unwrap();
    let mut namespaces = Namespaces::open(temp.path()).unwrap();
    namespaces.apply_migrations(migrations).unwrap();
    (temp, namespaces)
}

#[test]
fn new_classes_create_namespaces_with_their_backend() {
    let temp = tempfile::tempdir().unwrap();
    let mut namespaces = Namespaces::open(temp.path()).unwrap();
    let v1 = Migration {
        new_classes: names(&["Legacy"]),
        new_sqlite_classes: names(&["Counter"]),
        ..migration("v1")
    };
    let applied = namespaces.apply_migrations(&[v1]).unwrap();
    assert_eq!(applied.tags, ["v1"]);
    let legacy = namespaces.namespace("Legacy").unwrap();
    let counter = namespaces.namespace("Counter").unwrap();
    assert!(!legacy.sqlite);
    assert!(counter.sqlite);
    assert_eq!(
        applied.changes,
        [
            Change::Created {
                tag: "v1".into(),
                class_name: "Legacy".into(),
                id: legacy.id,
                sqlite: false
            },
            Change::Created {
                tag: "v1".into(),
                class_name: "Counter".into(),
                id: counter.id,
                sqlite: true
            },
        ]
    );
    assert_eq!(namespaces.namespace("Missing"), None);
    assert!(namespaces.id_factory("Missing").is_none());
}

#[test]
fn reapplying_the_same_migrations_is_a_no_op() {
    let migrations = [create("v1", &["Counter"]), create("v2", &["Room"])];
    let (temp, mut namespaces) = installed(&migrations);
    let path = namespaces.path().to_owned();
    let before = fs::read(&path).unwrap();
    let list = namespaces.list();

    assert_eq!(
        namespaces.apply_migrations(&migrations).unwrap(),
        Applied::default()
    );
    // No migrations configured at all: nothing to do either, as with wrangler.
    assert!(namespaces.apply_migrations(&[]).unwrap().is_empty());
    assert_eq!(fs::read(&path).unwrap(), before, "nothing was rewritten");

    let mut reopened = Namespaces::open(temp.path()).unwrap();
    assert!(reopened.apply_migrations(&migrations).unwrap().is_empty());
    assert_eq!(reopened.list(), list);
}

#[test]
fn later_migrations_apply_on_top_of_earlier_ones() {
    let (temp, namespaces) = installed(&[create("v1", &["Counter"])]);
    let counter = namespaces.namespace("Counter").unwrap();
    drop(namespaces);

    let mut reopened = Namespaces::open(temp.path()).unwrap();
    let applied = reopened
        .apply_migrations(&[create("v1", &["Counter"]), create("v2", &["Room"])])
        .unwrap();
    assert_eq!(applied.tags, ["v2"]);
    assert_eq!(reopened.namespace("Counter").unwrap(), counter);
    assert!(reopened.namespace("Room").is_some());
    assert_eq!(reopened.applied_tags(), ["v1".to_owned(), "v2".to_owned()]);
}

#[test]
fn renamed_classes_keep_the_namespace_and_every_id() {
    let (temp, mut namespaces) = installed(&[create("v1", &["Counter"])]);
    let before = namespaces.namespace("Counter").unwrap();
    let factory = namespaces.id_factory("Counter").unwrap();
    let named = factory.id_from_name("alice");
    let unique = factory.new_unique_id();

    let migrations = [create("v1", &["Counter"]), rename("v2", "Counter", "Tally")];
    let applied = namespaces.apply_migrations(&migrations).unwrap();
    assert_eq!(
        applied.changes,
        [Change::Renamed {
            tag: "v2".into(),
            from: "Counter".into(),
            to: "Tally".into(),
            id: before.id
        }]
    );
    assert_eq!(namespaces.namespace("Counter"), None);
    let after = namespaces.namespace("Tally").unwrap();
    assert_eq!(after.id, before.id);
    assert_eq!(after.unique_key, before.unique_key);
    assert_eq!(after.sqlite, before.sqlite);

    // Across a restart too.
    drop(namespaces);
    let reopened = Namespaces::open(temp.path()).unwrap();
    let factory = reopened.id_factory("Tally").unwrap();
    assert_eq!(factory.id_from_name("alice"), named);
    assert_eq!(factory.id_from_string(&unique.to_string()).unwrap(), unique);
}

#[test]
fn a_renamed_class_keeps_its_explicit_unique_key() {
    let (_temp, mut namespaces) = installed(&[create("v1", &["Counter"])]);
    namespaces
        .set_unique_key("Counter", Some("my-worker-Counter"))
        .unwrap();
    let id = namespaces
        .id_factory("Counter")
        .unwrap()
        .id_from_name("foo");
    namespaces
        .apply_migrations(&[create("v1", &["Counter"]), rename("v2", "Counter", "Tally")])
        .unwrap();
    assert_eq!(
        namespaces.namespace("Tally").unwrap().unique_key,
        "my-worker-Counter"
    );
    assert_eq!(
        namespaces.id_factory("Tally").unwrap().id_from_name("foo"),
        id
    );
}

#[test]
fn deleted_classes_are_recorded_until_the_runtime_forgets_them() {
    let (temp, mut namespaces) = installed(&[create("v1", &["Counter", "Room"])]);
    let counter = namespaces.namespace("Counter").unwrap();
    let migrations = [
        create("v1", &["Counter", "Room"]),
        delete("v2", &["Counter"]),
    ];
    let applied = namespaces.apply_migrations(&migrations).unwrap();
    assert_eq!(
        applied.changes,
        [Change::Deleted {
            tag: "v2".into(),
            class_name: "Counter".into(),
            id: counter.id
        }]
    );
    assert_eq!(namespaces.namespace("Counter"), None);
    assert_eq!(namespaces.namespace_by_id(&counter.id), None);
    let deleted = [DeletedNamespace {
        id: counter.id,
        class_name: "Counter".into(),
        deleted_by_tag: "v2".into(),
    }];
    assert_eq!(namespaces.deleted(), deleted);
    assert_eq!(
        namespaces.list().len(),
        1,
        "only Room is live: {:?}",
        namespaces.list()
    );

    // The record survives a restart, so data removal can resume after a crash.
    drop(namespaces);
    let mut reopened = Namespaces::open(temp.path()).unwrap();
    assert_eq!(reopened.deleted(), deleted);

    // The name can be used again: a new, empty namespace.
    let mut migrations = migrations.to_vec();
    migrations.push(create("v3", &["Counter"]));
    reopened.apply_migrations(&migrations).unwrap();
    let recreated = reopened.namespace("Counter").unwrap();
    assert_ne!(recreated.id, counter.id);
    assert_ne!(recreated.unique_key, counter.unique_key);

    let room = reopened.namespace("Room").unwrap();
    assert!(
        !reopened.forget_deleted(&room.id).unwrap(),
        "live namespaces stay"
    );
    assert!(reopened.forget_deleted(&counter.id).unwrap());
    assert!(!reopened.forget_deleted(&counter.id).unwrap());
    assert!(reopened.deleted().is_empty());
    drop(reopened);
    assert!(Namespaces::open(temp.path()).unwrap().deleted().is_empty());
}

/// Applies `migrations` to a data directory where `setup` was applied, expecting `message`, and
/// checks that nothing changed: neither the file nor the state in memory.
fn refused(setup: &[Migration], migrations: &[Migration], message: &str) -> Error {
    let (_temp, mut namespaces) = installed(setup);
    let path = namespaces.path().to_owned();
    let before_file = fs::read(&path).unwrap();
    let before_list = namespaces.list();
    let error = namespaces.apply_migrations(migrations).unwrap_err();
    assert_eq!(error.to_string(), message);
    assert_eq!(fs::read(&path).unwrap(), before_file, "the file changed");
    assert_eq!(namespaces.list(), before_list, "the state changed");
    assert_eq!(
        namespaces.migration_tag(),
        setup.last().map(|m| m.tag.as_str())
    );
    error
}

#[test]
fn creating_a_class_that_exists_is_refused() {
    let v1 = create("v1", &["Counter"]);
    let error = refused(
        std::slice::from_ref(&v1),
        &[v1.clone(), create("v2", &["Counter"])],
        "migration \"v2\": cannot create class 'Counter': a Durable Object class named 'Counter' \
         already exists",
    );
    assert!(matches!(error, Error::ClassExists { .. }));
}

#[test]
fn renaming_a_class_that_does_not_exist_is_refused() {
    let v1 = create("v1", &["Counter"]);
    refused(
        std::slice::from_ref(&v1),
        &[v1.clone(), rename("v2", "Countr", "Tally")],
        "migration \"v2\": cannot rename class 'Countr' to 'Tally': no Durable Object class \
         'Countr' exists (no earlier migration created it, or one renamed or deleted it)",
    );
}

#[test]
fn renaming_onto_an_existing_class_is_refused() {
    let v1 = create("v1", &["Counter", "Tally"]);
    refused(
        std::slice::from_ref(&v1),
        &[v1.clone(), rename("v2", "Counter", "Tally")],
        "migration \"v2\": cannot rename class 'Counter' to 'Tally': a Durable Object class named \
         'Tally' already exists",
    );
}

#[test]
fn deleting_an_unknown_class_is_refused() {
    let v1 = create("v1", &["Counter"]);
    refused(
        std::slice::from_ref(&v1),
        &[v1.clone(), delete("v2", &["Ghost"])],
        "migration \"v2\": cannot delete class 'Ghost': no Durable Object class 'Ghost' exists (no \
         earlier migration created it, or one renamed or deleted it)",
    );
}

#[test]
fn a_class_twice_in_one_migration_is_refused() {
    let both = Migration {
        new_sqlite_classes: names(&["Counter"]),
        deleted_classes: names(&["Counter"]),
        ..migration("v1")
    };
    refused(
        &[],
        &[both],
        "migration \"v1\": class 'Counter' cannot be the target of more than one migration (it \
         appears more than once in this migration)",
    );
    let onto_itself = rename("v2", "Counter", "Counter");
    let v1 = create("v1", &["Counter"]);
    refused(
        std::slice::from_ref(&v1),
        &[v1.clone(), onto_itself],
        "migration \"v2\": class 'Counter' cannot be the target of more than one migration (it \
         appears more than once in this migration)",
    );
}

#[test]
fn transferred_classes_are_refused_as_unsupported() {
    let transfer = Migration {
        transferred_classes: vec![TransferredClass {
            from: "Counter".into(),
            from_script: "old-worker".into(),
            to: "Counter".into(),
        }],
        ..migration("v1")
    };
    let error = refused(
        &[],
        &[transfer],
        "migration \"v1\": transferred_classes is not supported (class 'Counter' from 'Counter' of \
         Worker 'old-worker'): Burrow cannot move another Worker's objects. Use new_sqlite_classes \
         for a fresh class, or renamed_classes within one Worker",
    );
    assert!(matches!(error, Error::TransferUnsupported { .. }));
}

#[test]
fn bad_tags_are_refused() {
    refused(
        &[],
        &[create("v1", &["A"]), create("v1", &["B"])],
        "migration tag \"v1\" appears more than once in `migrations`; every migration needs a \
         unique tag",
    );
    refused(
        &[],
        &[create("v1", &["A"]), create("", &["B"])],
        "migration number 2 has an empty `tag`; every migration needs a unique tag",
    );
    refused(
        &[],
        &[create("v1", &[""])],
        "migration \"v1\": a class name is empty",
    );
}

#[test]
fn a_configuration_without_the_last_applied_tag_is_refused() {
    let v1 = create("v1", &["Counter"]);
    let v2 = create("v2", &["Room"]);
    let error = refused(
        &[v1.clone(), v2],
        // v2 was deleted from the configuration and replaced.
        &[v1, create("v2b", &["Room"])],
        "this data directory's last applied migration tag \"v2\" was not found in your \
         `migrations`. You may have already deleted it. Keep every applied migration in the list, \
         in order, and add new ones at the end",
    );
    assert!(matches!(error, Error::TagNotFound { .. }));
}

#[test]
fn a_failing_migration_leaves_the_ones_before_it_unapplied() {
    // v2 is fine on its own; v3 fails; so neither is applied.
    let v1 = create("v1", &["Counter"]);
    let migrations = [
        v1.clone(),
        create("v2", &["Room"]),
        delete("v3", &["Ghost"]),
    ];
    refused(
        std::slice::from_ref(&v1),
        &migrations,
        "migration \"v3\": cannot delete class 'Ghost': no Durable Object class 'Ghost' exists (no \
         earlier migration created it, or one renamed or deleted it)",
    );
}

#[test]
fn a_binding_to_a_class_no_migration_creates_is_refused() {
    let (_temp, namespaces) = installed(&[create("v1", &["Counter"])]);
    namespaces
        .check_bindings(&[binding("COUNTER", "Counter")])
        .unwrap();
    let error = namespaces
        .check_bindings(&[binding("COUNTER", "Counter"), binding("ROOM", "Room")])
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Cannot create binding for class 'Room' because it is not currently configured to \
         implement Durable Objects. Ensure a --new-class migration has been applied to it. \
         (binding 'ROOM'; add a [[migrations]] entry with new_sqlite_classes = [\"Room\"])"
    );
    // A binding to another Worker's class is that Worker's business.
    let elsewhere = DurableObjectBinding {
        script_name: Some("other-worker".into()),
        ..binding("ROOM", "Room")
    };
    namespaces.check_bindings(&[elsewhere]).unwrap();
}

#[test]
fn deleting_a_class_that_is_still_bound_changes_nothing() {
    let (_temp, mut namespaces) = installed(&[create("v1", &["Counter"])]);
    let path = namespaces.path().to_owned();
    let before = fs::read(&path).unwrap();
    let migrations = [create("v1", &["Counter"]), delete("v2", &["Counter"])];
    let error = namespaces
        .apply_config(&migrations, &[binding("COUNTER", "Counter")])
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Cannot apply --delete-class migration to class 'Counter' without also removing the \
         binding that references it. (binding 'COUNTER')"
    );
    assert_eq!(fs::read(&path).unwrap(), before);
    assert!(namespaces.namespace("Counter").is_some());
    assert_eq!(namespaces.migration_tag(), Some("v1"));

    // Without the binding, the deletion goes through.
    let applied = namespaces.apply_config(&migrations, &[]).unwrap();
    assert_eq!(applied.tags, ["v2"]);
    assert!(namespaces.namespace("Counter").is_none());
}

#[test]
fn apply_config_creates_and_binds_in_one_step() {
    let temp = tempfile::tempdir().unwrap();
    let mut namespaces = Namespaces::open(temp.path()).unwrap();
    let migrations = [create("v1", &["Counter"]), rename("v2", "Counter", "Tally")];
    namespaces
        .apply_config(&migrations, &[binding("TALLY", "Tally")])
        .unwrap();
    assert!(namespaces.namespace("Tally").is_some());
    // A binding still naming the old class is refused, with nothing written.
    let (_temp, mut fresh) = installed(&[]);
    assert!(matches!(
        fresh
            .apply_config(&migrations, &[binding("COUNTER", "Counter")])
            .unwrap_err(),
        Error::BindingWithoutClass { .. }
    ));
    assert_eq!(fresh.migration_tag(), None);
}

#[test]
fn system_class_names_are_reserved_and_system_namespaces_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let mut namespaces = burrow_runtime::namespace::Namespaces::open(dir.path()).unwrap();
    let error = namespaces
        .apply_migrations(&[burrow_config::Migration {
            tag: "v1".into(),
            new_sqlite_classes: vec!["__burrow_queue".into()],
            ..burrow_config::Migration::default()
        }])
        .unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
    let first = namespaces.system_namespace("__burrow_queue");
    let reopened = burrow_runtime::namespace::Namespaces::open(dir.path()).unwrap();
    assert_eq!(first, reopened.system_namespace("__burrow_queue"));
    assert_ne!(first.id, reopened.system_namespace("__burrow_kv").id);
}
