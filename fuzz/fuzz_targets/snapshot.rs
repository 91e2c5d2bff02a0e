//! libFuzzer entry for the `snapshot` target; the body is `warden_fuzz::snapshot` (src/lib.rs),
//! shared with the stable corpus replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::snapshot(data));
