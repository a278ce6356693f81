//! Hibernated objects: how much memory each one leaves in the server, and how long the first
//! request to one takes, against opening a SQLite file and reading a row.
//!
//! These phases keep their files on `/dev/shm` when it exists. Neither figure depends on the
//! disk: resident memory does not count the page cache or tmpfs, and a wake reads a file written
//! seconds before, which comes from memory either way (the SQLite reference reads from the same
//! directory, so both see the same conditions). On a disk, creating and then deleting 20,000
//! object files would take minutes here (ext4 with online discard costs about 3 ms an unlink).

use super::{CONNECTIONS, Errors, phase};
use crate::load::{Args, Report};
use crate::process::Server;
use crate::stats::Samples;
use anyhow::bail;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Idle times of the bench_app these phases run: hibernation, then closing storage.
pub(super) const HIBERNATE_AFTER: Duration = Duration::from_millis(500);
pub(super) const STORAGE_IDLE_AFTER: Duration = Duration::from_secs(1);
/// Objects whose memory is measured after they hibernate.
const HIBERNATED_OBJECTS: u64 = 20_000;
/// The runtime's default sweep interval: idle objects hibernate and close at most this late.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// The longest wait for idle objects to close their storage.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// File descriptors beyond the idle server's that still count as "every object closed" (the
/// journal may have opened another segment, a connection may linger).
const SETTLE_SLACK_FDS: usize = 8;
/// After the objects closed, RSS counts as settled once it has not fallen by more than
/// [`RSS_STEADY_FRACTION`] for [`RSS_STEADY_FOR`], or after [`RSS_STEADY_LIMIT`] (the runtime may
/// hand freed memory back to the system a little later). The steady span is longer than the
/// storage engine's 2 s between two returns of free memory, or a return still to come would be
/// missed.
const RSS_STEADY_FOR: Duration = Duration::from_secs(3);
const RSS_STEADY_FRACTION: f64 = 0.01;
const RSS_STEADY_LIMIT: Duration = Duration::from_secs(10);
/// Resends of a failed write, which every object must take: backing off from 50 ms to 1 s, they
/// span about 5 s, longer than an idle object keeps its storage open.
const WRITE_RETRIES: u32 = 8;
/// The most time one sequence of requests may take.
const SEQUENCE_LIMIT: Duration = Duration::from_secs(300);

/// A fresh temporary directory on `/dev/shm`, or under `./target` where there is none.
pub(super) fn scratch_dir() -> anyhow::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let parent = shm.is_dir().then(|| shm.to_path_buf());
    crate::scratch_dir(parent)
}

/// RSS growth per object: [`HIBERNATED_OBJECTS`] objects each take one write (`POST
/// /do/counter`), then hibernate and close their storage. Their names are `rss0`, `rss1`, ...
///
/// The baseline is the server as it started, so one-time growth (allocator arenas, caches,
/// tables) is charged to the objects too: the figure is an upper bound. A baseline taken after a
/// warm-up set of objects proved worse: the runtime returns freed memory to the system lazily,
/// so such a baseline could hold the warm-up's memory and the figure go negative.
pub(super) fn object_bytes(server: &Server) -> anyhow::Result<i64> {
    let idle_fds = server.open_fds()?;
    let before = server.rss_bytes()?;
    write_each(server, "rss", HIBERNATED_OBJECTS)?;
    let written = server.rss_bytes()?;
    settle(server, idle_fds)?;
    let after = steady_rss(server)?;
    let per_object = (after as i64 - before as i64) / HIBERNATED_OBJECTS as i64;
    eprintln!(
        "      RSS {} KiB before, {} KiB after the writes, {} KiB once they hibernated: \
         {per_object} bytes/object",
        before >> 10,
        written >> 10,
        after >> 10
    );
    Ok(per_object)
}

