//! `exec` semantics, SQL limits, row counters, the statement cache, and turns and transactions
//! as SQL sees them.

use burrow_storage::database::{Database, Error};
use burrow_storage::kv::MAX_ROW_BYTES;
use burrow_storage::sql::{Cursor, USER_CACHE_CAPACITY, Value};
use rusqlite::Connection;

fn database() -> Database {
    Database::new(Connection::open_in_memory().expect("open")).expect("set up")
}

fn open(path: &std::path::Path) -> Database {
    Database::new(Connection::open(path).expect("open")).expect("set up")
}

fn exec(db: &mut Database, sql: &str, params: &[Value]) -> Cursor {
    db.exec(sql, params)
        .unwrap_or_else(|error| panic!("{sql:?} failed: {error}"))
}

fn rows(db: &mut Database, sql: &str) -> Vec<Vec<Value>> {
    exec(db, sql, &[]).rows
}

fn failure(db: &mut Database, sql: &str, params: &[Value]) -> String {
    match db.exec(sql, params) {
        Ok(cursor) => panic!("{sql:?} succeeded: {cursor:?}"),
        Err(error) => error.to_string(),
    }
}

fn int(value: i64) -> Value {
    Value::Integer(value)
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

#[test]
fn values_round_trip() {
    let mut db = database();
    let cursor = exec(
        &mut db,
        "SELECT ?, ?, ?, ?, ?, 123, 'hello', x'ff' AS blob, NULL",
        &[
            int(-7),
            Value::Real(1.5),
            text("日本"),
            Value::Blob(vec![0, 1, 2]),
            Value::Null,
        ],
    );
    assert_eq!(
        cursor.column_names,
        ["?", "?", "?", "?", "?", "123", "'hello'", "blob", "NULL"]
    );
    assert_eq!(
        cursor.rows,
        [[
            int(-7),
            Value::Real(1.5),
            text("日本"),
            Value::Blob(vec![0, 1, 2]),
            Value::Null,
            int(123),
            text("hello"),
            Value::Blob(vec![0xff]),
            Value::Null
        ]]
    );
    assert_eq!(
        exec(&mut db, "SELECT ? + ?", &[int(123), int(456)]).rows,
        [[int(579)]]
    );
    let one = exec(&mut db, "SELECT 1 AS a UNION ALL SELECT 2", &[]);
    assert_eq!(
        one.one().expect_err("two rows").to_string(),
        "Expected exactly one result from SQL query, but got multiple results."
    );
}

#[test]
fn duplicate_column_names_are_kept() {
    let mut db = database();
    rows(
        &mut db,
        "CREATE TABLE abc (a INT, b INT, c INT); CREATE TABLE cde (c INT, d INT, e INT);
         INSERT INTO abc VALUES (1, 2, 3); INSERT INTO cde VALUES (7, 8, 9);",
    );
    let cursor = exec(&mut db, "SELECT * FROM abc, cde", &[]);
    assert_eq!(cursor.column_names, ["a", "b", "c", "c", "d", "e"]);
    assert_eq!(cursor.rows[0].len(), 6);
    let update = exec(&mut db, "UPDATE abc SET a = 1 WHERE b = 123542", &[]);
    assert!(update.column_names.is_empty());
}

#[test]
fn several_statements_bind_and_return_the_last() {
    let mut db = database();
    let cursor = exec(
        &mut db,
        "CREATE TABLE t (x); INSERT INTO t VALUES (1), (2); SELECT 99; SELECT sum(x) + ? FROM t",
        &[int(10)],
    );
    assert_eq!(cursor.rows, [[int(13)]]);
    assert_eq!(rows(&mut db, "SELECT 1; SELECT 2;"), [[int(2)]]);
    for whitespace in [" ", "\t", "\n", "\r", "\u{b}", "\u{c}", "\r\n"] {
        assert_eq!(rows(&mut db, &format!("SELECT 1;{whitespace}")), [[int(1)]]);
    }
    let error = db
        .exec("SELECT ?; SELECT 2", &[int(1)])
        .expect_err("parameter before last");
    assert_eq!(error, Error::ParametersBeforeLastStatement);
    assert_eq!(
        error.to_string(),
        "When executing multiple SQL statements in a single call, only the last statement can have parameters."
    );
    // Trailing comments, empty queries: refused before anything runs.
    for sql in [
        "",
        ";",
        " ;; ",
        "-- nothing",
        "INSERT INTO t VALUES (3); -- trailing comment",
    ] {
        assert_eq!(db.exec(sql, &[]), Err(Error::NoStatement), "{sql:?}");
    }
    assert_eq!(rows(&mut db, "SELECT count(*) FROM t"), [[int(2)]]);
    assert_eq!(
        Error::NoStatement.to_string(),
        "SQL code did not contain a statement."
    );
    // A trigger's body keeps its semicolons.
    rows(
        &mut db,
        "CREATE TABLE log (x); CREATE TRIGGER t_log AFTER INSERT ON t BEGIN \
         INSERT INTO log VALUES (new.x); INSERT INTO log VALUES (-new.x); END; \
         INSERT INTO t VALUES (5);",
    );
    assert_eq!(rows(&mut db, "SELECT count(*) FROM log"), [[int(2)]]);
}

#[test]
fn errors_read_like_workerd() {
    let mut db = database();
    assert_eq!(
        failure(&mut db, "SELECT * FROM foo", &[]),
        "no such table: foo: SQLITE_ERROR"
    );
    assert_eq!(
        failure(&mut db, "SELECT ;", &[]),
        "near \";\": syntax error at offset 7: SQLITE_ERROR"
    );
    assert!(failure(&mut db, "SELECT -;", &[]).contains("syntax error at offset 8"));
    rows(&mut db, "CREATE TABLE test_error_codes (name TEXT)");
    assert_eq!(
        failure(
            &mut db,
            "INSERT INTO test_error_codes(rowid, name) values ('yeah','nah')",
            &[]
        ),
        "datatype mismatch: SQLITE_MISMATCH"
    );
    assert_eq!(db.exec("SELECT ?", &[]), Err(Error::WrongParameterCount));
    assert_eq!(
        Error::WrongParameterCount.to_string(),
        "Wrong number of parameter bindings for SQL query."
    );
    rows(
        &mut db,
        "CREATE TABLE u (x UNIQUE, c TEXT CHECK (c IN ('A', 'B')))",
    );
    rows(&mut db, "INSERT INTO u VALUES (1, 'A')");
    assert_eq!(
        failure(&mut db, "INSERT INTO u VALUES (1, 'A')", &[]),
        "UNIQUE constraint failed: u.x: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_UNIQUE)"
    );
    assert!(
        failure(&mut db, "INSERT INTO u VALUES (2, 'C')", &[])
            .starts_with("CHECK constraint failed: c IN ('A', 'B'): SQLITE_CONSTRAINT")
    );
    assert!(
        failure(
            &mut db,
            "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL \
             SELECT 5 UNION ALL SELECT 6",
            &[]
        )
        .contains("too many terms in compound SELECT")
    );
    assert_eq!(
        rows(
            &mut db,
            "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5"
        )
        .len(),
        5
    );
}

#[test]
fn limits_are_enforced_and_nothing_is_stored() {
    let mut db = database();
    rows(&mut db, "CREATE TABLE t (x)");

    let long = format!("SELECT 1 -- {}", "x".repeat(100_000));
    assert_eq!(
        failure(&mut db, &long, &[]),
        "statement too long: SQLITE_TOOBIG"
    );
    let just_fits = format!("SELECT 1 -- {}", "x".repeat(100_000 - 12));
    assert_eq!(rows(&mut db, &just_fits), [[int(1)]]);

    let placeholders = |count: usize| vec!["?"; count].join(", ");
    let params = |count: usize| (0..count).map(|i| int(i as i64)).collect::<Vec<_>>();
    assert_eq!(
        exec(
            &mut db,
            &format!("SELECT {}", placeholders(100)),
            &params(100)
        )
        .rows[0]
            .len(),
        100
    );
    assert!(
        failure(
            &mut db,
            &format!("SELECT {}", placeholders(101)),
            &params(101)
        )
        .starts_with("too many SQL variables")
    );

    let columns = |count: usize| {
        (0..count)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    rows(&mut db, &format!("CREATE TABLE wide ({})", columns(100)));
    assert!(
        failure(
            &mut db,
            &format!("CREATE TABLE wider ({})", columns(101)),
            &[]
        )
        .starts_with("too many columns on wider")
    );

    let too_big = Value::Blob(vec![7; MAX_ROW_BYTES + 1]);
    assert_eq!(
        failure(&mut db, "INSERT INTO t VALUES (?)", &[too_big]),
        "string or blob too big: SQLITE_TOOBIG"
    );
    assert!(
        failure(&mut db, "SELECT zeroblob(3000000)", &[]).starts_with("string or blob too big")
    );
    assert!(
        failure(
            &mut db,
            "INSERT INTO t VALUES (zeroblob(1500000) || zeroblob(1500000))",
            &[]
        )
        .starts_with("string or blob too big")
    );
    let fits = Value::Blob(vec![7; MAX_ROW_BYTES - 64]);
    exec(&mut db, "INSERT INTO t VALUES (?)", &[fits]);
    assert_eq!(rows(&mut db, "SELECT count(*) FROM t"), [[int(1)]]);
}

#[test]
fn row_counters() {
    let mut db = database();
    rows(&mut db, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    let insert = exec(&mut db, "INSERT INTO t (v) VALUES ('a'), ('b'), ('c')", &[]);
    assert_eq!((insert.rows_read, insert.rows_written), (0, 3));
    let scan = exec(&mut db, "SELECT * FROM t", &[]);
    assert_eq!((scan.rows_read, scan.rows_written), (3, 0));
    let filtered = exec(&mut db, "SELECT * FROM t WHERE v = 'z'", &[]);
    assert_eq!(filtered.rows_read, 3);
    let point = exec(&mut db, "SELECT * FROM t WHERE id = 2", &[]);
    assert_eq!(point.rows_read, 1);
    let update = exec(&mut db, "UPDATE t SET v = 'x'", &[]);
    assert_eq!((update.rows_read, update.rows_written), (3, 3));
    let delete = exec(&mut db, "DELETE FROM t WHERE id = 1", &[]);
    assert_eq!(delete.rows_written, 1);
}

#[test]
fn database_size_counts_used_pages() {
    let mut db = database();
    let empty = db.database_size().expect("size");
    assert_eq!(empty % 4096, 0);
    assert!(empty >= 3 * 4096, "schema and two hidden tables: {empty}");
    rows(
        &mut db,
        "CREATE TABLE should_make_one_more_page (value TEXT)",
    );
    assert_eq!(db.database_size().expect("size"), empty + 4096);
    rows(&mut db, "DROP TABLE should_make_one_more_page");
    assert_eq!(db.database_size().expect("size"), empty);
}

#[test]
fn statement_cache_is_bounded_and_survives_schema_changes() {
    let mut db = database();
    rows(&mut db, "CREATE TABLE alterTableTest (a INTEGER)");
    exec(&mut db, "INSERT INTO alterTableTest VALUES (?)", &[int(1)]);
    assert_eq!(rows(&mut db, "SELECT * FROM alterTableTest"), [[int(1)]]);
    rows(&mut db, "ALTER TABLE alterTableTest ADD COLUMN b INTEGER");
    let cursor = exec(&mut db, "SELECT * FROM alterTableTest", &[]);
    assert_eq!(cursor.column_names, ["a", "b"]);
    assert_eq!(cursor.rows, [[int(1), Value::Null]]);

    for i in 0..(USER_CACHE_CAPACITY * 2) {
        rows(&mut db, &format!("SELECT {i}"));
        assert!(db.cached_statement_count() <= USER_CACHE_CAPACITY);
    }
    assert_eq!(db.cached_statement_count(), USER_CACHE_CAPACITY);
    // Multi-statement queries are not cached.
    let before = db.cached_statement_count();
    rows(&mut db, "SELECT 1; SELECT 'not cached'");
    assert_eq!(db.cached_statement_count(), before);
}

#[test]
fn writes_of_a_turn_commit_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("object.sqlite");
    let mut db = open(&path);
    rows(&mut db, "CREATE TABLE t (x)");
    db.commit_turn().expect("commit");

    db.begin_turn();
    rows(&mut db, "INSERT INTO t VALUES (1)");
    db.put("k", b"v1").expect("put");
    db.set_alarm(Some(1_000)).expect("alarm");
    db.commit_turn().expect("commit");

    db.begin_turn();
    rows(&mut db, "INSERT INTO t VALUES (2)");
    db.put("k", b"v2").expect("put");
    db.set_alarm(None).expect("alarm");
    // Uncommitted work is visible inside the turn...
    assert_eq!(rows(&mut db, "SELECT count(*) FROM t"), [[int(2)]]);
    assert_eq!(db.get_alarm().expect("alarm"), None);
    // ...and gone after a rollback.
    db.rollback_turn().expect("rollback");
    assert_eq!(rows(&mut db, "SELECT count(*) FROM t"), [[int(1)]]);
    assert_eq!(db.get("k").expect("get"), Some(b"v1".to_vec()));
    assert_eq!(db.get_alarm().expect("alarm"), Some(1_000));

    // A turn left open when the connection closes never happened.
    rows(&mut db, "INSERT INTO t VALUES (3)");
    db.put("k", b"v3").expect("put");
    drop(db);
    let mut db = open(&path);
    assert_eq!(rows(&mut db, "SELECT x FROM t"), [[int(1)]]);
    assert_eq!(db.get("k").expect("get"), Some(b"v1".to_vec()));
    assert_eq!(db.get_alarm().expect("alarm"), Some(1_000));
}

#[test]
fn violated_constraints_at_commit_reset_to_the_last_good_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("object.sqlite");
    let mut db = open(&path);
    rows(
        &mut db,
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);
         CREATE TABLE child (parent_id INTEGER REFERENCES parent (id));
         INSERT INTO parent VALUES (1);
         INSERT INTO child VALUES (1);",
    );
    db.put("good", b"1").expect("put");
    db.commit_turn().expect("commit");

    // Immediate constraints fail the statement, not the turn.
    let immediate = failure(&mut db, "INSERT INTO child VALUES (2)", &[]);
    assert!(
        immediate.starts_with("FOREIGN KEY constraint failed"),
        "{immediate}"
    );
    db.commit_turn().expect("nothing to commit");

    rows(&mut db, "PRAGMA defer_foreign_keys = ON");
    rows(&mut db, "INSERT INTO child VALUES (2)");
    db.put("bad", b"2").expect("put");
    db.set_alarm(Some(5)).expect("alarm");
    let error = db.commit_turn().expect_err("violated constraints");
    assert!(error.requires_reset());
    assert_eq!(
        error.to_string(),
        "Durable Object was reset and rolled back to its last known good state because the \
         application left the database in a state where constraints were violated: FOREIGN KEY \
         constraint failed: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_FOREIGNKEY)"
    );
    assert!(!db.has_open_turn());
    assert_eq!(rows(&mut db, "SELECT count(*) FROM child"), [[int(1)]]);
    assert_eq!(db.get("bad").expect("get"), None);
    assert_eq!(db.get_alarm().expect("alarm"), None);
    drop(db);
    let mut db = open(&path);
    assert_eq!(rows(&mut db, "SELECT parent_id FROM child"), [[int(1)]]);
    assert_eq!(db.get("good").expect("get"), Some(b"1".to_vec()));
    assert_eq!(db.get("bad").expect("get"), None);
}

