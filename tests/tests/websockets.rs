//! WebSockets through the sidecar, with a server and a client Warden did not write
//! (Python's `websockets`, `tools/ws_peer.py`): an echo, auth on the upgrade request, a
//! route that does not take upgrades, a policy swap while a tunnel is open, and a drain:
//! a tunnel gets the drain period, then is closed, and every close is logged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use warden_e2e::process::Proc;
use warden_e2e::{Client, Sidecar, eventually, write_policy};

fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tools/ws_peer.py")
}

const POLICY: &str = "service: orders
auth:
  keys: { type: api_key, header: x-api-key }
routes:
  - { name: ws, match: { path_prefix: /ws }, upgrades: true, idle_timeout: 30s }
  - { name: quiet, match: { path_prefix: /quiet }, upgrades: true, idle_timeout: 300ms }
  - { name: locked, match: { path_prefix: /locked }, upgrades: true, auth: keys }
  - { name: plain, match: { path_prefix: / } }
";

/// The talk process, started; its last line is the result.
fn talk(url: &str, spec: serde_json::Value) -> Proc {
    let mut cmd = Command::new("python3");
    cmd.arg(script()).arg("talk").arg(url).arg(spec.to_string());
    Proc::spawn_command("ws_peer.py talk", cmd)
}

/// A `ws_peer.py chat` client: the test says each message when it is ready.
struct Chat {
    child: tokio::process::Child,
    /// Dropped to end the chat (end of stdin).
    stdin: Option<tokio::process::ChildStdin>,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Chat {
    async fn open(url: &str) -> Chat {
        let mut child = tokio::process::Command::new("python3")
            .arg(script())
            .arg("chat")
            .arg(url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run python3");
        let stdin = child.stdin.take();
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut chat = Chat { child, stdin, lines };
        assert_eq!(chat.line("the tunnel opening").await["status"], 101);
        chat
    }

    async fn line(&mut self, what: &str) -> serde_json::Value {
        let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line()).await;
        let line =
            line.unwrap_or_else(|_| panic!("no answer within 20 s: {what}")).unwrap().expect("the chat printed a line");
        serde_json::from_str(&line).unwrap()
    }

    /// Sends `message` and returns its echo.
    async fn say(&mut self, message: &str) -> String {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{message}\n").as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
        self.line(&format!("the echo of {message}")).await["echo"].as_str().unwrap_or_default().to_owned()
    }

    /// Waits for the other side (the sidecar) to close the tunnel.
    async fn closed_by_peer(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(b"?wait-close\n").await.unwrap();
        stdin.flush().await.unwrap();
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line()).await;
        let line = line.expect("the tunnel closed within 30 s").unwrap().expect("the chat printed a line");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&line).unwrap()["peer_closed"], true, "{line}");
    }

    async fn close(mut self) {
        self.stdin = None;
        assert_eq!(self.line("the close").await["closed"], true);
        let _ = self.child.wait().await;
    }
}