/// The first request (`GET /do/get`, a read) to each of `samples` objects that [`object_bytes`]
/// left hibernated with their storage closed, one at a time.
pub(super) fn wake(server: &Server, samples: u64, errors: Errors) -> anyhow::Result<Report> {
    let samples = samples.min(HIBERNATED_OBJECTS);
    let url = server.url(&format!("/do/get?name=rss{{0..{}}}", samples - 1));
    phase(
        "wake (GET /do/get)",
        Args::new(url, "GET", 1, SEQUENCE_LIMIT).each(0),
        errors,
    )
}

/// One write to each of `count` objects named `<name>0`, `<name>1`, ...
fn write_each(server: &Server, name: &str, count: u64) -> anyhow::Result<Report> {
    let url = server.url(&format!("/do/counter?name={name}{{0..{}}}", count - 1));
    let args = Args::new(url, "POST", CONNECTIONS, SEQUENCE_LIMIT).each(WRITE_RETRIES);
    let phase_name = format!("one write to each of {count} objects");
    let report = phase(&phase_name, args, Errors::Report)?;
    if report.requests != count {
        bail!(
            "{phase_name}: only {} objects took their write, even with {WRITE_RETRIES} retries",
            report.requests
        );
    }
    Ok(report)
}

/// Waits until every object has hibernated and closed its storage: at least the storage idle time
/// and a sweep, then until the server holds no more file descriptors than when it was idle (each
/// open object database holds at least one).
fn settle(server: &Server, idle_fds: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    std::thread::sleep(STORAGE_IDLE_AFTER + SWEEP_INTERVAL);
    loop {
        let fds = server.open_fds()?;
        if fds <= idle_fds + SETTLE_SLACK_FDS {
            eprintln!(
                "      objects hibernated and closed their storage after {:.1?} \
                 ({fds} descriptors open, {idle_fds} when idle)",
                started.elapsed()
            );
            return Ok(());
        }
        if started.elapsed() > SETTLE_LIMIT {
            bail!(
                "objects still hold storage open {SETTLE_LIMIT:?} after their last request \
                 ({fds} descriptors open, {idle_fds} when idle)"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The server's RSS once it stops falling.
fn steady_rss(server: &Server) -> anyhow::Result<u64> {
    let started = Instant::now();
    let mut reference = server.rss_bytes()?;
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let rss = server.rss_bytes()?;
        if (rss as f64) < reference as f64 * (1.0 - RSS_STEADY_FRACTION) {
            reference = rss;
            since = Instant::now();
        }
        if since.elapsed() >= RSS_STEADY_FOR || started.elapsed() >= RSS_STEADY_LIMIT {
            return Ok(rss.min(reference));
        }
    }
}

/// The wake's reference: latencies of opening each of `files` SQLite files with a new connection
/// and reading one row, in random order, after all of them were written and closed.
pub(super) fn sqlite_open_read(dir: &Path, files: usize) -> anyhow::Result<Samples> {
    std::fs::create_dir_all(dir)?;
    let paths: Vec<PathBuf> = (0..files)
        .map(|index| dir.join(format!("{index:05}.sqlite")))
        .collect();
    for path in &paths {
        let connection = rusqlite::Connection::open(path)?;
        // Only the reads are measured; syncing the setup would just slow the run.
        connection.pragma_update(None, "synchronous", "OFF")?;
        connection.execute_batch(
            "CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER);
             INSERT INTO counter(id, n) VALUES (1, 1);",
        )?;
    }
    let mut order = paths;
    order.shuffle(&mut rand::rngs::SmallRng::seed_from_u64(7));
    let mut samples = Samples::with_capacity(order.len());
    for path in &order {
        let started = Instant::now();
        let connection = rusqlite::Connection::open(path)?;
        let n: i64 =
            connection.query_row("SELECT n FROM counter WHERE id = 1", (), |row| row.get(0))?;
        samples.push(started.elapsed());
        if n != 1 {
            bail!("{} holds n = {n}, not 1", path.display());
        }
    }
    std::fs::remove_dir_all(dir)?;
    Ok(samples)
}
