//! Numbers the benchmark and soak tools compute: latency percentiles, a process's CPU time.

use std::time::Duration;

/// The `q` quantile (0.5, 0.99) of sorted latencies, nearest rank.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q).ceil() as usize).saturating_sub(1).min(sorted.len() - 1)]
}

/// CPU time (user + system) a process has used so far, in seconds (`/proc/PID/stat`;
/// 0 once it is gone). For the benchmark tools.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: count fields from its closing ')'.
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<f64> = after.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // utime and stime are fields 14 and 15; after ") " the state is field 3. USER_HZ is 100.
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) / 100.0
}
