//! A deterministic in-memory [`Fs`] that can lose power: the file layer of tests and the simulation.
//!
//! [`SimFs`] keeps, for every file, what reads see now (`current`), what would survive a power
//! loss now (`durable`), and the ordered list of writes and `set_len`s in between (issued since the
//! file's last successful `sync_data`). Directory changes (create, remove, rename, mkdir) are kept
//! the same way: applied to the visible namespace at once, and to the durable one only when
//! `sync_dir` of their parent directory returns `Ok` (a rename across directories needs both).
//!
//! Every random choice comes from one seeded generator, drawn in operation order, so a test that
//! drives the file system from one thread replays exactly from its seed.
//!
//! # What a crash does
//! - [`SimFs::crash`] (power loss): for each file, each unsynced write is independently kept or
//!   dropped; a kept write may be torn, landing only some of its 512-byte sectors (a sector is
//!   atomic: it lands whole or not at all); unsynced `set_len`s are kept or dropped too. Each
//!   unsynced directory operation is independently kept or reverted, replayed in order over the
//!   durable namespace (an operation whose source no longer exists is skipped). Files no longer
//!   named anywhere vanish.
//! - [`SimFs::kill`] (`kill -9`): the page cache survives, so nothing is lost; unsynced data stays
//!   unsynced (a later power loss can still drop it).
//! - [`SimFs::crash_with`] picks the mode, including [`CrashMode::DropUnsynced`], which loses
//!   everything not yet synced.
//!
//! After any crash every handle opened before it fails with "stale handle after crash", so code
//! from the old world cannot write into the new one, and all injected faults are cleared, cut
//! points included.
//!
//! # Cut points and faults
//! Mutating operations (write, `set_len`, `sync_data`, `sync_dir`, create, remove, rename, mkdir)
//! are counted ([`SimFs::ops`]). [`SimFs::crash_after_ops`]`(n)` lets the next `n` of them take
//! effect and fails the one after with an I/O error; from then on the file system is dead (every
//! call fails) until [`SimFs::crash`] or [`SimFs::kill`]. A test runs once to count operations,
//! then reruns with the same seed and cuts at any point (a run spanning several crashes re-arms
//! the cut after each, since a crash disarms it).
//!
//! [`SimFs::fail_nth_sync`] fails one chosen sync; [`SimFs::fail_writes_after`] fails every write
//! after a countdown; [`SimFs::set_fault_probability`] fails syncs and writes at random (seeded).
//! After a failed `sync_data` the file's unsynced writes are in an unknown state, as on Linux
//! (fsyncgate): each is independently made durable or lost for good, even though reads still see
//! it and a later sync succeeds. A failed write may have landed a prefix of its sectors.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{File, Fs, OpenMode};

/// The granularity at which a write can be torn by a power loss.
pub const SECTOR_BYTES: u64 = 512;

/// What happens to data that was written but not yet synced when the simulated machine stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Power loss: each unsynced write and directory operation is kept, dropped or (writes) torn
    /// at sector granularity, chosen by the seeded generator.
    PowerLoss,
    /// Power loss that drops everything not yet synced.
    DropUnsynced,
    /// Process crash (`kill -9`): the operating system keeps every write; only handles die.
    ProcessKill,
}

/// Counters of what the file system has been asked to do, for tests and reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Successful `write_all_at` calls.
    pub writes: u64,
    /// Bytes written by successful `write_all_at` calls.
    pub bytes_written: u64,
    /// Successful `sync_data` calls.
    pub file_syncs: u64,
    /// Successful `sync_dir` calls.
    pub dir_syncs: u64,
    /// Crashes and kills so far.
    pub crashes: u64,
}

/// A seeded, deterministic, in-memory file system with simulated power loss. Cheap to clone: all
/// clones share one file system.
#[derive(Clone)]
pub struct SimFs {
    world: Arc<Mutex<World>>,
}

impl std::fmt::Debug for SimFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let world = self.lock();
        f.debug_struct("SimFs")
            .field("ops", &world.ops)
            .field("epoch", &world.epoch)
            .field("files", &world.inodes.len())
            .finish()
    }
}

