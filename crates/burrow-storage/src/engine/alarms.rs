//! The node's alarm index: which object has an alarm at what time, so due alarms are found after
//! a restart without opening every object.
//!
//! It is a SQLite database of its own (`node/alarms.sqlite`) opened through the same VFS, and every
//! change to it rides in the same journal record as the object commit that moved the alarm, so
//! after any crash the index and the objects agree.

use super::{Error, Shared, object};
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;
use std::sync::Arc;

/// Where the index lives, relative to the data directory.
pub(crate) const INDEX_PATH: &str = "node/alarms.sqlite";

/// An alarm that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueAlarm {
    /// The object's namespace.
    pub namespace: String,
    /// The object's id.
    pub id: String,
    /// When it is scheduled, in epoch milliseconds.
    pub at_ms: i64,
}

pub(crate) struct AlarmIndex {
    conn: Connection,
    shared: Option<Arc<Shared>>,
}

impl AlarmIndex {
    /// Opens the index. Its creation is captured and journaled by [`AlarmIndex::set_shared`].
    pub(crate) fn open(inner_root: &Path, vfs: &crate::vfs::Vfs) -> Result<AlarmIndex, Error> {
        let conn = object::open_connection_at(&inner_root.join(INDEX_PATH), vfs, 256)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS alarms(
                 namespace TEXT NOT NULL,
                 id TEXT NOT NULL,
                 at_ms INTEGER NOT NULL,
                 PRIMARY KEY(namespace, id)) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS alarms_by_time ON alarms(at_ms);",
        )?;
        Ok(AlarmIndex { conn, shared: None })
    }

    pub(crate) fn set_shared(&mut self, shared: Arc<Shared>) {
        self.shared = Some(shared);
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared
            .clone()
            .expect("the alarm index is registered when the engine opens")
    }

    /// Records `at_ms` (or no alarm) for one object. Returns the index's encoded capture, to be
    /// journaled in the same record as the object's commit; `None` if nothing changed.
    pub(crate) fn set(
        &mut self,
        namespace: &str,
        id: &str,
        at_ms: Option<i64>,
    ) -> Result<Option<Vec<u8>>, Error> {
        match at_ms {
            Some(at_ms) => self
                .conn
                .prepare(
                    "INSERT INTO alarms(namespace, id, at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(namespace, id) DO UPDATE SET at_ms = excluded.at_ms",
                )?
                .execute((namespace, id, at_ms))?,
            None => self
                .conn
                .prepare("DELETE FROM alarms WHERE namespace = ?1 AND id = ?2")?
                .execute((namespace, id))?,
        };
        self.take_capture()
    }

    /// The capture of whatever the index's last statement committed, encoded.
    pub(crate) fn take_capture(&self) -> Result<Option<Vec<u8>>, Error> {
        let Some(capture) = self
            .shared()
            .file
            .take_capture()
            .map_err(super::vfs_error)?
        else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        capture.encode(&mut bytes);
        Ok(Some(bytes))
    }

    /// The alarm of one object, if any.
    pub(crate) fn get(&self, namespace: &str, id: &str) -> Result<Option<i64>, Error> {
        Ok(self
            .conn
            .prepare("SELECT at_ms FROM alarms WHERE namespace = ?1 AND id = ?2")?
            .query_row((namespace, id), |row| row.get(0))
            .optional()?)
    }

    pub(crate) fn due(&self, until_ms: i64, limit: usize) -> Result<Vec<DueAlarm>, Error> {
        let mut statement = self.conn.prepare(
            "SELECT namespace, id, at_ms FROM alarms WHERE at_ms <= ?1 ORDER BY at_ms LIMIT ?2",
        )?;
        let rows = statement.query_map((until_ms, limit as i64), |row| {
            Ok(DueAlarm {
                namespace: row.get(0)?,
                id: row.get(1)?,
                at_ms: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
