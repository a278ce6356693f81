//! Burrow HTTP plumbing.
