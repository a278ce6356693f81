//! The C side of the VFS: the `sqlite3_vfs` and `sqlite3_io_methods` callbacks SQLite calls.
//!
//! Every callback catches panics and turns them into an `SQLITE_IOERR*` code: unwinding into C
//! is undefined behaviour (Rust aborts instead). The callbacks only translate between C and the
//! safe code in [`super::overlay`] and [`super`].

use std::ffi::{CStr, OsStr, c_char, c_int, c_void};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::Arc;

use rusqlite::ffi;

use super::{MainFile, Shared};

/// The longest path SQLite may hand us, in bytes (SQLite sizes its buffers from this).
const MAX_PATHNAME: c_int = 1024;

/// The sector size reported to SQLite. With `SQLITE_IOCAP_POWERSAFE_OVERWRITE` it only pads
/// rollback-journal headers, which live in memory here.
const SECTOR_SIZE: c_int = 4096;

/// Every file this VFS hands SQLite has these properties:
/// - `POWERSAFE_OVERWRITE`: a write never changes bytes outside its range, even across a power
///   loss, because nothing SQLite writes reaches the disk before an engine checkpoint (which
///   the redo journal protects). Lets SQLite skip sector-sized padding.
/// - `SAFE_APPEND`: for the same reason, a crash never leaves garbage after an append.
/// - `SUBPAGE_READ`: reads of any size and offset are served exactly (overlay and file are
///   merged at byte granularity), so SQLite may read part of an overflow page.
///
/// Not claimed: `ATOMIC*` and `BATCH_ATOMIC` (SQLite would skip its rollback journal, which it
/// still needs for in-process rollback) and `SEQUENTIAL` (meaningless with `synchronous=OFF`).
const DEVICE_CHARACTERISTICS: c_int = ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE
    | ffi::SQLITE_IOCAP_SAFE_APPEND
    | ffi::SQLITE_IOCAP_SUBPAGE_READ;

/// The `sqlite3_file` SQLite allocates (`szOsFile` bytes) and we fill in `xOpen`.
#[repr(C)]
struct RawFile {
    base: ffi::sqlite3_file,
    handle: *mut Handle,
}

/// Our state for one open file, owned by its [`RawFile`] from `xOpen` to `xClose`.
struct Handle {
    kind: Kind,
    /// The lock level SQLite asked for; locks are otherwise no-ops (one connection per file).
    lock: c_int,
}

enum Kind {
    /// A main database file, with its overlay. Holding `Shared` keeps the VFS registered while
    /// SQLite has files open.
    Main { shared: Arc<Shared>, main: MainFile },
    /// Everything else (journals, temp files, transient databases): bytes in memory only.
    Memory(Vec<u8>),
}

/// The io_methods of every file. Version 1: no shared memory (so no WAL) and no mmap.
static IO_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// The `sqlite3_vfs` for one [`super::Vfs`]. `name` and `shared` must outlive its registration.
pub(super) fn new_vfs(name: *const c_char, shared: *const Shared) -> ffi::sqlite3_vfs {
    ffi::sqlite3_vfs {
        iVersion: 2,
        szOsFile: std::mem::size_of::<RawFile>() as c_int,
        mxPathname: MAX_PATHNAME,
        pNext: ptr::null_mut(),
        zName: name,
        pAppData: shared.cast_mut().cast(),
        xOpen: Some(x_open),
        xDelete: Some(x_delete),
        xAccess: Some(x_access),
        xFullPathname: Some(x_full_pathname),
        xDlOpen: Some(x_dl_open),
        xDlError: Some(x_dl_error),
        xDlSym: Some(x_dl_sym),
        xDlClose: Some(x_dl_close),
        xRandomness: Some(x_randomness),
        xSleep: Some(x_sleep),
        xCurrentTime: Some(x_current_time),
        xGetLastError: Some(x_get_last_error),
        xCurrentTimeInt64: Some(x_current_time_int64),
        xSetSystemCall: None,
        xGetSystemCall: None,
        xNextSystemCall: None,
    }
}

