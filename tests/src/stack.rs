//! A whole running setup for a test: a control plane on its own store, the echo app, and
//! one sidecar for service `orders` in front of the app, with a policy applied.

use std::time::Duration;

use crate::app::App;
use crate::client::{Client, Resp};
use crate::fixtures::write_policy;
use crate::process::{ControlPlane, Sidecar};
use crate::wait::eventually;

/// A minimal policy for `orders`: `/orders` and `/slow` go to the app.
pub const BASIC: &str = "service: orders
defaults: { max_body: 16MiB }
routes:
  - name: orders
    match: { path_prefix: /orders }
  - name: slow
    match: { path_prefix: /slow }
    timeout: 300ms
  - name: stream
    match: { path_prefix: /stream }
";

/// Routes to append to a policy's `routes` (it must end with them): valid for the control
/// plane, but the upstream's CA file is not on the sidecar's host, so a sidecar NACKs it
/// with an error naming `billing-ca.pem`.
pub const MISSING_CA: &str = "  - name: billing
    match: { path_prefix: /billing }
    upstream: billing
upstreams:
  billing: { endpoints: [\"127.0.0.1:8080\"], tls: { ca_file: /nonexistent/billing-ca.pem } }
";

/// `orders` behind API keys with a global quota of 10/s (burst 5) per client.
pub const GLOBAL: &str = "service: orders
routes:
  - name: api
    match: { path_prefix: /api }
    auth: keys
    limits: [shared]
auth:
  keys: { type: api_key, header: x-api-key }
limits:
  shared: { key: client_id, rate: 600/min, burst: 5, scope: global }
";

/// A sidecar for `orders` in front of `app`, following the control plane at `cp_url`,
/// keeping its state in `state`.
pub async fn orders_sidecar(
    cp_url: &str,
    app: std::net::SocketAddr,
    state: &std::path::Path,
    instance: &str,
    extra: &[&str],
) -> Sidecar {
    orders_sidecar_env(cp_url, app, state, instance, extra, &[]).await
}

/// `orders_sidecar` with extra environment variables.
pub async fn orders_sidecar_env(
    cp_url: &str,
    app: std::net::SocketAddr,
    state: &std::path::Path,
    instance: &str,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Sidecar {
    let (upstream, state) = (app.to_string(), state.to_string_lossy());
    let mut args = vec![
        "--service",
        "orders",
        "--control-plane",
        cp_url,
        "--upstream",
        &upstream,
        "--state-dir",
        &state,
        "--instance",
        instance,
    ];
    args.extend_from_slice(extra);
    Sidecar::start_env(&args, envs).await
}

pub struct Stack {
    pub dir: tempfile::TempDir,
    pub cp: ControlPlane,
    pub app: App,
    pub sidecar: Sidecar,
    pub client: Client,
}

impl Stack {
    /// Starts everything and applies `policy`, returning once the sidecar serves it.
    pub async fn start(policy: &str) -> Stack {
        let stack = Stack::start_without_policy().await;
        let v = stack.apply(policy).await;
        stack.wait_for_version(v).await;
        stack
    }

    /// Like `start`, with more sidecar flags.
    pub async fn start_with(policy: &str, sidecar_args: &[&str]) -> Stack {
        let stack = Stack::launch(sidecar_args).await;
        let v = stack.apply(policy).await;
        stack.wait_for_version(v).await;
        stack
    }

    /// Starts everything; nothing is applied yet.
    pub async fn start_without_policy() -> Stack {
        Stack::launch(&[]).await
    }

    /// Like `start`, with environment variables for the sidecar.
    pub async fn start_env(policy: &str, envs: &[(&str, &str)]) -> Stack {
        let stack = Stack::launch_env(&[], envs).await;
        let v = stack.apply(policy).await;
        stack.wait_for_version(v).await;
        stack
    }

    /// Like `start`, in `dir`, whose `data` store the caller may have filled already.
    pub async fn start_in(dir: tempfile::TempDir, policy: &str) -> Stack {
        let stack = Stack::launch_in(dir, &[], &[]).await;
        let v = stack.apply(policy).await;
        stack.wait_for_version(v).await;
        stack
    }

    async fn launch(sidecar_args: &[&str]) -> Stack {
        Stack::launch_env(sidecar_args, &[]).await
    }

    async fn launch_env(sidecar_args: &[&str], envs: &[(&str, &str)]) -> Stack {
        Stack::launch_in(tempfile::tempdir().expect("tempdir"), sidecar_args, envs).await
    }

    async fn launch_in(dir: tempfile::TempDir, sidecar_args: &[&str], envs: &[(&str, &str)]) -> Stack {
        let cp = ControlPlane::start(&dir.path().join("data"), "127.0.0.1:0").await;
        let app = App::start("orders-app").await;
        let state = dir.path().join("state");
        let sidecar = orders_sidecar_env(&cp.url(), app.addr, &state, "orders-1", sidecar_args, envs).await;
        Stack { dir, cp, app, sidecar, client: Client::default() }
    }

    /// Applies a policy through `wardenctl apply`; returns the version it became.
    pub async fn apply(&self, policy: &str) -> u64 {
        let file = write_policy(self.dir.path(), "policy.yaml", policy);
        let out = self.cp.ctl(&["apply", "-f", &file, "-m", "test", "-o", "json"]).await;
        assert_eq!(out.code, 0, "apply failed: {out:?}");
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("apply json");
        v["results"][0]["version"].as_u64().expect("version")
    }

    /// Waits until the sidecar's /config reports `version`.
    pub async fn wait_for_version(&self, version: u64) {
        let url = self.sidecar.admin_url("/config");
        let client = self.client.clone();
        eventually(&format!("sidecar serves v{version}"), Duration::from_secs(5), || {
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(&url).await.is_ok_and(|r| r.json()["version"] == version) }
        })
        .await;
    }

    /// Waits until the control plane has the sidecar's ACK for `version`: by then the
    /// sidecar has also written it to its state dir (it ACKs after persisting).
    pub async fn wait_for_ack(&self, version: u64) {
        eventually(&format!("the sidecar ACKs v{version}"), Duration::from_secs(5), || async {
            let out = self.cp.ctl(&["status", "-o", "json"]).await;
            serde_json::from_str::<serde_json::Value>(&out.stdout)
                .is_ok_and(|v| v["sidecars"][0]["acked_version"] == version)
        })
        .await;
    }

    /// Waits until the control plane records the sidecar's NACK of `version` with an
    /// error that contains `reason`.
    pub async fn wait_for_nack(&self, version: u64, reason: &str) {
        eventually(&format!("the sidecar NACKs v{version} ({reason})"), Duration::from_secs(10), || async {
            let out = self.cp.ctl(&["status", "-o", "json"]).await;
            serde_json::from_str::<serde_json::Value>(&out.stdout).is_ok_and(|v| {
                let sc = &v["sidecars"][0];
                sc["nacked_version"] == version && sc["nack_error"].as_str().unwrap_or_default().contains(reason)
            })
        })
        .await;
    }

    /// GET through the sidecar.
    pub async fn get(&self, path: &str) -> Resp {
        self.client.get(&self.sidecar.url(path)).await.expect("request through the sidecar")
    }

    /// Another sidecar of `orders` in front of the same app, as `instance`.
    pub async fn start_another_sidecar(&self, instance: &str) -> Sidecar {
        let state = self.dir.path().join(format!("state-{instance}"));
        orders_sidecar(&self.cp.url(), self.app.addr, &state, instance, &[]).await
    }

    /// `wardenctl keys create --service orders --client CLIENT EXTRA...`: (key, id).
    pub async fn create_key(&self, client: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec!["keys", "create", "--service", "orders", "--client", client, "-o", "json"];
        args.extend_from_slice(extra);
        let out = self.cp.ctl(&args).await;
        assert_eq!(out.code, 0, "{out:?}");
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("keys create json");
        (v["key"].as_str().expect("key").to_owned(), v["id"].as_str().expect("id").to_owned())
    }

    /// `wardenctl secrets set NAME --from-file F EXTRA...` with `value` in F.
    pub async fn set_secret(&self, name: &str, value: &str, extra: &[&str]) {
        let file = write_policy(self.dir.path(), &format!("{name}.secret"), &format!("{value}\n"));
        let mut args = vec!["secrets", "set", name, "--from-file", &file];
        args.extend_from_slice(extra);
        let out = self.cp.ctl(&args).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert!(!out.stdout.contains(value), "secrets set printed the value");
    }

    /// POST through the sidecar.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.client
            .send(http::Method::POST, &self.sidecar.url(path), headers, bytes::Bytes::copy_from_slice(body))
            .await
            .expect("request through the sidecar")
    }

    /// The body of a GET on the sidecar's admin port.
    pub async fn get_admin(&self, path: &str) -> String {
        self.client.get(&self.sidecar.admin_url(path)).await.expect("admin request").text()
    }

    /// GET through the sidecar with extra request headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.client
            .send(http::Method::GET, &self.sidecar.url(path), headers, bytes::Bytes::new())
            .await
            .expect("request through the sidecar")
    }
}
