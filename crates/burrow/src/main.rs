//! The `burrow` command line (in progress).
fn main() {}
