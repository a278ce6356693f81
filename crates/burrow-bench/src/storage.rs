//! `burrow-bench storage`: durable commits/s of many objects through the group-committed journal,
//! against one plain SQLite database (WAL, synchronous=FULL) and raw fsync on the same disk.

use crate::stats::{Samples, rate};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const VALUE_BYTES: usize = 100;

pub(crate) fn run(quick: bool, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let scratch = crate::scratch_dir(dir)?;
    let phase = if quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(8)
    };

    eprintln!("[1/3] raw fsync latency on {}", scratch.path().display());
    let mut fsync = fsync_latency(scratch.path(), if quick { 500 } else { 2000 })?;
    let fsync_p50_us = fsync.percentile(50.0);
    eprintln!("      fsync p50 {fsync_p50_us} µs");

    eprintln!("[2/3] SQLite alone: one database, WAL, synchronous=FULL, one writer");
    let sqlite_rate = sqlite_full_rate(scratch.path(), phase)?;
    eprintln!("      {sqlite_rate:.0} commits/s");

    let object_counts: &[usize] = if quick { &[100] } else { &[1, 100, 1000] };
    let mut headline = None;
    for (index, &objects) in object_counts.iter().enumerate() {
        eprintln!(
            "[3/3] Burrow: {objects} objects, closed loop of durable 100-byte puts ({}/{})",
            index + 1,
            object_counts.len()
        );
        let result = burrow_rate(scratch.path(), objects, phase)?;
        eprintln!(
            "      {:.0} commits/s ({:.1}x SQLite alone), p99 {} µs, {} journal bytes/commit, {:.3} fsyncs/commit",
            result.commits_per_s,
            result.commits_per_s / sqlite_rate,
            result.p99_us,
            result.bytes_per_commit,
            result.fsyncs_per_commit,
        );
        if objects == 100 {
            headline = Some(result);
        }
    }
    if !quick {
        eprintln!("[+] recovery: replaying the journal after a crash");
        let mb_per_s = recovery_rate(scratch.path())?;
        eprintln!("      recovery_mb_per_s={mb_per_s:.1}");
    }
    let headline = headline.expect("100 objects is always measured");
    println!(
        "RESULT storage group_commit_ratio={:.2} p99_commit_us={} fsync_p50_us={} bytes_per_commit={}",
        headline.commits_per_s / sqlite_rate,
        headline.p99_us,
        fsync_p50_us,
        headline.bytes_per_commit
    );
    Ok(())
}

/// Overwrites one 4 KiB block and fdatasyncs it, `rounds` times.
fn fsync_latency(dir: &Path, rounds: usize) -> anyhow::Result<Samples> {
    let path = dir.join("fsync-probe");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let block = vec![0x5a_u8; 4096];
    file.write_all_at(&block, 0)?;
    file.sync_all()?;
    let mut samples = Samples::with_capacity(rounds);
    for round in 0..rounds {
        let offset = (round % 16) as u64 * 4096;
        let start = Instant::now();
        file.write_all_at(&block, offset)?;
        file.sync_data()?;
        samples.push(start.elapsed());
    }
    std::fs::remove_file(path)?;
    Ok(samples)
}

/// Commits/s of single-key puts into one SQLite database in WAL mode with synchronous=FULL.
fn sqlite_full_rate(dir: &Path, phase: Duration) -> anyhow::Result<f64> {
    let path = dir.join("reference.sqlite");
    let conn = rusqlite::Connection::open(&path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute(
        "CREATE TABLE kv(key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID",
        (),
    )?;
    let value = vec![7u8; VALUE_BYTES];
    let mut insert = conn.prepare("INSERT OR REPLACE INTO kv(key, value) VALUES (?1, ?2)")?;
    let start = Instant::now();
    let mut commits = 0u64;
    while start.elapsed() < phase {
        insert.execute((format!("key-{commits}"), &value))?;
        commits += 1;
    }
    let took = start.elapsed();
    drop(insert);
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(rate(commits, took))
}

struct BurrowResult {
    commits_per_s: f64,
    p99_us: u64,
    bytes_per_commit: u64,
    fsyncs_per_commit: f64,
}

fn burrow_rate(_dir: &Path, _objects: usize, _phase: Duration) -> anyhow::Result<BurrowResult> {
    anyhow::bail!("the storage engine is not wired into the benchmark yet")
}

fn recovery_rate(_dir: &Path) -> anyhow::Result<f64> {
    anyhow::bail!("the storage engine is not wired into the benchmark yet")
}
