//! The soak's long-running processes. Like `process::Proc`, but what they print goes to
//! files instead of memory (an hour of a sidecar's access log is hundreds of MB, and kept
//! on disk it is the evidence when a request fails), and a process can be stopped and
//! started again with the same arguments (the control plane's restarts).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A binary of this workspace, run again and again with the same arguments.
pub struct Daemon {
    pub name: String,
    args: Vec<String>,
    log_dir: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    pub fn new(name: &str, args: &[String], log_dir: &Path) -> Daemon {
        Daemon { name: name.to_owned(), args: args.to_vec(), log_dir: log_dir.to_owned(), child: None }
    }

    /// Replaces the arguments for the next start (a port chosen by the first one).
    pub fn set_args(&mut self, args: &[String]) {
        self.args = args.to_vec();
    }

    /// `<log dir>/<name>.out` and `.err`: stdout and stderr, appended across restarts.
    pub fn log_path(&self, stream: &str) -> PathBuf {
        self.log_dir.join(format!("{}.{stream}", self.name))
    }

    /// Starts the process and waits for a line of its stderr containing `ready` (logged
    /// after this start); returns that line.
    pub async fn start(&mut self, ready: &str, timeout: Duration) -> Result<String, String> {
        let (out, err) = (self.log_path("out"), self.log_path("err"));
        let from = std::fs::metadata(&err).map(|m| m.len()).unwrap_or(0);
        let open = |p: &Path| -> Result<File, String> {
            OpenOptions::new().create(true).append(true).open(p).map_err(|e| format!("{}: {e}", p.display()))
        };
        let child = Command::new(crate::process::bin(&self.name))
            .args(&self.args)
            .env("WARDEN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(open(&out)?)
            .stderr(open(&err)?)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.name))?;
        self.child = Some(child);
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read(&err).unwrap_or_default();
            let new = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default()).into_owned();
            if let Some(line) = new.lines().find(|l| l.contains(ready)) {
                return Ok(line.to_owned());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!("{} exited ({status}) before '{ready}':\n{new}", self.name));
            }
            if Instant::now() >= deadline {
                return Err(format!("{} did not log '{ready}' within {timeout:?}:\n{new}", self.name));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM: the graceful path.
    pub fn terminate(&self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
    }

    /// Waits for the process to exit; None if it is still running after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.as_mut().map(Child::try_wait) {
                None => return None,
                Some(Ok(Some(status))) => {
                    self.child = None;
                    return Some(status);
                }
                _ if Instant::now() >= deadline => return None,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a Warden process's start-up line (one JSON object on stderr) contains.
pub const STARTED: &str = "\"warden\":\"started\"";

/// A field of a start-up line.
pub fn started(line: &str, name: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    v[name].as_str().map(str::to_owned)
}

/// Resident memory (KiB) and open descriptors of a process; zeros once it is gone.
pub fn footprint(pid: Option<u32>) -> (u64, u64) {
    let Some(pid) = pid else { return (0, 0) };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0);
    (crate::attacks::rss_kib(pid), fds)
}
