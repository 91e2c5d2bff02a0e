//! The wall clock as the control plane records it: milliseconds since the Unix epoch, the
//! unit of every stored time and of the times `wardenctl` and the console print. One
//! "now" for the store, the registry, the CLI and the console, and one way to show a time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 for a clock set before 1970.
pub fn now_unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A stored time as RFC 3339 UTC to the second; "-" for 0 (never).
pub fn time(unix_ms: i64) -> String {
    if unix_ms <= 0 {
        return "-".into();
    }
    let t = UNIX_EPOCH + Duration::from_millis(unix_ms.unsigned_abs());
    humantime::format_rfc3339_seconds(t).to_string()
}

/// "12s ago", "3m ago", "2h ago", "4d ago"; "never" for 0.
pub fn ago(unix_ms: i64) -> String {
    if unix_ms <= 0 {
        return "never".into();
    }
    let secs = (now_unix_ms() - unix_ms).max(0) / 1000;
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}
