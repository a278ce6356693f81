//! The storage engine: opens object databases over the VFS, turns each commit into one journal
//! record, checkpoints overlays into the object files, trims the journal, and recovers after a crash.
//!
//! # The protocol, and why it is correct
//! - A commit writes pages only into the object's in-memory overlay (see [`crate::vfs`]). The
//!   engine then takes the commit's capture (the byte ranges it changed), wraps it in a record
//!   ([`record`]) and appends the record to the journal. The caller gets a [`journal::Durable`]
//!   that resolves once the record is fsynced; the runtime's output gate waits on it. Append and
//!   the bookkeeping of "oldest record not yet in the object file" happen under the object's lock,
//!   so a checkpoint never sees half a commit.
//! - A checkpoint copies an object's overlay into its file only after every record that produced
//!   those pages is durable, syncs the file (and its directory if the file is new), and only then
//!   forgets the pages. So the object file on disk only ever holds states that the journal can
//!   rebuild or that were acknowledged.
//! - The journal is trimmed ([`journal::Journal::release_before`]) below the oldest record that
//!   some object has not checkpointed. The durable position is read before the objects are scanned,
//!   so a record appended during the scan is never released.
//! - Recovery replays every retained record in order. Records are idempotent from any earlier
//!   point (the argument is in [`crate::vfs`]), so no per-object checkpoint position is needed:
//!   replay yields each file's last committed image, torn checkpoint writes included.
//! - A failed journal write or fsync poisons the journal; the engine then refuses every commit
//!   and open until restart, because nothing written after the last good fsync can be trusted.

mod alarms;
mod object;
pub(crate) mod record;
mod recovery;

pub use alarms::DueAlarm;
pub use object::ObjectStorage;
pub use recovery::RecoveryStats;

use crate::fs::Fs;
use crate::journal::{self, Journal, Lsn};
use crate::vfs::{MainFile, Vfs};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// How durable an acknowledged write is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Survives `kill -9` and power loss: the journal is fsynced before a commit is acknowledged.
    #[default]
    Full,
    /// Survives a process crash but not power loss: the journal is written, not fsynced.
    Relaxed,
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Durability of acknowledged commits.
    pub durability: Durability,
    /// Most object databases open at once (each holds one file descriptor).
    pub max_open_objects: usize,
    /// Checkpoint every dirty object once the retained journal grows past this many bytes.
    pub checkpoint_journal_bytes: u64,
    /// Checkpoint an object once its overlay holds more than this many dirty bytes.
    pub checkpoint_object_bytes: u64,
    /// How often the checkpointer looks at the journal when nothing wakes it.
    pub checkpoint_interval: Duration,
    /// SQLite page cache per open object, in KiB.
    pub cache_kib: u32,
    /// Journal settings (its `sync` mode follows `durability`).
    pub journal: journal::Options,
    /// Start the journal's I/O thread and the checkpointer thread. Tests that step the engine by
    /// hand (the deterministic simulation) turn this off and call [`Engine::flush_journal`] and
    /// [`Engine::checkpoint`] themselves.
    pub background_threads: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            max_open_objects: 8192,
            checkpoint_journal_bytes: 256 << 20,
            checkpoint_object_bytes: 8 << 20,
            checkpoint_interval: Duration::from_millis(200),
            cache_kib: 1024,
            journal: journal::Options::default(),
            background_threads: true,
        }
    }
}

/// Errors of the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error from the file system.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// SQLite failed outside the user's control (opening, pragmas, the alarm index).
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] journal::Error),
    /// The object's database API failed (user error or limit).
    #[error(transparent)]
    Database(#[from] crate::database::Error),
    /// An earlier write or fsync failed, so this node no longer acknowledges writes.
    #[error(
        "storage has failed and acknowledges no more writes until restart (an earlier journal write or fsync failed)"
    )]
    Failed,
    /// The cap on open object databases was reached.
    #[error(
        "too many open object databases (limit {limit}); close idle objects or raise max_open_objects"
    )]
    TooManyOpenObjects {
        /// The configured cap.
        limit: usize,
    },
    /// This object is already open; one instance per object at a time.
    #[error("object {0} is already open")]
    AlreadyOpen(String),
    /// A namespace or object id that cannot name a file.
    #[error(
        "invalid object name {0:?}: use 1 to 128 characters from [A-Za-z0-9_.-], not starting with '.'"
    )]
    InvalidName(String),
    /// A journal record that recovery could not decode.
    #[error("corrupt journal record at {lsn}: {source}")]
    CorruptRecord {
        /// Where the record starts.
        lsn: Lsn,
        /// What was wrong.
        source: record::DecodeError,
    },
}