/// Runs a callback body, turning a panic into `on_panic`.
fn guard(on_panic: c_int, body: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        tracing::error!("panic in a SQLite VFS callback");
        on_panic
    })
}

/// Logs an I/O error and returns `code`.
fn io_error(code: c_int, what: &str, path: &Path, error: &io::Error) -> c_int {
    tracing::warn!(path = %path.display(), %error, "VFS {what} failed");
    code
}

/// The [`Shared`] behind a `sqlite3_vfs` of ours.
///
/// # Safety
/// `vfs` must be a pointer SQLite passed to one of our VFS callbacks.
unsafe fn shared<'a>(vfs: *mut ffi::sqlite3_vfs) -> &'a Shared {
    // SAFETY: our sqlite3_vfs structs live inside their Shared and point pAppData at it; SQLite
    // only calls us while the VFS is registered, and Shared unregisters before it is freed.
    unsafe { &*(*vfs).pAppData.cast::<Shared>() }
}

/// The path SQLite passed, as bytes without the NUL.
///
/// # Safety
/// `name` must be null or a NUL-terminated string valid for the duration of the call.
unsafe fn path_of(name: *const c_char) -> Option<PathBuf> {
    if name.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per this function's contract.
    let bytes = unsafe { CStr::from_ptr(name) }.to_bytes();
    Some(PathBuf::from(OsStr::from_bytes(bytes)))
}

/// True for the names of files SQLite would keep beside a database: rollback journals, WAL and
/// shared-memory files. None of them ever exists here.
fn is_journal_name(path: &Path) -> bool {
    let bytes = path.as_os_str().as_bytes();
    bytes.ends_with(b"-journal") || bytes.ends_with(b"-wal") || bytes.ends_with(b"-shm")
}

