//! Real SQLite over the Burrow VFS: the overlay keeps the file on disk at its last checkpoint,
//! checkpoints produce valid databases, and captures are small and empty when nothing changed.

mod vfs_support;

use std::path::Path;
use std::sync::Arc;

use burrow_storage::fs::{Fs, OsFs};
use burrow_storage::vfs::{Capture, Error, Vfs};
use rusqlite::{Connection, OpenFlags, params};
use vfs_support::{MemFs, checkpoint, dump, integrity, open};

/// Opens a checkpointed file with SQLite's own VFS, read-only: the file must stand alone.
fn open_plain(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn encoded_len(capture: &Capture) -> usize {
    let mut out = Vec::new();
    capture.encode(&mut out);
    assert_eq!(Capture::decode(&out).unwrap(), *capture);
    out.len()
}

#[test]
fn os_fs_file_is_untouched_until_checkpoint_then_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("object.sqlite");
    let vfs = Vfs::register(Arc::new(OsFs)).unwrap();
    let conn = open(&vfs, &path);
    conn.execute_batch(
        "CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB);
         CREATE TABLE log(id INTEGER PRIMARY KEY, line TEXT);",
    )
    .unwrap();
    let main = vfs.main_file(&path).expect("open files are registered");
    assert!(main.take_capture().unwrap().is_some());
    for i in 0..200 {
        conn.execute(
            "INSERT INTO kv VALUES (?1, ?2)",
            params![format!("key{i}"), vec![i as u8; 300]],
        )
        .unwrap();
        main.take_capture()
            .unwrap()
            .expect("each insert changes pages");
    }
    conn.execute("INSERT INTO log(line) VALUES ('hello')", [])
        .unwrap();
    main.take_capture().unwrap();

    // Nothing reached the file: SQLite created it empty and every write went to the overlay.
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    assert!(!dir.path().join("object.sqlite-journal").exists());
    assert!(main.dirty_pages() > 0);
    let expected = dump(&conn);

    let written = checkpoint(&vfs, &main);
    assert!(written > 0);
    assert_eq!(main.dirty_pages(), 0);
    assert!(!main.needs_checkpoint());
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        main.size_bytes(),
        "the file holds the whole database"
    );

    // The checkpointed file is a valid database on its own, with every row.
    let plain = open_plain(&path);
    assert_eq!(integrity(&plain), "ok");
    assert_eq!(dump(&plain), expected);
    drop(plain);

    // Closing a clean file forgets it; reopening reads the file.
    drop(conn);
    assert!(vfs.main_file(&path).is_none());
    let conn = open(&vfs, &path);
    assert_eq!(dump(&conn), expected);
    assert_eq!(integrity(&conn), "ok");

    // Only the VFS's database file exists: no journal, WAL or shm ever.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["object.sqlite"]);
}

#[test]
fn overlay_survives_close_and_reopen_before_checkpoint() {
    let fs = MemFs::new();
    let vfs = Vfs::register(fs.clone()).unwrap();
    let path = Path::new("/objects/a.sqlite");
    let conn = open(&vfs, path);
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);")
        .unwrap();
    let main = vfs.main_file(path).unwrap();
    main.take_capture().unwrap();
    drop(conn);

    // Dirty state outlives the connection, and the file is still empty.
    assert!(!main.is_open());
    assert!(vfs.main_file(path).is_some());
    assert!(fs.contents(path).is_empty());
    assert!(matches!(vfs.discard(path), Ok(true)));
    // Discarding dropped the overlay; put it back by redoing the work, then reopen.
    let conn = open(&vfs, path);
    assert_eq!(dump(&conn), Vec::<String>::new());
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);")
        .unwrap();
    let main = vfs.main_file(path).unwrap();
    main.take_capture().unwrap();
    drop(conn);

    let conn = open(&vfs, path);
    assert_eq!(dump(&conn).len(), 3, "reopen sees the overlay");
    assert!(matches!(vfs.discard(path), Err(Error::StillOpen { .. })));

    // A checkpoint of the closed file makes it clean, and the VFS forgets it.
    drop(conn);
    checkpoint(&vfs, &main);
    assert!(vfs.main_file(path).is_none());
    let conn = open(&vfs, path);
    assert_eq!(dump(&conn).len(), 3);
}

#[test]
fn a_second_connection_to_an_open_file_is_refused() {
    let vfs = Vfs::register(MemFs::new()).unwrap();
    let path = Path::new("/objects/b.sqlite");
    let conn = open(&vfs, path);
    conn.execute_batch("CREATE TABLE t(x)").unwrap();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
    let second = Connection::open_with_flags_and_vfs(path, flags, vfs.name())
        .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)));
    assert!(second.is_err(), "two overlays of one file would diverge");
}

