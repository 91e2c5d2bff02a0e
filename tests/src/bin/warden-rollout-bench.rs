//! How fast a bad canary is rolled back by itself: a control plane, an app and two
//! sidecars of one service; each run applies a candidate that refuses 1 in 5 requests as a
//! canary on one sidecar (`--canary 50% --abort-if 'refused>+2%'`), then sends the mix to
//! both sidecars at `--rate` requests a second each. The abort condition holds once each
//! side has answered 50 requests (the evaluator's minimum) and the canary refused more
//! than the baseline; the run ends when the canary sidecar serves the live version again.
//! Prints, per run and as median and max, the time from the condition holding to the
//! canary back on the live version. Run by `tests/bench/rollout.sh`.
//!
//!   warden-rollout-bench [--runs 5] [--rate 100]

// A benchmark tool: a step that fails should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use warden_e2e::stack::orders_sidecar;
use warden_e2e::{App, Client, ControlPlane, Sidecar, eventually, write_policy};

#[derive(clap::Parser)]
struct Args {
    #[arg(long, default_value_t = 5)]
    runs: u32,
    /// Requests per second to each sidecar.
    #[arg(long, default_value_t = 100)]
    rate: u64,
}

const LIVE: &str = "service: orders
routes:
  - name: orders
    match: { path_prefix: /orders }
auth:
  keys: { type: api_key, header: x-api-key }
";

const BAD: &str = "service: orders
routes:
  - name: globex
    match: { path_prefix: /orders, headers: { x-tenant: globex } }
    auth: keys
  - name: orders
    match: { path_prefix: /orders }
auth:
  keys: { type: api_key, header: x-api-key }
";

/// The policy version `sidecar` serves.
async fn version(client: &Client, sidecar: &Sidecar) -> u64 {
    client.get(&sidecar.admin_url("/config")).await.map(|r| r.json()["version"].as_u64().unwrap_or(0)).unwrap_or(0)
}

/// Sends the mix (1 in 5 from globex) to `sidecar` at `rate` a second until `stop`;
/// counts answers in `answered`.
fn traffic(
    sidecar: &Sidecar,
    rate: u64,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let base = sidecar.url("/orders/");
    tokio::spawn(async move {
        let client = Client::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1) / u32::try_from(rate).unwrap());
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let tenant = if i.is_multiple_of(5) { "globex" } else { "acme" };
            let url = format!("{base}{i}");
            if client.send(http::Method::GET, &url, &[("x-tenant", tenant)], Default::default()).await.is_ok() {
                answered.fetch_add(1, Ordering::Relaxed);
            }
            i += 1;
        }
    })
}

#[tokio::main]
async fn main() {
    let args: Args = clap::Parser::parse();
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("data"), "127.0.0.1:0").await;
    let app = App::start("orders-app").await;
    let canary =
        orders_sidecar(&cp.url(), app.addr, &dir.path().join("s1"), "orders-1", &["--access-log", "off"]).await;
    let baseline =
        orders_sidecar(&cp.url(), app.addr, &dir.path().join("s2"), "orders-2", &["--access-log", "off"]).await;
    let client = Client::default();
    let (live, bad) = (write_policy(dir.path(), "live.yaml", LIVE), write_policy(dir.path(), "bad.yaml", BAD));
    assert_eq!(cp.ctl(&["apply", "-f", &live]).await.code, 0);
    let mut times = Vec::new();
    for run in 1..=args.runs {
        eventually("both sidecars on the live version", Duration::from_secs(10), || async {
            let v = version(&client, &canary).await;
            v > 0 && v == version(&client, &baseline).await
        })
        .await;
        let live_version = version(&client, &canary).await;
        let out = cp.ctl(&["apply", "-f", &bad, "--canary", "50%", "--abort-if", "refused>+2%", "-o", "json"]).await;
        assert_eq!(out.code, 0, "{out:?}");
        eventually("the canary serves the candidate", Duration::from_secs(10), || async {
            version(&client, &canary).await > live_version
        })
        .await;
        let stop = Arc::new(AtomicBool::new(false));
        let (a, b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let senders = [
            traffic(&canary, args.rate, stop.clone(), a.clone()),
            traffic(&baseline, args.rate, stop.clone(), b.clone()),
        ];
        // Both waits poll with a deadline (every 20 ms: well within a figure of seconds).
        eventually("50 requests answered on each side", Duration::from_secs(30), || async {
            a.load(Ordering::Relaxed) >= 50 && b.load(Ordering::Relaxed) >= 50
        })
        .await;
        let held = Instant::now();
        eventually("the canary back on the live version", Duration::from_secs(60), || async {
            version(&client, &canary).await == live_version
        })
        .await;
        let took = held.elapsed();
        stop.store(true, Ordering::Relaxed);
        for s in senders {
            s.await.unwrap();
        }
        println!(
            "run {run}: canary back on v{live_version} {:.2} s after the abort condition held",
            took.as_secs_f64()
        );
        times.push(took);
    }
    times.sort();
    println!(
        "abort: condition held -> every canary sidecar back on the live version: median {:.2} s, max {:.2} s over {} runs at {} req/s per sidecar (target <= 10 s)",
        times[times.len() / 2].as_secs_f64(),
        times[times.len() - 1].as_secs_f64(),
        times.len(),
        args.rate
    );
}