impl SimFs {
    /// An empty file system whose random choices all derive from `seed`.
    pub fn new(seed: u64) -> SimFs {
        SimFs {
            world: Arc::new(Mutex::new(World {
                rng: Rng(seed),
                epoch: 0,
                next_inode: 1,
                inodes: BTreeMap::new(),
                current: BTreeMap::new(),
                durable: BTreeMap::new(),
                pending_dir_ops: Vec::new(),
                ops: 0,
                cut_at: None,
                dead: false,
                faults: Faults::default(),
                stats: SimStats::default(),
            })),
        }
    }

    /// Simulated power loss; see the module docs. The file system then continues in its
    /// post-crash state, and every earlier handle is stale.
    pub fn crash(&self) {
        self.crash_with(CrashMode::PowerLoss);
    }

    /// The same as [`SimFs::crash`].
    pub fn power_loss(&self) {
        self.crash_with(CrashMode::PowerLoss);
    }

    /// Simulated `kill -9` of the process using the file system: no data is lost, handles die.
    pub fn kill(&self) {
        self.crash_with(CrashMode::ProcessKill);
    }

    /// Stops the simulated machine in the given way and restarts it.
    pub fn crash_with(&self, mode: CrashMode) {
        self.lock().crash(mode);
    }

    /// The number of mutating operations performed so far (never reset, crashes included).
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Lets the next `n` mutating operations take effect and fails every later call until the
    /// next crash or kill. Any crash or kill disarms a cut not yet reached.
    pub fn crash_after_ops(&self, n: u64) {
        let mut world = self.lock();
        world.cut_at = Some(world.ops.saturating_add(n));
    }

    /// True after a cut point was reached and before the next crash or kill.
    pub fn is_dead(&self) -> bool {
        self.lock().dead
    }

    /// Fails the `n`-th following sync (`sync_data` or `sync_dir`; `n = 1` is the next one).
    pub fn fail_nth_sync(&self, n: u64) {
        self.lock().faults.sync_countdown = Some(n.max(1));
    }

    /// Lets `n` more writes succeed, then fails every write until the next crash or
    /// [`SimFs::clear_faults`].
    pub fn fail_writes_after(&self, n: u64) {
        self.lock().faults.writes_before_failure = Some(n);
    }

    /// Fails each sync with probability `sync` and each write with probability `write`, drawn
    /// from the seeded generator.
    pub fn set_fault_probability(&self, sync: f64, write: f64) {
        let mut world = self.lock();
        world.faults.sync_probability = sync.clamp(0.0, 1.0);
        world.faults.write_probability = write.clamp(0.0, 1.0);
    }

    /// Removes every injected fault (cut points stay).
    pub fn clear_faults(&self) {
        self.lock().faults = Faults::default();
    }

