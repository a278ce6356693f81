//! Capture/replay equivalence under random transactions: replaying an object's captures onto an
//! empty file, onto any older checkpoint from any earlier record, or onto a checkpoint torn at
//! 512-byte granularity, gives a file byte-identical to a full checkpoint.
//!
//! Seeded and deterministic: `BURROW_VFS_SEEDS=n` runs seeds `0..n` (default 12) and
//! `BURROW_VFS_SEED=s` runs one seed. A failure names its seed.

mod vfs_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burrow_storage::vfs::{Capture, MainFile, Vfs};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use rusqlite::{Connection, params};
use vfs_support::{MemFile, MemFs, dump, integrity, open};

/// Random transactions per seed.
const STEPS: usize = 120;
/// Torn checkpoints are mixed at this granularity (a common sector size).
const TEAR_BYTES: usize = 512;

/// One seeded run: a database driven through random transactions, with every capture and
/// every checkpoint image kept.
struct Run {
    rng: StdRng,
    fs: Arc<MemFs>,
    vfs: Vfs,
    path: PathBuf,
    conn: Option<Connection>,
    /// Every capture, encoded, in commit order.
    captures: Vec<Vec<u8>>,
    /// Commits happened since the last capture.
    deferred: bool,
    /// `(captures covered, file bytes)` after each checkpoint; starts with the empty file.
    images: Vec<(usize, Vec<u8>)>,
    tables: Vec<String>,
    next_table: u32,
    /// Statistics for the summary line.
    rollbacks: usize,
    vacuums: usize,
    page_size_changes: usize,
}

