//! Swap under load: a sidecar following a control plane, serving traffic in three phases:
//! no applies; applies to another service (the control plane just as busy, nothing for
//! this sidecar to swap); applies to this sidecar's service (each a new version it swaps
//! in and ACKs). `--rounds` interleaved rounds of `--seconds` per phase; prints requests,
//! failures, p50/p99 over all rounds, swaps and the sidecar's CPU per request and per
//! swap. Run by `tests/bench/swap.sh`.
//!
//! Closed loop (the default) saturates the machine, so it shows how much CPU the applies
//! take from the traffic. With `--rate`, each client sends on a fixed schedule instead
//! (a late request is sent at once, so the rate holds): how much the applies delay
//! requests on a machine with headroom, as a sidecar normally runs. Latency counts from
//! the send (tokio's timers are late by up to a millisecond, which would swamp it).
//!
//! With `--sidecar-cpu`, the sidecar (one worker) gets a core of its own, and `--cp-nice`
//! lowers the priority of the control plane and of the thread sending the applies: on a
//! 2-core machine that stands in for a control plane on another node, so what moves is
//! what a swap costs the sidecar itself, not the control plane's or this tool's CPU.
//!
//!   warden-swap-load [--seconds 10] [--clients 16] [--applies-per-sec 100] [--rate 0]
//!                    [--rounds 3] [--sidecar-cpu N] [--cp-nice N]

// A benchmark tool: a step that fails should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use warden_e2e::stack::orders_sidecar;
use warden_e2e::{App, Client, ControlPlane, Sidecar, cpu_secs, eventually, percentile};
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
    /// Pin the sidecar (all its threads) to this CPU and give it one worker.
    #[arg(long)]
    sidecar_cpu: Option<usize>,
    /// Rounds of the three phases.
    #[arg(long, default_value_t = 3)]
    rounds: u64,
    /// Run the control plane at this niceness.
    #[arg(long)]
    cp_nice: Option<i32>,
}

/// Runs a util-linux command that must succeed (`taskset`, `renice`).
fn run(cmd: &str, args: &[&str]) {
    let status = std::process::Command::new(cmd).args(args).stdout(std::process::Stdio::null()).status().unwrap();
    assert!(status.success(), "{cmd} {args:?}: {status}");
}

fn policy(service: &str, n: u64) -> String {
    format!(
        "service: {service}\nroutes:\n  - name: api\n    match: {{ path_prefix: / }}\n    response_headers: {{ set: {{ x-rev: \"{n}\" }} }}\n"
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

/// Offers `per_sec` applies a second for `secs` to `service`, each apply its own call, whatever the store takes per apply.
/// Runs on a thread of its own at `nice` so that, like a control plane on another node,
/// it takes CPU from the clients only when they leave some. Returns (offered, stored).
fn applies(
    cp: String,
    service: &'static str,
    per_sec: u64,
    secs: u64,
    nice: Option<i32>,
) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        if let Some(n) = nice {
            // /proc/thread-self is "PID/task/TID": renice takes a thread id.
            let me = std::fs::read_link("/proc/thread-self").unwrap();
            run("renice", &["-n", &n.to_string(), "-p", &me.file_name().unwrap().to_string_lossy()]);
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let admin = AdminServiceClient::connect(cp).await.unwrap();
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_sec.max(1)));
            let deadline = Instant::now() + Duration::from_secs(secs);
            let mut calls = Vec::new();
            while Instant::now() < deadline {
                tick.tick().await;
                let mut admin = admin.clone();
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                let req = ApplyRequest {
                    file_name: "p.yaml".into(),
                    source: policy(service, n),
                    author: "swap".into(),
                    ..Default::default()
                };
                calls.push(tokio::spawn(async move { admin.apply(req).await.is_ok() }));
            }
            let offered = calls.len() as u64;
            let mut stored = 0;
            for c in calls {
                stored += u64::from(c.await.unwrap_or(false));
            }
            (offered, stored)
        })
    })
}

/// What one phase measured over the rounds.
#[derive(Clone, Default)]
struct Phase {
    /// Every round's latencies, pooled: a p99 over all of them is steadier than a median
    /// of per-round p99s.
    latencies: Vec<Duration>,
    requests: u64,
    failed: u64,
    /// The sidecar's CPU time over the phase, in seconds.
    cpu_secs: f64,
    swaps: u64,
}

/// Snapshots the sidecar has swapped in since it started.
async fn swap_count(client: &Client, sidecar: &Sidecar) -> u64 {
    let config = client.get(&sidecar.admin_url("/config")).await.unwrap().json();
    config["swaps"].as_u64().unwrap()
}

