//! The control-plane load tool: opens N simulated sidecar streams for one service that ACK
//! every snapshot like real sidecars (and report on the report stream like them), then
//! measures apply → all-ACKed latency over a number of applies, the control plane's RSS and
//! CPU, and a reconnect storm (every stream reconnecting at once after a control-plane
//! restart). Run by `tests/bench/cp-scale.sh`.
//!
//! With `--replicas N` the control plane is N replicas on one PostgreSQL (a throwaway
//! cluster, `warden_e2e::postgres`): the streams are spread over them, applies and key
//! revocations go through the first, and the last is killed to time how fast its streams
//! are back on the others.
//!
//!   warden-cp-load [--sidecars 1000] [--applies 20] [--connections 200] [--routes 1]
//!   warden-cp-load --replicas 3 [--sidecars 1000] [--applies 20] [--revocations 20]

// A benchmark tool: a step that fails should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message;
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use warden_e2e::{ControlPlane, cpu_secs, percentile, write_policy};
use warden_proto::v1::sidecar_message::Kind;
use warden_proto::v1::sidecar_service_client::SidecarServiceClient;
use warden_proto::v1::{Ack, Credentials, CredentialsAck, Hello, SidecarMessage, Snapshot};

/// Control-plane load tool.
#[derive(clap::Parser)]
struct Args {
    /// Simulated sidecar streams.
    #[arg(long, default_value_t = 1000)]
    sidecars: usize,
    /// Applies to time.
    #[arg(long, default_value_t = 20)]
    applies: usize,
    /// TCP connections the streams share.
    #[arg(long, default_value_t = 200)]
    connections: usize,
    /// Routes in the policy (a bigger snapshot to send).
    #[arg(long, default_value_t = 1)]
    routes: usize,
    /// Control-plane replicas on one PostgreSQL (1: one control plane on SQLite).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Key revocations to time (with --replicas).
    #[arg(long, default_value_t = 20)]
    revocations: usize,
}

/// The highest version and credentials revision every stream has ACKed, and how many
/// times each has (re)connected.
struct Fleet {
    acked: Vec<AtomicU64>,
    credentials: Vec<AtomicU64>,
    sessions: Vec<AtomicU64>,
    changed: Notify,
}

impl Fleet {
    fn new(n: usize) -> Fleet {
        let zeros = || (0..n).map(|_| AtomicU64::new(0)).collect();
        Fleet { acked: zeros(), credentials: zeros(), sessions: zeros(), changed: Notify::new() }
    }

    fn all_at(&self, version: u64) -> bool {
        self.acked.iter().all(|a| a.load(Ordering::Relaxed) >= version)
    }
}

/// One simulated sidecar. `channels` are the replicas it may use, the `i % len`th first;
/// when a stream breaks it moves on to the next, as a real sidecar given several URLs.
async fn sidecar(channels: Vec<Channel>, i: usize, fleet: Arc<Fleet>) {
    let mut attempt = 0;
    loop {
        let channel = channels[(i + attempt) % channels.len()].clone();
        attempt += 1;
        let mut client = SidecarServiceClient::new(channel);
        let (tx, rx) = mpsc::channel(8);
        let hello = Hello {
            service: "orders".into(),
            instance: format!("sim-{i}"),
            version: fleet.acked[i].load(Ordering::Relaxed),
            credentials_revision: fleet.credentials[i].load(Ordering::Relaxed),
            credentials_epoch: EPOCH.load(Ordering::Relaxed),
            schema: 5,
            ..Default::default()
        };
        let _ = tx.send(SidecarMessage { kind: Some(Kind::Hello(hello)) }).await;
        let Ok(resp) = client.subscribe(ReceiverStream::new(rx)).await else {
            tokio::time::sleep(Duration::from_millis(200 + (i as u64 % 300))).await;
            continue;
        };
        let mut pushes = resp.into_inner();
        fleet.sessions[i].fetch_add(1, Ordering::Relaxed);
        fleet.changed.notify_waiters();
        while let Ok(Some(push)) = pushes.message().await {
            // Decoded as a real sidecar decodes them.
            if let Some(c) = push.credentials.and_then(|b| Credentials::decode(b).ok()) {
                EPOCH.store(c.epoch, Ordering::Relaxed);
                fleet.credentials[i].fetch_max(c.revision, Ordering::Relaxed);
                fleet.changed.notify_waiters();
                let ack = CredentialsAck { revision: c.revision };
                let _ = tx.send(SidecarMessage { kind: Some(Kind::CredentialsAck(ack)) }).await;
            }
            if let Some(s) = push.snapshot.and_then(|b| Snapshot::decode(b).ok()) {
                let _ = tx.send(SidecarMessage { kind: Some(Kind::Ack(Ack { version: s.version })) }).await;
                fleet.acked[i].fetch_max(s.version, Ordering::Relaxed);
                fleet.changed.notify_waiters();
            }
        }
        tokio::time::sleep(Duration::from_millis(100 + (i as u64 % 400))).await;
    }
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// The store's credentials epoch, as the streams last heard it (one store: one epoch).
static EPOCH: AtomicU64 = AtomicU64::new(0);

async fn wait_all(fleet: &Fleet, version: u64, limit: Duration) -> Option<Duration> {
    wait_until(fleet, limit, || fleet.all_at(version)).await
}

/// Waits until `done`, woken by every ACK and reconnection; None after `limit`.
async fn wait_until(fleet: &Fleet, limit: Duration, done: impl Fn() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return None;
        }
        let _ = tokio::time::timeout(Duration::from_millis(5), fleet.changed.notified()).await;
    }
    Some(start.elapsed())
}