/// The storage engine of one node. Cheap to clone; shared by all shards.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    fs: Arc<dyn Fs>,
    root: PathBuf,
    vfs: Vfs,
    journal: Arc<Journal>,
    options: Options,
    /// Open files (objects and the alarm index) by path relative to `root`.
    registry: Mutex<Registry>,
    alarms: Mutex<alarms::AlarmIndex>,
    failed: AtomicBool,
    recovery: RecoveryStats,
    /// Closed databases left the registry since memory was last returned to the system.
    closes_since_trim: std::sync::atomic::AtomicUsize,
    last_trim: Mutex<Option<std::time::Instant>>,
    threads: Mutex<Threads>,
    checkpoint_wake: (Mutex<bool>, Condvar),
}

#[derive(Default)]
struct Registry {
    files: HashMap<String, Arc<Shared>>,
    /// Objects between `reserve` and `register`, so two opens of one object cannot race.
    opening: HashSet<String>,
}

#[derive(Default)]
struct Threads {
    io: Option<journal::IoThread>,
    checkpointer: Option<JoinHandle<()>>,
    stop: bool,
}

/// What the engine knows about one open database file, shared with the checkpointer.
pub(crate) struct Shared {
    rel_path: String,
    file: MainFile,
    state: Mutex<DirtyState>,
}

#[derive(Default)]
struct DirtyState {
    /// Start of the oldest record whose pages are not yet in the file; `None` when clean.
    oldest_unflushed: Option<Lsn>,
    /// End of the newest record appended for this file.
    last_end: Option<Lsn>,
    /// While a checkpoint is between snapshot and confirm: the first record appended since.
    appended_during_checkpoint: Option<Lsn>,
    checkpointing: bool,
    /// The file was created and its directory entry is not yet synced.
    new_file: bool,
    /// Its connection is closed; it stays registered only until its pages are checkpointed.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, DirtyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Books a record appended for this file. Call with the state lock held across the append.
    fn note_append(state: &mut DirtyState, durable: &journal::Durable) {
        state.oldest_unflushed.get_or_insert(durable.lsn());
        if state.checkpointing {
            state
                .appended_during_checkpoint
                .get_or_insert(durable.lsn());
        }
        state.last_end = Some(durable.end());
    }
}

