//! Crash recovery: replays every retained journal record into the object files, then syncs them.
//!
//! Replay is idempotent from any earlier point (see [`crate::vfs`]), so recovery needs no
//! per-object checkpoint position: it applies every record in the journal in order.

use super::{Error, record};
use crate::fs::{File, Fs, OpenMode};
use crate::journal::Journal;
use crate::vfs;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Most files recovery keeps open at once; older ones are synced and closed.
const MAX_OPEN_FILES: usize = 512;

/// Statistics of one recovery.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecoveryStats {
    /// Records replayed.
    pub records: u64,
    /// Payload bytes replayed.
    pub bytes: u64,
    /// How long replay and the final syncs took.
    pub elapsed: std::time::Duration,
}

pub(super) fn replay(fs: &dyn Fs, root: &Path, journal: &Journal) -> Result<RecoveryStats, Error> {
    let start = Instant::now();
    let mut stats = RecoveryStats::default();
    let mut open: HashMap<String, Arc<dyn File>> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut new_dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for item in journal.read_from(journal.first_lsn())? {
        let (lsn, payload) = item?;
        stats.records += 1;
        stats.bytes += payload.len() as u64;
        let entries =
            record::decode(&payload).map_err(|source| Error::CorruptRecord { lsn, source })?;
        for entry in entries {
            let path = root.join(entry.path());
            match entry {
                record::Entry::Commit { path: rel, capture } => {
                    let capture = vfs::Capture::decode(capture).map_err(|e| {
                        Error::Io(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            e.to_string(),
                        ))
                    })?;
                    if !open.contains_key(rel) {
                        if open.len() >= MAX_OPEN_FILES {
                            let oldest = order.remove(0);
                            if let Some(file) = open.remove(&oldest) {
                                file.sync_data()?;
                            }
                        }
                        if !fs.exists(&path) {
                            let dir = path.parent().unwrap_or(root);
                            fs.create_dir_all(dir)?;
                            new_dirs.insert(dir.to_path_buf());
                        }
                        open.insert(rel.to_string(), fs.open(&path, OpenMode::Create)?);
                        order.push(rel.to_string());
                    }
                    capture.apply(open[rel].as_ref())?;
                }
                record::Entry::Delete { path: rel } => {
                    if open.remove(rel).is_some() {
                        order.retain(|p| p != rel);
                    }
                    if fs.exists(&path) {
                        fs.remove_file(&path)?;
                        new_dirs.insert(path.parent().unwrap_or(root).to_path_buf());
                    }
                }
            }
        }
    }
    let files: Vec<Arc<dyn File>> = open.into_values().collect();
    fs.sync_files(&files)?;
    for dir in &new_dirs {
        super::sync_dir_chain(fs, root, dir)?;
    }
    // Every record is now in its file, durably: the journal may forget them all.
    journal.release_before(journal.durable_lsn(), &mut |_segment| Ok(()))?;
    stats.elapsed = start.elapsed();
    if stats.records > 0 {
        tracing::info!(
            records = stats.records,
            bytes = stats.bytes,
            elapsed_ms = stats.elapsed.as_millis() as u64,
            "recovered from the journal"
        );
    }
    Ok(stats)
}