#[tokio::main]
async fn main() {
    let a = <Args as clap::Parser>::parse();
    if a.replicas > 1 {
        return replicas(&a).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut cp = ControlPlane::start(&data, "127.0.0.1:0").await;
    let addr = cp.addr;
    let policy = |i: usize| policy(i, a.routes);
    let file = write_policy(dir.path(), "p.yaml", &policy(0));
    assert_eq!(cp.ctl(&["apply", "-f", &file]).await.code, 0);

    let fleet = Arc::new(Fleet::new(a.sidecars));
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).unwrap().tcp_nodelay(true);
    let channels: Vec<Channel> = (0..a.connections.max(1)).map(|_| endpoint.connect_lazy()).collect();
    let start = Instant::now();
    for i in 0..a.sidecars {
        tokio::spawn(sidecar(vec![channels[i % channels.len()].clone()], i, fleet.clone()));
    }
    let connected = wait_all(&fleet, 1, Duration::from_secs(120)).await;
    println!(
        "{} streams over {} connections: all on v1 after {:?}",
        a.sidecars,
        channels.len(),
        connected.map(|_| start.elapsed())
    );
    let (rss_idle, cpu0) = (rss_mib(cp.proc.pid()), cpu_secs(cp.proc.pid()));

    let mut lat = Vec::new();
    for n in 1..=a.applies {
        let file = write_policy(dir.path(), "p.yaml", &policy(n));
        let t = Instant::now();
        let out = cp.ctl(&["apply", "-f", &file]).await;
        assert_eq!(out.code, 0, "{out:?}");
        let version = n as u64 + 1;
        let all = wait_all(&fleet, version, Duration::from_secs(60)).await;
        lat.push(all.map(|_| t.elapsed()).unwrap_or(Duration::MAX));
    }
    let cpu = cpu_secs(cp.proc.pid()) - cpu0;
    let rss = rss_mib(cp.proc.pid());
    lat.sort();
    println!(
        "apply -> all {} ACKed, over {} applies (wardenctl start included): p50 {:?}, p99 {:?}, max {:?}",
        a.sidecars,
        a.applies,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
    println!(
        "control plane: RSS {rss_idle:.1} MiB with the streams idle, {rss:.1} MiB after the applies; CPU {cpu:.2} s for the applies"
    );

    // Reconnect storm: restart the control plane; every stream reconnects at once.
    let last = a.applies as u64 + 1;
    cp.proc.kill9();
    let t = Instant::now();
    let mut cp2 = ControlPlane::start(&data, &addr.to_string()).await;
    let file = write_policy(dir.path(), "p.yaml", &policy(a.applies + 1));
    // Everyone back: each stream resends Hello and gets the current version (already held).
    let back = {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = cp2.ctl(&["status", "-o", "json"]).await;
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
            let n = v["sidecars"].as_array().map_or(0, |s| s.iter().filter(|s| s["connected"] == true).count());
            if n >= a.sidecars || Instant::now() > deadline {
                break (n, t.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(cp2.ctl(&["apply", "-f", &file]).await.code, 0);
    let after = wait_all(&fleet, last + 1, Duration::from_secs(60)).await;
    println!(
        "reconnect storm: {} of {} streams back {:?} after the restart; the next apply reached all in {:?}; RSS {:.1} MiB",
        back.0,
        a.sidecars,
        back.1,
        after,
        rss_mib(cp2.proc.pid())
    );
    cp2.proc.kill9();
}

/// The policy of apply `i`: its first route's name changes, so every apply is a version.
fn policy(i: usize, routes: usize) -> String {
    let mut p = format!("service: orders\nroutes:\n  - name: r{i}\n    match: {{ path_prefix: /r{i} }}\n");
    for r in 1..routes {
        p += &format!("  - name: route{r}\n    match: {{ path_prefix: /route{r} }}\n");
    }
    p
}

/// `--replicas N`: N replicas on one PostgreSQL, the streams spread over them.
async fn replicas(a: &Args) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = warden_e2e::postgres::database().await;
    let mut cps = Vec::new();
    for _ in 0..a.replicas {
        cps.push(ControlPlane::on_database(&db.url).await);
    }
    let file = write_policy(dir.path(), "p.yaml", &policy(0, a.routes));
    assert_eq!(cps[0].ctl(&["apply", "-f", &file]).await.code, 0);
    let fleet = Arc::new(Fleet::new(a.sidecars));
    // Connections per replica; stream i starts on replica i % N (through one of its
    // connections) and moves on to the next replica when its stream breaks.
    let per = (a.connections / a.replicas).max(1);
    let channels: Vec<Vec<Channel>> = cps
        .iter()
        .map(|cp| {
            let endpoint = Endpoint::from_shared(format!("http://{}", cp.addr)).unwrap().tcp_nodelay(true);
            (0..per).map(|_| endpoint.connect_lazy()).collect()
        })
        .collect();
    let start = Instant::now();
    for i in 0..a.sidecars {
        let mine: Vec<Channel> = (0..a.replicas).map(|r| channels[r][(i / a.replicas) % per].clone()).collect();
        tokio::spawn(sidecar(mine, i, fleet.clone()));
    }
    let connected = wait_all(&fleet, 1, Duration::from_secs(120)).await;
    println!(
        "{} streams over {} replicas ({} connections each): all on v1 after {:?}",
        a.sidecars,
        a.replicas,
        per,
        connected.map(|_| start.elapsed())
    );

    let mut lat = Vec::new();
    for n in 1..=a.applies {
        let file = write_policy(dir.path(), "p.yaml", &policy(n, a.routes));
        let t = Instant::now();
        let out = cps[0].ctl(&["apply", "-f", &file]).await;
        assert_eq!(out.code, 0, "{out:?}");
        let all = wait_all(&fleet, n as u64 + 1, Duration::from_secs(60)).await;
        lat.push(all.map(|_| t.elapsed()).unwrap_or(Duration::MAX));
    }
    lat.sort();
    println!(
        "apply through replica 1 -> all {} ACKed, over {} applies (wardenctl start included): p50 {:?}, p99 {:?}, max {:?}",
        a.sidecars,
        a.applies,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );

    // Key revocations through replica 1: until every stream, on every replica, holds the
    // credentials revision that revoked it.
    let mut lat = Vec::new();
    for _ in 0..a.revocations {
        let out = cps[0].ctl(&["keys", "create", "--service", "orders", "--client", "acme", "-o", "json"]).await;
        let id = serde_json::from_str::<serde_json::Value>(&out.stdout).expect("keys create json")["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let held = |f: &Fleet| f.credentials.iter().map(|c| c.load(Ordering::Relaxed)).min().unwrap_or(0);
        let created = wait_until(&fleet, Duration::from_secs(60), || held(&fleet) > 0).await;
        assert!(created.is_some(), "the key reached every stream");
        // Every stream holds the key's revision once the maximum is everywhere.
        let target = fleet.credentials.iter().map(|c| c.load(Ordering::Relaxed)).max().unwrap_or(0);
        wait_until(&fleet, Duration::from_secs(60), || held(&fleet) >= target).await;
        let t = Instant::now();
        assert_eq!(cps[0].ctl(&["keys", "revoke", &id]).await.code, 0);
        let all = wait_until(&fleet, Duration::from_secs(60), || held(&fleet) > target).await;
        lat.push(all.map(|_| t.elapsed()).unwrap_or(Duration::MAX));
    }
    lat.sort();
    println!(
        "key revocation through replica 1 -> every stream holds it, over {} revocations (wardenctl start included): p50 {:?}, p99 {:?}, max {:?}",
        a.revocations,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
    let rss: Vec<String> = cps.iter().map(|cp| format!("{:.1}", rss_mib(cp.proc.pid()))).collect();
    println!("replicas' RSS (MiB) with {} streams spread over them: {}", a.sidecars, rss.join(", "));

    // Kill the last replica: its streams move to the others.
    let killed = a.replicas - 1;
    let orphans: Vec<usize> = (0..a.sidecars).filter(|i| i % a.replicas == killed).collect();
    let before: Vec<u64> = orphans.iter().map(|&i| fleet.sessions[i].load(Ordering::Relaxed)).collect();
    let t = Instant::now();
    cps[killed].proc.kill9();
    let back = wait_until(&fleet, Duration::from_secs(60), || {
        orphans.iter().zip(&before).all(|(&i, &n)| fleet.sessions[i].load(Ordering::Relaxed) > n)
    })
    .await;
    println!(
        "replica {} of {} killed (kill -9): its {} streams back on the others after {:?}",
        killed + 1,
        a.replicas,
        orphans.len(),
        back.map(|_| t.elapsed())
    );
}
