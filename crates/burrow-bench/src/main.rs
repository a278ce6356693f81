//! Benchmarks with ratios against references measured in the same run (in progress).
fn main() {}
