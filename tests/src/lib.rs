//! The end-to-end harness: starts the real `warden-control-plane`, `warden-sidecar` and
//! `wardenctl` binaries on 127.0.0.1 with port 0, reads the addresses they log, and gives
//! tests a client, an echo app and `eventually` (wait on a condition with a deadline,
//! never a fixed sleep).
//!
//! The binaries come from the same target directory as the test; `cargo nextest run
//! --workspace` (or `cargo test --workspace`) builds them first.

// A test harness: failing loudly at the spot is what it is for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod app;
pub mod attacks;
pub mod client;
pub mod hostile;
pub mod imports;
pub mod lenient;
pub mod otlp;
pub mod plot;
pub mod process;
pub mod soak;
pub mod stack;
pub mod tls;

use std::future::Future;
use std::time::{Duration, Instant};

pub use app::App;
pub use client::{Client, Resp};
pub use lenient::LenientApp;
pub use process::{ControlPlane, Ctl, Proc, Sidecar, wardenctl};
pub use stack::Stack;

/// Polls `check` every 20 ms until it returns true; panics with `what` after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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

/// Runs `tests/tools/sign.py` (PyJWT and Python's hmac: credentials made without any of
/// Warden's code) and returns what it printed, trimmed.
pub fn sign(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/sign.py");
    let out = std::process::Command::new("python3").arg(script).args(args).output().expect("run python3");
    assert!(
        out.status.success(),
        "sign.py {args:?} failed (pip install 'pyjwt[crypto]'?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Writes a policy file into `dir` and returns its path as a string.
pub fn write_policy(dir: &std::path::Path, name: &str, yaml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write policy");
    path.to_string_lossy().into_owned()
}
