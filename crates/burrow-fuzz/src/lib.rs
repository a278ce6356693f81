//! Fuzz harnesses: for each input surface, a `check(data)` that feeds arbitrary bytes to the real
//! parser or server and asserts what must hold for every input (no panic, and the properties each
//! module names), plus a seeded mutator that lets `cargo test` run the same checks
//! deterministically on mutations of valid inputs.
//!
//! The cargo-fuzz targets in `fuzz/` (a separate workspace, built with a nightly-only flag set)
//! call the same `check` functions, so a finding reproduces as a plain test: add the input to the
//! module's regression tests, named after what it found.
//!
//! Hangs and unbounded memory show up as a check that does not return (libFuzzer's `-timeout`
//! and `-rss_limit_mb` report them; the seeded tests would time out in CI).

pub mod authorizer;
pub mod config;
pub mod cron;
pub mod id;
pub mod ingress;
pub mod journal;
pub mod mutate;
pub mod websocket;
