//! A SQLite VFS over [`Fs`] that keeps each object's uncheckpointed pages in memory and captures
//! every commit as a compact, idempotent redo record.
//!
//! # Why
//! Durability comes from the shared redo journal, not from SQLite syncing its own files. Each
//! commit's changes become a [`Capture`], the engine appends it to the journal, and the object's
//! file on disk is only updated by engine checkpoints that run after the journal covers them.
//! So the file on disk only ever holds a checkpointed state, and a power loss can never expose a
//! half-written or unacknowledged transaction there.
//!
//! # Required pragmas
//! The engine sets these on every connection it opens through this VFS, before any other
//! statement. The VFS is correct only with them:
//! - `locking_mode=EXCLUSIVE`: one connection per file; SQLite never re-reads page 1 to check
//!   for other writers. (The VFS also refuses a second open of a file that is open.)
//! - `journal_mode=MEMORY`: the rollback journal lives in SQLite's heap. Other rollback modes
//!   would also work (their journals are memory files here), WAL is refused.
//! - `synchronous=OFF`: SQLite's syncs would be no-ops anyway; this skips the calls.
//! - `cache_spill=OFF`: SQLite writes pages to the file only at commit, so between commits the
//!   overlay holds exactly the last committed state, and a rollback writes nothing.
//! - `temp_store=MEMORY`: temp tables and indices stay in SQLite's heap.
//!
//! # Files
//! - Main databases (`SQLITE_OPEN_MAIN_DB`) get a page overlay ([`MainFile`]). SQLite's writes
//!   go to an in-memory map page number → page bytes plus a logical size; reads merge the
//!   overlay over the real file (bytes past the real file's end, or cut by a truncation, read as
//!   zeros). `xSync` does nothing.
//! - Every other file (journals, statement journals, temp, transient and anonymous databases)
//!   is a byte vector owned by its handle and gone on close. No `-journal`, `-wal` or `-shm`
//!   file is ever created: `xAccess` says they do not exist (so SQLite never sees a hot
//!   journal) and `xDelete` succeeds without touching the `Fs`. SQLite never deletes a main
//!   database through the VFS.
//! - WAL is refused twice: `PRAGMA journal_mode=WAL` fails with a clear message (in exclusive
//!   mode SQLite would otherwise switch the file format), and opening a WAL file fails with
//!   `SQLITE_CANTOPEN`.
//! - Locks are no-ops that track the level, so `xCheckReservedLock` answers for this connection.
//!   A second open of a main file that is open is refused: two overlays would diverge.
//! - Device characteristics: `POWERSAFE_OVERWRITE`, `SAFE_APPEND` and `SUBPAGE_READ`, which are
//!   all true because nothing SQLite writes reaches the disk before a checkpoint, and reads of
//!   any range are exact. Not claimed: `ATOMIC*`/`BATCH_ATOMIC` (SQLite would drop the rollback
//!   journal it needs for in-process rollback) and `SEQUENTIAL` (moot with `synchronous=OFF`).
//!
//! # Engine protocol
//! 1. `Vfs::register(fs)`, then `Connection::open_with_flags_and_vfs(path, flags, vfs.name())`.
//!    The VFS uses paths exactly as given (no canonicalization); `vfs.main_file(path)` with the
//!    same path returns the file's [`MainFile`], a cheap shared handle.
//! 2. After every `COMMIT`: [`MainFile::take_capture`] returns what changed since the previous
//!    capture, or `None` if nothing did (a rolled-back transaction, or identical rewrites). The
//!    engine appends its encoding to the journal. A capture taken after SQLite wrote but before
//!    it committed is refused ([`Error::UncommittedWrites`]): SQLite tells the VFS about each
//!    commit with `SQLITE_FCNTL_COMMIT_PHASETWO`. (If a commit fails midway, SQLite restores the
//!    pages itself, but captures stay refused until the next successful commit, which the
//!    engine treats as fatal for the object anyway.) Capturing after several commits at once is
//!    also correct, just coarser. In exclusive mode SQLite bumps the header's change counter
//!    once per session (and after a savepoint rollback), not per commit, so a small commit
//!    usually captures only the bytes it changed.
//! 3. Checkpoint, once the journal records of every capture so far are durable:
//!    [`MainFile::checkpoint_snapshot`] (quick, under the file's lock; refused with uncaptured
//!    changes) → [`Snapshot::write`] (no lock held, may run on another thread while the object
//!    keeps committing) → `Fs::sync_files` on the returned handles, batched across files →
//!    [`MainFile::checkpoint_done`], which drops from the overlay the pages that did not change
//!    since the snapshot. The VFS knows nothing about journal positions.
//! 4. Closing the connection keeps a file's overlay while it holds anything not checkpointed or
//!    not captured, so a reopen sees it and the engine can still checkpoint a closed file
//!    ([`Vfs::main_files`]). A clean closed file is forgotten, releasing its descriptor.
//!    Deleting an object's storage: close it, [`Vfs::discard`], then remove the file.
//! 5. Memory: nothing is bounded here; [`MainFile::dirty_bytes`] tells the engine when to
//!    checkpoint.
//!
//! # Record format
//! [`Capture::encode`] writes, with varints as unsigned LEB128 (7 bits a byte, low first):
//!
//! | field | encoding | meaning |
//! |---|---|---|
//! | version | 1 byte, `1` | format version |
//! | page_size | varint | the overlay's page size (SQLite's page size); informational |
//! | size | varint | file length in bytes after the commit |
//! | zeroed | varint | `size - zero_from`; replay zero-fills `[zero_from, size)` first |
//! | count | varint | number of ranges |
//! | ranges | `count` × (gap varint, len varint, len bytes) | gap = offset − end of previous range (first: offset) |
//!
//! Ranges are ascending, disjoint, non-empty, within `size`, and never span two pages. The
//! record has no checksum: the journal checksums every record.
//!
//! How a capture is made: at a page's first write since the last capture, the VFS keeps a
//! pre-image (a shared copy, duplicated only when the page changes). At capture, each written
//! page is compared with what replay will find there: the pre-image below `zero_from`, zeros
//! from it on. Differing bytes become ranges, and runs of fewer than 8 equal bytes between them
//! are sent too, since a range costs 2–3 bytes of varints. `zero_from` is the file's smallest
//! length during the commit: the previous size, or lower if SQLite truncated (as `VACUUM`
//! does). It generalizes "full" page flags: every page that is new, or was cut and regrown,
//! lies at or past `zero_from`, so replay zero-fills it before the ranges write its non-zero
//! bytes. A page rewritten identically yields no range, and a commit that changes nothing
//! yields no capture.
//!
//! Replaying a record ([`Capture::apply`]): cut the file to `zero_from` if longer, write the
//! ranges, set the length to `size`.
//!
//! # Why replay is idempotent
//! Let `D_0, D_1, …, D_n` be the committed file images, record `r_i` turning `D_{i-1}` into
//! `D_i`. Say `r_i` *writes* byte `b` if `b` is in one of its ranges or `b >= zero_from_i` (it
//! zero-fills or cuts those). By construction, every byte that differs between `D_{i-1}` and
//! `D_i` is written by `r_i`, and every byte `r_i` writes below `size_i` gets its `D_i` value.
//!
//! Claim: replaying `r_j, …, r_n` in order onto a file `F` yields `D_n`, provided each byte of
//! `F` below `size_{j-1}` equals that byte in *some* image `D_k` with `k >= j-1`. That covers
//! every file recovery meets: the last checkpoint `D_a` with `j <= a+1` (the journal keeps all
//! records past the last durable checkpoint, and possibly earlier ones), and a checkpoint torn
//! by a crash, which mixes bytes of `D_a` and of the next image `D_c` (at any granularity).
//!
//! Proof, for one byte `b < size_n` (bytes at or past `size_n` are cut by the last record):
//! - If some replayed record writes `b`, let `r_k` be the last one. Right after it `b = D_k[b]`
//!   (if `b >= size_k`, a later record grew the file past `b`, and growing from below `b` puts
//!   its `zero_from` below `b`, so that record writes `b` — contradicting "last"). No later
//!   record writes `b`, so no later commit changed it: `D_n[b] = D_k[b]`.
//! - Otherwise no replayed record writes `b`, so `b < zero_from_i <= min(size_{i-1}, size_i)`
//!   for every `i` in `j..=n`, and no commit in between changed it: `D_{j-1}[b] = … = D_n[b]`.
//!   `F[b]` equals `D_k[b]` for some `k >= j-1`, which is that same value. Replay never
//!   touched it, so the result holds `D_n[b]`.
//!
//! The engine's ordering supplies the premise: it checkpoints only after the records covering
//! the snapshot are durable, and truncates the journal only after the checkpoint is synced. A
//! checkpoint write first cuts the file to its `base_len` (bytes a truncation made stale),
//! which only touches bytes that a retained record writes anyway.
//!
//! # Threads
//! SQLite calls a file's methods from one thread at a time. The engine may call [`MainFile`]
//! methods from any thread; each file's state is behind its own mutex, taken briefly by both.
//! Lock order: the VFS's file registry, then a file's state.
#![warn(clippy::undocumented_unsafe_blocks)]