/// A new `x-rev` per apply, so every apply is a new version.
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[tokio::main]
async fn main() {
    let a = <Args as clap::Parser>::parse();
    let (secs, clients) = (a.seconds, a.clients);
    let dir = tempfile::tempdir().unwrap();
    let cp = ControlPlane::start(&dir.path().join("data"), "127.0.0.1:0").await;
    if let Some(n) = a.cp_nice {
        // Every thread: renice -p changes only the one whose id it is given.
        for task in std::fs::read_dir(format!("/proc/{}/task", cp.proc.pid())).unwrap() {
            run("renice", &["-n", &n.to_string(), "-p", &task.unwrap().file_name().to_string_lossy()]);
        }
    }
    let app = App::start("app").await;
    let mut flags = vec!["--access-log", "off"];
    if a.sidecar_cpu.is_some() {
        flags.extend(["--threads", "1"]);
    }
    let sidecar = orders_sidecar(&cp.url(), app.addr, &dir.path().join("state"), "swap-1", &flags).await;
    if let Some(cpu) = a.sidecar_cpu {
        run("taskset", &["-a", "-p", "-c", &cpu.to_string(), &sidecar.proc.pid().to_string()]);
    }
    let first = ApplyRequest { file_name: "p.yaml".into(), source: policy("orders", 0), ..Default::default() };
    AdminServiceClient::connect(cp.url()).await.unwrap().apply(first).await.unwrap();
    let url = sidecar.url("/x");
    let client = Client::default();
    eventually("the sidecar serves", Duration::from_secs(10), || async {
        client.get(&url).await.is_ok_and(|r| r.status == 200)
    })
    .await;

    // Interleaved rounds, so drift on a shared machine lands on every phase alike.
    let phases = ["no applies", "applies to another service", "applies to this sidecar"];
    let mut results: Vec<Phase> = vec![Phase::default(); 3];
    let (mut offered, mut stored) = (0, 0);
    for _ in 0..a.rounds {
        for (i, r) in results.iter_mut().enumerate() {
            let applier = match i {
                0 => None,
                1 => Some(applies(cp.url(), "billing", a.applies_per_sec, secs, a.cp_nice)),
                _ => Some(applies(cp.url(), "orders", a.applies_per_sec, secs, a.cp_nice)),
            };
            let (cpu, swaps) = (cpu_secs(sidecar.proc.pid()), swap_count(&client, &sidecar).await);
            let (lat, failed) = load(&url, clients, secs, a.rate).await;
            if let Some(t) = applier {
                let (o, s) = tokio::task::spawn_blocking(|| t.join().unwrap()).await.unwrap();
                (offered, stored) = (offered + o, stored + s);
            }
            r.latencies.extend(&lat);
            (r.requests, r.failed) = (r.requests + lat.len() as u64 + failed, r.failed + failed);
            r.cpu_secs += cpu_secs(sidecar.proc.pid()) - cpu;
            r.swaps += swap_count(&client, &sidecar).await - swaps;
        }
    }
    println!(
        "{:<28} {:>9} {:>7} {:>10} {:>10} {:>6} {:>13}",
        "phase (all rounds)", "requests", "failed", "p50", "p99", "swaps", "sidecar µs/req"
    );
    let mut p99 = Vec::new();
    for (name, r) in phases.iter().zip(&mut results) {
        r.latencies.sort();
        let (m50, m99) = (percentile(&r.latencies, 0.5), percentile(&r.latencies, 0.99));
        p99.push(m99.as_secs_f64());
        let per_req = r.cpu_secs * 1e6 / r.requests.max(1) as f64;
        println!(
            "{name:<28} {:>9} {:>7} {m50:>10.2?} {m99:>10.2?} {:>6} {per_req:>13.2}",
            r.requests, r.failed, r.swaps
        );
    }
    let (other, own) = (&results[1], &results[2]);
    let extra_cpu_us = (own.cpu_secs - other.cpu_secs * own.requests as f64 / other.requests.max(1) as f64) * 1e6;
    println!(
        "{} rounds of {secs} s per phase; {} applies/s offered: {offered}, stored {stored}; sidecar CPU per swap ~{:.0} µs",
        a.rounds,
        a.applies_per_sec,
        extra_cpu_us / own.swaps.max(1) as f64
    );
    println!(
        "p99 moved {:+.1}% by the swaps (this sidecar vs another service), {:+.1}% in all (vs no applies)",
        (p99[2] / p99[1] - 1.0) * 100.0,
        (p99[2] / p99[0] - 1.0) * 100.0
    );
}