impl Engine {
    /// Opens (creating if needed) the data directory `root`, recovers from the journal, and starts
    /// the background threads unless `options.background_threads` is off.
    pub fn open(fs: Arc<dyn Fs>, root: &Path, mut options: Options) -> Result<Engine, Error> {
        options.journal.sync = match options.durability {
            Durability::Full => journal::SyncMode::Full,
            Durability::Relaxed => journal::SyncMode::Relaxed,
        };
        fs.create_dir_all(&root.join("journal"))?;
        fs.create_dir_all(&root.join("objects"))?;
        fs.create_dir_all(&root.join("node"))?;
        sync_dir_chain(fs.as_ref(), root, &root.join("journal"))?;
        sync_dir_chain(fs.as_ref(), root, &root.join("objects"))?;
        sync_dir_chain(fs.as_ref(), root, &root.join("node"))?;
        // The data directory itself may have been created just now, several levels deep: make
        // every ancestor's entry durable too, or a power loss could take the whole tree.
        let mut ancestor = root.parent();
        while let Some(dir) = ancestor.filter(|d| !d.as_os_str().is_empty()) {
            fs.sync_dir(dir)?;
            ancestor = dir.parent();
        }
        let journal = Journal::open(fs.clone(), &root.join("journal"), options.journal.clone())?;
        let recovery = recovery::replay(fs.as_ref(), root, &journal)?;
        let vfs = Vfs::register(fs.clone()).map_err(vfs_error)?;
        let alarm_index = alarms::AlarmIndex::open(root, &vfs)?;
        let inner = Arc::new(Inner {
            fs,
            root: root.to_path_buf(),
            vfs,
            journal,
            registry: Mutex::new(Registry::default()),
            alarms: Mutex::new(alarm_index),
            failed: AtomicBool::new(false),
            recovery,
            closes_since_trim: std::sync::atomic::AtomicUsize::new(0),
            last_trim: Mutex::new(None),
            threads: Mutex::new(Threads::default()),
            checkpoint_wake: (Mutex::new(false), Condvar::new()),
            options,
        });
        let alarm_shared = inner.register(alarms::INDEX_PATH, true)?;
        {
            let mut index = inner.lock_alarms();
            index.set_shared(alarm_shared.clone());
            // Creating the index's table on first start is a commit like any other.
            if let Some(capture) = index.take_capture()? {
                let mut payload = Vec::new();
                record::encode(
                    &[record::Entry::Commit {
                        path: alarms::INDEX_PATH,
                        capture: &capture,
                    }],
                    &mut payload,
                );
                let mut state = alarm_shared.lock();
                let durable = inner.journal.append(&payload)?;
                Shared::note_append(&mut state, &durable);
            }
        }
        if inner.options.background_threads {
            let io = inner.journal.start_io_thread();
            let weak = Arc::downgrade(&inner);
            let checkpointer = std::thread::Builder::new()
                .name("burrow-checkpoint".into())
                .spawn(move || checkpoint_loop(weak))?;
            let mut threads = inner.lock_threads();
            threads.io = Some(io);
            threads.checkpointer = Some(checkpointer);
        }
        Ok(Engine { inner })
    }

    /// Opens one object's database. At most one handle per object exists at a time.
    pub fn open_object(&self, namespace: &str, id: &str) -> Result<ObjectStorage, Error> {
        object::open(&self.inner, namespace, id)
    }

    /// Deletes an object's storage entirely (its database file). The object must not be open.
    /// Returns once the deletion is durable.
    pub fn delete_object(&self, namespace: &str, id: &str) -> Result<(), Error> {
        object::delete(&self.inner, namespace, id)
    }

    /// Whether object `id` of `namespace` has a database (see [`Engine::list_objects`]).
    pub fn has_object(&self, namespace: &str, id: &str) -> Result<bool, Error> {
        let rel_path = object_path(namespace, id)?;
        Ok(self.inner.fs.exists(&self.inner.root.join(rel_path)))
    }

    /// Ids of the objects of `namespace` that have a database, in id order, after `after`, at
    /// most `limit`. Reads the directory tree only (`objects/<namespace>/<2 chars>/<id>.sqlite`),
    /// so objects need not be open; an object opened for the first time has its file from then
    /// on, and a deleted object has none.
    pub fn list_objects(
        &self,
        namespace: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, Error> {
        check_name(namespace)?;
        let dir = self.inner.root.join("objects").join(namespace);
        if !self.inner.fs.exists(&dir) {
            return Ok(Vec::new());
        }
        let name_of = |path: &std::path::Path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .map(str::to_owned)
        };
        let mut buckets: Vec<String> = self
            .inner
            .fs
            .read_dir(&dir)?
            .iter()
            .filter_map(|path| name_of(path))
            .collect();
        buckets.sort_unstable();
        let after_bucket: String = after.unwrap_or("").chars().take(2).collect();
        let mut ids = Vec::new();
        for bucket in buckets {
            if bucket < after_bucket {
                continue;
            }
            let mut found: Vec<String> = self
                .inner
                .fs
                .read_dir(&dir.join(&bucket))?
                .iter()
                .filter_map(|path| name_of(path)?.strip_suffix(".sqlite").map(str::to_owned))
                .filter(|id| after.is_none_or(|after| id.as_str() > after))
                .collect();
            found.sort_unstable();
            ids.extend(found);
            if ids.len() >= limit {
                break;
            }
        }
        ids.truncate(limit);
        Ok(ids)
    }

    /// Alarms due at or before `until_ms` (epoch milliseconds), earliest first, at most `limit`.
    pub fn due_alarms(&self, until_ms: i64, limit: usize) -> Result<Vec<DueAlarm>, Error> {
        self.inner.lock_alarms().due(until_ms, limit)
    }

