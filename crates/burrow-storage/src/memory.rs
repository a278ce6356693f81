//! Keeping SQLite's memory per object small: a small lookaside per connection, and returning
//! freed heap memory to the operating system after many object databases close.
//!
//! Each open object database holds a page cache and prepared statements (tens of KiB), allocated
//! by SQLite through the C allocator. When thousands of objects hibernate and close, glibc keeps
//! the freed memory in its arenas, so the process's RSS stays at its peak although the memory is
//! free. `malloc_trim(0)` hands free pages back (in every arena, since glibc 2.8), which is what
//! makes a hibernated object cost almost nothing.

/// Asks the C allocator to return free memory to the operating system. A no-op off glibc.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim takes a plain integer, touches only the allocator's own state
        // (under its locks) and is safe to call from any thread at any time.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Bytes per lookaside slot and slots per connection (SQLite's default is 1200 × 100, about
/// 120 KiB per connection, which thousands of open objects cannot afford).
const LOOKASIDE_SLOT_BYTES: i32 = 256;
const LOOKASIDE_SLOTS: i32 = 32;

/// Makes the small lookaside SQLite's process-wide default, so opening a connection does not first
/// allocate (and fault in) the 120 KiB default only for [`limit_lookaside`] to replace it. This
/// was about 3 % of all CPU time in the `workflows` benchmark, which opens a new database per
/// instance. It only works before SQLite initializes (the first connection or VFS registration in
/// the process); later calls, and a process where something else initialized SQLite first, keep
/// SQLite's default, and [`limit_lookaside`] still shrinks each connection.
pub(crate) fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config with SQLITE_CONFIG_LOOKASIDE takes two ints, as SQLite documents
        // for this variadic call. Before sqlite3_initialize it only records the defaults; after
        // it, SQLite refuses with SQLITE_MISUSE and changes nothing. `Once` keeps two threads from
        // calling it at the same time, which the documentation forbids.
        unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_LOOKASIDE,
                LOOKASIDE_SLOT_BYTES,
                LOOKASIDE_SLOTS,
            );
        }
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; the same rules as above apply. Without
        // memory statistics SQLite's malloc and free skip a process-wide mutex, which the shard
        // threads otherwise take on every allocation (3.5 % of their CPU time in the
        // `workflows` benchmark, locking and unlocking it). Nothing here reads the statistics
        // (`sqlite3_memory_used`).
        unsafe {
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0);
        }
    });
}

/// Shrinks a fresh connection's lookaside allocator to 8 KiB. Must run before the connection
/// allocates anything from it (right after open).
pub(crate) fn limit_lookaside(conn: &rusqlite::Connection) {
    // SAFETY: `conn.handle()` is a valid open connection owned by `conn` for this call; the
    // lookaside configuration takes a null buffer (SQLite allocates it) and two ints, matching
    // the variadic signature SQLite documents for SQLITE_DBCONFIG_LOOKASIDE, and is allowed while
    // no lookaside memory is in use, which holds for a connection that has run no statement.
    unsafe {
        rusqlite::ffi::sqlite3_db_config(
            conn.handle(),
            rusqlite::ffi::SQLITE_DBCONFIG_LOOKASIDE,
            std::ptr::null_mut::<std::ffi::c_void>(),
            LOOKASIDE_SLOT_BYTES,
            LOOKASIDE_SLOTS,
        );
    }
}