async fn result(p: &Proc) -> serde_json::Value {
    p.wait_for_json("the talk's result", Duration::from_secs(30), |v| v.get("status").is_some()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_tunnelled_where_routes_allow_them_auth_applies_and_a_swap_cuts_nothing() {
    let mut cmd = Command::new("python3");
    cmd.arg(script()).arg("serve");
    let server = Proc::spawn_command("ws_peer.py serve", cmd);
    let line = server
        .wait_for_json("listening line (pip install websockets?)", Duration::from_secs(20), |v| v["listening"].is_u64())
        .await;
    let upstream = format!("127.0.0.1:{}", line["listening"]);
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Sidecar::with_policy(dir.path(), POLICY, &upstream).await;
    let (client, config) = (Client::default(), sidecar.admin_url("/config"));
    let version = || async { client.get(&config).await.map(|r| r.json()["version"].as_u64()).ok().flatten() };
    let ws = |path: &str| format!("ws://{}{path}", sidecar.proxy);

    let echo = result(&talk(&ws("/ws/chat"), serde_json::json!({"messages": ["hello", "again"]}))).await;
    assert_eq!(echo["status"], 101, "{echo}");
    assert_eq!(echo["echoes"], serde_json::json!(["HELLO", "AGAIN"]), "{echo}");

    let locked = result(&talk(&ws("/locked"), serde_json::json!({"messages": ["x"]}))).await;
    assert_eq!(locked["status"], 401, "the upgrade request passes auth like any other: {locked}");
    assert!(locked["error"].as_str().unwrap_or_default().contains("credential_missing"), "{locked}");

    let plain = result(&talk(&ws("/elsewhere"), serde_json::json!({"messages": ["x"]}))).await;
    assert_ne!(plain["status"], 101, "a route without upgrades strips Upgrade: the app sees a plain GET: {plain}");

    // A tunnel quiet for its route's idle_timeout is closed, and says so.
    let mut quiet = Chat::open(&ws("/quiet")).await;
    assert_eq!(quiet.say("once").await, "ONCE");
    quiet.closed_by_peer().await;
    let idle = sidecar
        .proc
        .wait_for_json("the quiet tunnel's close", Duration::from_secs(10), |v| {
            v["route"] == "quiet" && v["tunnel"].is_object()
        })
        .await;
    assert_eq!(idle["tunnel"]["closed"], "idle", "{idle}");
    let lasted = idle["latency_ms"].as_f64().unwrap();
    assert!((300.0..5_000.0).contains(&lasted), "closed after its idle timeout, not long after: {idle}");
    // A tunnel opened under v1 keeps working after v2, which has no WebSocket route at all.
    let mut chat = Chat::open(&ws("/ws/long")).await;
    assert_eq!(chat.say("before").await, "BEFORE");
    write_policy(
        dir.path(),
        "p.yaml",
        "service: orders\nroutes:\n  - { name: other, match: { path_prefix: /other } }\n",
    );
    eventually("v2 is in use", Duration::from_secs(10), || async { version().await == Some(2) }).await;
    assert_eq!(chat.say("after").await, "AFTER", "the open tunnel outlives the swap");
    chat.close().await;
    let closed = sidecar
        .proc
        .wait_for_json("the tunnel's close in the access log", Duration::from_secs(10), |v| {
            v["tunnel"].is_object() && v["route"] == "ws"
        })
        .await;
    assert_eq!((closed["route"].as_str(), closed["status"].as_u64()), (Some("ws"), Some(101)), "{closed}");
    assert_eq!(closed["tunnel"]["closed"], "closed", "{closed}");
    // "before" and "after", each in a masked frame (6 bytes of header), and the close frame.
    assert!(closed["tunnel"]["bytes_to_app"].as_u64().unwrap() >= 2 * (6 + 6), "{closed}");
    assert!(closed["tunnel"]["bytes_to_client"].as_u64().unwrap() >= 2 * (2 + 6), "{closed}");
    let metrics = client.get(&sidecar.admin_url("/metrics")).await.unwrap().text();
    // The echo's tunnel and the chat's: each counted once, at its close.
    assert!(metrics.contains("warden_tunnels_closed_total{route=\"ws\",closed=\"closed\"} 2"), "{metrics}");
    assert!(metrics.contains("warden_tunnels_open 0"), "{metrics}");
    let refused = result(&talk(&ws("/ws/new"), serde_json::json!({"messages": ["x"]}))).await;
    assert_eq!(refused["status"], 404, "a new tunnel follows the new policy: {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_a_tunnel_runs_through_the_drain_period_then_is_closed_and_logged() {
    let mut cmd = Command::new("python3");
    cmd.arg(script()).arg("serve");
    let server = Proc::spawn_command("ws_peer.py serve", cmd);
    let line = server.wait_for_json("listening line", Duration::from_secs(20), |v| v["listening"].is_u64()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_policy(dir.path(), "p.yaml", POLICY);
    let upstream = format!("127.0.0.1:{}", line["listening"]);
    let args = ["--policy-file", &file, "--upstream", &upstream, "--drain-timeout", "3s"];
    let mut sidecar = Sidecar::start(&args).await;
    let (client, ready) = (Client::default(), sidecar.admin_url("/readyz"));
    eventually("ready", Duration::from_secs(10), || async { client.get(&ready).await.is_ok_and(|r| r.status == 200) })
        .await;

    let mut chat = Chat::open(&format!("ws://{}/ws/drain", sidecar.proxy)).await;
    assert_eq!(chat.say("before").await, "BEFORE");
    sidecar.proc.terminate();
    eventually("draining (readiness off)", Duration::from_secs(10), || async {
        client.get(&ready).await.is_ok_and(|r| r.status == 503)
    })
    .await;
    assert_eq!(chat.say("during").await, "DURING", "an open tunnel keeps working while the sidecar drains");
    chat.closed_by_peer().await;
    let closed = sidecar
        .proc
        .wait_for_json("the tunnel's close in the access log", Duration::from_secs(10), |v| v["tunnel"].is_object())
        .await;
    assert_eq!(closed["tunnel"]["closed"], "shutdown", "{closed}");
    assert!(closed["latency_ms"].as_f64().unwrap() >= 3000.0, "it had the whole drain period: {closed}");
    let exit = sidecar.proc.wait_exit(Duration::from_secs(10)).await.expect("the sidecar exits after the drain");
    assert!(exit.success(), "{exit:?}");
}
