//! Crash test with real processes: a writer commits multi-key, multi-table transactions and reports
//! each acknowledged commit over a pipe; the harness `kill -9`s it at random moments and checks that
//! every acknowledged commit survived and no transaction is partially visible.
//!
//! The writer is this same test executable, re-run with `BURROW_CRASH_WRITER` set (see
//! [`writer_process`]), so no extra binary is needed.

use burrow_storage::engine::{Durability, Engine, Options};
use burrow_storage::fs::OsFs;
use burrow_storage::sql::Value;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const OBJECTS: u64 = 6;
const NAMESPACE: &str = "crash";

fn object_id(index: u64) -> String {
    format!("{index:064x}")
}

/// The writer: runs only when the harness starts it with `BURROW_CRASH_WRITER=<dir>`.
#[test]
fn writer_process() {
    let Ok(dir) = std::env::var("BURROW_CRASH_WRITER") else {
        return;
    };
    let start_seq: u64 = std::env::var("BURROW_CRASH_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let durability = if std::env::var("BURROW_CRASH_RELAXED").is_ok() {
        Durability::Relaxed
    } else {
        Durability::Full
    };
    let options = Options {
        durability,
        ..Options::default()
    };
    let engine = Engine::open(Arc::new(OsFs), Path::new(&dir), options).unwrap();
    let mut objects: Vec<_> = (0..OBJECTS)
        .map(|i| engine.open_object(NAMESPACE, &object_id(i)).unwrap())
        .collect();
    for object in &mut objects {
        object
            .db()
            .exec(
                "CREATE TABLE IF NOT EXISTS orders(seq INTEGER PRIMARY KEY, item TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS ledger(seq INTEGER PRIMARY KEY, amount INTEGER NOT NULL, note BLOB)",
                &[],
            )
            .unwrap();
        object.commit().unwrap().map(|d| d.wait().unwrap());
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut seq = start_seq;
    loop {
        // Several objects commit before any waits, so group commit batches them.
        let mut pending = Vec::new();
        for (index, object) in objects.iter_mut().enumerate() {
            let db = object.db();
            let payload = vec![(seq % 251) as u8; 64 + (seq as usize % 700)];
            db.exec(
                "INSERT INTO orders(seq, item) VALUES (?1, ?2)",
                &[
                    Value::Integer(seq as i64),
                    Value::Text(format!("item-{seq}")),
                ],
            )
            .unwrap();
            db.exec(
                "INSERT INTO ledger(seq, amount, note) VALUES (?1, ?2, ?3)",
                &[
                    Value::Integer(seq as i64),
                    Value::Integer(seq as i64 * 3),
                    Value::Blob(payload),
                ],
            )
            .unwrap();
            db.put(&format!("k/{seq}/a"), seq.to_string().as_bytes())
                .unwrap();
            db.put(&format!("k/{seq}/b"), seq.to_string().as_bytes())
                .unwrap();
            db.put("last", seq.to_string().as_bytes()).unwrap();
            let durable = object.commit().unwrap().expect("the turn wrote");
            pending.push((index, durable));
        }
        for (index, durable) in pending {
            durable.wait().unwrap();
            writeln!(out, "ACK {index} {seq}").unwrap();
        }
        out.flush().unwrap();
        seq += 1;
    }
}

/// What one object holds after recovery, checked for atomicity.
fn committed_seqs(engine: &Engine, index: u64) -> Vec<u64> {
    let mut object = engine.open_object(NAMESPACE, &object_id(index)).unwrap();
    let db = object.db();
    let tables = db
        .exec(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('orders', 'ledger')",
            &[],
        )
        .unwrap();
    if tables.rows[0][0] != Value::Integer(2) {
        object.close().unwrap();
        return Vec::new();
    }
    let orders: Vec<u64> = db
        .exec("SELECT seq FROM orders ORDER BY seq", &[])
        .unwrap()
        .rows
        .iter()
        .map(|row| match row[0] {
            Value::Integer(n) => n as u64,
            ref other => panic!("unexpected {other:?}"),
        })
        .collect();
    let ledger: Vec<u64> = db
        .exec(
            "SELECT seq FROM ledger WHERE amount = seq * 3 ORDER BY seq",
            &[],
        )
        .unwrap()
        .rows
        .iter()
        .map(|row| match row[0] {
            Value::Integer(n) => n as u64,
            ref other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        orders, ledger,
        "object {index}: orders and ledger disagree (partial transaction)"
    );
    for seq in &orders {
        for suffix in ["a", "b"] {
            let value = db.get(&format!("k/{seq}/{suffix}")).unwrap();
            assert_eq!(
                value.as_deref(),
                Some(seq.to_string().as_bytes()),
                "object {index}: KV key of transaction {seq} missing (partial transaction)"
            );
        }
    }
    let last = db.get("last").unwrap();
    let expected_last = orders.last().map(|s| s.to_string().into_bytes());
    assert_eq!(
        last, expected_last,
        "object {index}: KV 'last' disagrees with SQL"
    );
    let keys = db.list(&Default::default()).unwrap().len();
    assert_eq!(keys, orders.len() * 2 + usize::from(!orders.is_empty()));
    object.close().unwrap();
    orders
}

#[test]
fn acknowledged_commits_survive_kill_9() {
    let iterations: usize = std::env::var("BURROW_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    kill_9_loop(iterations, false);
}

/// Relaxed durability skips fsync but must still survive a process crash: the OS keeps what was
/// written.
#[test]
fn relaxed_mode_survives_kill_9() {
    kill_9_loop(15, true);
}

fn kill_9_loop(iterations: usize, relaxed: bool) {
    let seed: u64 = std::env::var("BURROW_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6275_7272_6f77);
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // Every acknowledged sequence per object, over all iterations.
    let mut acked: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    let mut next_seq = 1;
    let mut total_acks = 0;
    for iteration in 0..iterations {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "writer_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BURROW_CRASH_WRITER", dir.path())
            .env("BURROW_CRASH_START", next_seq.to_string())
            .env(
                if relaxed {
                    "BURROW_CRASH_RELAXED"
                } else {
                    "BURROW_CRASH_FULL"
                },
                "1",
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace();
                if parts.next() == Some("ACK") {
                    let index: u64 = parts.next().unwrap().parse().unwrap();
                    let seq: u64 = parts.next().unwrap().parse().unwrap();
                    acks.push((index, seq));
                }
            }
            acks
        });
        // Kill at a random moment: sometimes during start-up and recovery, mostly mid-stream.
        let delay = Duration::from_millis(rng.random_range(20..400));
        let start = Instant::now();
        while start.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                panic!("writer exited on its own in iteration {iteration}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // SIGKILL: no destructor, no flush, exactly like kill -9.
        child.kill().unwrap();
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        total_acks += acks.len();
        for (index, seq) in acks {
            acked.entry(index).or_default().insert(seq);
        }
        let durability = if relaxed {
            Durability::Relaxed
        } else {
            Durability::Full
        };
        let options = Options {
            durability,
            ..Options::default()
        };
        let engine = Engine::open(Arc::new(OsFs), dir.path(), options).unwrap();
        let mut max_seen = next_seq - 1;
        for index in 0..OBJECTS {
            let seqs = committed_seqs(&engine, index);
            if let Some(expected) = acked.get(&index) {
                // Every sequence ever acknowledged for this object must be there.
                let missing: Vec<_> = expected
                    .iter()
                    .filter(|s| seqs.binary_search(s).is_err())
                    .take(5)
                    .collect();
                assert!(
                    missing.is_empty(),
                    "iteration {iteration}: object {index} lost acknowledged commits {missing:?} of {}",
                    expected.len()
                );
            }
            max_seen = max_seen.max(seqs.last().copied().unwrap_or(0));
        }
        engine.shutdown().unwrap();
        drop(engine);
        next_seq = max_seen + 1;
    }
    eprintln!(
        "kill -9 crash test (relaxed: {relaxed}): {iterations} iterations, {total_acks} acknowledged commits, all present, no partial transaction"
    );
    assert!(total_acks > 0, "the writer never acknowledged anything");
}