#[test]
fn foreign_keys_can_be_turned_off_between_turns() {
    let mut db = database();
    rows(&mut db, "PRAGMA foreign_keys = OFF");
    rows(
        &mut db,
        "CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER NOT NULL REFERENCES b (id));
         INSERT INTO a VALUES (1, 1);
         CREATE TABLE b (id INTEGER PRIMARY KEY);",
    );
    assert_eq!(
        rows(&mut db, "PRAGMA foreign_key_check"),
        [[text("a"), int(1), text("b"), int(0)]]
    );
    rows(&mut db, "INSERT INTO b VALUES (1)");
    assert!(rows(&mut db, "PRAGMA foreign_key_check").is_empty());
    db.commit_turn().expect("commit");
}

#[test]
fn explicit_transactions_cover_sql_and_nest() {
    let mut db = database();
    rows(
        &mut db,
        "CREATE TABLE t (i INTEGER); INSERT INTO t VALUES (1)",
    );
    let get = |db: &mut Database| rows(db, "SELECT i FROM t")[0][0].clone();

    // An error inside rolls back everything the transaction did, SQL and KV.
    let result: Result<(), Error> = db.transaction(|db| {
        db.exec("CREATE TABLE should_be_rolled_back (v TEXT)", &[])?;
        db.put("k", b"v")?;
        db.exec("SELECT * FROM misspelled_table_name", &[])?;
        Ok(())
    });
    assert!(
        result
            .expect_err("no such table")
            .to_string()
            .contains("misspelled_table_name")
    );
    assert!(
        rows(
            &mut db,
            "SELECT * FROM sqlite_master WHERE name = 'should_be_rolled_back'"
        )
        .is_empty()
    );
    assert_eq!(db.get("k").expect("get"), None);

    // Nested: the inner one fails, the outer one keeps its own work.
    db.transaction(|db| -> Result<(), Error> {
        db.exec("UPDATE t SET i = 2", &[])?;
        let inner: Result<(), Error> = db.transaction(|db| {
            db.exec("UPDATE t SET i = 3", &[])?;
            assert_eq!(db.transaction_depth(), 2);
            Err(Error::NoStatement)
        });
        assert!(inner.is_err());
        Ok(())
    })
    .expect("outer");
    assert_eq!(get(&mut db), int(2));

    // An explicit rollback request discards the whole transaction, nested work included.
    db.transaction(|db| -> Result<(), Error> {
        db.exec("UPDATE t SET i = 6", &[])?;
        db.transaction(|db| db.exec("UPDATE t SET i = 7", &[]).map(drop))?;
        assert_eq!(get(db), int(7));
        assert!(db.rollback_transaction());
        Ok(())
    })
    .expect("rolled back");
    assert_eq!(get(&mut db), int(2));
    assert!(!db.rollback_transaction(), "no transaction open");

    // The turn still commits what survived.
    assert_eq!(db.delete_all().map(|_| ()), Ok(()));
    let inside: Result<u64, Error> = db.transaction(|db| db.delete_all());
    assert_eq!(inside, Err(Error::DeleteAllInTransaction));
    assert_eq!(
        Error::DeleteAllInTransaction.to_string(),
        "Cannot call deleteAll() within a transaction"
    );
    db.commit_turn().expect("commit");
}