    /// Counters of operations so far.
    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    /// What a read of the whole file at `path` would return now, or `None` if there is none.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let world = self.lock();
        match world.current.get(path) {
            Some(Node::File(inode)) => Some(world.inodes[inode].current.clone()),
            _ => None,
        }
    }

    /// What the file at `path` would hold after a power loss that drops everything unsynced, or
    /// `None` if the file itself would not survive it.
    pub fn durable_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let world = self.lock();
        match world.durable.get(path) {
            Some(Node::File(inode)) => Some(world.inodes[inode].durable.clone()),
            _ => None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves a consistent world (every change is applied
        // before it returns), so later calls may go on.
        self.world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Fs for SimFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn File>> {
        let mut world = self.lock();
        world.check_alive()?;
        let inode = match world.current.get(path) {
            Some(Node::File(inode)) => *inode,
            Some(Node::Dir) => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("{} is a directory", path.display()),
                ));
            }
            None if mode == OpenMode::Existing => return Err(not_found(path)),
            None => {
                world.require_dir(parent(path))?;
                world.begin_mutation()?;
                let inode = world.next_inode;
                world.next_inode += 1;
                world.inodes.insert(inode, Inode::default());
                world.current.insert(path.to_path_buf(), Node::File(inode));
                world.push_dir_op(DirOp::Create {
                    path: path.to_path_buf(),
                    node: Node::File(inode),
                });
                inode
            }
        };
        Ok(Arc::new(SimFile {
            world: Arc::clone(&self.world),
            inode,
            epoch: world.epoch,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut world = self.lock();
        world.check_alive()?;
        let node = match world.current.get(path) {
            Some(node @ Node::File(_)) => *node,
            Some(Node::Dir) => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("{} is a directory", path.display()),
                ));
            }
            None => return Err(not_found(path)),
        };
        world.begin_mutation()?;
        world.current.remove(path);
        world.push_dir_op(DirOp::Remove {
            path: path.to_path_buf(),
            node,
        });
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut world = self.lock();
        world.check_alive()?;
        let node = match world.current.get(from) {
            Some(node @ Node::File(_)) => *node,
            Some(Node::Dir) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "SimFs renames files only",
                ));
            }
            None => return Err(not_found(from)),
        };
        if let Some(Node::Dir) = world.current.get(to) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", to.display()),
            ));
        }
        world.require_dir(parent(to))?;
        world.begin_mutation()?;
        if from == to {
            return Ok(());
        }
        world.current.remove(from);
        world.current.insert(to.to_path_buf(), node);
        world.push_dir_op(DirOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            node,
        });
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        is_root(path) || self.lock().current.contains_key(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut world = self.lock();
        world.check_alive()?;
        let mut missing = Vec::new();
        let mut cursor = Some(path);
        while let Some(dir) = cursor.filter(|dir| !is_root(dir)) {
            match world.current.get(dir) {
                Some(Node::Dir) => break,
                Some(Node::File(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("{} is a file", dir.display()),
                    ));
                }
                None => missing.push(dir.to_path_buf()),
            }
            cursor = dir.parent();
        }
        if missing.is_empty() {
            return Ok(());
        }
        world.begin_mutation()?;
        for dir in missing.into_iter().rev() {
            world.current.insert(dir.clone(), Node::Dir);
            world.push_dir_op(DirOp::Create {
                path: dir,
                node: Node::Dir,
            });
        }
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let world = self.lock();
        world.check_alive()?;
        world.require_dir(path)?;
        Ok(world
            .current
            .keys()
            .filter(|entry| parent(entry) == path || (is_root(path) && is_root(parent(entry))))
            .cloned()
            .collect())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut world = self.lock();
        world.check_alive()?;
        world.require_dir(path)?;
        world.begin_mutation()?;
        if world.injected_sync_failure() {
            // Each change awaiting this directory is now durable or lost, unknowably.
            let ops = world.take_dir_ops_awaiting(path);
            for op in ops {
                if world.rng.chance(0.5) {
                    apply_dir_op(&mut world.durable, &op);
                }
            }
            return Err(injected("sync_dir failure"));
        }
        let ops = world.take_dir_ops_awaiting(path);
        for op in &ops {
            apply_dir_op(&mut world.durable, op);
        }
        world.stats.dir_syncs += 1;
        Ok(())
    }
}

/// A handle to a [`SimFs`] file; it dies with the world it was opened in.
struct SimFile {
    world: Arc<Mutex<World>>,
    inode: u64,
    epoch: u64,
}

impl SimFile {
    fn lock(&self) -> io::Result<MutexGuard<'_, World>> {
        let world = self.world.lock().unwrap_or_else(|p| p.into_inner());
        if world.epoch != self.epoch {
            return Err(io::Error::other("stale handle after crash"));
        }
        world.check_alive()?;
        Ok(world)
    }
}

