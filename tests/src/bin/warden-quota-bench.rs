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

struct Args {
    sidecars: usize,
    seconds: u64,
    rate: String,
    burst: u64,
    times: f64,
    spread: Vec<f64>,
}

fn args() -> Args {
    let mut a = Args {
        sidecars: 10,
        seconds: 60,
        rate: "1200/min".into(),
        burst: 10,
        times: 10.0,
        spread: vec![40.0, 20.0, 10.0, 8.0, 6.0, 5.0, 4.0, 3.0, 2.0, 2.0],
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v = pair.get(1).map(String::as_str).unwrap_or_default();
        match pair[0].as_str() {
            "--sidecars" => a.sidecars = v.parse().expect("--sidecars N"),
            "--seconds" => a.seconds = v.parse().expect("--seconds N"),
            "--rate" => a.rate = v.to_owned(),
            "--burst" => a.burst = v.parse().expect("--burst N"),
            "--times" => a.times = v.parse().expect("--times X"),
            "--spread" => a.spread = v.split(',').map(|w| w.trim().parse().expect("--spread W,W,...")).collect(),
            other => panic!("unknown argument {other}"),
        }
    }
    a.spread.resize(a.sidecars, *a.spread.last().unwrap_or(&1.0));
    a
}

#[tokio::main]
async fn main() {
    let a = args();
    let (count, period) = parse_rate(&a.rate);
    let quota_per_sec = count as f64 / period;
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

/// `1200/min` -> (1200, 60.0 seconds).
fn parse_rate(rate: &str) -> (u64, f64) {
    let (n, per) = rate.split_once('/').expect("rate like 1200/min");
    let secs = match per {
        "s" => 1.0,
        "min" => 60.0,
        "hour" => 3600.0,
        "day" => 86_400.0,
        _ => panic!("rate unit: s, min, hour or day"),
    };
    (n.parse().expect("rate count"), secs)
}
