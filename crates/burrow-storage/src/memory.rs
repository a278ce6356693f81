//! Returning freed heap memory to the operating system after many object databases close.
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
