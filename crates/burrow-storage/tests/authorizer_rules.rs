//! The SQL authorizer against spec §1: every forbidden construct is refused with workerd's
//! message, allowed pragmas and virtual tables work, `_cf_` names are unreachable everywhere.

use burrow_storage::authorizer::TRANSACTION_MESSAGE;
use burrow_storage::database::{Database, Error};
use burrow_storage::sql::Value;
use rusqlite::Connection;

fn database() -> Database {
    Database::new(Connection::open_in_memory().expect("open")).expect("set up")
}

fn message(db: &mut Database, sql: &str) -> String {
    match db.exec(sql, &[]) {
        Ok(cursor) => panic!("{sql:?} was allowed: {cursor:?}"),
        Err(error) => error.to_string(),
    }
}

fn rows(db: &mut Database, sql: &str) -> Vec<Vec<Value>> {
    match db.exec(sql, &[]) {
        Ok(cursor) => cursor.rows,
        Err(error) => panic!("{sql:?} failed: {error}"),
    }
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

#[test]
fn transaction_statements_get_the_transaction_message() {
    let mut db = database();
    rows(&mut db, "CREATE TABLE t (x)");
    for sql in [
        "BEGIN",
        "BEGIN TRANSACTION",
        "begin immediate",
        "COMMIT",
        "END",
        "ROLLBACK",
        "SAVEPOINT foo",
        "RELEASE foo",
        "ROLLBACK TO foo",
        "SELECT 1; BEGIN",
    ] {
        let error = db.exec(sql, &[]).expect_err(sql);
        assert_eq!(error, Error::TransactionStatement, "{sql}");
        assert_eq!(error.to_string(), TRANSACTION_MESSAGE);
    }
    assert!(TRANSACTION_MESSAGE.starts_with(
        "To execute a transaction, please use the state.storage.transaction() or \
         state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT \
         statements. The JavaScript API is safer"
    ));
}

#[test]
fn attach_temp_and_other_databases_are_refused() {
    let mut db = database();
    rows(&mut db, "CREATE TABLE t (x)");
    for sql in [
        "ATTACH DATABASE ':memory:' AS other",
        "DETACH DATABASE other",
        "CREATE TEMP TABLE tempy (x)",
        "CREATE TEMPORARY TABLE tempy AS SELECT * FROM sqlite_master",
        "CREATE TABLE temp.tempy (x)",
        "CREATE TEMP VIEW v AS SELECT 1",
        "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
    ] {
        let error = message(&mut db, sql);
        assert!(
            error.contains("not authorized") || error.contains("too many attached databases"),
            "{sql}: {error}"
        );
    }
    // Reads of temp's (empty) schema are fine, as in workerd.
    assert!(rows(&mut db, "SELECT * FROM temp.sqlite_master").is_empty());
}

#[test]
fn vacuum_cannot_write_files() {
    let mut db = database();
    rows(&mut db, "CREATE TABLE t (x)");
    db.commit_turn().expect("commit");
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("escape.sqlite");
    let sql = format!("VACUUM INTO '{}'", target.display());
    let error = message(&mut db, &sql);
    assert!(
        error.contains("VACUUM") || error.contains("not authorized"),
        "{error}"
    );
    assert!(!target.exists());
    db.commit_turn().expect("commit");
    let error = message(&mut db, "VACUUM");
    assert!(
        error.contains("VACUUM") || error.contains("not authorized"),
        "{error}"
    );
}

#[test]
fn only_allowed_virtual_table_modules() {
    let mut db = database();
    for module in ["fts5abcd", "fts4", "fts3", "dbstat", "json_each"] {
        let sql = format!("CREATE VIRTUAL TABLE v USING {module}(x)");
        assert_eq!(
            message(&mut db, &sql),
            "not authorized: SQLITE_AUTH",
            "{module}"
        );
    }
}

#[test]
fn fts5_works_with_shadow_tables_triggers_and_ranking() {
    let mut db = database();
    rows(
        &mut db,
        "CREATE TABLE documents (id INTEGER PRIMARY KEY, title TEXT NOT NULL, content TEXT NOT NULL);
         CREATE VIRTUAL TABLE documents_fts USING FtS5(id, title, content, tokenize = porter);
         CREATE VIRTUAL TABLE documents_vocab USING fTs5VoCaB(documents_fts, row);
         CREATE TRIGGER documents_fts_insert AFTER INSERT ON documents BEGIN
           INSERT INTO documents_fts (id, title, content) VALUES (new.id, new.title, new.content);
         END;",
    );
    rows(
        &mut db,
        "INSERT INTO documents (title, content) VALUES
           ('Document 1', 'This is the contents of document 1 (of 2).'),
           ('Document 2', 'This is the content of document 2 (of 2).')",
    );
    let found = rows(
        &mut db,
        "SELECT id FROM documents_fts WHERE documents_fts MATCH 'content' ORDER BY rank",
    );
    assert_eq!(found.len(), 2, "porter stemming matches both");
    let ranked = rows(
        &mut db,
        "SELECT id, bm25(documents_fts), highlight(documents_fts, 2, '<b>', '</b>'), \
         snippet(documents_fts, 2, '<b>', '</b>', '...', 4) \
         FROM documents_fts WHERE documents_fts MATCH '2' ORDER BY rank",
    );
    assert_eq!(ranked[0][0], Value::Integer(2));
    assert_eq!(
        ranked[0][2],
        text("This is the content of document <b>2</b> (of <b>2</b>).")
    );
    let vocab = rows(
        &mut db,
        "SELECT term FROM documents_vocab WHERE term = 'document'",
    );
    assert_eq!(vocab, [[text("document")]]);
    // Shadow tables are readable; writing them directly is refused (defensive mode).
    assert!(!rows(&mut db, "SELECT * FROM documents_fts_data").is_empty());
    let write = message(&mut db, "DELETE FROM documents_fts_data");
    assert!(write.contains("may not be modified"), "{write}");
    rows(&mut db, "DROP TABLE documents_fts");
}

#[test]
fn rtree_works() {
    let mut db = database();
    rows(
        &mut db,
        "CREATE VIRTUAL TABLE boxes USING rtree(id, min_x, max_x, min_y, max_y);
         CREATE VIRTUAL TABLE boxes32 USING rtree_i32(id, min_x, max_x);
         INSERT INTO boxes VALUES (1, 0, 10, 0, 10), (2, 20, 30, 20, 30);
         INSERT INTO boxes32 VALUES (1, 5, 6);",
    );
    let hits = rows(
        &mut db,
        "SELECT id FROM boxes WHERE min_x <= 5 AND max_x >= 5 AND min_y <= 5 AND max_y >= 5",
    );
    assert_eq!(hits, [[Value::Integer(1)]]);
    assert_eq!(rows(&mut db, "SELECT rtreecheck('boxes')"), [[text("ok")]]);
    assert_eq!(
        rows(&mut db, "SELECT count(*) FROM boxes32"),
        [[Value::Integer(1)]]
    );
}

#[test]
fn reserved_names_are_unreachable_in_every_position() {
    let mut db = database();
    db.put("secret", b"value").expect("put");
    rows(&mut db, "CREATE TABLE t (x, y)");
    let denied = [
        "SELECT * FROM _cf_KV",
        "SELECT key FROM _cf_KV",
        "SELECT * FROM \"_cf_KV\"",
        "SELECT * FROM [_cf_KV]",
        "SELECT * FROM `_cf_KV`",
        "SELECT * FROM _CF_kv",
        "SELECT * FROM main._cf_KV",
        "SELECT _cf_KV.value FROM t, _cf_KV",
        "SELECT (SELECT value FROM _cf_KV LIMIT 1)",
        "SELECT * FROM t WHERE x IN (SELECT key FROM _cf_kv)",
        "WITH c AS (SELECT * FROM _cf_KV) SELECT * FROM c",
        "INSERT INTO _cf_KV VALUES ('a', x'00')",
        "INSERT INTO t SELECT key, value FROM _cf_KV",
        "UPDATE _cf_KV SET value = NULL",
        "DELETE FROM _cf_KV",
        "DELETE FROM _cf_metadata",
        "DROP TABLE _cf_KV",
        "ALTER TABLE _cf_KV ADD COLUMN z",
        "ALTER TABLE _cf_KV RENAME TO kv",
        "CREATE TABLE _cf_invalid (name TEXT)",
        "CREATE TABLE \"_CF_Quoted\" (name TEXT)",
        "CREATE TABLE copy AS SELECT * FROM _cf_KV",
        "CREATE INDEX _cf_index ON t (x)",
        "CREATE INDEX i ON _cf_KV (value)",
        "CREATE TRIGGER _cf_trigger AFTER INSERT ON t BEGIN SELECT 1; END",
        "CREATE TRIGGER tr AFTER INSERT ON _cf_KV BEGIN SELECT 1; END",
        "CREATE VIEW _cf_view AS SELECT 1",
        "CREATE VIRTUAL TABLE _cf_fts USING fts5(x)",
        "PRAGMA table_info(_cf_KV)",
        "PRAGMA table_xinfo('_cf_KV')",
        "PRAGMA index_list(_cf_KV)",
        "PRAGMA foreign_key_list(_cf_KV)",
        "PRAGMA foreign_key_check(_cf_KV)",
        "PRAGMA quick_check(_cf_KV)",
        "SELECT * FROM pragma_table_info('_cf_KV')",
    ];
    for sql in denied {
        let error = message(&mut db, sql);
        assert!(
            error.contains("not authorized") || error.contains("is prohibited"),
            "{sql}: {error}"
        );
    }
    assert_eq!(
        message(&mut db, "SELECT * FROM _cf_KV"),
        "access to _cf_KV.key is prohibited: SQLITE_AUTH"
    );
    assert_eq!(
        message(&mut db, "CREATE TABLE _cf_invalid (name TEXT)"),
        "not authorized: SQLITE_AUTH"
    );

    // A view or trigger body that reaches a hidden table is refused when it runs.
    rows(&mut db, "CREATE VIEW sneaky AS SELECT 1 AS one");
    rows(
        &mut db,
        "CREATE TABLE log (x); CREATE TRIGGER steal AFTER INSERT ON log BEGIN \
         INSERT INTO t SELECT key, value FROM _cf_KV; END;",
    )
    .len();
    let error = message(&mut db, "INSERT INTO log VALUES (1)");
    assert!(error.contains("prohibited"), "{error}");
    // An external-content fts5 table cannot read a hidden table either.
    db.set_alarm(Some(1234)).expect("alarm");
    rows(
        &mut db,
        "CREATE VIRTUAL TABLE leak USING fts5(value, content='_cf_METADATA', content_rowid='key')",
    );
    let error = message(&mut db, "SELECT * FROM leak");
    assert!(error.contains("prohibited"), "{error}");

    // Renaming into the reserved namespace is refused and undone.
    assert_eq!(
        message(&mut db, "ALTER TABLE t RENAME TO _cf_stolen"),
        "not authorized: SQLITE_AUTH"
    );
    assert_eq!(
        rows(&mut db, "SELECT count(*) FROM t"),
        [[Value::Integer(0)]]
    );
    rows(&mut db, "ALTER TABLE t RENAME TO renamed");
    rows(&mut db, "ALTER TABLE renamed ADD COLUMN z");

    // Reading the schema, which names the hidden tables, is no secret; user columns may use
    // the prefix, as in workerd.
    assert!(
        !rows(
            &mut db,
            "SELECT name FROM sqlite_master WHERE name = '_cf_KV'"
        )
        .is_empty()
    );
    rows(&mut db, "CREATE TABLE ok (_cf_column INTEGER)");
    rows(&mut db, "SELECT _cf_column FROM ok");
    // And the data is still there.
    assert_eq!(db.get("secret").expect("get"), Some(b"value".to_vec()));
}

#[test]
fn pragmas_outside_the_allow_list_are_refused() {
    let mut db = database();
    rows(&mut db, "CREATE TABLE t (x)");
    for sql in [
        "PRAGMA hard_heap_limit = 1024",
        "PRAGMA data_version = 5",
        "PRAGMA max_page_count = 65536",
        "PRAGMA page_size = 8192",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA journal_mode",
        "PRAGMA synchronous = FULL",
        "PRAGMA writable_schema = ON",
        "PRAGMA integrity_check",
        "PRAGMA defer_foreign_keys = abcd",
        "PRAGMA defer_foreign_keys = \"foo\"",
        "PRAGMA optimize = banana",
        "PRAGMA index_list",
        "PRAGMA temp.foreign_keys",
        "SELECT * FROM pragma_compile_options",
    ] {
        let error = message(&mut db, sql);
        assert!(error.starts_with("not authorized"), "{sql}: {error}");
    }
}

#[test]
fn allowed_pragmas_work() {
    let mut db = database();
    rows(
        &mut db,
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);
         CREATE TABLE myTable (foo TEXT, bar INTEGER REFERENCES parent (id));
         CREATE INDEX my_index ON myTable (foo);",
    );
    // SQLite ignores `PRAGMA foreign_keys` inside a transaction, so end the turn first.
    db.commit_turn().expect("commit");
    let single = |db: &mut Database, sql: &str| -> Value {
        let found = rows(db, sql);
        assert_eq!(found.len(), 1, "{sql}: {found:?}");
        found[0][0].clone()
    };
    assert!(matches!(
        single(&mut db, "pragma data_version;"),
        Value::Integer(_)
    ));
    assert_eq!(single(&mut db, "PRAGMA page_size"), Value::Integer(4096));
    for (spelling, expected) in [
        ("true", 1),
        ("false", 0),
        ("on", 1),
        ("off", 0),
        ("yes", 1),
        ("no", 0),
        ("1", 1),
        ("0", 0),
        ("tRuE", 1),
        ("NO", 0),
        ("'true'", 1),
        ("\"yes\"", 1),
        ("\"0\"", 0),
        ("  true    ", 1),
    ] {
        rows(&mut db, &format!("PRAGMA defer_foreign_keys = {spelling};"));
        assert_eq!(
            single(&mut db, "PRAGMA defer_foreign_keys"),
            Value::Integer(expected),
            "{spelling}"
        );
    }
    for pragma in [
        "case_sensitive_like",
        "foreign_keys",
        "ignore_check_constraints",
        "legacy_alter_table",
        "recursive_triggers",
        "reverse_unordered_selects",
    ] {
        rows(&mut db, &format!("PRAGMA {pragma} = ON"));
        rows(&mut db, &format!("PRAGMA {pragma} = OFF"));
    }
    assert_eq!(single(&mut db, "PRAGMA foreign_keys"), Value::Integer(0));
    rows(&mut db, "PRAGMA foreign_keys = ON");
    assert_eq!(single(&mut db, "PRAGMA foreign_keys"), Value::Integer(1));

    assert_eq!(rows(&mut db, "PRAGMA table_info(myTable)").len(), 2);
    assert_eq!(rows(&mut db, "PRAGMA table_xinfo(myTable)").len(), 2);
    assert!(!rows(&mut db, "PRAGMA table_list").is_empty());
    assert_eq!(rows(&mut db, "PRAGMA index_list(myTable)").len(), 1);
    assert_eq!(rows(&mut db, "PRAGMA index_info(my_index)").len(), 1);
    assert_eq!(rows(&mut db, "PRAGMA index_xinfo(my_index)").len(), 2);
    assert_eq!(rows(&mut db, "PRAGMA foreign_key_list(myTable)").len(), 1);
    assert!(rows(&mut db, "PRAGMA foreign_key_check").is_empty());
    assert!(rows(&mut db, "PRAGMA foreign_key_check(myTable)").is_empty());
    for sql in [
        "pragma quick_check;",
        "pragma quick_check(1);",
        "pragma quick_check(100);",
        "pragma quick_check(myTable);",
    ] {
        assert_eq!(rows(&mut db, sql), [[text("ok")]], "{sql}");
    }
    rows(&mut db, "PRAGMA optimize(-1)");
    rows(&mut db, "PRAGMA optimize(0x7fffffff)");
    rows(&mut db, "PRAGMA optimize=0x10002");
    rows(&mut db, "PRAGMA optimize");
    rows(&mut db, "ANALYZE");
    assert_eq!(
        rows(&mut db, "SELECT name FROM pragma_table_info('myTable')").len(),
        2
    );
}