    /// What recovery replayed when this engine opened.
    pub fn recovery_stats(&self) -> RecoveryStats {
        self.inner.recovery
    }

    /// The alarm the node's index holds for one object (the runtime keeps its timers from this).
    pub fn indexed_alarm(&self, namespace: &str, id: &str) -> Result<Option<i64>, Error> {
        self.inner.lock_alarms().get(namespace, id)
    }

    /// The journal, for replication and tests.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.inner.journal
    }

    /// One step of the journal's group-commit driver (for tests that run without threads).
    pub fn flush_journal(&self) -> Result<usize, Error> {
        Ok(self.inner.journal.flush_once()?)
    }

    /// Checkpoints every dirty object whose records are durable, then trims the journal.
    /// The background checkpointer calls this on its own; tests call it to force one.
    pub fn checkpoint(&self) -> Result<(), Error> {
        self.inner.checkpoint_all(true)
    }

    /// Checkpoints only the objects over the thresholds in [`Options`] (what the background
    /// checkpointer does on each round), then trims the journal.
    pub fn checkpoint_due(&self) -> Result<(), Error> {
        self.inner.checkpoint_all(false)
    }

    /// The cap on open object databases ([`Options::max_open_objects`]).
    pub fn max_open_objects(&self) -> usize {
        self.inner.options.max_open_objects
    }

    /// How many object databases are open.
    pub fn open_objects(&self) -> usize {
        self.inner.lock_registry().files.len().saturating_sub(1)
    }

    /// Stops the background threads after making everything durable and checkpointed.
    pub fn shutdown(&self) -> Result<(), Error> {
        let (io, checkpointer) = {
            let mut threads = self.inner.lock_threads();
            threads.stop = true;
            (threads.io.take(), threads.checkpointer.take())
        };
        self.inner.wake_checkpointer();
        if let Some(handle) = checkpointer {
            let _ = handle.join();
        }
        let result = self.inner.checkpoint_all(true);
        if let Some(io) = io
            && let Err(error) = io.stop()
        {
            tracing::error!(%error, "journal I/O thread stopped with an error");
        }
        result
    }
}

