//! The operator's side of a soak: policy applies alternating two versions, API key churn
//! and control-plane restarts, one at a time as a person or a job would run them, each
//! checked end to end: an apply is served by the sidecar, a new key is known to it before
//! the load switches to it, an old key is refused after it is revoked, and after a restart
//! the sidecar is back in sync. Everything goes through `wardenctl`, as an operator's
//! commands would.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;

use super::daemon::Daemon;
use super::load::CurrentKey;
use crate::Client;

/// The sidecar's instance name in `wardenctl status`.
pub const INSTANCE: &str = "soak-1";

/// The policy, as version `rev` ("a" or "b": the applies alternate them, and the load
/// checks every answer carries one). The stalled upstream's circuit breakers are small so
/// the stalled-upstream attack trips them; the API route's limit lets the soak client
/// through and holds the greedy one to 10/s.
pub fn policy(stuck: SocketAddr, rev: &str) -> String {
    let rh = format!("response_headers: {{ set: {{ x-soak-rev: \"{rev}\" }} }}");
    format!(
        "service: orders
defaults: {{ timeout: 5s }}
upstreams:
  stuck: {{ endpoints: ['{stuck}'], max_connections: 16, max_pending: 16 }}
routes:
  - name: orders
    match: {{ path_prefix: /orders }}
    {rh}
  - name: api
    match: {{ path_prefix: /api }}
    auth: keys
    limits: [per-client]
    {rh}
  - name: github
    match: {{ path: /hooks/github, methods: [POST] }}
    auth: github
    max_body: 64KiB
    {rh}
  - name: stripe
    match: {{ path: /hooks/stripe, methods: [POST] }}
    auth: stripe
    max_body: 64KiB
    {rh}
  - name: stuck
    match: {{ path_prefix: /stuck }}
    upstream: stuck
    timeout: 3s
  - name: bulk
    match: {{ path_prefix: /bulk }}
    timeout: 60s
auth:
  keys: {{ type: api_key, header: x-api-key }}
  github: {{ type: hmac, scheme: github, secret: gh-hook }}
  stripe: {{ type: hmac, scheme: stripe, secret: stripe-hook, tolerance: 5m }}
limits:
  per-client: {{ key: client_id, plans: {{ greedy: 10/s }}, default: 1000/s }}
"
    )
}

