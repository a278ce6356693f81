//! libFuzzer entry point for `burrow_fuzz::ingress::check`; the check's module docs say what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_fuzz::ingress::check(data));