impl Inner {
    fn lock_registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_alarms(&self) -> MutexGuard<'_, alarms::AlarmIndex> {
        self.alarms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_threads(&self) -> MutexGuard<'_, Threads> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    fn check_failed(&self) -> Result<(), Error> {
        if self.failed() {
            Err(Error::Failed)
        } else {
            Ok(())
        }
    }

    /// Marks the node failed: after a journal failure nothing more may be acknowledged.
    fn fail(&self) {
        if !self.failed.swap(true, Ordering::AcqRel) {
            tracing::error!("storage failed; refusing further writes until restart");
        }
    }

    /// Adds an opened file to the registry. `new_file`: its directory entry is not yet durable.
    fn register(&self, rel_path: &str, new_file: bool) -> Result<Arc<Shared>, Error> {
        let mut registry = self.lock_registry();
        registry.opening.remove(rel_path);
        // Reopened before its last checkpoint: keep the bookkeeping of its unflushed records.
        if let Some(existing) = registry.files.get(rel_path) {
            existing.lock().closed = false;
            return Ok(existing.clone());
        }
        let file = self
            .vfs
            .main_file(&self.root.join(rel_path))
            .ok_or_else(|| {
                Error::Io(std::io::Error::other(
                    "database file is not open in the VFS",
                ))
            })?;
        let shared = Arc::new(Shared {
            rel_path: rel_path.to_string(),
            file,
            state: Mutex::new(DirtyState {
                new_file,
                ..DirtyState::default()
            }),
        });
        registry.files.insert(rel_path.to_string(), shared.clone());
        Ok(shared)
    }

    /// Claims `rel_path` for opening, enforcing one handle per object and the open-file cap.
    /// Closed objects still waiting for their checkpoint hold a descriptor too; at the cap they
    /// are checkpointed here, so a burst of closes slows opens down instead of failing them.
    fn reserve(&self, rel_path: &str) -> Result<(), Error> {
        let mut flushed_closed = false;
        loop {
            let mut registry = self.lock_registry();
            if registry.opening.contains(rel_path) {
                return Err(Error::AlreadyOpen(rel_path.to_string()));
            }
            if let Some(existing) = registry.files.get(rel_path) {
                if !existing.lock().closed {
                    return Err(Error::AlreadyOpen(rel_path.to_string()));
                }
                registry.opening.insert(rel_path.to_string());
                return Ok(());
            }
            // The alarm index is always open and does not count against the cap.
            let open = registry.files.len().saturating_sub(1) + registry.opening.len();
            if open < self.options.max_open_objects {
                registry.opening.insert(rel_path.to_string());
                return Ok(());
            }
            let closed: Vec<Arc<Shared>> = registry
                .files
                .values()
                .filter(|s| s.lock().closed)
                .cloned()
                .collect();
            drop(registry);
            if closed.is_empty() || flushed_closed {
                return Err(Error::TooManyOpenObjects {
                    limit: self.options.max_open_objects,
                });
            }
            for chunk in closed.chunks(CHECKPOINT_BATCH) {
                self.checkpoint_batch(chunk)?;
            }
            flushed_closed = true;
        }
    }

    /// Checkpoints a closed file that is still registered and removes it from the registry.
    fn settle_closed(&self, rel_path: &str) -> Result<(), Error> {
        let existing = self.lock_registry().files.get(rel_path).cloned();
        let Some(shared) = existing else {
            return Ok(());
        };
        // Let a checkpoint already in flight finish; its confirm step is quick.
        while shared.lock().checkpointing {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.checkpoint_one(&shared)?;
        let mut registry = self.lock_registry();
        if registry
            .files
            .get(rel_path)
            .is_some_and(|current| Arc::ptr_eq(current, &shared))
        {
            registry.files.remove(rel_path);
        }
        Ok(())
    }

    /// Marks a file's connection closed: it leaves the registry now if clean, otherwise after
    /// the checkpointer has copied its pages.
    fn closed(&self, shared: &Arc<Shared>) {
        let clean = {
            let mut state = shared.lock();
            state.closed = true;
            state.oldest_unflushed.is_none() && !state.checkpointing
        };
        if clean || self.failed() {
            let mut registry = self.lock_registry();
            if registry
                .files
                .get(&shared.rel_path)
                .is_some_and(|current| Arc::ptr_eq(current, shared))
            {
                registry.files.remove(&shared.rel_path);
            }
        } else {
            self.wake_checkpointer();
        }
    }

    fn unreserve(&self, rel_path: &str) {
        self.lock_registry().opening.remove(rel_path);
    }

    fn unregister(&self, rel_path: &str) {
        let mut registry = self.lock_registry();
        registry.files.remove(rel_path);
        registry.opening.remove(rel_path);
    }

    fn wake_checkpointer(&self) {
        let (flag, condvar) = &self.checkpoint_wake;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        condvar.notify_one();
    }

    /// Whether the journal or some object's overlay has grown past its checkpoint threshold, or
    /// closed objects wait to be checkpointed.
    fn checkpoint_due(&self) -> bool {
        let retained = self.journal.durable_lsn().0 - self.journal.first_lsn().0;
        retained > self.options.checkpoint_journal_bytes
            || self.lock_registry().files.values().any(|s| {
                s.lock().closed || s.file.dirty_bytes() > self.options.checkpoint_object_bytes
            })
    }

    /// Checkpoints one file now (blocks until the records behind its pages are durable).
    pub(crate) fn checkpoint_one(&self, shared: &Arc<Shared>) -> Result<(), Error> {
        self.checkpoint_batch(std::slice::from_ref(shared))
    }

    /// Checkpoints several files together: snapshot each overlay, wait until the records behind
    /// all of them are durable, write every snapshot, sync them with one `sync_files` (one
    /// `syncfs` on Linux for a large batch), sync new directories, then forget the copied pages.
    /// Closed files that end up clean leave the registry, releasing their descriptor and memory.
    pub(crate) fn checkpoint_batch(&self, batch: &[Arc<Shared>]) -> Result<(), Error> {
        self.check_failed()?;
        let mut taken = Vec::with_capacity(batch.len());
        let mut wait_for = Lsn(0);
        for shared in batch {
            let mut state = shared.lock();
            if state.oldest_unflushed.is_none() || state.checkpointing {
                continue;
            }
            let snapshot = match shared.file.checkpoint_snapshot() {
                Ok(snapshot) => snapshot,
                Err(error) => {
                    drop(state);
                    self.abandon(&taken);
                    return Err(vfs_error(error));
                }
            };
            state.checkpointing = true;
            state.appended_during_checkpoint = None;
            if let Some(end) = state.last_end {
                wait_for = wait_for.max(end);
            }
            taken.push((shared.clone(), snapshot, state.new_file));
        }
        if taken.is_empty() {
            self.forget_clean_closed(batch);
            return Ok(());
        }
        let written = (|| {
            self.wait_durable(wait_for)?;
            let mut files = Vec::with_capacity(taken.len());
            for (_, snapshot, _) in &taken {
                files.push(snapshot.write()?);
            }
            self.fs.sync_files(&files)?;
            // Every directory from each new file up to the root, each synced once however many
            // new files share it (thousands of new objects share a few hundred directories).
            let mut dirs = std::collections::BTreeSet::new();
            for (shared, _, new_file) in &taken {
                if *new_file {
                    let path = self.root.join(&shared.rel_path);
                    let mut dir = path.parent();
                    while let Some(current) = dir {
                        if !dirs.insert(current.to_path_buf()) || current == self.root {
                            break;
                        }
                        dir = current.parent();
                    }
                }
            }
            if !dirs.is_empty() {
                dirs.insert(self.root.clone());
                if let Some(parent) = self.root.parent()
                    && !parent.as_os_str().is_empty()
                {
                    dirs.insert(parent.to_path_buf());
                }
            }
            for dir in dirs {
                self.fs.sync_dir(&dir)?;
            }
            Ok::<_, Error>(())
        })();
        if let Err(error) = written {
            self.abandon(&taken);
            return Err(error);
        }
        for (shared, snapshot, _) in taken {
            let mut state = shared.lock();
            state.checkpointing = false;
            shared.file.checkpoint_done(snapshot).map_err(vfs_error)?;
            state.oldest_unflushed = state.appended_during_checkpoint.take();
            state.new_file = false;
        }
        self.forget_clean_closed(batch);
        Ok(())
    }

    /// Undoes the bookkeeping of snapshots that were not written.
    fn abandon(&self, taken: &[(Arc<Shared>, crate::vfs::Snapshot, bool)]) {
        for (shared, _, _) in taken {
            let mut state = shared.lock();
            state.checkpointing = false;
            state.appended_during_checkpoint = None;
        }
    }

    /// Drops closed files that have nothing left to checkpoint from the registry.
    fn forget_clean_closed(&self, batch: &[Arc<Shared>]) {
        let mut forgotten = 0;
        let mut registry = self.lock_registry();
        for shared in batch {
            let state = shared.lock();
            if state.closed && state.oldest_unflushed.is_none() && !state.checkpointing {
                drop(state);
                if registry
                    .files
                    .get(&shared.rel_path)
                    .is_some_and(|current| Arc::ptr_eq(current, shared))
                {
                    registry.files.remove(&shared.rel_path);
                    forgotten += 1;
                }
            }
        }
        drop(registry);
        if forgotten > 0 {
            self.closes_since_trim
                .fetch_add(forgotten, Ordering::Relaxed);
            self.maybe_release_memory();
        }
    }

    /// Returns freed memory to the system once enough databases have closed. `malloc_trim` holds
    /// the allocator's locks for a moment, so it runs at most every [`RELEASE_MEMORY_INTERVAL`].
    fn maybe_release_memory(&self) {
        let closes = self.closes_since_trim.load(Ordering::Relaxed);
        if closes == 0 {
            return;
        }
        let mut last = self.last_trim.lock().unwrap_or_else(|e| e.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= RELEASE_MEMORY_INTERVAL);
        if due && (closes >= RELEASE_MEMORY_AFTER_CLOSES || last.is_some()) {
            *last = Some(std::time::Instant::now());
            self.closes_since_trim.store(0, Ordering::Relaxed);
            drop(last);
            crate::memory::release_free_memory();
        }
    }

    /// Checkpoints every dirty file (or only those over the thresholds, and closed ones, when
    /// `all` is false), then releases journal segments nobody needs.
    fn checkpoint_all(&self, all: bool) -> Result<(), Error> {
        let retained = self.journal.durable_lsn().0 - self.journal.first_lsn().0;
        let journal_full = retained > self.options.checkpoint_journal_bytes;
        let candidates: Vec<Arc<Shared>> = self
            .lock_registry()
            .files
            .values()
            .filter(|s| {
                all || journal_full
                    || s.lock().closed
                    || s.file.dirty_bytes() > self.options.checkpoint_object_bytes
            })
            .cloned()
            .collect();
        for chunk in candidates.chunks(CHECKPOINT_BATCH) {
            self.checkpoint_batch(chunk)?;
        }
        self.release_journal()
    }

    /// Blocks until the journal is durable up to `end` (the checkpointer's and close's wait).
    fn wait_durable(&self, end: Lsn) -> Result<(), Error> {
        if !self.options.background_threads {
            // Nobody else drives the journal: the waiter does (single-threaded tests).
            while self.journal.durable_lsn() < end {
                self.journal.flush_once().inspect_err(|_| self.fail())?;
            }
            return Ok(());
        }
        self.journal.wait_durable(end).map_err(|error| {
            self.fail();
            Error::Journal(error)
        })
    }

    /// Releases journal segments below the oldest record some open file still needs.
    fn release_journal(&self) -> Result<(), Error> {
        // Read the durable end first: anything appended after this point lies above it.
        let mut keep_from = self.journal.durable_lsn();
        for shared in self.lock_registry().files.values() {
            if let Some(oldest) = shared.lock().oldest_unflushed {
                keep_from = keep_from.min(oldest);
            }
        }
        self.journal
            .release_before(keep_from, &mut |_segment| Ok(()))?;
        Ok(())
    }
}