mod capture;
mod ffi;
mod overlay;

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ffi::{CString, c_int};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use rusqlite::ffi as sqlite;

pub use capture::{Capture, DecodeError};
use overlay::{MainState, Refusal, SnapshotData};

use crate::fs::{File, Fs, OpenMode};

/// Errors of the VFS's engine-facing API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite refused to register the VFS.
    #[error("sqlite3_vfs_register failed with code {code}")]
    Register {
        /// SQLite's result code.
        code: i32,
    },
    /// An earlier panic left the file's state unusable.
    #[error("VFS state of {path:?} is poisoned by an earlier panic")]
    Poisoned {
        /// The database file.
        path: PathBuf,
    },
    /// SQLite wrote since its last commit; capture after `COMMIT`.
    #[error("{path:?} has writes that are not committed; take a capture only after a commit")]
    UncommittedWrites {
        /// The database file.
        path: PathBuf,
    },
    /// A commit was not captured yet; capture before a checkpoint snapshot.
    #[error("{path:?} has commits not captured yet; call take_capture before checkpointing")]
    UncapturedChanges {
        /// The database file.
        path: PathBuf,
    },
    /// Another snapshot of this file is being written.
    #[error("a checkpoint of {path:?} is already in progress")]
    CheckpointInProgress {
        /// The database file.
        path: PathBuf,
    },
    /// The snapshot was taken from a different file.
    #[error("snapshot of another file passed to checkpoint_done of {path:?}")]
    ForeignSnapshot {
        /// The database file.
        path: PathBuf,
    },
    /// `checkpoint_done` before a successful `Snapshot::write`.
    #[error("checkpoint of {path:?} confirmed before its snapshot was written")]
    NotWritten {
        /// The database file.
        path: PathBuf,
    },
    /// The file is open in SQLite.
    #[error("{path:?} is open in SQLite")]
    StillOpen {
        /// The database file.
        path: PathBuf,
    },
    /// Reading or creating the file failed.
    #[error("{path:?}: {source}")]
    Io {
        /// The database file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// A registered instance of the VFS. Cheap to clone; unregistered when the last clone and the
/// last file SQLite opened through it are gone. Drop every connection that uses it first.
#[derive(Clone)]
pub struct Vfs {
    shared: Arc<Shared>,
}

/// What the VFS callbacks reach through `sqlite3_vfs.pAppData`.
struct Shared {
    fs: Arc<dyn Fs>,
    name: CString,
    /// Registered with SQLite, which links it into its list (writes `pNext`) under its own mutex.
    raw: UnsafeCell<sqlite::sqlite3_vfs>,
    /// SQLite's default VFS, for the methods that have nothing to do with files.
    default_vfs: *mut sqlite::sqlite3_vfs,
    /// Main database files with state: every open one, and closed ones not yet clean.
    files: Mutex<HashMap<PathBuf, MainFile>>,
    this: Weak<Shared>,
}

// SAFETY: `raw` is only touched by SQLite, under its global VFS mutex after registration, and
// read by SQLite's callers; `default_vfs` points at a VFS SQLite never frees. Everything else
// is Send + Sync.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: `raw` was registered by `Vfs::register` (unregistering an unknown VFS is a
        // no-op). No file of ours is open (each holds an Arc<Shared>) and no Vfs handle is left
        // to open one, so SQLite will not call into this VFS again.
        unsafe {
            sqlite::sqlite3_vfs_unregister(self.raw.get());
        }
    }
}