#[test]
fn wal_mode_is_refused_and_creates_no_files() {
    let fs = MemFs::new();
    let vfs = Vfs::register(fs.clone()).unwrap();
    let path = Path::new("/objects/w.sqlite");
    let conn = open(&vfs, path);
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    let refused = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
        .unwrap_err();
    assert!(
        refused.to_string().contains("WAL is not supported"),
        "{refused}"
    );
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "memory");
    conn.execute("INSERT INTO t VALUES (2)", []).unwrap();
    assert_eq!(fs.paths(), vec![path.to_path_buf()]);
}

#[test]
fn rolled_back_transactions_capture_nothing() {
    let vfs = Vfs::register(MemFs::new()).unwrap();
    let path = Path::new("/objects/r.sqlite");
    let conn = open(&vfs, path);
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    let main = vfs.main_file(path).unwrap();
    main.take_capture().unwrap().unwrap();

    conn.execute_batch(
        "BEGIN; INSERT INTO t(v) VALUES (zeroblob(50000)); UPDATE t SET v = x'01'; ROLLBACK;",
    )
    .unwrap();
    assert_eq!(main.take_capture().unwrap(), None);

    // A savepoint rolled back inside a transaction that then commits: SQLite still bumps the
    // header's change counter (and its copy at offset 92), so only those bytes are captured.
    conn.execute_batch(
        "BEGIN; SAVEPOINT s; INSERT INTO t(v) VALUES (zeroblob(9000)); ROLLBACK TO s; RELEASE s;
         COMMIT;",
    )
    .unwrap();
    let capture = main.take_capture().unwrap().unwrap();
    assert!(
        capture.ranges().all(|(offset, bytes)| {
            let end = offset + bytes.len() as u64;
            (24..28).contains(&offset) && end <= 28 || (92..96).contains(&offset) && end <= 96
        }),
        "only the change counter moves: {capture:?}"
    );
    assert_eq!(capture.size_bytes(), capture.zero_from());

    // Rewriting a row with the same value commits pages with identical bytes.
    conn.execute("INSERT INTO t(id, v) VALUES (1, x'aa')", [])
        .unwrap();
    main.take_capture().unwrap().unwrap();
    conn.execute("UPDATE t SET v = x'aa' WHERE id = 1", [])
        .unwrap();
    let identical = main.take_capture().unwrap();
    // Only the header's change counter may move; no data page changes.
    if let Some(capture) = identical {
        assert!(capture.changed_bytes() <= 16, "{capture:?}");
    }
}

#[test]
fn a_small_insert_captures_about_its_own_size() {
    let vfs = Vfs::register(MemFs::new()).unwrap();
    let path = Path::new("/objects/s.sqlite");
    let conn = open(&vfs, path);
    conn.execute_batch("CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID")
        .unwrap();
    let main = vfs.main_file(path).unwrap();
    for i in 0..50 {
        conn.execute(
            "INSERT INTO kv VALUES (?1, ?2)",
            params![format!("warmup-{i:04}"), vec![7u8; 100]],
        )
        .unwrap();
    }
    main.take_capture().unwrap();

    let mut sizes = Vec::new();
    for i in 0..20 {
        conn.execute(
            "INSERT INTO kv VALUES (?1, ?2)",
            params![format!("key-{i:04}"), vec![i as u8; 100]],
        )
        .unwrap();
        let capture = main.take_capture().unwrap().unwrap();
        sizes.push((encoded_len(&capture), capture.ranges().count()));
    }
    let total: usize = sizes.iter().map(|(len, _)| len).sum();
    let average = total / sizes.len();
    println!(
        "encoded bytes per 100-byte insert: average {average}, each (bytes, ranges): {sizes:?}"
    );
    assert!(
        average < 400,
        "a small insert should not cost a page: {sizes:?}"
    );
}

