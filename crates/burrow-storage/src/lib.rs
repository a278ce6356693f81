//! Burrow's storage engine: one SQLite database per object, a shared group-committed journal, and recovery.
//!
//! The crate knows nothing about JavaScript, HTTP or async runtimes. Its pieces, bottom up:
//!
//! - [`fs`]: the file-system trait every byte of I/O goes through ([`fs::OsFs`] for real files,
//!   [`fs::sim::SimFs`] for deterministic fault injection and simulated power loss).
//! - [`journal`]: the segmented, checksummed redo journal with group commit.
//! - [`vfs`]: a SQLite VFS over [`fs::Fs`] that keeps each object's dirty pages in memory until
//!   the engine checkpoints them, and captures what every commit changed as a redo record.
//! - [`authorizer`], [`sql`], [`kv`]: the Durable Object SQL and KV APIs with Cloudflare's rules.
//!
//! # Why this crate allows `unsafe`
//! The VFS is an FFI boundary: SQLite calls into Rust through C function pointers. All unsafe
//! code lives in [`vfs`] and in `memory` (one call to glibc's `malloc_trim`), and each block
//! states the invariant it relies on.
#![allow(unsafe_code)] // Only `vfs` and `memory` use it; see the crate docs above.

pub mod authorizer;
pub mod database;
pub mod engine;
pub mod fs;
pub mod journal;
pub mod kv;
mod memory;
pub mod sql;
pub mod vfs;