impl std::fmt::Debug for Vfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vfs").field("name", &self.name()).finish()
    }
}

impl Vfs {
    /// Registers a new VFS instance over `fs` under a name unique in this process.
    pub fn register(fs: Arc<dyn Fs>) -> Result<Vfs, Error> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let name = CString::new(format!("burrow-{id}")).expect("no NUL in a formatted name");
        // Before anything initializes SQLite: the process-wide lookaside default.
        crate::memory::configure_sqlite();
        // SAFETY: sqlite3_vfs_find initializes SQLite if needed and returns the default VFS
        // (or null); built-in VFSes are never freed.
        let default_vfs = unsafe { sqlite::sqlite3_vfs_find(std::ptr::null()) };
        if default_vfs.is_null() {
            return Err(Error::Register {
                code: sqlite::SQLITE_ERROR,
            });
        }
        let shared = Arc::new_cyclic(|this: &Weak<Shared>| Shared {
            fs,
            raw: UnsafeCell::new(ffi::new_vfs(name.as_ptr(), this.as_ptr())),
            name,
            default_vfs,
            files: Mutex::new(HashMap::new()),
            this: this.clone(),
        });
        // SAFETY: `raw` lives inside the Arc allocation, so its address is stable until
        // Shared's Drop unregisters it; its zName and pAppData point into the same allocation.
        let code = unsafe { sqlite::sqlite3_vfs_register(shared.raw.get(), 0) };
        if code != sqlite::SQLITE_OK {
            return Err(Error::Register { code });
        }
        Ok(Vfs { shared })
    }

    /// The name to pass to `Connection::open_with_flags_and_vfs`.
    pub fn name(&self) -> &str {
        self.shared
            .name
            .to_str()
            .expect("the name is ASCII by construction")
    }

    /// The file system the VFS reads and writes.
    pub fn fs(&self) -> &Arc<dyn Fs> {
        &self.shared.fs
    }

    /// The state of a main database file: open in SQLite, or closed with changes not yet
    /// checkpointed or captured. `path` as passed to SQLite.
    pub fn main_file(&self, path: &Path) -> Option<MainFile> {
        self.shared.registry().get(path).cloned()
    }

    /// Every main database file the VFS holds state for.
    pub fn main_files(&self) -> Vec<MainFile> {
        self.shared.registry().values().cloned().collect()
    }

    /// Starts a new, empty database file at `path` with the content `image` (a whole database,
    /// `page_size` bytes per page) already in its overlay, committed and in the capture window,
    /// as if SQLite had written it in one transaction: the next [`MainFile::take_capture`] after
    /// SQLite opens the file returns it. Returns false (and changes nothing) when the VFS already
    /// holds state for `path` or the file is not empty. For creating an object's database from
    /// a template instead of running the same DDL for every new object.
    pub fn seed_new(&self, path: &Path, image: &[u8], page_size: usize) -> Result<bool, Error> {
        let mut files = self.shared.registry();
        if files.contains_key(path) || page_size == 0 || !image.len().is_multiple_of(page_size) {
            return Ok(false);
        }
        let io = |error: std::io::Error| Error::Io {
            path: path.to_owned(),
            source: error,
        };
        let file = self.shared.fs.open(path, OpenMode::Create).map_err(io)?;
        let mut state = MainState::new(file).map_err(io)?;
        if state.size() != 0 {
            return Ok(false);
        }
        for (index, page) in image.chunks(page_size).enumerate() {
            state.write(page, (index * page_size) as u64).map_err(io)?;
        }
        state.committed();
        state.open = false;
        let main = MainFile {
            inner: Arc::new(MainInner {
                path: path.to_owned(),
                shared: self.shared.this.clone(),
                state: Mutex::new(state),
            }),
        };
        files.insert(path.to_owned(), main);
        Ok(true)
    }

    /// Forgets a closed file's overlay, dropping whatever it held. For deleting an object's
    /// storage: close the connection, discard, then remove the file. Returns whether there
    /// was state to drop.
    pub fn discard(&self, path: &Path) -> Result<bool, Error> {
        let mut files = self.shared.registry();
        let Some(main) = files.get(path) else {
            return Ok(false);
        };
        if main.with_state(|state| state.open).unwrap_or(false) {
            return Err(Error::StillOpen {
                path: path.to_owned(),
            });
        }
        files.remove(path);
        Ok(true)
    }
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, HashMap<PathBuf, MainFile>> {
        // The map is never left half-updated by a panic, so a poisoned lock is still usable.
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn arc(&self) -> Option<Arc<Shared>> {
        self.this.upgrade()
    }

    fn fs(&self) -> &dyn Fs {
        &*self.fs
    }

    fn default_vfs(&self) -> *mut sqlite::sqlite3_vfs {
        self.default_vfs
    }

    fn is_registered(&self, path: &Path) -> bool {
        self.registry().contains_key(path)
    }

    /// `xOpen` of a main database: reuses kept state, or opens the file through `Fs`.
    fn open_main(&self, path: &Path, create: bool) -> Result<MainFile, c_int> {
        let mut files = self.registry();
        if let Some(main) = files.get(path) {
            let reopened = main.with_state(|state| !std::mem::replace(&mut state.open, true));
            return match reopened {
                Ok(true) => Ok(main.clone()),
                Ok(false) => {
                    tracing::warn!(?path, "refusing a second connection to an open database");
                    Err(sqlite::SQLITE_CANTOPEN)
                }
                Err(_) => Err(sqlite::SQLITE_CANTOPEN),
            };
        }
        let mode = if create {
            OpenMode::Create
        } else {
            OpenMode::Existing
        };
        let file = self.fs.open(path, mode).map_err(|error| {
            if error.kind() != io::ErrorKind::NotFound {
                tracing::warn!(?path, %error, "VFS open failed");
            }
            sqlite::SQLITE_CANTOPEN
        })?;
        let state = MainState::new(file).map_err(|error| {
            tracing::warn!(?path, %error, "VFS could not read a new database file");
            sqlite::SQLITE_IOERR_READ
        })?;
        let main = MainFile {
            inner: Arc::new(MainInner {
                path: path.to_owned(),
                shared: self.this.clone(),
                state: Mutex::new(state),
            }),
        };
        files.insert(path.to_owned(), main.clone());
        Ok(main)
    }

    /// `xClose` of a main database: keeps the state unless nothing would be lost.
    fn close_main(&self, main: &MainFile) {
        let mut files = self.registry();
        let clean = main
            .with_state(|state| {
                state.open = false;
                state.is_clean()
            })
            .unwrap_or(false);
        if clean {
            Self::remove_entry(&mut files, main);
        }
    }

    /// Forgets a closed file once it is clean (after a checkpoint or capture).
    fn forget_if_clean(&self, main: &MainFile) {
        let mut files = self.registry();
        let clean = main
            .with_state(|state| !state.open && state.is_clean())
            .unwrap_or(false);
        if clean {
            Self::remove_entry(&mut files, main);
        }
    }

    fn remove_entry(files: &mut HashMap<PathBuf, MainFile>, main: &MainFile) {
        if files
            .get(main.path())
            .is_some_and(|entry| Arc::ptr_eq(&entry.inner, &main.inner))
        {
            files.remove(main.path());
        }
    }
}

