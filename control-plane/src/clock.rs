//! The wall clock as the control plane records it: milliseconds since the Unix epoch, the
//! unit of every stored time and of the times `wardenctl` prints. One function, so every
//! "now" in the store, the registry and the CLI reads the same way.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 for a clock set before 1970.
pub fn now_unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
