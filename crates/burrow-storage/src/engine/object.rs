//! One open object database: the KV and SQL APIs of [`Database`], plus commits that become journal records.

use super::{Error, Inner, Shared, record};
use crate::database::Database;
use crate::journal::Durable;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The database every new object starts with (SQLite's header and schema with the hidden
/// tables), made once per process by running [`Database::new`] on an in-memory file system.
/// Seeding a new object's overlay with it skips parsing and running the same DDL for every new
/// object, which was about 10 % of the shard threads' CPU time in the `workflows` benchmark (a
/// new database per instance). `None` if building it failed: new objects then run the DDL.
struct Template {
    image: Vec<u8>,
    page_size: usize,
}

fn template() -> Option<&'static Template> {
    static TEMPLATE: OnceLock<Option<Template>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            build_template()
                .inspect_err(|error| {
                    tracing::warn!(%error, "cannot build the new-database template; new objects run their DDL");
                })
                .ok()
        })
        .as_ref()
}

fn build_template() -> Result<Template, Error> {
    let fs: Arc<dyn crate::fs::Fs> = Arc::new(crate::fs::sim::SimFs::new(0));
    let dir = Path::new("/template");
    fs.create_dir_all(dir)?;
    let vfs = crate::vfs::Vfs::register(fs).map_err(super::vfs_error)?;
    let path = dir.join("new.sqlite");
    let db = Database::new(open_connection_at(&path, &vfs, 64)?)?;
    let image = vfs
        .main_file(&path)
        .ok_or_else(|| Error::Io(std::io::Error::other("the template database has no state")))?
        .read_all()
        .map_err(super::vfs_error)?;
    drop(db);
    // The header's page size: big-endian at offset 16, where 1 stands for 65536.
    let page_size = match image.get(16..18) {
        Some(&[1, 0]) => 65536,
        Some(&[high, low]) => usize::from(u16::from_be_bytes([high, low])),
        _ => 0,
    };
    if page_size < 512 || image.is_empty() || !image.len().is_multiple_of(page_size) {
        return Err(Error::Io(std::io::Error::other(format!(
            "the template database is malformed ({} bytes, page size {page_size})",
            image.len()
        ))));
    }
    Ok(Template { image, page_size })
}

/// An open object database, owned by the thread that runs the object.
///
/// Every storage call between two [`ObjectStorage::commit`]s belongs to one turn and commits
/// atomically. `commit` returns the [`Durable`] to wait on before anything leaves the object.
pub struct ObjectStorage {
    /// `None` only while dropping, so the connection closes before the engine is told.
    db: Option<Database>,
    shared: Arc<Shared>,
    inner: Arc<Inner>,
    namespace: String,
    id: String,
    /// The alarm as of the last commit, to notice when a turn moved it.
    committed_alarm: Option<i64>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("path", &self.shared.rel_path)
            .finish_non_exhaustive()
    }
}

/// Opens a connection through the engine's VFS with the settings the capture protocol needs.
pub(super) fn open_connection_at(
    path: &std::path::Path,
    vfs: &crate::vfs::Vfs,
    cache_kib: u32,
) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_EXRESCODE;
    let conn = Connection::open_with_flags_and_vfs(path, flags, vfs.name())?;
    crate::memory::limit_lookaside(&conn);
    // Required by the VFS's capture protocol (see crate::vfs): SQLite writes pages only at commit,
    // into the overlay, and never creates its own journal files or syncs.
    conn.execute_batch(&format!(
        "PRAGMA locking_mode=EXCLUSIVE;
         PRAGMA journal_mode=MEMORY;
         PRAGMA synchronous=OFF;
         PRAGMA cache_spill=OFF;
         PRAGMA temp_store=MEMORY;
         PRAGMA cache_size=-{cache_kib};"
    ))?;
    Ok(conn)
}

pub(super) fn open(inner: &Arc<Inner>, namespace: &str, id: &str) -> Result<ObjectStorage, Error> {
    inner.check_failed()?;
    let rel_path = super::object_path(namespace, id)?;
    inner.reserve(&rel_path)?;
    let opened = (|| {
        let path = inner.root.join(&rel_path);
        let new_file = !inner.fs.exists(&path);
        if new_file && let Some(dir) = path.parent() {
            inner.fs.create_dir_all(dir)?;
        }
        if new_file && let Some(template) = template() {
            inner
                .vfs
                .seed_new(&path, &template.image, template.page_size)
                .map_err(super::vfs_error)?;
        }
        let conn =
            open_connection_at(&path, &inner.vfs, inner.options.cache_kib).inspect_err(|_| {
                let _ = inner.vfs.discard(&path);
            })?;
        let shared = inner.register(&rel_path, new_file)?;
        Ok::<_, Error>((conn, shared))
    })();
    let (conn, shared) = match opened {
        Ok(pair) => pair,
        Err(error) => {
            inner.unreserve(&rel_path);
            return Err(error);
        }
    };
    let mut object = ObjectStorage {
        db: match Database::new(conn) {
            Ok(db) => Some(db),
            Err(error) => {
                inner.unregister(&rel_path);
                return Err(error.into());
            }
        },
        shared,
        inner: inner.clone(),
        namespace: namespace.to_string(),
        id: id.to_string(),
        committed_alarm: None,
    };
    // Creating the hidden tables of a new database is a commit like any other.
    object.append_capture()?;
    object.committed_alarm = object.db().get_alarm()?;
    Ok(object)
}

