//! The global quota benchmark: a control plane, N sidecars of one service in front of the
//! echo app, one API key with a global quota, and a client offering M times the quota
//! spread unevenly across the sidecars for a while. Prints what each sidecar admitted and
//! how far the total is from the quota. Run by `tests/bench/quota.sh`.
//!
//!   warden-quota-bench [--sidecars 10] [--seconds 60] [--rate 1200/min] [--burst 10]
//!                      [--times 10] [--spread 40,20,10,8,6,5,4,3,2,2]

// A benchmark tool: a step that fails should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use warden_e2e::stack::orders_sidecar;
use warden_e2e::{App, Client, ControlPlane, Sidecar, eventually, write_policy};

/// Global quota benchmark.
#[derive(clap::Parser)]
struct Args {
    #[arg(long, default_value_t = 10)]
    sidecars: usize,
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// The quota, like 1200/min.
    #[arg(long, default_value = "1200/min")]
    rate: String,
    #[arg(long, default_value_t = 10)]
    burst: u64,
    /// Offered load, as a multiple of the quota.
    #[arg(long, default_value_t = 10.0)]
    times: f64,
    /// Weights of the offered load per sidecar (the last repeats).
    #[arg(long, value_delimiter = ',', default_value = "40,20,10,8,6,5,4,3,2,2")]
    spread: Vec<f64>,
}

#[tokio::main]
async fn main() {
    let mut a = <Args as clap::Parser>::parse();
    a.spread.resize(a.sidecars, *a.spread.last().unwrap_or(&1.0));
    let (count, period) = warden_policy::yaml::parse_rate(&a.rate).expect("--rate like 1200/min");
    let quota_per_sec = count as f64 / period.as_secs_f64();
    let dir = tempfile::tempdir().expect("tempdir");
    let cp = ControlPlane::start(&dir.path().join("data"), "127.0.0.1:0").await;
    let app = App::start("app").await;
    let policy = format!(
        "service: orders
routes:
  - name: api
    match: {{ path_prefix: / }}
    auth: keys
    limits: [quota]
auth:
  keys: {{ type: api_key, header: x-api-key }}
limits:
  quota: {{ key: client_id, rate: {}, burst: {}, scope: global }}
",
        a.rate, a.burst
    );
    let file = write_policy(dir.path(), "p.yaml", &policy);
    assert_eq!(cp.ctl(&["apply", "-f", &file]).await.code, 0, "apply");
    let key = cp.ctl(&["keys", "create", "--service", "orders", "--client", "acme"]).await.stdout.trim().to_owned();
    let mut sidecars: Vec<Sidecar> = Vec::new();
    for i in 0..a.sidecars {
        let state = dir.path().join(format!("state-{i}"));
        sidecars
            .push(orders_sidecar(&cp.url(), app.addr, &state, &format!("bench-{i}"), &["--access-log", "off"]).await);
    }
    let client = Client::default();
    for sc in &sidecars {
        let url = sc.url("/warm");
        eventually("the sidecar has the key", Duration::from_secs(10), || async {
            client
                .send(http::Method::GET, &url, &[("x-api-key", &key)], bytes::Bytes::new())
                .await
                .is_ok_and(|r| r.status != 401)
        })
        .await;
    }
    // Long enough for the warm-up requests to be forgotten everywhere.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let offered = quota_per_sec * a.times;
    let weight: f64 = a.spread.iter().sum();
    let mut tasks = Vec::new();
    for (sc, w) in sidecars.iter().zip(&a.spread) {
        let per_sec = offered * w / weight;
        let (client, url, key, secs) = (client.clone(), sc.url("/x"), key.clone(), a.seconds);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
            let (mut sent, mut ok) = (0u64, 0u64);
            while tokio::time::Instant::now() < deadline {
                tick.tick().await;
                sent += 1;
                let r = client.send(http::Method::GET, &url, &[("x-api-key", &key)], bytes::Bytes::new()).await;
                ok += u64::from(r.is_ok_and(|r| r.status == 200));
            }
            (per_sec, sent, ok)
        }));
    }
    println!("{:>8} {:>8} {:>12} {:>10} {:>10}", "sidecar", "weight", "offered/s", "sent", "admitted");
    let mut total = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        let (per_sec, sent, ok) = t.await.expect("load task");
        println!("{:>8} {:>8} {:>12.1} {:>10} {:>10}", i, a.spread[i], per_sec, sent, ok);
        total += ok;
    }
    let quota = quota_per_sec * a.seconds as f64;
    let allowed = quota + a.burst as f64;
    println!(
        "quota {} over {} s = {:.0} requests (+ burst {} = {:.0} for one ideal limiter); offered {:.0}/s ({}x)",
        a.rate, a.seconds, quota, a.burst, allowed, offered, a.times
    );
    println!("admitted {total} = {:+.1}% of the quota", (total as f64 / quota - 1.0) * 100.0);
}