#[test]
fn sqlite_aborting_the_transaction_resets_the_turn() {
    let mut db = database();
    rows(&mut db, "CREATE TABLE t (x UNIQUE)");
    db.commit_turn().expect("commit");
    rows(&mut db, "INSERT INTO t VALUES (1)");
    db.put("k", b"v").expect("put");
    let error = db
        .exec("INSERT OR ROLLBACK INTO t VALUES (1)", &[])
        .expect_err("conflict");
    assert!(matches!(error, Error::TransactionAborted(_)), "{error:?}");
    assert!(error.requires_reset());
    assert!(matches!(db.get("k"), Err(Error::TransactionAborted(_))));
    assert!(matches!(
        db.commit_turn(),
        Err(Error::TransactionAborted(_))
    ));
    // The engine resets the object; the storage is usable again, at the last commit.
    db.rollback_turn().expect("rollback");
    assert_eq!(rows(&mut db, "SELECT count(*) FROM t"), [[int(0)]]);
    assert_eq!(db.get("k").expect("get"), None);
}

#[test]
fn delete_all_removes_sql_objects_kv_and_the_alarm() {
    let mut db = database();
    rows(
        &mut db,
        "CREATE TABLE parent (id INTEGER PRIMARY KEY AUTOINCREMENT);
         CREATE TABLE child (p INTEGER REFERENCES parent (id));
         INSERT INTO parent DEFAULT VALUES; INSERT INTO child VALUES (1);
         CREATE INDEX child_p ON child (p);
         CREATE VIEW v AS SELECT * FROM child;
         CREATE TRIGGER tr AFTER INSERT ON parent BEGIN SELECT 1; END;
         CREATE VIRTUAL TABLE docs USING fts5(body);
         INSERT INTO docs VALUES ('hello world');
         CREATE VIRTUAL TABLE spatial USING rtree(id, x0, x1);
         CREATE TABLE \"we\"\"ird\" (x);",
    );
    db.put_many(&[("a", b"1".as_slice()), ("b", b"2".as_slice())])
        .expect("put");
    db.set_alarm(Some(42)).expect("alarm");
    db.set_metadata(7, Some(&text("engine"))).expect("metadata");
    db.commit_turn().expect("commit");
    let empty_size = database().database_size().expect("size");

    assert_eq!(db.delete_all().expect("delete all"), 2);
    db.commit_turn().expect("commit");
    assert!(
        rows(
            &mut db,
            "SELECT name FROM sqlite_schema WHERE name NOT LIKE '\\_cf\\_%' ESCAPE '\\' \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
        .is_empty()
    );
    assert!(db.list(&Default::default()).expect("list").is_empty());
    assert_eq!(db.get_alarm().expect("alarm"), None);
    assert_eq!(db.metadata(7).expect("metadata"), Some(text("engine")));
    // Only SQLite's own sqlite_sequence (AUTOINCREMENT) stays behind; it cannot be dropped.
    assert_eq!(
        rows(
            &mut db,
            "SELECT name FROM sqlite_schema WHERE name LIKE 'sqlite%'"
        ),
        [[text("sqlite_sequence")]]
    );
    assert_eq!(db.database_size().expect("size"), empty_size + 4096);
    // Everything can be created again.
    rows(&mut db, "CREATE TABLE parent (id INTEGER PRIMARY KEY)");
    rows(&mut db, "CREATE VIRTUAL TABLE docs USING fts5(body)");
    db.put("a", b"again").expect("put");
    db.commit_turn().expect("commit");
}

#[test]
fn delete_all_rolls_back_with_its_turn() {
    let mut db = database();
    rows(&mut db, "CREATE TABLE t (x); INSERT INTO t VALUES (1)");
    db.put("a", b"1").expect("put");
    db.set_alarm(Some(9)).expect("alarm");
    db.commit_turn().expect("commit");
    db.delete_all().expect("delete all");
    assert!(failure(&mut db, "SELECT * FROM t", &[]).starts_with("no such table: t"));
    db.rollback_turn().expect("rollback");
    assert_eq!(rows(&mut db, "SELECT x FROM t"), [[int(1)]]);
    assert_eq!(db.get("a").expect("get"), Some(b"1".to_vec()));
    assert_eq!(db.get_alarm().expect("alarm"), Some(9));
}

#[test]
fn into_connection_gives_back_a_plain_connection() {
    let mut db = database();
    db.put("a", b"1").expect("put");
    db.commit_turn().expect("commit");
    db.put("b", b"2").expect("put");
    let connection = db.into_connection().expect("connection");
    let count: i64 = connection
        .query_row("SELECT count(*) FROM _cf_KV", [], |row| row.get(0))
        .expect("query");
    assert_eq!(count, 1, "the open turn was rolled back");
}

#[test]
fn only_writing_statements_open_the_turn() {
    let mut db = database();
    rows(
        &mut db,
        "CREATE TABLE t (x); CREATE INDEX i ON t (x); INSERT INTO t VALUES (1), (2);",
    );
    assert!(db.has_open_turn());
    db.commit_turn().expect("commit");
    rows(&mut db, "SELECT * FROM t");
    rows(&mut db, "PRAGMA data_version");
    assert!(db.get("k").expect("get").is_none());
    assert!(!db.has_open_turn());
    // `PRAGMA optimize` looks read-only to SQLite but may run ANALYZE: it belongs to the turn.
    rows(&mut db, "PRAGMA optimize=0x10002");
    assert!(db.has_open_turn());
    db.rollback_turn().expect("rollback");
}
