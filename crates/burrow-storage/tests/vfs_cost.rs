//! What the VFS costs per small commit, as a ratio against SQLite's default VFS with the same
//! pragmas, measured in the same run. Prints only; never asserts on time.
//!
//! `cargo test --release -p burrow-storage --test vfs_cost -- --ignored --nocapture`

mod vfs_support;

use std::path::Path;
use std::time::Instant;

use burrow_storage::vfs::Vfs;
use rusqlite::{Connection, params};
use vfs_support::{MemFs, REQUIRED_PRAGMAS, checkpoint, open};

const PUTS: usize = 20_000;
const ROWS: usize = 2_000;

fn put(conn: &Connection, i: usize) {
    conn.execute(
        "INSERT OR REPLACE INTO kv VALUES (?1, ?2)",
        params![
            format!("key-{:06}", (i * 7919) % ROWS),
            vec![(i % 251) as u8; 100]
        ],
    )
    .unwrap();
}

#[test]
#[ignore = "a measurement, run by hand in release mode"]
fn cost_per_small_commit() {
    const SCHEMA: &str = "CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID";

    // Reference: SQLite's own VFS on a real file, same pragmas, no capture.
    let dir = tempfile::tempdir().unwrap();
    let plain = Connection::open(dir.path().join("plain.sqlite")).unwrap();
    plain.execute_batch(REQUIRED_PRAGMAS).unwrap();
    plain.execute_batch(SCHEMA).unwrap();
    for i in 0..ROWS {
        put(&plain, i);
    }
    let start = Instant::now();
    for i in 0..PUTS {
        put(&plain, i);
    }
    let plain_us = start.elapsed().as_secs_f64() * 1e6 / PUTS as f64;

    // The VFS: every commit captured and encoded, a checkpoint every 1,000 commits.
    let vfs = Vfs::register(MemFs::new()).unwrap();
    let path = Path::new("/objects/cost.sqlite");
    let conn = open(&vfs, path);
    conn.execute_batch(SCHEMA).unwrap();
    let main = vfs.main_file(path).unwrap();
    for i in 0..ROWS {
        put(&conn, i);
    }
    main.take_capture().unwrap();
    checkpoint(&vfs, &main);
    let mut encoded = Vec::new();
    let mut bytes = 0;
    let start = Instant::now();
    for i in 0..PUTS {
        put(&conn, i);
        // `None` when the put rewrote a row with identical bytes.
        if let Some(capture) = main.take_capture().unwrap() {
            encoded.clear();
            capture.encode(&mut encoded);
            bytes += encoded.len();
        }
        if i % 1_000 == 999 {
            checkpoint(&vfs, &main);
        }
    }
    let vfs_us = start.elapsed().as_secs_f64() * 1e6 / PUTS as f64;
    println!(
        "small commit: default VFS {plain_us:.1} µs, Burrow VFS with capture {vfs_us:.1} µs \
         (ratio {:.2}), {} encoded bytes per commit",
        vfs_us / plain_us,
        bytes / PUTS
    );
}