pub(super) fn delete(inner: &Arc<Inner>, namespace: &str, id: &str) -> Result<(), Error> {
    inner.check_failed()?;
    let rel_path = super::object_path(namespace, id)?;
    inner.reserve(&rel_path)?;
    let result = (|| {
        // A closed object may still have pages waiting for the checkpointer: write them first,
        // then forget the file, so no later checkpoint can bring the file back.
        inner.settle_closed(&rel_path)?;
        inner
            .vfs
            .discard(&inner.root.join(&rel_path))
            .map_err(super::vfs_error)?;
        let mut alarms = inner.lock_alarms();
        let index_capture = alarms.set(namespace, id, None)?;
        let mut entries = vec![record::Entry::Delete { path: &rel_path }];
        if let Some(capture) = &index_capture {
            entries.push(record::Entry::Commit {
                path: super::alarms::INDEX_PATH,
                capture,
            });
        }
        let mut payload = Vec::new();
        record::encode(&entries, &mut payload);
        let index_shared = alarms.shared();
        let mut index_state = index_shared.lock();
        let durable = inner
            .journal
            .append(&payload)
            .inspect_err(|_| inner.fail())?;
        Shared::note_append(&mut index_state, &durable);
        drop(index_state);
        drop(alarms);
        durable.wait().inspect_err(|_| inner.fail())?;
        let path = inner.root.join(&rel_path);
        if inner.fs.exists(&path) {
            inner.fs.remove_file(&path)?;
            if let Some(dir) = path.parent() {
                inner.fs.sync_dir(dir)?;
            }
        }
        Ok(())
    })();
    inner.unreserve(&rel_path);
    result
}

impl ObjectStorage {
    /// The KV and SQL APIs. Everything done through it until [`commit`](Self::commit) is one turn.
    pub fn db(&mut self) -> &mut Database {
        self.db
            .as_mut()
            .expect("the database is open until the handle drops")
    }

    /// The object's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The object's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Ends the turn: commits it atomically and appends its redo record to the journal.
    /// Returns `None` when the turn changed nothing, otherwise the handle that resolves when the
    /// commit is durable. On error the turn is rolled back (a constraint violation resets the
    /// object to its last good state, with Cloudflare's message).
    pub fn commit(&mut self) -> Result<Option<Durable>, Error> {
        if let Err(error) = self.inner.check_failed() {
            let _ = self.db().rollback_turn();
            return Err(error);
        }
        self.db().commit_turn()?;
        self.append_capture()
    }

    /// Ends the turn by discarding its writes.
    pub fn rollback(&mut self) -> Result<(), Error> {
        Ok(self.db().rollback_turn()?)
    }

    /// Checkpoints this object's pages into its file now (waits for its records to be durable).
    pub fn checkpoint(&self) -> Result<(), Error> {
        self.inner.check_failed()?;
        self.inner.checkpoint_one(&self.shared)
    }

    /// Closes the database and releases its connection at once. Uncommitted writes are
    /// discarded. The engine's checkpointer copies its remaining pages into the file soon after
    /// and only then releases the file descriptor and the pages' memory; reopening the object
    /// before that is fine. Dropping the handle does the same.
    pub fn close(self) -> Result<(), Error> {
        drop(self);
        Ok(())
    }

    /// Turns whatever the last commit wrote into one journal record.
    fn append_capture(&mut self) -> Result<Option<Durable>, Error> {
        let shared = self.shared.clone();
        let mut state = shared.lock();
        let Some(capture) = shared.file.take_capture().map_err(super::vfs_error)? else {
            return Ok(None);
        };
        let mut capture_bytes = Vec::new();
        capture.encode(&mut capture_bytes);
        let alarm = self.db().get_alarm()?;
        let mut payload = Vec::with_capacity(capture_bytes.len() + 64);
        let durable = if alarm == self.committed_alarm {
            record::encode(
                &[record::Entry::Commit {
                    path: &self.shared.rel_path,
                    capture: &capture_bytes,
                }],
                &mut payload,
            );
            self.inner
                .journal
                .append(&payload)
                .inspect_err(|_| self.inner.fail())?
        } else {
            // The alarm index changes in the same record, so the index and the object agree
            // after any crash.
            let mut alarms = self.inner.lock_alarms();
            let index_capture = alarms.set(&self.namespace, &self.id, alarm)?;
            let mut entries = vec![record::Entry::Commit {
                path: &self.shared.rel_path,
                capture: &capture_bytes,
            }];
            if let Some(index_capture) = &index_capture {
                entries.push(record::Entry::Commit {
                    path: super::alarms::INDEX_PATH,
                    capture: index_capture,
                });
            }
            record::encode(&entries, &mut payload);
            let index_shared = alarms.shared();
            let mut index_state = index_shared.lock();
            let durable = self
                .inner
                .journal
                .append(&payload)
                .inspect_err(|_| self.inner.fail())?;
            Shared::note_append(&mut index_state, &durable);
            self.committed_alarm = alarm;
            durable
        };
        Shared::note_append(&mut state, &durable);
        Ok(Some(durable))
    }
}

impl Drop for ObjectStorage {
    fn drop(&mut self) {
        if let Some(mut db) = self.db.take() {
            let _ = db.rollback_turn();
            drop(db);
        }
        self.inner.closed(&self.shared);
    }
}
