//! libFuzzer entry for the `policy` target; the body is `warden_fuzz::policy` (src/lib.rs),
//! shared with the stable corpus replay.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warden_fuzz::policy(data));
