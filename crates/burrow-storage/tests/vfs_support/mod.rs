//! Shared helpers for the VFS tests: a tiny in-memory `Fs`, connection setup with the pragmas
//! the VFS requires, and a checkpoint helper.
// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burrow_storage::fs::{File, Fs, OpenMode};
use burrow_storage::vfs::{MainFile, Vfs};
use rusqlite::{Connection, OpenFlags};

/// The pragmas the VFS documents as required, in the order the engine sets them.
pub(crate) const REQUIRED_PRAGMAS: &str = "PRAGMA locking_mode=EXCLUSIVE;
     PRAGMA journal_mode=MEMORY;
     PRAGMA synchronous=OFF;
     PRAGMA cache_spill=OFF;
     PRAGMA temp_store=MEMORY;";

/// A file kept in memory. Syncs do nothing: these tests are about content, not power loss.
#[derive(Default)]
pub(crate) struct MemFile {
    data: Mutex<Vec<u8>>,
}

impl MemFile {
    pub(crate) fn with_contents(bytes: &[u8]) -> Arc<MemFile> {
        Arc::new(MemFile {
            data: Mutex::new(bytes.to_vec()),
        })
    }

    pub(crate) fn contents(&self) -> Vec<u8> {
        self.data.lock().unwrap().clone()
    }
}

impl File for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let data = self.data.lock().unwrap();
        let start = (offset as usize).min(data.len());
        let n = (data.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut data = self.data.lock().unwrap();
        let end = offset as usize + buf.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(buf);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.data.lock().unwrap().resize(len as usize, 0);
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.data.lock().unwrap().len() as u64)
    }
}

/// A flat in-memory file system: paths are names, directories always exist.
#[derive(Default)]
pub(crate) struct MemFs {
    files: Mutex<HashMap<PathBuf, Arc<MemFile>>>,
}

impl MemFs {
    pub(crate) fn new() -> Arc<MemFs> {
        Arc::new(MemFs::default())
    }

    /// The bytes of a file, empty if absent.
    pub(crate) fn contents(&self, path: &Path) -> Vec<u8> {
        self.files
            .lock()
            .unwrap()
            .get(path)
            .map(|file| file.contents())
            .unwrap_or_default()
    }

    /// Creates or replaces a file.
    pub(crate) fn put(&self, path: &Path, bytes: &[u8]) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_owned(), MemFile::with_contents(bytes));
    }

    /// Every file's path.
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.files.lock().unwrap().keys().cloned().collect();
        paths.sort();
        paths
    }
}

impl Fs for MemFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let mut files = self.files.lock().unwrap();
        match files.get(path) {
            Some(file) => Ok(file.clone()),
            None if mode == OpenMode::Create => {
                let file = Arc::new(MemFile::default());
                files.insert(path.to_owned(), file.clone());
                Ok(file)
            }
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        match self.files.lock().unwrap().remove(path) {
            Some(_) => Ok(()),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut files = self.files.lock().unwrap();
        let file = files.remove(from).ok_or(io::ErrorKind::NotFound)?;
        files.insert(to.to_owned(), file);
        Ok(())
    }
    fn exists(&self, path: &Path) -> bool {
        self.files.lock().unwrap().contains_key(path)
    }
    fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        Ok(self
            .paths()
            .into_iter()
            .filter(|p| p.parent() == Some(path))
            .collect())
    }
    fn sync_dir(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
}

/// Opens a connection through the VFS with the required pragmas.
pub(crate) fn open(vfs: &Vfs, path: &Path) -> Connection {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
    let conn = Connection::open_with_flags_and_vfs(path, flags, vfs.name()).unwrap();
    conn.execute_batch(REQUIRED_PRAGMAS).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "memory");
    conn
}

/// A full checkpoint: snapshot, write, sync, confirm. Returns the pages written.
pub(crate) fn checkpoint(vfs: &Vfs, main: &MainFile) -> usize {
    let snapshot = main.checkpoint_snapshot().unwrap();
    let pages = snapshot.pages();
    let file = snapshot.write().unwrap();
    vfs.fs().sync_files(&[file]).unwrap();
    main.checkpoint_done(snapshot).unwrap();
    pages
}

/// Every row of every table, in a stable order, as text: a database's logical content.
pub(crate) fn dump(conn: &Connection) -> Vec<String> {
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.retain(|name| !name.starts_with("sqlite_"));
    let mut out = Vec::new();
    for table in tables {
        let mut statement = conn
            .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY 1"))
            .unwrap();
        let columns = statement.column_count();
        let mut rows = statement.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let mut line = format!("{table}:");
            for column in 0..columns {
                let value: rusqlite::types::Value = row.get(column).unwrap();
                line.push_str(&format!(" {value:?}"));
            }
            out.push(line);
        }
    }
    out
}

/// `PRAGMA integrity_check`'s answer.
pub(crate) fn integrity(conn: &Connection) -> String {
    conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap()
}