/// Runs `wardenctl --server SERVER ARGS -o json`; the JSON it printed, or why not.
pub async fn ctl(server: &str, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = tokio::process::Command::new(crate::process::bin("wardenctl"))
        .arg("--server")
        .arg(server)
        .args(args)
        .args(["-o", "json"])
        .env("WARDEN_AUTHOR", "soak")
        .output()
        .await
        .map_err(|e| format!("wardenctl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "wardenctl {} exited {}: {}",
            args.first().unwrap_or(&""),
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("wardenctl {}: not JSON: {e}", args.join(" ")))
}

/// True when the control plane sees the sidecar connected, on the current version and
/// credentials revision.
pub async fn in_sync(server: &str) -> bool {
    let Ok(v) = ctl(server, &["status", "--service", "orders"]).await else { return false };
    v["sidecars"].as_array().into_iter().flatten().any(|s| {
        s["instance"] == INSTANCE
            && s["connected"] == true
            && s["in_sync"] == true
            && s["acked_credentials"] == s["current_credentials"]
    })
}

/// Polls `check` every 20 ms for up to `timeout`; how long it took, or None.
async fn within<F, Fut>(timeout: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return Some(started.elapsed());
        }
        if started.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the operator did and measured (durations in ms).
#[derive(Debug, Default)]
pub struct Stats {
    pub applies: u64,
    /// Apply → the sidecar serves the new version and answers with its header.
    pub apply_served_ms: Vec<f64>,
    pub rotations: u64,
    /// Key created → the sidecar holds it (ACKed), and revoked → the sidecar refuses it.
    pub new_key_ms: Vec<f64>,
    pub revoked_ms: Vec<f64>,
    /// How long the load's requests with the old key took to finish after the switch.
    pub drain_ms: Vec<f64>,
    pub restarts: u64,
    /// Restarted → the sidecar connected again and in sync.
    pub resync_ms: Vec<f64>,
    /// When each restart began (seconds into the run).
    pub restart_at: Vec<f64>,
    /// Anything that did not go as it should, with the time.
    pub problems: Vec<String>,
}

/// The control plane, the ways to check the sidecar, and the state the operator keeps.
pub struct Operator {
    pub cp: Daemon,
    pub cp_url: String,
    /// The control plane's PID now, for the sampler.
    pub cp_pid: Arc<AtomicU32>,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub stuck: SocketAddr,
    pub dir: PathBuf,
    pub key: Arc<CurrentKey>,
    pub key_id: String,
    pub rev_b: bool,
    pub http: Client,
    pub start: Instant,
    pub stats: Stats,
}

impl Operator {
    fn problem(&mut self, what: String) {
        let t = self.start.elapsed().as_secs_f64();
        eprintln!("warden-soak: {t:.0}s: {what}");
        self.stats.problems.push(format!("{t:.0}s {what}"));
    }

    /// Applies `policy(rev)` and returns its version.
    pub async fn apply_rev(&self, rev: &str, message: &str) -> Result<u64, String> {
        let file = self.dir.join(format!("policy-{rev}.yaml"));
        std::fs::write(&file, policy(self.stuck, rev)).map_err(|e| e.to_string())?;
        let out = ctl(&self.cp_url, &["apply", "-f", &file.to_string_lossy(), "-m", message]).await?;
        out["results"][0]["version"].as_u64().ok_or_else(|| format!("apply printed no version: {out}"))
    }

    /// The other version of the policy; checks the sidecar serves it.
    pub async fn apply(&mut self) {
        self.rev_b = !self.rev_b;
        let rev = if self.rev_b { "b" } else { "a" };
        self.stats.applies += 1;
        let started = Instant::now();
        let v = match self.apply_rev(rev, &format!("soak apply {}", self.stats.applies)).await {
            Ok(v) => v,
            Err(e) => return self.problem(format!("apply {rev}: {e}")),
        };
        let (http, admin, proxy) = (self.http.clone(), self.admin, self.proxy);
        let served = within(Duration::from_secs(10), || {
            let http = http.clone();
            async move {
                let Ok(c) = http.get(&format!("http://{admin}/config")).await else { return false };
                if !serde_json::from_slice::<serde_json::Value>(&c.body).is_ok_and(|c| c["version"] == v) {
                    return false;
                }
                let r = http.get(&format!("http://{proxy}/orders/apply-check")).await;
                r.is_ok_and(|r| r.status == 200 && r.header("x-soak-rev") == Some(rev))
            }
        })
        .await;
        match served {
            Some(_) => self.stats.apply_served_ms.push(started.elapsed().as_secs_f64() * 1e3),
            None => self.problem(format!("v{v} ({rev}) not served within 10 s")),
        }
    }

    /// Creates a key, waits until the sidecar holds it, switches the load to it, waits
    /// until no request carries the old one, revokes the old one and checks it is refused.
    pub async fn rotate_key(&mut self) {
        self.stats.rotations += 1;
        let started = Instant::now();
        let made =
            ctl(&self.cp_url, &["keys", "create", "--service", "orders", "--client", "soak", "--plan", "pro"]).await;
        let (key, id) = match made {
            Ok(v) => match (v["key"].as_str(), v["id"].as_str()) {
                (Some(k), Some(i)) => (k.to_owned(), i.to_owned()),
                _ => return self.problem(format!("keys create printed {v}")),
            },
            Err(e) => return self.problem(format!("keys create: {e}")),
        };
        let url = self.cp_url.clone();
        if within(Duration::from_secs(15), || in_sync(&url)).await.is_none() {
            // Not switching to a key the sidecar may not know; it is revoked unused.
            self.problem("a new key did not reach the sidecar within 15 s; the load keeps the old one".into());
            let _ = ctl(&self.cp_url, &["keys", "revoke", &id]).await;
            return;
        }
        self.stats.new_key_ms.push(started.elapsed().as_secs_f64() * 1e3);
        let old = self.key.set(&key);
        let old_id = std::mem::replace(&mut self.key_id, id);
        let switched = Instant::now();
        // The load's requests each hold a clone of the key they carry.
        let drained = within(Duration::from_secs(15), || {
            let n = Arc::strong_count(&old);
            async move { n == 1 }
        })
        .await;
        if drained.is_none() {
            return self
                .problem(format!("requests still carry the old key 15 s after the switch; {old_id} not revoked"));
        }
        self.stats.drain_ms.push(switched.elapsed().as_secs_f64() * 1e3);
        let revoked = Instant::now();
        if let Err(e) = ctl(&self.cp_url, &["keys", "revoke", &old_id]).await {
            return self.problem(format!("keys revoke {old_id}: {e}"));
        }
        let (http, proxy) = (self.http.clone(), self.proxy);
        let refused = within(Duration::from_secs(5), || {
            let (http, old) = (http.clone(), old.clone());
            async move {
                let url = format!("http://{proxy}/api/revoked-check");
                let r = http.send(Method::GET, &url, &[("x-api-key", &old)], Bytes::new()).await;
                r.is_ok_and(|r| r.status == 401 && r.text().contains("key_revoked"))
            }
        })
        .await;
        match refused {
            Some(_) => self.stats.revoked_ms.push(revoked.elapsed().as_secs_f64() * 1e3),
            None => self.problem(format!("{old_id} still admitted 5 s after its revocation")),
        }
    }

    /// SIGTERM, `down` with no control plane, then the same binary on the same port and
    /// store; waits for the sidecar to be back in sync.
    pub async fn restart_cp(&mut self, down: Duration) {
        self.stats.restarts += 1;
        self.stats.restart_at.push(self.start.elapsed().as_secs_f64());
        self.cp.terminate();
        if self.cp.wait_exit(Duration::from_secs(10)).await.is_none() {
            self.problem("the control plane did not exit within 10 s of SIGTERM; killed".into());
            self.cp.kill();
        }
        self.cp_pid.store(0, Ordering::Relaxed);
        tokio::time::sleep(down).await;
        // The port may still be held for a moment by the old process's sockets.
        let mut started = Err(String::new());
        for _ in 0..20 {
            started = self.cp.start(crate::soak::daemon::STARTED, Duration::from_secs(20)).await;
            if started.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if let Err(e) = started {
            return self.problem(format!("the control plane did not start again: {e}"));
        }
        self.cp_pid.store(self.cp.pid().unwrap_or(0), Ordering::Relaxed);
        let back = Instant::now();
        let url = self.cp_url.clone();
        match within(Duration::from_secs(30), || in_sync(&url)).await {
            Some(_) => self.stats.resync_ms.push(back.elapsed().as_secs_f64() * 1e3),
            None => self.problem("the sidecar was not back in sync 30 s after the restart".into()),
        }
    }
}
