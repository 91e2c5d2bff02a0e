//! libFuzzer entry for the `http_front` target; the body is `warden_fuzz::http_front` (src/lib.rs),
//! shared with the stable corpus replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::http_front(data));
