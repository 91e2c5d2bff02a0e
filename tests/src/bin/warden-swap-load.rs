//! Swap under load: a sidecar following a control plane, serving closed-loop traffic,
//! first with no policy changes, then while the control plane receives 100 applies a
//! second (each a new version every sidecar must swap in). Prints failed requests and
//! p50/p99 for both phases. Run by `tests/bench/swap.sh`.
//!
//! Closed loop (the default) saturates the machine, so it shows how much CPU the applies
//! take from the traffic. With `--rate`, each client sends on a fixed schedule instead
//! (a late request is sent at once, so the rate holds): how much the applies delay
//! requests on a machine with headroom, as a sidecar normally runs. Latency counts from
//! the send (tokio's timers are late by up to a millisecond, which would swamp it).
//!
//!   warden-swap-load [--seconds 10] [--clients 16] [--applies-per-sec 100] [--rate 0]

// A benchmark tool: a step that fails should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use warden_e2e::stack::orders_sidecar;
use warden_e2e::{App, Client, ControlPlane, eventually, percentile};
use warden_proto::v1::ApplyRequest;
use warden_proto::v1::admin_service_client::AdminServiceClient;

/// Swap under load.
#[derive(clap::Parser)]
struct Args {
    /// Length of each phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Closed-loop clients.
    #[arg(long, default_value_t = 16)]
    clients: u64,
    #[arg(long, default_value_t = 100)]
    applies_per_sec: u64,
    /// Requests per second, all clients together, sent on a fixed schedule (0: closed loop).
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

fn policy(n: u64) -> String {
    format!(
        "service: orders\nroutes:\n  - name: api\n    match: {{ path_prefix: / }}\n    response_headers: {{ set: {{ x-rev: \"{n}\" }} }}\n"
    )
}

/// Runs `clients` loops for `secs`, closed or (with a `rate`) on a fixed schedule;
/// returns (latencies, failures).
async fn load(url: &str, clients: u64, secs: u64, rate: u64) -> (Vec<Duration>, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, stop) = (Client::default(), url.to_owned(), stop.clone());
        let mut schedule = (rate > 0).then(|| tokio::time::interval(Duration::from_secs(clients) / rate as u32));
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut failed) = (Vec::new(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                if let Some(s) = &mut schedule {
                    s.tick().await;
                }
                let t = Instant::now();
                match client.get(&url).await {
                    Ok(r) if r.status == 200 => lat.push(t.elapsed()),
                    _ => failed += 1,
                }
            }
            (lat, failed)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut all, mut failed) = (Vec::new(), 0);
    for t in tasks {
        let (l, f) = t.await.unwrap();
        all.extend(l);
        failed += f;
    }
    all.sort();
    (all, failed)
}

#[tokio::main]
async fn main() {
    let a = <Args as clap::Parser>::parse();
    let (secs, clients, rate) = (a.seconds, a.clients, a.applies_per_sec);
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("data"), "127.0.0.1:0").await;
    let app = App::start("app").await;
    let sidecar =
        orders_sidecar(&cp.url(), app.addr, &dir.path().join("state"), "swap-1", &["--access-log", "off"]).await;
    let mut admin = AdminServiceClient::connect(cp.url()).await.unwrap();
    let apply = |n: u64| ApplyRequest {
        file_name: "p.yaml".into(),
        source: policy(n),
        author: "swap".into(),
        ..Default::default()
    };
    admin.apply(apply(0)).await.unwrap();
    let url = sidecar.url("/x");
    let client = Client::default();
    eventually("the sidecar serves", Duration::from_secs(10), || async {
        client.get(&url).await.is_ok_and(|r| r.status == 200)
    })
    .await;

    let (quiet, quiet_failed) = load(&url, clients, secs, a.rate).await;
    let applier = tokio::spawn(async move {
        // Offered at the rate whatever the store takes per apply: each apply its own call.
        let every = Duration::from_micros(1_000_000 / rate.max(1));
        let mut tick = tokio::time::interval(every);
        let (deadline, mut n) = (Instant::now() + Duration::from_secs(secs), 0u64);
        let mut calls = Vec::new();
        while Instant::now() < deadline {
            tick.tick().await;
            n += 1;
            let (mut admin, req) = (admin.clone(), apply(n));
            calls.push(tokio::spawn(async move { admin.apply(req).await.is_ok() }));
        }
        let mut done = 0u64;
        for c in calls {
            done += u64::from(c.await.unwrap_or(false));
        }
        (n, done)
    });
    let (busy, busy_failed) = load(&url, clients, secs, a.rate).await;
    let (offered, applies) = applier.await.unwrap();
    let config: serde_json::Value = client.get(&sidecar.admin_url("/config")).await.unwrap().json();
    println!("{:<28} {:>10} {:>8} {:>10} {:>10}", "phase", "requests", "failed", "p50", "p99");
    for (name, l, f) in [("no applies", &quiet, quiet_failed), (&*format!("{rate} applies/s"), &busy, busy_failed)] {
        println!("{:<28} {:>10} {:>8} {:>10.2?} {:>10.2?}", name, l.len(), f, percentile(l, 0.5), percentile(l, 0.99));
    }
    println!(
        "applies offered {offered} in {secs} s, {applies} stored; the sidecar swapped {} snapshots (it serves v{})",
        config["swaps"], config["version"]
    );
    let (q99, b99) = (percentile(&quiet, 0.99).as_secs_f64(), percentile(&busy, 0.99).as_secs_f64());
    println!("p99 moved {:+.1}%", (b99 / q99 - 1.0) * 100.0);
}