impl File for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let world = self.lock()?;
        let data = &world.inodes[&self.inode].current;
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        if start >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut world = self.lock()?;
        world.begin_mutation()?;
        if world.injected_write_failure() {
            // A failed write may still have landed some leading sectors.
            let sectors = sector_count(offset, buf.len());
            let landed = world.rng.below(sectors);
            let keep = sector_prefix_len(offset, buf.len(), landed);
            if keep > 0 {
                world.write(self.inode, offset, &buf[..keep]);
            }
            return Err(injected("write failure"));
        }
        world.write(self.inode, offset, buf);
        world.stats.writes += 1;
        world.stats.bytes_written += buf.len() as u64;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut world = self.lock()?;
        world.begin_mutation()?;
        let failed = world.injected_sync_failure();
        let World {
            inodes, rng, stats, ..
        } = &mut *world;
        let inode = inodes
            .get_mut(&self.inode)
            .expect("open handles keep their inode");
        let pending = std::mem::take(&mut inode.pending);
        if failed {
            for op in &pending {
                resolve_unsynced(rng, &mut inode.durable, op);
            }
            return Err(injected("sync_data failure"));
        }
        for op in &pending {
            op.apply(&mut inode.durable);
        }
        stats.file_syncs += 1;
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut world = self.lock()?;
        world.begin_mutation()?;
        let size = to_usize(len)?;
        let inode = world
            .inodes
            .get_mut(&self.inode)
            .expect("open handles keep their inode");
        inode.current.resize(size, 0);
        inode.pending.push(Pending::SetLen(size));
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let world = self.lock()?;
        Ok(world.inodes[&self.inode].current.len() as u64)
    }
}

/// The whole simulated machine: namespace, file contents, fault plan and random source.
struct World {
    rng: Rng,
    /// Incremented by every crash and kill; handles from an older epoch are stale.
    epoch: u64,
    next_inode: u64,
    inodes: BTreeMap<u64, Inode>,
    /// The namespace that lookups see.
    current: BTreeMap<PathBuf, Node>,
    /// The namespace a power loss would fall back to before replaying unsynced operations.
    durable: BTreeMap<PathBuf, Node>,
    /// Directory operations not yet made durable, oldest first.
    pending_dir_ops: Vec<PendingDirOp>,
    ops: u64,
    cut_at: Option<u64>,
    dead: bool,
    faults: Faults,
    stats: SimStats,
}

#[derive(Default)]
struct Faults {
    sync_countdown: Option<u64>,
    writes_before_failure: Option<u64>,
    sync_probability: f64,
    write_probability: f64,
}

#[derive(Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Writes and length changes since the last successful `sync_data`, oldest first.
    pending: Vec<Pending>,
}

enum Pending {
    Write { offset: usize, data: Vec<u8> },
    SetLen(usize),
}