/// How many closed databases make it worth returning free memory to the system.
const RELEASE_MEMORY_AFTER_CLOSES: usize = 64;
/// Least time between two returns of free memory to the system.
const RELEASE_MEMORY_INTERVAL: Duration = Duration::from_secs(2);

/// Most files checkpointed together (one `sync_files` call each batch).
const CHECKPOINT_BATCH: usize = 4096;

fn checkpoint_loop(inner: Weak<Inner>) {
    loop {
        let Some(inner) = inner.upgrade() else { return };
        if inner.lock_threads().stop {
            return;
        }
        inner.maybe_release_memory();
        if inner.checkpoint_due()
            && let Err(error) = inner.checkpoint_all(false)
        {
            tracing::error!(%error, "checkpoint failed");
            if matches!(error, Error::Journal(_)) {
                inner.fail();
            }
        }
        let interval = inner.options.checkpoint_interval;
        let (flag, condvar) = &inner.checkpoint_wake;
        let guard = flag.lock().unwrap_or_else(|e| e.into_inner());
        let (mut guard, _) = condvar
            .wait_timeout_while(guard, interval, |woken| !*woken)
            .unwrap_or_else(|e| e.into_inner());
        *guard = false;
    }
}

fn vfs_error(error: crate::vfs::Error) -> Error {
    Error::Io(std::io::Error::other(error))
}

/// Syncs `dir` and each of its parents up to and including `root`, so a new entry is durable.
fn sync_dir_chain(fs: &dyn Fs, root: &Path, dir: &Path) -> std::io::Result<()> {
    let mut current = Some(dir);
    while let Some(path) = current {
        fs.sync_dir(path)?;
        if path == root {
            break;
        }
        current = path.parent();
    }
    if let Some(parent) = root.parent()
        && !parent.as_os_str().is_empty()
    {
        fs.sync_dir(parent)?;
    }
    Ok(())
}

/// Checks a namespace or id: it becomes a path component, so no separators and no dot files.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_string()))
    }
}

/// `objects/<namespace>/<first 2 chars of id>/<id>.sqlite`, as DESIGN.md lays it out.
pub(crate) fn object_path(namespace: &str, id: &str) -> Result<String, Error> {
    check_name(namespace)?;
    check_name(id)?;
    let shard: String = id.chars().take(2).collect();
    Ok(format!("objects/{namespace}/{shard}/{id}.sqlite"))
}
