//! libFuzzer entry for the `normalize` target; the body is `warden_fuzz::normalize` (src/lib.rs),
//! shared with the stable corpus replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::normalize(data));