#[test]
fn checkpoint_while_committing_keeps_later_commits() {
    let fs = MemFs::new();
    let vfs = Vfs::register(fs.clone()).unwrap();
    let path = Path::new("/objects/c.sqlite");
    let conn = open(&vfs, path);
    conn.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
         CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB);",
    )
    .unwrap();
    for i in 0..100 {
        conn.execute("INSERT INTO t VALUES (?1, ?2)", params![i, vec![1u8; 200]])
            .unwrap();
    }
    conn.execute("INSERT INTO big VALUES (1, zeroblob(200000))", [])
        .unwrap();
    let main = vfs.main_file(path).unwrap();
    main.take_capture().unwrap();
    let at_snapshot = dump(&conn);

    let snapshot = main.checkpoint_snapshot().unwrap();
    assert!(matches!(
        main.checkpoint_snapshot(),
        Err(Error::CheckpointInProgress { .. })
    ));

    // Commits after the snapshot: rewrite some snapshotted pages, then shrink the file (the
    // checkpoint must not resurrect the dropped pages) and grow it again.
    conn.execute("UPDATE t SET v = ?1 WHERE id < 50", params![vec![2u8; 200]])
        .unwrap();
    conn.execute("DELETE FROM big", []).unwrap();
    conn.execute_batch("VACUUM").unwrap();
    conn.execute("INSERT INTO t VALUES (1000, zeroblob(30000))", [])
        .unwrap();
    main.take_capture()
        .unwrap()
        .expect("the later commits changed pages");
    let after = dump(&conn);
    assert_ne!(after, at_snapshot);

    // Write the snapshot on another thread while this one keeps reading.
    let writer = std::thread::spawn(move || {
        let file = snapshot.write().unwrap();
        file.sync_data().unwrap();
        snapshot
    });
    assert_eq!(dump(&conn), after);
    let snapshot = writer.join().unwrap();
    main.checkpoint_done(snapshot).unwrap();

    // The file holds exactly the snapshot's state…
    let image = fs.contents(path);
    let copy = MemFs::new();
    copy.put(Path::new("/copy.sqlite"), &image);
    let copy_vfs = Vfs::register(copy).unwrap();
    let reader = open(&copy_vfs, Path::new("/copy.sqlite"));
    assert_eq!(integrity(&reader), "ok");
    assert_eq!(dump(&reader), at_snapshot);

    // …and the later commits are still in the overlay, so nothing is lost.
    assert!(main.dirty_pages() > 0);
    assert_eq!(dump(&conn), after);
    drop(conn);
    let conn = open(&vfs, path);
    assert_eq!(dump(&conn), after);
    assert_eq!(integrity(&conn), "ok");
    checkpoint(&vfs, &main);
    assert_eq!(main.dirty_pages(), 0);
    assert_eq!(fs.contents(path).len() as u64, main.size_bytes());
    drop(conn);
    let conn = open(&vfs, path);
    assert_eq!(dump(&conn), after);
}

#[test]
fn checkpoint_protocol_refusals() {
    let vfs = Vfs::register(MemFs::new()).unwrap();
    let path = Path::new("/objects/p.sqlite");
    let conn = open(&vfs, path);
    conn.execute_batch("CREATE TABLE t(x)").unwrap();
    let main = vfs.main_file(path).unwrap();

    // A commit not captured yet cannot be checkpointed: no record would cover it.
    assert!(matches!(
        main.checkpoint_snapshot(),
        Err(Error::UncapturedChanges { .. })
    ));
    main.take_capture().unwrap().unwrap();

    // A snapshot must be written before it is confirmed; dropping one abandons it.
    let snapshot = main.checkpoint_snapshot().unwrap();
    assert!(matches!(
        main.checkpoint_done(snapshot),
        Err(Error::NotWritten { .. })
    ));
    let snapshot = main.checkpoint_snapshot().unwrap();
    snapshot.write().unwrap();
    main.checkpoint_done(snapshot).unwrap();
    assert_eq!(main.dirty_pages(), 0);
    drop(conn);
}

#[test]
fn os_fs_delete_leaves_no_journal_behind_on_any_journal_mode() {
    // Even if the engine forgot journal_mode=MEMORY, rollback journals stay in memory.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.sqlite");
    let vfs = Vfs::register(Arc::new(OsFs)).unwrap();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
    let conn = Connection::open_with_flags_and_vfs(&path, flags, vfs.name()).unwrap();
    conn.execute_batch(
        "PRAGMA cache_spill=OFF;
         CREATE TABLE t(x);
         BEGIN; INSERT INTO t VALUES (1); ROLLBACK;
         INSERT INTO t VALUES (2);",
    )
    .unwrap();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 1);
    assert!(!OsFs.exists(&dir.path().join("j.sqlite-journal")));
    let main = vfs.main_file(&path).unwrap();
    main.take_capture().unwrap().unwrap();
    checkpoint(&vfs, &main);
    let plain = open_plain(&path);
    assert_eq!(integrity(&plain), "ok");
}

#[test]
fn temporary_and_anonymous_databases_stay_in_memory() {
    let fs = MemFs::new();
    let vfs = Vfs::register(fs.clone()).unwrap();
    let path = Path::new("/objects/t.sqlite");
    let conn = open(&vfs, path);
    // Override the required temp_store=MEMORY, and keep SQLite's temp cache tiny, so SQLite
    // opens temp files (a temp database and sorter spills) through the VFS.
    conn.execute_batch(
        "PRAGMA temp_store=FILE;
         PRAGMA temp.cache_size=10;
         PRAGMA cache_size=10;
         CREATE TABLE t(x);
         CREATE TEMP TABLE scratch(x);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
         INSERT INTO scratch SELECT randomblob(100) FROM n;
         INSERT INTO t SELECT x FROM scratch ORDER BY x;",
    )
    .unwrap();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 5000);
    assert_eq!(fs.paths(), vec![path.to_path_buf()]);

    // An anonymous database ("" file name) through the VFS is a memory file too.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
    let anonymous = Connection::open_with_flags_and_vfs("", flags, vfs.name()).unwrap();
    anonymous
        .execute_batch(
            "PRAGMA cache_size=5;
             CREATE TABLE a(x);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO a SELECT randomblob(200) FROM n;",
        )
        .unwrap();
    let count: i64 = anonymous
        .query_row("SELECT count(*) FROM a", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 2000);
    assert_eq!(fs.paths(), vec![path.to_path_buf()]);
}
