//! KV limits with Cloudflare's messages, nothing stored on rejection, and key ordering.

use burrow_storage::database::{Database, Error, JsClass};
use burrow_storage::kv::{ListOptions, MAX_ENTRY_BYTES, MAX_KEY_BYTES, MAX_KEYS_PER_CALL};
use rusqlite::Connection;

fn database() -> Database {
    Database::new(Connection::open_in_memory().expect("open")).expect("set up")
}

fn everything(db: &mut Database) -> Vec<(String, Vec<u8>)> {
    db.list(&ListOptions::default()).expect("list")
}

#[test]
fn key_size_limit() {
    let mut db = database();
    let longest = "k".repeat(MAX_KEY_BYTES);
    db.put(&longest, b"v").expect("2048 bytes fit");
    let too_long = "k".repeat(MAX_KEY_BYTES + 1);
    let error = db.put(&too_long, b"v").expect_err("2049 bytes");
    assert_eq!(
        error.to_string(),
        "Keys cannot be larger than 2048 bytes. A key of size 2049 was provided."
    );
    assert_eq!(error.js_class(), JsClass::RangeError);
    // Multi-byte characters count in bytes.
    let wide = "é".repeat(1025);
    assert!(matches!(
        db.put(&wide, b"v"),
        Err(Error::KeyTooLarge { size: 2050, .. })
    ));
    for result in [
        db.get(&too_long).map(drop),
        db.delete(&too_long).map(drop),
        db.get_many(&[too_long.as_str()]).map(drop),
        db.delete_many(&[too_long.as_str()]).map(drop),
    ] {
        assert!(matches!(result, Err(Error::KeyTooLarge { .. })));
    }
    assert_eq!(everything(&mut db).len(), 1);
}

#[test]
fn entry_size_limit() {
    let mut db = database();
    let key = "k".repeat(MAX_KEY_BYTES);
    let value = vec![1u8; MAX_ENTRY_BYTES - key.len()];
    db.put(&key, &value).expect("the largest entry fits");
    db.commit_turn().expect("commit");
    assert_eq!(db.get(&key).expect("get"), Some(value.clone()));

    let error = db
        .put("small", &vec![1u8; MAX_ENTRY_BYTES])
        .expect_err("too big");
    assert_eq!(
        error.to_string(),
        format!(
            "Values cannot be larger than {} bytes. A value of size {} was provided.",
            MAX_ENTRY_BYTES - 5,
            MAX_ENTRY_BYTES
        )
    );
    assert_eq!(error.js_class(), JsClass::RangeError);
    assert_eq!(db.get("small").expect("get"), None);
}

#[test]
fn batch_limits_store_nothing_on_rejection() {
    let mut db = database();
    let keys: Vec<String> = (0..=MAX_KEYS_PER_CALL)
        .map(|i| format!("key{i:03}"))
        .collect();
    let pairs: Vec<(String, Vec<u8>)> = keys.iter().map(|k| (k.clone(), vec![1])).collect();

    let error = db.put_many(&pairs).expect_err("129 pairs");
    assert_eq!(
        error.to_string(),
        "Maximum number of key value pairs is 128. 129 pairs were provided."
    );
    assert!(everything(&mut db).is_empty());
    assert!(matches!(
        db.get_many(&keys),
        Err(Error::TooManyKeys { count: 129, .. })
    ));
    assert!(matches!(
        db.delete_many(&keys),
        Err(Error::TooManyKeys { count: 129, .. })
    ));

    // One bad pair spoils the batch: nothing of it is stored.
    let mut bad = pairs[..3].to_vec();
    bad.push(("x".repeat(MAX_KEY_BYTES + 1), vec![1]));
    assert!(matches!(db.put_many(&bad), Err(Error::KeyTooLarge { .. })));
    assert!(everything(&mut db).is_empty());

    db.put_many(&pairs[..MAX_KEYS_PER_CALL]).expect("128 pairs");
    assert_eq!(everything(&mut db).len(), MAX_KEYS_PER_CALL);
    assert_eq!(
        db.delete_many(&keys[..MAX_KEYS_PER_CALL]).expect("delete"),
        MAX_KEYS_PER_CALL
    );
}

#[test]
fn keys_sort_in_utf8_byte_order() {
    let mut db = database();
    // In UTF-16 (JavaScript's string order) U+FF5E sorts after U+1F600; in UTF-8 it sorts before.
    let keys = [
        "",
        "\u{0}",
        "a",
        "a\u{0}",
        "ab",
        "Z",
        "é",
        "\u{ff5e}",
        "😀",
        "\u{10ffff}",
    ];
    for key in keys.iter().rev() {
        db.put(key, key.as_bytes()).expect("put");
    }
    let mut expected: Vec<&str> = keys.to_vec();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let listed: Vec<String> = everything(&mut db)
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(listed, expected);
    let found = db.get_many(&["😀", "missing", "a", "a"]).expect("get many");
    assert_eq!(
        found,
        [
            ("a".to_owned(), b"a".to_vec()),
            ("😀".to_owned(), "😀".as_bytes().to_vec())
        ]
    );
    assert_eq!(db.get("").expect("get"), Some(Vec::new()));
    assert!(db.delete("").expect("delete"));
    assert!(!db.delete("").expect("delete"));
}

#[test]
fn list_option_errors() {
    let mut db = database();
    let both = ListOptions {
        start: Some("a".into()),
        start_after: Some("a".into()),
        ..ListOptions::default()
    };
    let error = db.list(&both).expect_err("both");
    assert_eq!(
        error.to_string(),
        "list() cannot be called with both start and startAfter values."
    );
    assert_eq!(error.js_class(), JsClass::TypeError);
    let zero = ListOptions {
        limit: Some(0),
        ..ListOptions::default()
    };
    assert_eq!(
        db.list(&zero).expect_err("zero").to_string(),
        "List limit must be positive."
    );
}

#[test]
fn alarm_slot() {
    let mut db = database();
    assert_eq!(db.get_alarm().expect("alarm"), None);
    db.set_alarm(Some(1_700_000_000_000)).expect("set");
    assert_eq!(db.get_alarm().expect("alarm"), Some(1_700_000_000_000));
    db.commit_turn().expect("commit");
    db.set_alarm(None).expect("delete");
    db.rollback_turn().expect("rollback");
    assert_eq!(db.get_alarm().expect("alarm"), Some(1_700_000_000_000));
    db.delete_all().expect("delete all");
    assert_eq!(db.get_alarm().expect("alarm"), None);
}