/// The handle of an open file.
///
/// # Safety
/// `file` must be a file SQLite passed to one of our io_methods, so `xOpen` succeeded on it and
/// `xClose` has not run; SQLite calls a file's methods from one thread at a time.
unsafe fn handle<'a>(file: *mut ffi::sqlite3_file) -> &'a mut Handle {
    // SAFETY: xOpen stored a live Box<Handle> before setting pMethods, and only xClose frees
    // it; SQLite serializes calls on one file, so no other reference to the handle exists.
    unsafe { &mut *(*file.cast::<RawFile>()).handle }
}

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let raw = file.cast::<RawFile>();
    // SAFETY: SQLite passes `file` pointing at szOsFile (= size_of::<RawFile>) writable bytes.
    // A null pMethods tells SQLite not to call xClose if we fail.
    unsafe {
        ptr::addr_of_mut!((*raw).base.pMethods).write(ptr::null());
        ptr::addr_of_mut!((*raw).handle).write(ptr::null_mut());
    }
    guard(ffi::SQLITE_CANTOPEN, || {
        // SAFETY: SQLite called xOpen on our vfs.
        let shared = unsafe { shared(vfs) };
        // SAFETY: SQLite passes null or a NUL-terminated file name valid during xOpen.
        let path = unsafe { path_of(name) };
        let kind = if flags & ffi::SQLITE_OPEN_WAL != 0 {
            // WAL mode would bypass the overlay's capture; the engine never enables it.
            tracing::warn!(?path, "refusing to open a WAL file through the Burrow VFS");
            return ffi::SQLITE_CANTOPEN;
        } else if let (true, Some(path)) = (flags & ffi::SQLITE_OPEN_MAIN_DB != 0, path) {
            // `arc` fails only while the last Vfs handle is being dropped.
            let Some(owner) = shared.arc() else {
                return ffi::SQLITE_CANTOPEN;
            };
            match shared.open_main(&path, flags & ffi::SQLITE_OPEN_CREATE != 0) {
                Ok(main) => Kind::Main {
                    shared: owner,
                    main,
                },
                Err(code) => return code,
            }
        } else {
            // Journals, temp files, and anonymous databases (SQLite passes no name for those).
            Kind::Memory(Vec::new())
        };
        let handle = Box::into_raw(Box::new(Handle { kind, lock: 0 }));
        // SAFETY: as above, `raw` points at a RawFile-sized allocation owned by SQLite; the
        // handle is freed in xClose, which SQLite calls exactly once after a successful xOpen.
        unsafe {
            ptr::addr_of_mut!((*raw).handle).write(handle);
            ptr::addr_of_mut!((*raw).base.pMethods).write(&IO_METHODS);
        }
        if !out_flags.is_null() {
            // SAFETY: SQLite passes null or a valid int to write the flags into.
            unsafe { out_flags.write(flags) };
        }
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    guard(ffi::SQLITE_IOERR_CLOSE, || {
        let raw = file.cast::<RawFile>();
        // SAFETY: xClose is called once per successful xOpen, which stored a Box<Handle>.
        // Taking it back and nulling the pointer frees it exactly once.
        let handle = unsafe {
            let handle = Box::from_raw((*raw).handle);
            ptr::addr_of_mut!((*raw).handle).write(ptr::null_mut());
            handle
        };
        if let Kind::Main { shared, main } = handle.kind {
            shared.close_main(&main);
        }
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    guard(ffi::SQLITE_IOERR_READ, || {
        // SAFETY: SQLite calls io_methods only on files we opened.
        let handle = unsafe { handle(file) };
        let (Ok(len), Ok(offset)) = (usize::try_from(amount), u64::try_from(offset)) else {
            return ffi::SQLITE_IOERR_READ;
        };
        // SAFETY: SQLite passes a buffer of `amount` writable bytes.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
        let complete = match &mut handle.kind {
            Kind::Main { main, .. } => match main.with_state(|state| state.read(buf, offset)) {
                Ok(Ok(complete)) => complete,
                Ok(Err(error)) => {
                    return io_error(ffi::SQLITE_IOERR_READ, "read", main.path(), &error);
                }
                Err(_) => return ffi::SQLITE_IOERR_READ,
            },
            Kind::Memory(data) => {
                let start = (offset as usize).min(data.len());
                let n = (data.len() - start).min(len);
                buf[..n].copy_from_slice(&data[start..start + n]);
                buf[n..].fill(0);
                n == len
            }
        };
        if complete {
            ffi::SQLITE_OK
        } else {
            ffi::SQLITE_IOERR_SHORT_READ
        }
    })
}

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    guard(ffi::SQLITE_IOERR_WRITE, || {
        // SAFETY: SQLite calls io_methods only on files we opened.
        let handle = unsafe { handle(file) };
        let (Ok(len), Ok(offset)) = (usize::try_from(amount), u64::try_from(offset)) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        // SAFETY: SQLite passes a buffer of `amount` readable bytes.
        let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
        match &mut handle.kind {
            Kind::Main { main, .. } => match main.with_state(|state| state.write(data, offset)) {
                Ok(Ok(())) => ffi::SQLITE_OK,
                Ok(Err(error)) => io_error(ffi::SQLITE_IOERR_WRITE, "write", main.path(), &error),
                Err(_) => ffi::SQLITE_IOERR_WRITE,
            },
            Kind::Memory(bytes) => {
                let Some(end) = usize::try_from(offset)
                    .ok()
                    .and_then(|o| o.checked_add(len))
                else {
                    return ffi::SQLITE_IOERR_WRITE;
                };
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[end - len..end].copy_from_slice(data);
                ffi::SQLITE_OK
            }
        }
    })
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    guard(ffi::SQLITE_IOERR_TRUNCATE, || {
        // SAFETY: SQLite calls io_methods only on files we opened.
        let handle = unsafe { handle(file) };
        let Ok(size) = u64::try_from(size) else {
            return ffi::SQLITE_IOERR_TRUNCATE;
        };
        match &mut handle.kind {
            Kind::Main { main, .. } => match main.with_state(|state| state.truncate(size)) {
                Ok(Ok(())) => ffi::SQLITE_OK,
                Ok(Err(error)) => {
                    io_error(ffi::SQLITE_IOERR_TRUNCATE, "truncate", main.path(), &error)
                }
                Err(_) => ffi::SQLITE_IOERR_TRUNCATE,
            },
            Kind::Memory(bytes) => {
                let Ok(size) = usize::try_from(size) else {
                    return ffi::SQLITE_IOERR_TRUNCATE;
                };
                bytes.resize(size, 0);
                ffi::SQLITE_OK
            }
        }
    })
}

unsafe extern "C" fn x_sync(_file: *mut ffi::sqlite3_file, _flags: c_int) -> c_int {
    // Durability comes from the redo journal; main files are synced by engine checkpoints.
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_size(
    file: *mut ffi::sqlite3_file,
    size_out: *mut ffi::sqlite3_int64,
) -> c_int {
    guard(ffi::SQLITE_IOERR_FSTAT, || {
        // SAFETY: SQLite calls io_methods only on files we opened.
        let handle = unsafe { handle(file) };
        let size = match &handle.kind {
            Kind::Main { main, .. } => match main.with_state(|state| state.size()) {
                Ok(size) => size,
                Err(_) => return ffi::SQLITE_IOERR_FSTAT,
            },
            Kind::Memory(bytes) => bytes.len() as u64,
        };
        let Ok(size) = ffi::sqlite3_int64::try_from(size) else {
            return ffi::SQLITE_IOERR_FSTAT;
        };
        // SAFETY: SQLite passes a valid pointer to write the size into.
        unsafe { size_out.write(size) };
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    guard(ffi::SQLITE_IOERR_LOCK, || {
        // SAFETY: SQLite calls io_methods only on files we opened.
        let handle = unsafe { handle(file) };
        handle.lock = handle.lock.max(level);
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    guard(ffi::SQLITE_IOERR_UNLOCK, || {
        // SAFETY: SQLite calls io_methods only on files we opened.
        let handle = unsafe { handle(file) };
        handle.lock = handle.lock.min(level);
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_check_reserved_lock(
    file: *mut ffi::sqlite3_file,
    result_out: *mut c_int,
) -> c_int {
    guard(ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, || {
        // SAFETY: SQLite calls io_methods only on files we opened.
        let handle = unsafe { handle(file) };
        // Only this connection can hold a lock on the file (the engine opens one per file).
        let reserved = c_int::from(handle.lock >= ffi::SQLITE_LOCK_RESERVED);
        // SAFETY: SQLite passes a valid pointer for the result.
        unsafe { result_out.write(reserved) };
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    guard(ffi::SQLITE_IOERR, || {
        // SAFETY: SQLite calls io_methods only on files we opened.
        let handle = unsafe { handle(file) };
        match (&handle.kind, op) {
            (Kind::Main { main, .. }, ffi::SQLITE_FCNTL_COMMIT_PHASETWO) => {
                match main.with_state(|state| state.committed()) {
                    Ok(()) => ffi::SQLITE_OK,
                    Err(_) => ffi::SQLITE_IOERR,
                }
            }
            // SAFETY: for SQLITE_FCNTL_PRAGMA, SQLite passes its char*[3] pragma array.
            (Kind::Main { .. }, ffi::SQLITE_FCNTL_PRAGMA) => unsafe { pragma(arg.cast()) },
            _ => ffi::SQLITE_NOTFOUND,
        }
    })
}

/// Refuses `PRAGMA journal_mode=WAL` with a clear message; every other pragma proceeds. In
/// exclusive locking mode SQLite thinks WAL works without shared memory, would switch the
/// file's format, and then fail to open the WAL file on every later transaction.
///
/// # Safety
/// `args` must be the `char*[3]` SQLite passes with `SQLITE_FCNTL_PRAGMA`: slot 0 for our
/// message, slots 1 and 2 the pragma's name and argument (NUL-terminated, or null).
unsafe fn pragma(args: *mut *mut c_char) -> c_int {
    // SAFETY: per this function's contract, slots 1 and 2 are readable.
    let (name, value) = unsafe { (*args.add(1), *args.add(2)) };
    if name.is_null() || value.is_null() {
        return ffi::SQLITE_NOTFOUND;
    }
    // SAFETY: non-null slots hold NUL-terminated strings valid during the call.
    let (name, value) = unsafe { (CStr::from_ptr(name), CStr::from_ptr(value)) };
    if !(name.to_bytes().eq_ignore_ascii_case(b"journal_mode")
        && value.to_bytes().eq_ignore_ascii_case(b"wal"))
    {
        return ffi::SQLITE_NOTFOUND;
    }
    let message: &[u8] = b"journal_mode=WAL is not supported: Burrow keeps object databases in \
        rollback mode and captures commits itself";
    // SAFETY: sqlite3_malloc64 returns null or `len + 1` writable bytes, which we fill with
    // the message and a NUL; SQLite frees the string it finds in slot 0 with sqlite3_free.
    unsafe {
        let out = ffi::sqlite3_malloc64(message.len() as u64 + 1).cast::<u8>();
        if !out.is_null() {
            ptr::copy_nonoverlapping(message.as_ptr(), out, message.len());
            out.add(message.len()).write(0);
            args.write(out.cast());
        }
    }
    ffi::SQLITE_ERROR
}

unsafe extern "C" fn x_sector_size(_file: *mut ffi::sqlite3_file) -> c_int {
    SECTOR_SIZE
}

unsafe extern "C" fn x_device_characteristics(_file: *mut ffi::sqlite3_file) -> c_int {
    DEVICE_CHARACTERISTICS
}

unsafe extern "C" fn x_delete(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    _sync_dir: c_int,
) -> c_int {
    guard(ffi::SQLITE_IOERR_DELETE, || {
        // SAFETY: SQLite called xDelete on our vfs.
        let shared = unsafe { shared(vfs) };
        // SAFETY: SQLite passes a NUL-terminated name valid during the call.
        let Some(path) = (unsafe { path_of(name) }) else {
            return ffi::SQLITE_IOERR_DELETE;
        };
        // Everything but main databases lives in memory and vanishes on close, so there is
        // nothing to delete. Main databases are removed by the engine through `Fs`, never by
        // SQLite.
        if shared.is_registered(&path) {
            tracing::warn!(path = %path.display(), "SQLite tried to delete an open database");
            return ffi::SQLITE_IOERR_DELETE;
        }
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_access(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    _flags: c_int,
    result_out: *mut c_int,
) -> c_int {
    guard(ffi::SQLITE_IOERR_ACCESS, || {
        // SAFETY: SQLite called xAccess on our vfs.
        let shared = unsafe { shared(vfs) };
        // SAFETY: SQLite passes a NUL-terminated name valid during the call.
        let Some(path) = (unsafe { path_of(name) }) else {
            return ffi::SQLITE_IOERR_ACCESS;
        };
        // Journals never exist, so SQLite never finds a hot journal to roll back.
        let exists =
            !is_journal_name(&path) && (shared.is_registered(&path) || shared.fs().exists(&path));
        // SAFETY: SQLite passes a valid pointer for the result.
        unsafe { result_out.write(c_int::from(exists)) };
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_full_pathname(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    out_len: c_int,
    out: *mut c_char,
) -> c_int {
    guard(ffi::SQLITE_CANTOPEN, || {
        // Paths are the Fs's own names: SQLite uses them as given.
        // SAFETY: SQLite passes a NUL-terminated name valid during the call.
        let bytes = unsafe { CStr::from_ptr(name) }.to_bytes_with_nul();
        if bytes.len() > usize::try_from(out_len).unwrap_or(0) {
            return ffi::SQLITE_CANTOPEN;
        }
        // SAFETY: `out` has `out_len` writable bytes, checked above to fit `bytes`; the
        // regions cannot overlap because SQLite allocates `out` fresh.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), out, bytes.len()) };
        ffi::SQLITE_OK
    })
}

// The remaining VFS methods (dynamic loading, randomness, sleep, time, last error) have nothing
// to do with files; they go to SQLite's default VFS, captured at registration.

/// The default VFS to delegate to.
///
/// # Safety
/// `vfs` must be a pointer SQLite passed to one of our VFS callbacks.
unsafe fn default_vfs(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    // SAFETY: per this function's contract.
    unsafe { shared(vfs) }.default_vfs()
}

unsafe extern "C" fn x_dl_open(vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> *mut c_void {
    // SAFETY: the default VFS is registered for the life of the process (SQLite never frees
    // the built-in VFSes), and we pass SQLite's own arguments through.
    unsafe {
        let default = default_vfs(vfs);
        match (*default).xDlOpen {
            Some(f) => f(default, name),
            None => ptr::null_mut(),
        }
    }
}

unsafe extern "C" fn x_dl_error(vfs: *mut ffi::sqlite3_vfs, len: c_int, out: *mut c_char) {
    // SAFETY: as in x_dl_open.
    unsafe {
        let default = default_vfs(vfs);
        if let Some(f) = (*default).xDlError {
            f(default, len, out);
        }
    }
}

unsafe extern "C" fn x_dl_sym(
    vfs: *mut ffi::sqlite3_vfs,
    library: *mut c_void,
    symbol: *const c_char,
) -> Option<unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char)> {
    // SAFETY: as in x_dl_open.
    unsafe {
        let default = default_vfs(vfs);
        (*default).xDlSym.and_then(|f| f(default, library, symbol))
    }
}

unsafe extern "C" fn x_dl_close(vfs: *mut ffi::sqlite3_vfs, library: *mut c_void) {
    // SAFETY: as in x_dl_open.
    unsafe {
        let default = default_vfs(vfs);
        if let Some(f) = (*default).xDlClose {
            f(default, library);
        }
    }
}

unsafe extern "C" fn x_randomness(
    vfs: *mut ffi::sqlite3_vfs,
    len: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: as in x_dl_open.
    unsafe {
        let default = default_vfs(vfs);
        match (*default).xRandomness {
            Some(f) => f(default, len, out),
            None => 0,
        }
    }
}

unsafe extern "C" fn x_sleep(vfs: *mut ffi::sqlite3_vfs, microseconds: c_int) -> c_int {
    // SAFETY: as in x_dl_open.
    unsafe {
        let default = default_vfs(vfs);
        match (*default).xSleep {
            Some(f) => f(default, microseconds),
            None => 0,
        }
    }
}

unsafe extern "C" fn x_current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    // SAFETY: as in x_dl_open.
    unsafe {
        let default = default_vfs(vfs);
        match (*default).xCurrentTime {
            Some(f) => f(default, out),
            None => ffi::SQLITE_ERROR,
        }
    }
}

unsafe extern "C" fn x_get_last_error(
    vfs: *mut ffi::sqlite3_vfs,
    len: c_int,
    out: *mut c_char,
) -> c_int {
    // SAFETY: as in x_dl_open.
    unsafe {
        let default = default_vfs(vfs);
        match (*default).xGetLastError {
            Some(f) => f(default, len, out),
            None => 0,
        }
    }
}

unsafe extern "C" fn x_current_time_int64(
    vfs: *mut ffi::sqlite3_vfs,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: as in x_dl_open; the default VFS is version 2 or later (unix-* VFSes are 3).
    unsafe {
        let default = default_vfs(vfs);
        match (*default).xCurrentTimeInt64 {
            Some(f) if (*default).iVersion >= 2 => f(default, out),
            _ => ffi::SQLITE_ERROR,
        }
    }
}