#[test]
fn functions_outside_the_allow_list_are_refused() {
    let mut db = database();
    for function in [
        "sqlite_version()",
        "sqlite_source_id()",
        "sqlite_compileoption_used('ENABLE_FTS5')",
        "sqlite_compileoption_get(0)",
        "load_extension('x')",
        "fts3_tokenizer('simple')",
    ] {
        let error = message(&mut db, &format!("SELECT {function}"));
        assert!(
            error.starts_with("not authorized to use function: ") || error.contains("no such"),
            "{function}: {error}"
        );
    }
    // SQLite reports this one as a parse error, with the function's offset.
    assert_eq!(
        message(&mut db, "SELECT sqlite_version()"),
        "not authorized to use function: sqlite_version at offset 7: SQLITE_ERROR"
    );
    for (sql, expected) in [
        ("SELECT abs(-123)", Value::Integer(123)),
        ("SELECT upper('x')", text("X")),
        ("SELECT '{\"a\":2,\"c\":[4,5]}' -> '$.c'", text("[4,5]")),
        ("SELECT json_extract('{\"a\":1}', '$.a')", Value::Integer(1)),
        ("SELECT typeof(randomblob(4))", text("blob")),
    ] {
        assert_eq!(rows(&mut db, sql), [[expected]], "{sql}");
    }
    assert!(matches!(
        rows(&mut db, "SELECT current_date")[0][0],
        Value::Text(_)
    ));
}

#[test]
fn prepared_statements_of_the_engine_are_denied_outside_trusted_mode() {
    let mut db = database();
    assert!(db.connection().prepare("SELECT 1").is_err());
    let count: i64 = db.with_trusted_connection(|connection| {
        connection
            .query_row("SELECT count(*) FROM _cf_KV", [], |row| row.get(0))
            .expect("trusted read")
    });
    assert_eq!(count, 0);
}

#[test]
fn user_sql_equal_to_an_internal_statement_is_still_refused() {
    let mut db = database();
    db.put("k", b"v").expect("put");
    // The exact text of the internal KV read: it must not reuse the trusted prepared statement.
    let error = db
        .exec("SELECT value FROM _cf_KV WHERE key = ?1", &[text("k")])
        .expect_err("refused");
    assert!(error.to_string().contains("prohibited"), "{error}");
    let error = db.exec("BEGIN", &[]).expect_err("refused");
    assert_eq!(error, Error::TransactionStatement);
}