/// A main database file's overlay: a cheap, shared handle for the engine.
#[derive(Clone)]
pub struct MainFile {
    inner: Arc<MainInner>,
}

struct MainInner {
    path: PathBuf,
    shared: Weak<Shared>,
    state: Mutex<MainState>,
}

impl std::fmt::Debug for MainFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MainFile")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl MainFile {
    /// The path SQLite opened it by.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut MainState) -> R) -> Result<R, Error> {
        let mut state = self.inner.state.lock().map_err(|_| Error::Poisoned {
            path: self.inner.path.clone(),
        })?;
        Ok(f(&mut state))
    }

    /// For statistics only: a poisoned state is still fine to count.
    fn stats<R>(&self, f: impl FnOnce(&MainState) -> R) -> R {
        f(&self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    fn refused(&self, refusal: Refusal) -> Error {
        let path = self.inner.path.clone();
        match refusal {
            Refusal::UncommittedWrites => Error::UncommittedWrites { path },
            Refusal::UncapturedChanges => Error::UncapturedChanges { path },
            Refusal::CheckpointInProgress => Error::CheckpointInProgress { path },
        }
    }

    /// What changed since the previous capture, as a redo record; `None` if nothing did. Call
    /// after each commit (or any time no transaction has written).
    pub fn take_capture(&self) -> Result<Option<Capture>, Error> {
        let (capture, open) = self.with_state(|state| (state.take_capture(), state.open))?;
        let capture = capture.map_err(|refusal| self.refused(refusal))?;
        if !open {
            self.forget_if_clean();
        }
        Ok(capture)
    }

    /// The whole database as SQLite sees it (overlay over file).
    pub fn read_all(&self) -> Result<Vec<u8>, Error> {
        self.with_state(|state| {
            let mut bytes = vec![0; state.size() as usize];
            state.read(&mut bytes, 0).map(|_| bytes)
        })?
        .map_err(|source| Error::Io {
            path: self.inner.path.clone(),
            source,
        })
    }

    /// Pages held in the overlay (not yet checkpointed).
    pub fn dirty_pages(&self) -> usize {
        self.stats(MainState::dirty_pages)
    }

    /// Memory held by overlay pages and capture pre-images, in bytes.
    pub fn dirty_bytes(&self) -> u64 {
        self.stats(MainState::dirty_bytes)
    }

    /// True if the file on disk differs from the committed content.
    pub fn needs_checkpoint(&self) -> bool {
        self.stats(MainState::needs_checkpoint)
    }

    /// The database's length in bytes, as SQLite sees it.
    pub fn size_bytes(&self) -> u64 {
        self.stats(MainState::size)
    }

    /// True while SQLite has the file open.
    pub fn is_open(&self) -> bool {
        self.stats(|state| state.open)
    }

    /// Freezes the overlay for a checkpoint. Quick: pages are shared, not copied. Refused while
    /// a commit is uncaptured or another snapshot of this file is in flight.
    pub fn checkpoint_snapshot(&self) -> Result<Snapshot, Error> {
        let data = self
            .with_state(MainState::snapshot)?
            .map_err(|refusal| self.refused(refusal))?;
        Ok(Snapshot {
            main: self.clone(),
            data,
            written: AtomicBool::new(false),
        })
    }

    /// The snapshot is written and synced: drops from the overlay every page not modified
    /// since the snapshot was taken.
    pub fn checkpoint_done(&self, snapshot: Snapshot) -> Result<(), Error> {
        let path = self.inner.path.clone();
        if !Arc::ptr_eq(&snapshot.main.inner, &self.inner) {
            return Err(Error::ForeignSnapshot { path });
        }
        if !snapshot.written.load(Ordering::Acquire) {
            return Err(Error::NotWritten { path });
        }
        let open = self.with_state(|state| {
            state.confirm(&snapshot.data);
            state.open
        })?;
        drop(snapshot);
        if !open {
            self.forget_if_clean();
        }
        Ok(())
    }

    fn forget_if_clean(&self) {
        if let Some(shared) = self.inner.shared.upgrade() {
            shared.forget_if_clean(self);
        }
    }
}

/// A frozen copy of a file's overlay, taken by [`MainFile::checkpoint_snapshot`]. Dropping it
/// without [`MainFile::checkpoint_done`] abandons the checkpoint (nothing is lost).
pub struct Snapshot {
    main: MainFile,
    data: SnapshotData,
    written: AtomicBool,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("path", &self.main.path())
            .field("pages", &self.data.pages())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Writes the snapshot's pages and length into the real file, without syncing, and returns
    /// the file for the engine to sync (`Fs::sync_files`). Takes no lock; SQLite may keep
    /// committing meanwhile. May be retried after an error.
    pub fn write(&self) -> io::Result<Arc<dyn File>> {
        self.data.write()?;
        self.written.store(true, Ordering::Release);
        Ok(Arc::clone(&self.data.file))
    }

    /// The file the snapshot writes.
    pub fn file(&self) -> &Arc<dyn File> {
        &self.data.file
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        self.main.path()
    }

    /// Pages the snapshot writes.
    pub fn pages(&self) -> usize {
        self.data.pages()
    }

    /// Bytes the snapshot writes.
    pub fn bytes(&self) -> u64 {
        self.data.bytes()
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let id = self.data.id;
        // After checkpoint_done this is a no-op; otherwise it lets a new snapshot be taken.
        let _ = self.main.with_state(|state| state.abandon(id));
    }
}