impl Run {
    fn new(seed: u64) -> Run {
        let fs = MemFs::new();
        let vfs = Vfs::register(fs.clone()).unwrap();
        let path = PathBuf::from(format!("/objects/{seed}.sqlite"));
        let conn = open(&vfs, &path);
        Run {
            rng: StdRng::seed_from_u64(seed),
            fs,
            vfs,
            path,
            conn: Some(conn),
            captures: Vec::new(),
            deferred: false,
            images: vec![(0, Vec::new())],
            tables: Vec::new(),
            next_table: 0,
            rollbacks: 0,
            vacuums: 0,
            page_size_changes: 0,
        }
    }

    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("connection is open")
    }

    fn main(&self) -> MainFile {
        self.vfs
            .main_file(&self.path)
            .expect("open file is registered")
    }

    fn blob(&mut self) -> Vec<u8> {
        let len = match self.rng.random_range(0..100) {
            0..70 => self.rng.random_range(0..200),
            70..95 => self.rng.random_range(200..5_000),
            _ => self.rng.random_range(5_000..40_000),
        };
        let mut bytes = vec![0u8; len];
        // Half the blobs are compressible runs, which makes equal bytes more likely.
        if self.rng.random_bool(0.5) {
            self.rng.fill_bytes(&mut bytes);
        } else {
            bytes.fill(self.rng.random());
        }
        bytes
    }

    /// A random existing table. Asks SQLite, since rollbacks undo CREATE and DROP.
    fn table(&mut self) -> Option<String> {
        let tables: Vec<String> = self
            .conn()
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        self.tables = tables;
        if self.tables.is_empty() {
            return None;
        }
        let index = self.rng.random_range(0..self.tables.len());
        Some(self.tables[index].clone())
    }

    /// One random data-changing statement (inside whatever transaction is open).
    fn write_statement(&mut self) {
        let Some(table) = self.table() else {
            self.create_table();
            return;
        };
        let id = self.rng.random_range(0..400i64);
        match self.rng.random_range(0..10) {
            0..5 => {
                for _ in 0..self.rng.random_range(1..12) {
                    let id = self.rng.random_range(0..400i64);
                    let key = format!("k{}", self.rng.random_range(0..1000));
                    let value = self.blob();
                    self.conn()
                        .execute(
                            &format!("INSERT OR REPLACE INTO {table} VALUES (?1, ?2, ?3)"),
                            params![id, key, value],
                        )
                        .unwrap();
                }
            }
            5..7 => {
                let value = self.blob();
                self.conn()
                    .execute(
                        &format!("UPDATE {table} SET v = ?2 WHERE id % 7 = ?1 % 7"),
                        params![id, value],
                    )
                    .unwrap();
            }
            7..9 => {
                let span = self.rng.random_range(1..120i64);
                self.conn()
                    .execute(
                        &format!("DELETE FROM {table} WHERE id BETWEEN ?1 AND ?2"),
                        params![id, id + span],
                    )
                    .unwrap();
            }
            _ => {
                self.conn()
                    .execute(
                        &format!("UPDATE {table} SET k = k || 'x' WHERE id < ?1"),
                        [id],
                    )
                    .unwrap();
            }
        }
    }

    fn create_table(&mut self) {
        let name = format!("t{}", self.next_table);
        self.next_table += 1;
        self.conn()
            .execute_batch(&format!(
                "CREATE TABLE {name}(id INTEGER PRIMARY KEY, k TEXT, v BLOB);
                 CREATE INDEX {name}_k ON {name}(k);"
            ))
            .unwrap();
    }

    /// Takes the capture of the commit that just happened (or, now and then, leaves it for the
    /// next capture to cover several commits), and checks the file on disk did not change
    /// since the last checkpoint.
    fn capture(&mut self) {
        if self.rng.random_bool(0.2) {
            self.deferred = true;
        } else {
            self.capture_now();
        }
        let last_image = &self.images.last().unwrap().1;
        assert!(
            self.fs.contents(&self.path) == *last_image,
            "the file on disk changed outside a checkpoint"
        );
    }

    fn capture_now(&mut self) {
        self.deferred = false;
        if let Some(capture) = self.main().take_capture().unwrap() {
            let mut encoded = Vec::new();
            capture.encode(&mut encoded);
            assert_eq!(encoded.len(), capture.encoded_len());
            assert_eq!(Capture::decode(&encoded).unwrap(), capture);
            self.captures.push(encoded);
        }
    }

    /// A random committed (or rolled-back) transaction, then its capture.
    fn transaction(&mut self) {
        match self.rng.random_range(0..100) {
            0..55 => {
                self.conn().execute_batch("BEGIN").unwrap();
                for _ in 0..self.rng.random_range(1..5) {
                    self.write_statement();
                }
                self.conn().execute_batch("COMMIT").unwrap();
            }
            55..62 => {
                self.table();
                if self.tables.len() < 6 {
                    self.create_table();
                } else {
                    self.write_statement();
                }
            }
            62..66 => {
                if let Some(table) = self.table().filter(|_| self.tables.len() > 1) {
                    self.conn()
                        .execute_batch(&format!("DROP TABLE {table}"))
                        .unwrap();
                }
            }
            66..74 => {
                // BEGIN … ROLLBACK: nothing reaches the overlay, so nothing is captured.
                if self.deferred {
                    self.capture_now();
                }
                self.conn().execute_batch("BEGIN").unwrap();
                for _ in 0..self.rng.random_range(1..4) {
                    self.write_statement();
                }
                self.conn().execute_batch("ROLLBACK").unwrap();
                assert_eq!(
                    self.main().take_capture().unwrap(),
                    None,
                    "rollback captured"
                );
                self.rollbacks += 1;
                return;
            }
            74..84 => {
                // Savepoints rolled back inside a committed transaction.
                self.conn().execute_batch("BEGIN").unwrap();
                self.write_statement();
                self.conn().execute_batch("SAVEPOINT a").unwrap();
                self.write_statement();
                self.write_statement();
                self.conn().execute_batch("ROLLBACK TO a").unwrap();
                self.write_statement();
                self.conn().execute_batch("RELEASE a; COMMIT").unwrap();
            }
            84..90 => {
                self.conn().execute_batch("VACUUM").unwrap();
                self.vacuums += 1;
            }
            90..92 => {
                // Rollback-mode VACUUM may change the page size: pages no longer match the
                // overlay's page size from then on.
                let page_size = [1024, 2048, 4096, 8192][self.rng.random_range(0..4)];
                self.conn()
                    .execute_batch(&format!("PRAGMA page_size={page_size}; VACUUM;"))
                    .unwrap();
                self.page_size_changes += 1;
            }
            _ => self.write_statement(),
        }
        self.capture();
    }

    /// A full checkpoint, remembering the image it leaves on disk.
    fn checkpoint(&mut self) {
        self.capture_now();
        let main = self.main();
        let snapshot = main.checkpoint_snapshot().unwrap();
        let file = snapshot.write().unwrap();
        self.vfs.fs().sync_files(&[file]).unwrap();
        main.checkpoint_done(snapshot).unwrap();
        self.images
            .push((self.captures.len(), self.fs.contents(&self.path)));
    }

    /// A checkpoint whose snapshot is written while more transactions commit.
    fn checkpoint_while_committing(&mut self) {
        self.capture_now();
        let main = self.main();
        let covered = self.captures.len();
        let expected = dump(self.conn());
        let snapshot = main.checkpoint_snapshot().unwrap();
        for _ in 0..self.rng.random_range(1..4) {
            self.transaction();
        }
        snapshot.write().unwrap();
        main.checkpoint_done(snapshot).unwrap();
        let image = self.fs.contents(&self.path);
        assert_eq!(
            dump_image(&image),
            expected,
            "the checkpoint holds the snapshot's state"
        );
        self.images.push((covered, image));
    }

    fn reopen(&mut self) {
        let expected = dump(self.conn());
        self.conn = None;
        self.conn = Some(open(&self.vfs, &self.path));
        assert_eq!(dump(self.conn()), expected, "reopen lost data");
    }

    fn step(&mut self) {
        match self.rng.random_range(0..100) {
            0..8 => self.checkpoint(),
            8..12 => self.checkpoint_while_committing(),
            12..15 => self.reopen(),
            _ => self.transaction(),
        }
    }
}

