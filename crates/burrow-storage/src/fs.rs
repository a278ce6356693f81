//! The file-system trait that all of Burrow's storage I/O goes through, and its real implementation.
//!
//! Everything durable (object databases through the VFS, journal segments, node metadata) reads
//! and writes through [`Fs`] and [`File`]. Production uses [`OsFs`]. Tests and the deterministic
//! simulation use [`sim::SimFs`], which keeps written-but-unsynced data apart from synced data so
//! that a simulated power loss can drop exactly what a real one could.
//!
//! # Durability contract
//! The contract is POSIX's, made explicit so the simulation can enforce it:
//! - [`File::write_all_at`] and [`File::set_len`] are visible to reads at once, and durable only
//!   after a later [`File::sync_data`] on that file returns `Ok`.
//! - Creating, removing and renaming a file changes the directory; that change is durable only
//!   after [`Fs::sync_dir`] on the parent directory returns `Ok`.
//! - [`Fs::sync_files`] is `sync_data` on each of several files; implementations may do it with
//!   fewer system calls (Linux `syncfs`).
//! - A failed sync leaves the durability of everything written since the last successful sync
//!   unknown. Callers must treat it as fatal for that file (see the journal's and engine's docs).

pub mod sim;

use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file opened through an [`Fs`]. Positioned I/O only, so one handle can be shared.
pub trait File: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every earlier write and `set_len` of this file durable.
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's current length in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Fills `buf` from `offset`; bytes past the end of the file read as zeros.
    /// Returns how many bytes came from the file.
    fn read_exact_or_zero_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        buf[done..].fill(0);
        Ok(done)
    }

    /// Makes every earlier write of every file on this file's file system durable, if the
    /// implementation can do that in one call (Linux `syncfs`); `None` if it cannot.
    fn sync_filesystem(&self) -> Option<io::Result<()>> {
        None
    }

    /// True when the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// How [`Fs::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Open an existing file; `NotFound` if absent.
    Existing,
    /// Open the file, creating it empty if absent.
    Create,
}

/// A file system: the namespace operations plus [`File`] handles.
pub trait Fs: Send + Sync + 'static {
    /// Opens `path` for reading and writing.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>>;
    /// Removes a file. `NotFound` if absent.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// True if a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// Creates a directory and its parents (durable once the parents are synced with `sync_dir`).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The entries of a directory (full paths), sorted by name.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
    /// Makes the creations, removals and renames inside directory `path` durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Makes every earlier write of each file durable. The default syncs them one by one.
    fn sync_files(&self, files: &[Arc<dyn File>]) -> io::Result<()> {
        for file in files {
            file.sync_data()?;
        }
        Ok(())
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

struct OsFile(std::fs::File);

impl File for OsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.0.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn sync_filesystem(&self) -> Option<io::Result<()>> {
        Some(rustix::fs::syncfs(&self.0).map_err(io::Error::from))
    }
}

/// From this many files on, [`OsFs::sync_files`] syncs the whole file system in one call.
const SYNCFS_MIN_FILES: usize = 8;

impl Fs for OsFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(mode == OpenMode::Create)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(OsFile(file)))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut entries = std::fs::read_dir(path)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<io::Result<Vec<_>>>()?;
        entries.sort();
        Ok(entries)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }
    fn sync_files(&self, files: &[Arc<dyn File>]) -> io::Result<()> {
        // One syncfs costs about one fsync; a checkpoint of thousands of objects needs one.
        if files.len() >= SYNCFS_MIN_FILES
            && let Some(result) = files[0].sync_filesystem()
        {
            return result;
        }
        for file in files {
            file.sync_data()?;
        }
        Ok(())
    }
}

/// Raises this process's soft limit on open file descriptors to its hard limit (as Go and most
/// servers do at start-up: the soft limit is often 1,024 while the hard one is far higher) and
/// returns the limit now in force (`u64::MAX` when unlimited). Every open object database holds
/// one descriptor, so the node sizes its caps from this figure.
pub fn raise_open_file_limit() -> io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}
