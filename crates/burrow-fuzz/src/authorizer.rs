//! The SQL authorizer: user SQL (`ctx.storage.sql.exec`) must never reach the reserved `_cf_`
//! tables, whatever the statement.
//!
//! Each input runs as SQL against a fresh database whose KV table holds a secret value (random
//! per process, so an input cannot simply contain it) and whose alarm is set. The input may
//! succeed or fail; afterwards the KV entry and the alarm are unchanged, no result row ever
//! carried the secret, and no transaction is left open.
//!
//! A statement may also loop without end (a recursive CTE without a limit): that is CPU time,
//! bounded by the runtime's limits on the caller, not by the authorizer, so the harness gives
//! each input a budget of SQLite VM steps and interrupts it past that.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use burrow_storage::database::Database;
use burrow_storage::sql::Value;
use rusqlite::Connection;

/// VM instructions between progress callbacks, and callbacks before an input is interrupted.
const PROGRESS_PERIOD: i32 = 1_000;
const PROGRESS_CALLS: u32 = 2_000;

/// Statements the mutations start from.
pub const CORPUS: &[&[u8]] = &[
    b"SELECT * FROM t",
    b"CREATE TABLE u(a INTEGER PRIMARY KEY, b TEXT); INSERT INTO u VALUES (1, 'x'); SELECT * FROM u",
    b"CREATE VIEW v AS SELECT * FROM t; SELECT * FROM v",
    b"CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM t; END; INSERT INTO t VALUES (1, 2)",
    b"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 50) SELECT sum(x) FROM c",
    b"CREATE VIRTUAL TABLE f USING fts5(body); INSERT INTO f VALUES ('hello'); SELECT * FROM f WHERE f MATCH 'hello'",
    b"PRAGMA table_list",
    b"PRAGMA foreign_keys = ON",
    b"SELECT name, sql FROM sqlite_master",
    b"ALTER TABLE t RENAME TO t2; SELECT * FROM t2",
    b"SELECT * FROM pragma_table_info('t')",
    b"INSERT INTO t SELECT key, value FROM _cf_KV",
];

/// SQL tokens that reach the authorizer's interesting cases.
pub const DICTIONARY: &[&[u8]] = &[
    b"_cf_KV",
    b"_cf_METADATA",
    b"\"_cf_KV\"",
    b"[_cf_kv]",
    b"main.",
    b"temp.",
    b"sqlite_master",
    b"sqlite_schema",
    b"ATTACH DATABASE 'x' AS y",
    b"DETACH y",
    b"VACUUM INTO 'x'",
    b"BEGIN",
    b"COMMIT",
    b"SAVEPOINT s",
    b"ROLLBACK",
    b"PRAGMA writable_schema = ON",
    b"PRAGMA ",
    b"CREATE TRIGGER ",
    b"CREATE TEMP ",
    b"CREATE VIRTUAL TABLE z USING ",
    b"rtree",
    b"load_extension('x')",
    b" UNION SELECT * FROM _cf_KV",
    b"(SELECT value FROM _cf_KV)",
    b"REPLACE INTO ",
    b" RETURNING *",
    b"; ",
    b"'",
    b"\"",
    b"--",
    b"/*",
];

fn secret() -> &'static [u8] {
    static SECRET: OnceLock<Vec<u8>> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut bytes = vec![0u8; 24];
        getrandom::fill(&mut bytes).expect("random secret");
        bytes
    })
}

const SECRET_KEY: &str = "secret";
const ALARM_MS: i64 = 1_234_567;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn carries(value: &Value, secret: &[u8]) -> bool {
    match value {
        Value::Blob(bytes) => contains(bytes, secret),
        Value::Text(text) => contains(text.as_bytes(), secret),
        _ => false,
    }
}

/// Runs `data` as user SQL and checks that the reserved state is untouched.
pub fn check(data: &[u8]) {
    let secret = secret();
    let mut connection = Connection::open_in_memory().expect("open");
    // Counts only while the input runs, so that the checks after it are never interrupted.
    let calls = Arc::new(AtomicU32::new(u32::MAX));
    let counter = Arc::clone(&calls);
    connection
        .progress_handler(
            PROGRESS_PERIOD,
            Some(move || {
                let seen = counter.load(Ordering::Relaxed);
                if seen == u32::MAX {
                    return false;
                }
                counter.store(seen + 1, Ordering::Relaxed);
                seen >= PROGRESS_CALLS
            }),
        )
        .expect("progress handler");
    let mut db = Database::new(connection).expect("set up");
    db.exec("CREATE TABLE t(a, b)", &[]).expect("create t");
    db.put(SECRET_KEY, secret).expect("put");
    db.set_alarm(Some(ALARM_MS)).expect("alarm");
    let sql = String::from_utf8_lossy(data);
    calls.store(0, Ordering::Relaxed);
    let result = db.exec(&sql, &[]);
    calls.store(u32::MAX, Ordering::Relaxed);
    if let Ok(cursor) = result {
        for row in &cursor.rows {
            assert!(
                !row.iter().any(|value| carries(value, secret)),
                "user SQL read the KV table: {sql:?}"
            );
        }
    }
    assert_eq!(
        db.transaction_depth(),
        0,
        "a transaction was left open by {sql:?}"
    );
    assert_eq!(
        db.get(SECRET_KEY).expect("get after user SQL").as_deref(),
        Some(secret),
        "user SQL changed the KV table: {sql:?}"
    );
    assert_eq!(
        db.list(&Default::default()).expect("list").len(),
        1,
        "user SQL added KV entries: {sql:?}"
    );
    assert_eq!(
        db.get_alarm().expect("alarm after user SQL"),
        Some(ALARM_MS),
        "user SQL changed the alarm: {sql:?}"
    );
}