/// Opens a copy of a database image through a fresh VFS and returns its rows, after checking
/// it is a valid database.
fn dump_image(image: &[u8]) -> Vec<String> {
    let fs = MemFs::new();
    let path = Path::new("/image.sqlite");
    fs.put(path, image);
    let vfs = Vfs::register(fs).unwrap();
    let conn = open(&vfs, path);
    assert_eq!(integrity(&conn), "ok");
    dump(&conn)
}

/// Replays encoded captures onto a file holding `start`.
fn replay(start: &[u8], captures: &[Vec<u8>]) -> Vec<u8> {
    let file = MemFile::with_contents(start);
    for encoded in captures {
        Capture::decode(encoded).unwrap().apply(&*file).unwrap();
    }
    file.contents()
}

/// A checkpoint from `old` to `new` interrupted by a crash: a random subset of `new`'s
/// 512-byte blocks landed, and the final length change may or may not have.
fn tear(rng: &mut StdRng, old: &[u8], new: &[u8]) -> Vec<u8> {
    let mut torn = old.to_vec();
    for start in (0..new.len()).step_by(TEAR_BYTES) {
        if rng.random_bool(0.5) {
            let end = (start + TEAR_BYTES).min(new.len());
            if torn.len() < end {
                torn.resize(end, 0);
            }
            torn[start..end].copy_from_slice(&new[start..end]);
        }
    }
    if rng.random_bool(0.5) {
        torn.resize(new.len(), 0);
    }
    torn
}

fn check_seed(seed: u64) {
    let mut run = Run::new(seed);
    for _ in 0..STEPS {
        run.step();
    }
    let live = dump(run.conn());
    run.checkpoint();
    let (covered, full) = run.images.last().unwrap().clone();
    assert_eq!(covered, run.captures.len());
    assert_eq!(
        dump_image(&full),
        live,
        "seed {seed}: checkpoint differs from the live database"
    );

    // (a) Every capture in order onto an empty file.
    assert!(
        replay(&[], &run.captures) == full,
        "seed {seed}: replay from empty differs"
    );

    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    for (index, (covered, image)) in run.images.iter().enumerate() {
        // (b) From a random earlier record onto an older checkpoint (records it already
        // holds are applied again).
        let from = rng.random_range(0..=*covered);
        assert!(
            replay(image, &run.captures[from..]) == full,
            "seed {seed}: replay from record {from} onto checkpoint {index} differs"
        );
        // (c) Onto a checkpoint torn between this image and a later one.
        let later = rng.random_range(index..run.images.len());
        let torn = tear(&mut rng, image, &run.images[later].1);
        let from = rng.random_range(0..=*covered);
        assert!(
            replay(&torn, &run.captures[from..]) == full,
            "seed {seed}: replay from record {from} onto checkpoint {index} torn toward \
             checkpoint {later} differs"
        );
    }
    // Replaying everything twice is the same as once.
    let twice = replay(&replay(&[], &run.captures), &run.captures);
    assert!(twice == full, "seed {seed}: replaying twice differs");

    let bytes: usize = run.captures.iter().map(Vec::len).sum();
    println!(
        "seed {seed}: {} captures, {} checkpoints, {} rollbacks, {} vacuums, {} page size \
         changes, {} bytes of captures (average {}), final file {} bytes",
        run.captures.len(),
        run.images.len() - 1,
        run.rollbacks,
        run.vacuums,
        run.page_size_changes,
        bytes,
        bytes / run.captures.len().max(1),
        full.len()
    );
}

#[test]
fn replay_reproduces_the_checkpointed_file() {
    let seeds = match std::env::var("BURROW_VFS_SEED") {
        Ok(seed) => {
            let seed = seed.parse().expect("BURROW_VFS_SEED is a number");
            seed..seed + 1
        }
        Err(_) => {
            let count = std::env::var("BURROW_VFS_SEEDS")
                .map(|n| n.parse().expect("BURROW_VFS_SEEDS is a number"))
                .unwrap_or(12);
            0..count
        }
    };
    for seed in seeds {
        check_seed(seed);
    }
}
