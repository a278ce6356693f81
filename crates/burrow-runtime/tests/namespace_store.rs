//! The namespaces file: created on first open, survives reopening, written atomically, refuses
//! damage; unique keys derive from the installation secret, so two installations differ, unless
//! a class is given an explicit key.

use std::fs;
use std::path::Path;

use burrow_config::Migration;
use burrow_runtime::id::IdFactory;
use burrow_runtime::namespace::{self, FILE_NAME, Namespaces};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

fn create(tag: &str, sqlite: &[&str]) -> Migration {
    Migration {
        tag: tag.to_owned(),
        new_sqlite_classes: sqlite.iter().map(|class| (*class).to_owned()).collect(),
        ..Migration::default()
    }
}

fn file(data: &Path) -> std::path::PathBuf {
    data.join("node").join(FILE_NAME)
}

fn stored(data: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(file(data)).unwrap()).unwrap()
}

#[test]
fn first_open_creates_the_secret_and_reopen_keeps_it() {
    let temp = tempfile::tempdir().unwrap();
    // A data directory that does not exist yet is created.
    let data = temp.path().join("fresh").join("data");
    let namespaces = Namespaces::open(&data).unwrap();
    assert_eq!(namespaces.path(), file(&data));
    assert_eq!(namespaces.migration_tag(), None);
    assert!(namespaces.list().is_empty());

    let first = stored(&data);
    assert_eq!(first["format"], 1);
    let secret = first["installation_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    drop(namespaces);

    Namespaces::open(&data).unwrap();
    assert_eq!(stored(&data)["installation_secret"], secret.as_str());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(file(&data)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the file holds the secret");
    }
}

#[test]
fn namespaces_survive_reopen() {
    let temp = tempfile::tempdir().unwrap();
    let migrations = [create("v1", &["Counter", "Room"])];
    let (counter, room, id) = {
        let mut namespaces = Namespaces::open(temp.path()).unwrap();
        namespaces.apply_migrations(&migrations).unwrap();
        let counter = namespaces.namespace("Counter").unwrap();
        let room = namespaces.namespace("Room").unwrap();
        let id = namespaces.id_factory("Counter").unwrap().id_from_name("a");
        (counter, room, id)
    };
    let reopened = Namespaces::open(temp.path()).unwrap();
    assert_eq!(reopened.namespace("Counter").unwrap(), counter);
    assert_eq!(reopened.namespace("Room").unwrap(), room);
    assert_eq!(reopened.namespace_by_id(&room.id).unwrap(), room);
    assert_eq!(reopened.list(), vec![counter.clone(), room]);
    assert_eq!(reopened.migration_tag(), Some("v1"));
    assert_eq!(reopened.applied_tags(), ["v1".to_owned()]);
    let factory = reopened.id_factory("Counter").unwrap();
    assert_eq!(factory.id_from_name("a"), id);
    assert_eq!(factory.id_from_string(&id.to_string()).unwrap(), id);
    assert!(counter.sqlite);
    assert_ne!(counter.id, reopened.namespace("Room").unwrap().id);
    // Nothing temporary is left behind.
    let names: Vec<_> = fs::read_dir(temp.path().join("node"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, [FILE_NAME]);
}

#[test]
fn two_installations_give_different_ids_for_the_same_name() {
    let temp = tempfile::tempdir().unwrap();
    let migrations = [create("v1", &["Counter"])];
    let mut first = Namespaces::open(&temp.path().join("a")).unwrap();
    let mut second = Namespaces::open(&temp.path().join("b")).unwrap();
    first.apply_migrations(&migrations).unwrap();
    second.apply_migrations(&migrations).unwrap();
    let first_factory = first.id_factory("Counter").unwrap();
    let second_factory = second.id_factory("Counter").unwrap();
    let first_id = first_factory.id_from_name("same name");
    let second_id = second_factory.id_from_name("same name");
    assert_ne!(first_id, second_id);
    assert_ne!(
        first.namespace("Counter").unwrap().unique_key,
        second.namespace("Counter").unwrap().unique_key
    );
    // An ID from one installation is not valid on the other.
    assert_eq!(
        second_factory
            .id_from_string(&first_id.to_string())
            .unwrap_err()
            .to_string(),
        "Durable Object ID is not valid for this namespace."
    );
}

#[test]
fn the_derived_unique_key_is_the_documented_hmac() {
    let temp = tempfile::tempdir().unwrap();
    let mut namespaces = Namespaces::open(temp.path()).unwrap();
    namespaces
        .apply_migrations(&[create("v1", &["Counter"])])
        .unwrap();
    let info = namespaces.namespace("Counter").unwrap();

    let secret_hex = stored(temp.path())["installation_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret: Vec<u8> = (0..32)
        .map(|index| u8::from_str_radix(&secret_hex[2 * index..2 * index + 2], 16).unwrap())
        .collect();
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).unwrap();
    mac.update(b"burrow namespace unique key v1\0");
    mac.update(info.id.as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(info.unique_key, expected);
    assert_eq!(
        info.id_factory().id_from_name("x"),
        IdFactory::from_unique_key(&expected).id_from_name("x")
    );
    // The file stores the namespace id, not the derived key.
    assert_eq!(
        stored(temp.path())["namespaces"][0]["id"],
        info.id.to_string()
    );
    assert!(
        !fs::read_to_string(file(temp.path()))
            .unwrap()
            .contains(&expected)
    );
}

#[test]
fn an_explicit_unique_key_gives_the_same_ids_everywhere_and_persists() {
    let temp = tempfile::tempdir().unwrap();
    let migrations = [create("v1", &["Counter", "Room"])];
    let mut first = Namespaces::open(&temp.path().join("a")).unwrap();
    let mut second = Namespaces::open(&temp.path().join("b")).unwrap();
    for namespaces in [&mut first, &mut second] {
        namespaces.apply_migrations(&migrations).unwrap();
        namespaces
            .set_unique_key("Counter", Some("my-worker-Counter"))
            .unwrap();
    }
    let first_id = first.id_factory("Counter").unwrap().id_from_name("foo");
    assert_eq!(
        first_id,
        second.id_factory("Counter").unwrap().id_from_name("foo")
    );
    // The ID wrangler dev gives `idFromName("foo")` on class Counter of Worker my-worker.
    assert_eq!(
        first_id.to_string(),
        "8d8d52167eba73e7f0268ab71258e747f36d3bda25975c74ec438beeadb76dd6"
    );
    drop(first);
    let mut reopened = Namespaces::open(&temp.path().join("a")).unwrap();
    assert_eq!(
        reopened.namespace("Counter").unwrap().unique_key,
        "my-worker-Counter"
    );
    assert_eq!(
        reopened.id_factory("Counter").unwrap().id_from_name("foo"),
        first_id
    );

    // Two classes cannot share a key, keys cannot be empty, and the class must exist.
    let shared = reopened
        .set_unique_key("Room", Some("my-worker-Counter"))
        .unwrap_err();
    assert!(
        matches!(shared, namespace::Error::InvalidUniqueKey { .. }),
        "{shared}"
    );
    assert_eq!(
        shared.to_string(),
        "cannot give class 'Room' the unique key \"my-worker-Counter\": class 'Counter' already \
         uses it, and two classes with one key would share IDs"
    );
    assert!(matches!(
        reopened.set_unique_key("Room", Some("")).unwrap_err(),
        namespace::Error::InvalidUniqueKey { .. }
    ));
    assert_eq!(
        reopened
            .set_unique_key("Nope", Some("k"))
            .unwrap_err()
            .to_string(),
        "cannot set the unique key of class 'Nope': no Durable Object class 'Nope' exists"
    );

    // Going back to the derived key changes the IDs back to this installation's own.
    reopened.set_unique_key("Counter", None).unwrap();
    assert_ne!(
        reopened.id_factory("Counter").unwrap().id_from_name("foo"),
        first_id
    );
}

#[test]
fn a_damaged_file_is_refused_with_its_path() {
    let temp = tempfile::tempdir().unwrap();
    Namespaces::open(temp.path()).unwrap();
    let path = file(temp.path());
    let original = fs::read_to_string(&path).unwrap();

    let cases = [
        ("{ not json".to_owned(), "key must be a string"),
        (
            original.replace("\"format\": 1", "\"format\": 2"),
            "format 2 is not supported",
        ),
        (
            original.replace(
                "\"installation_secret\": \"",
                "\"installation_secret\": \"zz",
            ),
            "installation secret is 64 hex digits",
        ),
        (
            original.replace("\"migration_tag\": null", "\"migration_tag\": \"v9\""),
            "migration_tag is not the last of applied_tags",
        ),
        (
            original.replace("\"format\": 1", "\"format\": 1, \"extra\": true"),
            "unknown field `extra`",
        ),
    ];
    for (text, expected) in cases {
        fs::write(&path, &text).unwrap();
        let error = Namespaces::open(temp.path()).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, namespace::Error::Corrupt { .. }),
            "{message}"
        );
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn an_unreadable_data_directory_is_an_io_error() {
    let temp = tempfile::tempdir().unwrap();
    // `node` is a file, so nothing can be created inside it.
    fs::write(temp.path().join("node"), b"").unwrap();
    let error = Namespaces::open(temp.path()).unwrap_err();
    assert!(matches!(error, namespace::Error::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("node"), "{error}");
}

#[test]
fn debug_output_hides_keys() {
    let temp = tempfile::tempdir().unwrap();
    let mut namespaces = Namespaces::open(temp.path()).unwrap();
    namespaces
        .apply_migrations(&[create("v1", &["Counter"])])
        .unwrap();
    namespaces
        .set_unique_key("Counter", Some("explicit-key"))
        .unwrap();
    let info = namespaces.namespace("Counter").unwrap();
    let secret = stored(temp.path())["installation_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    for text in [format!("{namespaces:?}"), format!("{info:?}")] {
        assert!(text.contains("Counter"), "{text}");
        assert!(!text.contains("explicit-key"), "{text}");
        assert!(!text.contains(&secret), "{text}");
    }
}