impl Pending {
    fn apply(&self, target: &mut Vec<u8>) {
        match self {
            Pending::Write { offset, data } => write_into(target, *offset, data),
            Pending::SetLen(len) => target.resize(*len, 0),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Node {
    Dir,
    File(u64),
}

#[derive(Debug)]
enum DirOp {
    Create {
        path: PathBuf,
        node: Node,
    },
    Remove {
        path: PathBuf,
        node: Node,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
        node: Node,
    },
}

struct PendingDirOp {
    op: DirOp,
    /// Directories that must still be synced before the operation is durable.
    awaiting: Vec<PathBuf>,
}

impl World {
    fn check_alive(&self) -> io::Result<()> {
        if self.dead {
            return Err(io::Error::other(
                "simulated machine is down (cut point reached; call crash or kill)",
            ));
        }
        Ok(())
    }

    /// Counts a mutating operation, or kills the machine at the cut point.
    fn begin_mutation(&mut self) -> io::Result<()> {
        self.check_alive()?;
        if self.cut_at.is_some_and(|cut| self.ops >= cut) {
            self.dead = true;
            return Err(io::Error::other("simulated power cut"));
        }
        self.ops += 1;
        Ok(())
    }

    fn injected_sync_failure(&mut self) -> bool {
        if let Some(countdown) = self.faults.sync_countdown.as_mut() {
            *countdown -= 1;
            if *countdown == 0 {
                self.faults.sync_countdown = None;
                return true;
            }
        }
        let probability = self.faults.sync_probability;
        probability > 0.0 && self.rng.chance(probability)
    }

    fn injected_write_failure(&mut self) -> bool {
        if let Some(left) = self.faults.writes_before_failure.as_mut() {
            if *left == 0 {
                return true;
            }
            *left -= 1;
        }
        let probability = self.faults.write_probability;
        probability > 0.0 && self.rng.chance(probability)
    }

    fn require_dir(&self, path: &Path) -> io::Result<()> {
        match self.current.get(path) {
            _ if is_root(path) => Ok(()),
            Some(Node::Dir) => Ok(()),
            Some(Node::File(_)) => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is a file", path.display()),
            )),
            None => Err(not_found(path)),
        }
    }

    fn write(&mut self, inode: u64, offset: u64, data: &[u8]) {
        let Ok(offset) = usize::try_from(offset) else {
            return;
        };
        let inode = self
            .inodes
            .get_mut(&inode)
            .expect("open handles keep their inode");
        write_into(&mut inode.current, offset, data);
        inode.pending.push(Pending::Write {
            offset,
            data: data.to_vec(),
        });
    }

    fn push_dir_op(&mut self, op: DirOp) {
        let mut awaiting = match &op {
            DirOp::Create { path, .. } | DirOp::Remove { path, .. } => {
                vec![parent(path).to_path_buf()]
            }
            DirOp::Rename { from, to, .. } => {
                vec![parent(from).to_path_buf(), parent(to).to_path_buf()]
            }
        };
        awaiting.dedup();
        self.pending_dir_ops.push(PendingDirOp { op, awaiting });
    }

    /// Removes `dir` from what each pending operation awaits; returns, in order, the operations
    /// that await nothing more.
    fn take_dir_ops_awaiting(&mut self, dir: &Path) -> Vec<DirOp> {
        let mut ready = Vec::new();
        let mut still_pending = Vec::with_capacity(self.pending_dir_ops.len());
        for mut pending in std::mem::take(&mut self.pending_dir_ops) {
            pending.awaiting.retain(|awaited| !same_dir(awaited, dir));
            if pending.awaiting.is_empty() {
                ready.push(pending.op);
            } else {
                still_pending.push(pending);
            }
        }
        self.pending_dir_ops = still_pending;
        ready
    }

    fn crash(&mut self, mode: CrashMode) {
        self.epoch += 1;
        // A cut that was never reached is an injected fault too, and every fault ends here.
        self.cut_at = None;
        self.dead = false;
        self.faults = Faults::default();
        self.stats.crashes += 1;
        if mode == CrashMode::ProcessKill {
            return;
        }
        let power_loss = mode == CrashMode::PowerLoss;

        let mut namespace = std::mem::take(&mut self.durable);
        for pending in std::mem::take(&mut self.pending_dir_ops) {
            if power_loss && self.rng.chance(0.5) {
                apply_dir_op(&mut namespace, &pending.op);
            }
        }
        // Entries whose directory did not survive are gone with it.
        let orphans: Vec<PathBuf> = namespace
            .keys()
            .filter(|path| !has_ancestors(&namespace, path))
            .cloned()
            .collect();
        for orphan in orphans {
            namespace.remove(&orphan);
        }

        let live: std::collections::BTreeSet<u64> = namespace
            .values()
            .filter_map(|node| match node {
                Node::File(inode) => Some(*inode),
                Node::Dir => None,
            })
            .collect();
        self.inodes.retain(|id, _| live.contains(id));
        for inode in self.inodes.values_mut() {
            for op in std::mem::take(&mut inode.pending) {
                if power_loss {
                    resolve_unsynced(&mut self.rng, &mut inode.durable, &op);
                }
            }
            inode.current = inode.durable.clone();
        }
        self.current = namespace.clone();
        self.durable = namespace;
    }
}

/// Decides the fate of one unsynced operation at a power loss: dropped, kept, or (a write) torn
/// at sector granularity.
fn resolve_unsynced(rng: &mut Rng, durable: &mut Vec<u8>, op: &Pending) {
    if !rng.chance(0.5) {
        return;
    }
    match op {
        Pending::Write { offset, data } if rng.chance(0.25) => {
            let sector = SECTOR_BYTES as usize;
            let end = offset + data.len();
            let mut start = *offset;
            while start < end {
                let sector_end = ((start / sector) + 1) * sector;
                let piece_end = sector_end.min(end);
                if rng.chance(0.5) {
                    write_into(durable, start, &data[start - offset..piece_end - offset]);
                }
                start = piece_end;
            }
        }
        _ => op.apply(durable),
    }
}

/// Applies a directory operation to a namespace, skipping it if it no longer makes sense there
/// (its source is gone, or its target name is taken by a create).
///
/// A synced entry is durable inside its directory even while the directory itself is not yet
/// durable in its parent (POSIX: fsync of a directory persists its entries). If the directory
/// never becomes durable, the crash's orphan pruning removes the entry with it. That holds for
/// a create and for a rename's target alike.
fn apply_dir_op(namespace: &mut BTreeMap<PathBuf, Node>, op: &DirOp) {
    match op {
        DirOp::Create { path, node } => {
            if !namespace.contains_key(path) {
                namespace.insert(path.clone(), *node);
            }
        }
        DirOp::Remove { path, node } => {
            if namespace.get(path) == Some(node) {
                namespace.remove(path);
            }
        }
        DirOp::Rename { from, to, node } => {
            if namespace.get(from) == Some(node) {
                namespace.remove(from);
                namespace.insert(to.clone(), *node);
            }
        }
    }
}

fn has_ancestors(namespace: &BTreeMap<PathBuf, Node>, path: &Path) -> bool {
    let mut dir = parent(path);
    while !is_root(dir) {
        if namespace.get(dir) != Some(&Node::Dir) {
            return false;
        }
        dir = parent(dir);
    }
    true
}

fn write_into(target: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let end = offset + data.len();
    if target.len() < end {
        target.resize(end, 0);
    }
    target[offset..end].copy_from_slice(data);
}

/// How many sectors a write of `len` bytes at `offset` touches.
fn sector_count(offset: u64, len: usize) -> u64 {
    if len == 0 {
        return 0;
    }
    let end = offset + len as u64;
    (end - 1) / SECTOR_BYTES - offset / SECTOR_BYTES + 1
}

/// The number of bytes of a write at `offset` that lie in its first `sectors` sectors.
fn sector_prefix_len(offset: u64, len: usize, sectors: u64) -> usize {
    if sectors == 0 {
        return 0;
    }
    let boundary = (offset / SECTOR_BYTES + sectors) * SECTOR_BYTES;
    (boundary - offset).min(len as u64) as usize
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

fn is_root(path: &Path) -> bool {
    path.as_os_str().is_empty() || path == Path::new("/") || path == Path::new(".")
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || (is_root(a) && is_root(b))
}

fn to_usize(len: u64) -> io::Result<usize> {
    usize::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("simulated I/O error: injected {what}"))
}

/// SplitMix64: tiny, fast and good enough to drive fault choices; the crate needs no `rand`.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with the given probability.
    fn chance(&mut self, probability: f64) -> bool {
        // 53 random bits give a uniform float in [0, 1).
        ((self.next_u64() >> 11) as f64) / ((1u64 << 53) as f64) < probability
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sector_arithmetic() {
        assert_eq!(sector_count(0, 512), 1);
        assert_eq!(sector_count(0, 513), 2);
        assert_eq!(sector_count(511, 2), 2);
        assert_eq!(sector_count(100, 0), 0);
        assert_eq!(sector_prefix_len(100, 1000, 1), 412);
        assert_eq!(sector_prefix_len(100, 1000, 2), 924);
        assert_eq!(sector_prefix_len(100, 1000, 3), 1000);
    }

    #[test]
    fn read_dir_lists_children_in_name_order() {
        let fs = SimFs::new(1);
        fs.create_dir_all(Path::new("/d/sub")).unwrap();
        fs.open(Path::new("/d/b"), OpenMode::Create).unwrap();
        fs.open(Path::new("/d/a"), OpenMode::Create).unwrap();
        let entries = fs.read_dir(Path::new("/d")).unwrap();
        assert_eq!(
            entries,
            vec![
                PathBuf::from("/d/a"),
                PathBuf::from("/d/b"),
                PathBuf::from("/d/sub")
            ]
        );
        assert_eq!(
            fs.read_dir(Path::new("/")).unwrap(),
            vec![PathBuf::from("/d")]
        );
    }
}
