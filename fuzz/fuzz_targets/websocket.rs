//! libFuzzer entry point for `burrow_fuzz::websocket::check`; the check's module docs say what it asserts.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_fuzz::websocket::check(data));
