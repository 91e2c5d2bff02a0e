//! Real processes: spawn a binary, collect what it logs, wait for a log line, signal it,
//! and kill it when the test ends (by PID, never by name).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where cargo put this workspace's binaries. `cargo test --workspace` (or `cargo nextest
/// run --workspace`) builds them: each binary's package has a test of its own that needs
/// it, and cargo builds a package's binaries for that package's tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // A test is target/<profile>/deps/<test>, a tool target/<profile>/<tool>.
    let here = exe.parent().expect("exe dir");
    let dir = if here.ends_with("deps") { here.parent().expect("profile dir") } else { here };
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run the tests with --workspace so cargo builds it", path.display());
    path
}

/// A running binary whose output is collected line by line.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Lines collected so far: bumped by the reader threads, watched by the waits.
    arrived: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Proc {
    pub fn spawn(name: &str, args: &[&str]) -> Proc {
        Proc::spawn_env(name, args, &[])
    }

    /// `spawn` with extra environment variables.
    pub fn spawn_env(name: &str, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(bin(name));
        cmd.args(args).env("WARDEN_LOG", "info").envs(envs.iter().copied());
        Proc::spawn_command(name, cmd)
    }

    /// Any command (a peer in another language), its output collected the same way.
    pub fn spawn_command(name: &str, mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(tokio::sync::watch::Sender::new(0));
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as _),
        ]
        .into_iter()
        .flatten()
        {
            let (lines, arrived) = (lines.clone(), arrived.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().expect("lock").push(line);
                    arrived.send_modify(|n| *n += 1);
                }
            });
        }
        Proc { name: name.to_owned(), child, lines, arrived }
    }

    /// The lines logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    /// Everything logged so far.
    pub fn output(&self) -> String {
        self.lines.lock().expect("lock").join("\n")
    }

    /// Waits for the process's start-up line (one JSON object on stderr, with what it
    /// bound) and returns it; panics with the output after `timeout`.
    pub async fn started(&self, timeout: Duration) -> serde_json::Value {
        self.wait_for_json("start-up line", timeout, |v| v["warden"] == "started").await
    }

    /// Waits for a JSON line (the access log's, the start-up line) that `want` accepts,
    /// and returns it; panics with the output after `timeout`.
    pub async fn wait_for_json(
        &self,
        what: &str,
        timeout: Duration,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.wait_for_line(what, timeout, |l| serde_json::from_str(l).ok().filter(&want)).await
    }

    /// Waits for a line containing `needle`; panics with the output after `timeout`.
    pub async fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_line(&format!("line with '{needle}'"), timeout, |l| l.contains(needle).then(|| l.to_owned()))
            .await
    }

    /// The first line `find` accepts, looked for again each time a line arrives (no
    /// polling); panics with the output after `timeout`.
    async fn wait_for_line<T>(&self, what: &str, timeout: Duration, find: impl Fn(&str) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut arrived = self.arrived.subscribe();
        loop {
            // Marked seen before looking: a line that lands after the look wakes the wait.
            arrived.borrow_and_update();
            if let Some(t) = self.lines.lock().expect("lock").iter().find_map(|l| find(l)) {
                return t;
            }
            if tokio::time::timeout_at(deadline, arrived.changed()).await.is_err() {
                panic!("{}: no {what} within {timeout:?}; output:\n{}", self.name, self.output());
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM: the graceful path.
    pub fn terminate(&self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
    }

    /// Waits for the process to exit; None if it is still running after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key=` in a log line.
pub fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    Some(line[start..].split_whitespace().next()?.trim_matches('"').to_owned())
}

/// How long a binary may take to announce its start. Generous: on a loaded CI machine a
/// start can stall for seconds on disk (a browser test starting beside it), and the wait
/// ends as soon as the line arrives.
const STARTUP: Duration = Duration::from_secs(60);

/// A running `warden-control-plane`.
pub struct ControlPlane {
    pub proc: Proc,
    /// The gRPC port (sidecars, wardenctl).
    pub addr: SocketAddr,
    /// The HTTP port (`/healthz`, `/readyz`, `/metrics`).
    pub http: SocketAddr,
    pub data_dir: PathBuf,
}

impl ControlPlane {
    /// Starts on `listen` (use "127.0.0.1:0" for any port) with its store in `data_dir`.
    pub async fn start(data_dir: &Path, listen: &str) -> ControlPlane {
        Self::start_with(data_dir, listen, &[]).await
    }

    /// A replica on the database at `url` (`--database-url`; `sqlite://` or `postgres://`).
    pub async fn on_database(url: &str) -> ControlPlane {
        Self::start_with(Path::new(""), "127.0.0.1:0", &["--database-url", url]).await
    }

    /// Like `start`, with more flags (`--database-url` in them replaces `--data-dir`).
    pub async fn start_with(data_dir: &Path, listen: &str, extra: &[&str]) -> ControlPlane {
        Self::start_env(data_dir, listen, extra, &[]).await
    }

    /// Like `start_with`, with environment variables (`OTEL_*`, ...). The HTTP port is
    /// any free one unless `extra` names `--http`.
    pub async fn start_env(data_dir: &Path, listen: &str, extra: &[&str], envs: &[(&str, &str)]) -> ControlPlane {
        let data_dir_arg = data_dir.to_string_lossy();
        let mut args = vec!["--listen", listen];
        if !extra.contains(&"--database-url") {
            args.extend_from_slice(&["--data-dir", &data_dir_arg]);
        }
        if !extra.iter().any(|a| a.starts_with("--http")) {
            args.extend_from_slice(&["--http", "127.0.0.1:0"]);
        }
        args.extend_from_slice(extra);
        let proc = Proc::spawn_env("warden-control-plane", &args, envs);
        let started = proc.started(STARTUP).await;
        let addr = started["grpc"].as_str().and_then(|a| a.parse().ok()).expect("grpc address in the start-up line");
        let http = started["http"].as_str().and_then(|a| a.parse().ok()).expect("http address in the start-up line");
        ControlPlane { proc, addr, http, data_dir: data_dir.to_owned() }
    }

    /// `http://<http port><path>`
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `wardenctl` against this control plane.
    pub async fn ctl(&self, args: &[&str]) -> Ctl {
        wardenctl(&self.url(), args).await
    }
}

/// A running `warden-sidecar`.
pub struct Sidecar {
    pub proc: Proc,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
}

impl Sidecar {
    /// Starts with `--listen 127.0.0.1:0 --admin 127.0.0.1:0` plus `args`.
    pub async fn start(args: &[&str]) -> Sidecar {
        Sidecar::start_env(args, &[]).await
    }

    /// `start` with extra environment variables (`OTEL_*`, ...).
    pub async fn start_env(args: &[&str], envs: &[(&str, &str)]) -> Sidecar {
        let mut all = vec!["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Sidecar::started(Proc::spawn_env("warden-sidecar", &all, envs)).await
    }

    /// Starts `warden-sidecar` through `wrapper` (`taskset -c 0`, a shell that moves
    /// itself into a cgroup first, ...), with `start`'s arguments.
    pub async fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Sidecar {
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..]).arg(bin("warden-sidecar"));
        cmd.args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]).args(args);
        Sidecar::started(Proc::spawn_command("warden-sidecar", cmd)).await
    }

    async fn started(proc: Proc) -> Sidecar {
        let started = proc.started(STARTUP).await;
        let addr = |name: &str| started[name].as_str().and_then(|a| a.parse().ok());
        let proxy = addr("proxy").expect("proxy address in the start-up line");
        let admin = addr("admin").expect("admin address in the start-up line");
        Sidecar { proc, proxy, admin }
    }

    /// Serves `policy` from `dir/p.yaml` (`--policy-file`; rewrite that file to change it)
    /// in front of `upstream`, once the policy is loaded (`/readyz`).
    pub async fn with_policy(dir: &Path, policy: &str, upstream: &str) -> Sidecar {
        let file = crate::fixtures::write_policy(dir, "p.yaml", policy);
        let sidecar = Sidecar::start(&["--policy-file", &file, "--upstream", upstream]).await;
        let (client, ready) = (crate::client::Client::default(), sidecar.admin_url("/readyz"));
        crate::wait::eventually("the sidecar has its policy", Duration::from_secs(10), || async {
            client.get(&ready).await.is_ok_and(|r| r.status == 200)
        })
        .await;
        sidecar
    }

    /// `http://<proxy><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    /// Writes `request` as raw bytes on a new connection and reads until the sidecar
    /// closes it (or 5 s pass). A write error is ignored: the sidecar may answer and close
    /// before it read everything, as it should for a refused request.
    pub async fn raw(&self, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(self.proxy).await.expect("connect to the sidecar");
        let _ = tcp.write_all(request).await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// `http://<admin><path>`
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }
}

/// What a `wardenctl` run printed and returned.
#[derive(Debug)]
pub struct Ctl {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `wardenctl --server <server> <args>`.
pub async fn wardenctl(server: &str, args: &[&str]) -> Ctl {
    let out = tokio::process::Command::new(bin("wardenctl"))
        .arg("--server")
        .arg(server)
        .args(args)
        .env("WARDEN_AUTHOR", "e2e")
        .output()
        .await
        .expect("run wardenctl");
    Ctl {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
