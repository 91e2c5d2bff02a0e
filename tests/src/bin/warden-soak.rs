//! `warden-soak`: an hour (or `--duration`) of everything at once against the release
//! binaries, to find what only time finds: memory or descriptors that creep, a defence
//! that holds for one attack but not for the hundredth, a key or policy change that drops
//! a request once in a hundred thousand. Not a CI test: run by `tests/bench/soak.sh`.
//!
//! On 127.0.0.1: a control plane (its own store), the demo app, a stalled upstream, and a
//! sidecar for `orders` (policy in `soak/ops.rs`). Then, for the duration, all at once:
//! - legitimate load at `--rate`, HTTP/1.1 and HTTP/2, plain, API-key and signed-webhook
//!   requests, every answer checked (200, from the right route, with what Warden adds),
//!   and a greedy client over its limit on purpose (200 or 429, counted apart);
//! - every `--apply-every` a policy apply (two versions in turn), every `--keys-every` a
//!   key rotation (create, wait until the sidecar holds it, switch the load, wait until
//!   no request carries the old key, revoke it, check it is refused), every
//!   `--restart-every` a control-plane restart (SIGTERM, `--cp-down`, same port and store);
//! - an attack every 15-30 s, cycling through the kinds of `soak/attack.rs`;
//! - every second the sidecar's and the control plane's RSS and descriptors.
//!
//! Writes `<out-dir>/<name>.csv`, `.svg` and `.txt`; exits 1 if a legitimate request
//! failed or an operation did not take effect. The processes' logs stay in a temporary
//! directory, kept (and named) when something failed.
//!
//!   warden-soak [--duration 1h] [--rate 200] [--apply-every 20s] [--keys-every 10s]
//!               [--restart-every 5m] [--cp-down 5s] [--attack-gap-min 15s]
//!               [--attack-gap-max 30s] [--attack-secs 4s] [--out-dir DIR] [--name NAME]

// A benchmark tool: a step that fails should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use warden_e2e::process::field;
use warden_e2e::soak::attack::{self, Kind, Outcome, Target};
use warden_e2e::soak::daemon::{Daemon, STARTED, footprint, started};
use warden_e2e::soak::load::{self, CurrentKey, LoadConfig, Tally};
use warden_e2e::soak::ops::{INSTANCE, Operator, Stats, ctl, in_sync};
use warden_e2e::soak::report::{self, Period, Row, median, quantile, spread};
use warden_e2e::{Client, hostile};

fn duration(s: &str) -> Result<Duration, String> {
    warden_policy::yaml::parse_duration(s)
}

/// A soak run of the release binaries.
#[derive(clap::Parser)]
struct Args {
    #[arg(long, default_value = "1h", value_parser = duration)]
    duration: Duration,
    /// Legitimate requests per second, all kinds together.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    #[arg(long, default_value = "20s", value_parser = duration)]
    apply_every: Duration,
    #[arg(long, default_value = "10s", value_parser = duration)]
    keys_every: Duration,
    /// 0s: never.
    #[arg(long, default_value = "5m", value_parser = duration)]
    restart_every: Duration,
    /// How long the control plane stays down at each restart.
    #[arg(long, default_value = "5s", value_parser = duration)]
    cp_down: Duration,
    /// Attacks start at random between these apart.
    #[arg(long, default_value = "15s", value_parser = duration)]
    attack_gap_min: Duration,
    #[arg(long, default_value = "30s", value_parser = duration)]
    attack_gap_max: Duration,
    /// How long each attack attacks (those that wait for the sidecar to cut them off last
    /// until it has).
    #[arg(long, default_value = "4s", value_parser = duration)]
    attack_secs: Duration,
    /// The sidecar's --header-read-timeout and --send-timeout: short, so attacks are cut
    /// off within seconds.
    #[arg(long, default_value = "2s", value_parser = duration)]
    header_read_timeout: Duration,
    #[arg(long, default_value = "2s", value_parser = duration)]
    send_timeout: Duration,
    /// The legitimate client's deadline per request.
    #[arg(long, default_value = "5s", value_parser = duration)]
    request_timeout: Duration,
    #[arg(long, default_value = "tests/bench/results")]
    out_dir: PathBuf,
    #[arg(long, default_value = "soak-latest")]
    name: String,
    /// Varies the attack gaps and hostile spellings; the same seed, the same schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only these attack kinds, comma-separated (default: all, in turn).
    #[arg(long, value_delimiter = ',', value_parser = attack_kind)]
    attacks: Vec<Kind>,
}

fn attack_kind(s: &str) -> Result<Kind, String> {
    Kind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        format!("'{s}' is not an attack; one of {}", names.join(", "))
    })
}

fn secs(d: Duration) -> String {
    humanish(d.as_secs_f64())
}

/// 3600 → "1h", 300 → "5m", 2.5 → "2.5s".
fn humanish(s: f64) -> String {
    if s >= 3600.0 && s % 3600.0 == 0.0 {
        format!("{}h", s / 3600.0)
    } else if s >= 60.0 && s % 60.0 == 0.0 {
        format!("{}m", s / 60.0)
    } else {
        format!("{s}s")
    }
}

/// A random hex string (for the webhook secrets): different every run.
fn random_hex(bytes: usize) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let mut rng = hostile::Rng::new(nanos ^ u64::from(std::process::id()));
    (0..bytes).map(|_| format!("{:02x}", rng.next_u64() as u8)).collect()
}

/// The attacks, in turn, until `deadline`; the current one's index + 1 in `current`.
async fn attacker(
    target: Target,
    a: Arc<Args>,
    start: Instant,
    deadline: Instant,
    current: Arc<AtomicUsize>,
) -> (Vec<Period>, BTreeMap<Kind, (u64, Outcome)>) {
    let mut rng = hostile::Rng::new(a.seed);
    let (mut periods, mut per_kind) = (Vec::new(), BTreeMap::<Kind, (u64, Outcome)>::new());
    let gap = |rng: &mut hostile::Rng| {
        let (lo, hi) = (a.attack_gap_min.as_millis() as u64, a.attack_gap_max.as_millis().max(1) as u64);
        Duration::from_millis(lo + rng.next_u64() % (hi.saturating_sub(lo) + 1))
    };
    let kinds = if a.attacks.is_empty() { Kind::ALL.to_vec() } else { a.attacks.clone() };
    let mut next = Instant::now() + gap(&mut rng).min(Duration::from_secs(10));
    for i in 0.. {
        tokio::time::sleep_until(next.into()).await;
        // The slowest kind waits ~15 s for its cut-off; none starts that it cannot finish.
        if Instant::now() + a.attack_secs + Duration::from_secs(16) > deadline {
            break;
        }
        let kind = kinds[i % kinds.len()];
        current.store(Kind::ALL.iter().position(|k| *k == kind).map_or(0, |p| p + 1), Ordering::Relaxed);
        let began = Instant::now();
        let outcome = attack::run(kind, &target, a.attack_secs, a.seed.wrapping_add(i as u64)).await;
        current.store(0, Ordering::Relaxed);
        periods.push((began.duration_since(start).as_secs_f64(), start.elapsed().as_secs_f64(), kind));
        let e = per_kind.entry(kind).or_default();
        e.0 += 1;
        e.1.add(&outcome);
        // Some calm between two attacks, however long this one took.
        next = (began + gap(&mut rng)).max(Instant::now() + Duration::from_secs(3));
    }
    (periods, per_kind)
}

/// The sidecar's client connections (`/metrics`) and open upstream connections
/// (`/config`); None for what the admin port did not answer within a second.
async fn connections(http: &Client, admin: std::net::SocketAddr) -> (Option<u64>, Option<u64>) {
    let get = |path: &'static str| {
        let url = format!("http://{admin}{path}");
        async move { tokio::time::timeout(Duration::from_secs(1), http.get(&url)).await.ok()?.ok() }
    };
    let downstream = get("/metrics").await.and_then(|r| {
        // `warden_active_connections{service="…"} N`
        r.text().lines().find_map(|l| {
            let rest = l.strip_prefix("warden_active_connections")?;
            rest.starts_with(['{', ' ']).then(|| rest.rsplit(' ').next()?.trim().parse().ok())?
        })
    });
    let upstream = get("/config").await.and_then(|r| {
        let c: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        let endpoints =
            c["upstreams"].as_array()?.iter().flat_map(|u| u["endpoints"].as_array().cloned().unwrap_or_default());
        Some(endpoints.map(|e| e["breakers"]["open_connections"].as_u64().unwrap_or(0)).sum())
    });
    (downstream, upstream)
}

/// A row a second until `stop`.
async fn sampler(
    admin: std::net::SocketAddr,
    sidecar: u32,
    cp: Arc<AtomicU32>,
    tally: Arc<Tally>,
    current: Arc<AtomicUsize>,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<Row> {
    let (mut rows, http) = (Vec::new(), Client::default());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let (sidecar_rss_kib, sidecar_fds) = footprint(Some(sidecar));
        // A missed answer repeats the last one rather than plotting a drop to zero.
        let last = rows.last().map_or((0, 0), |r: &Row| (r.downstream, r.upstream));
        let (downstream, upstream) = connections(&http, admin).await;
        let (downstream, upstream) = (downstream.unwrap_or(last.0), upstream.unwrap_or(last.1));
        let cp_pid = cp.load(Ordering::Relaxed);
        let (cp_rss_kib, cp_fds) = footprint((cp_pid != 0).then_some(cp_pid));
        let window = tally.take_window();
        let attack = current.load(Ordering::Relaxed).checked_sub(1).map(|i| Kind::ALL[i]);
        rows.push(Row {
            t: start.elapsed().as_secs_f64(),
            sidecar_rss_kib,
            sidecar_fds,
            downstream,
            upstream,
            cp_rss_kib,
            cp_fds,
            legit_ok: tally.ok.load(Ordering::Relaxed),
            legit_failed: tally.failed.load(Ordering::Relaxed),
            over_limit_429: tally.over_429.load(Ordering::Relaxed),
            max_ms: window.iter().max().map_or(0.0, |us| f64::from(*us) / 1e3),
            attack,
        });
        if rows.len().is_multiple_of(60) {
            let r = rows.last().unwrap();
            eprintln!(
                "warden-soak: {:.0} min: sidecar {:.1} MiB, {} fds; legit ok {}, failed {}",
                r.t / 60.0,
                r.sidecar_rss_kib as f64 / 1024.0,
                r.sidecar_fds,
                r.legit_ok,
                r.legit_failed
            );
        }
        if stop.load(Ordering::Relaxed) {
            return rows;
        }
    }
}

/// Start, peak and end of a column, and the medians of its first and last quarter.
struct Trend {
    start: f64,
    peak: f64,
    end: f64,
    first_q: f64,
    last_q: f64,
}

fn trend(rows: &[Row], f: impl Fn(&Row) -> Option<f64>) -> Trend {
    let v: Vec<f64> = rows.iter().filter_map(&f).collect();
    let q = (v.len() / 4).max(1);
    Trend {
        start: v.first().copied().unwrap_or(0.0),
        peak: v.iter().copied().fold(0.0, f64::max),
        end: v.last().copied().unwrap_or(0.0),
        first_q: median(v.iter().take(q).copied()),
        last_q: median(v.iter().rev().take(q).copied()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let a = Arc::new(<Args as clap::Parser>::parse());
    let work = tempfile::Builder::new().prefix("warden-soak-").tempdir().unwrap();
    let dir = work.path().to_owned();
    eprintln!("warden-soak: {} of load; logs and stores in {}", secs(a.duration), dir.display());

    // The processes.
    let data = dir.join("data").to_string_lossy().into_owned();
    let cp_args = |listen: &str| -> Vec<String> {
        let args = ["--listen", listen, "--data-dir", &data, "--http", "127.0.0.1:0"];
        args.map(String::from).to_vec()
    };
    let mut cp = Daemon::new("warden-control-plane", &cp_args("127.0.0.1:0"), &dir);
    let line = cp.start(STARTED, Duration::from_secs(20)).await.unwrap();
    let grpc = started(&line, "grpc").expect("grpc address in the start-up line");
    // Restarts come back on the same port, as a Service address would.
    cp.set_args(&cp_args(&grpc));
    let cp_url = format!("http://{grpc}");
    let app_args: Vec<String> = ["--listen", "127.0.0.1:0", "--name", "orders-app"].map(String::from).to_vec();
    let mut app = Daemon::new("warden-demo-app", &app_args, &dir);
    let line = app.start("warden-demo-app listening", Duration::from_secs(20)).await.unwrap();
    let app_addr = field(&line, "app").expect("app address in the log");
    let (stuck, stuck_open) = attack::stalled_upstream_server().await.unwrap();

    let (github_secret, stripe_secret) = (random_hex(32), random_hex(32));
    ctl(&cp_url, &["secrets", "set", "gh-hook", "--from-literal", &github_secret]).await.unwrap();
    ctl(&cp_url, &["secrets", "set", "stripe-hook", "--from-literal", &stripe_secret]).await.unwrap();
    let create = |client: &'static str, plan: &'static str| {
        let cp_url = cp_url.clone();
        async move {
            let v = ctl(&cp_url, &["keys", "create", "--service", "orders", "--client", client, "--plan", plan])
                .await
                .unwrap();
            (v["key"].as_str().unwrap().to_owned(), v["id"].as_str().unwrap().to_owned())
        }
    };
    let (key, key_id) = create("soak", "pro").await;
    let (greedy_key, _) = create("greedy", "greedy").await;

    let start = Instant::now();
    let mut op = Operator {
        cp,
        cp_url: cp_url.clone(),
        cp_pid: Arc::new(AtomicU32::new(0)),
        proxy: "127.0.0.1:1".parse().unwrap(),
        admin: "127.0.0.1:1".parse().unwrap(),
        stuck,
        dir: dir.clone(),
        key: Arc::new(CurrentKey::new(&key)),
        key_id,
        rev_b: false,
        http: Client::default(),
        start,
        stats: Stats::default(),
    };
    op.cp_pid.store(op.cp.pid().unwrap_or(0), Ordering::Relaxed);
    op.apply_rev("a", "soak: first").await.unwrap();

    let (hrt, st) = (secs(a.header_read_timeout), secs(a.send_timeout));
    let sidecar_args: Vec<String> = [
        "--service",
        "orders",
        "--control-plane",
        &cp_url,
        "--upstream",
        &app_addr,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--state-dir",
        &dir.join("state").to_string_lossy(),
        "--instance",
        INSTANCE,
        "--header-read-timeout",
        &hrt,
        "--send-timeout",
        &st,
    ]
    .map(String::from)
    .to_vec();
    let mut sidecar = Daemon::new("warden-sidecar", &sidecar_args, &dir);
    let line = sidecar.start(STARTED, Duration::from_secs(20)).await.unwrap();
    op.proxy = started(&line, "proxy").and_then(|a| a.parse().ok()).expect("proxy address in the start-up line");
    op.admin = started(&line, "admin").and_then(|a| a.parse().ok()).expect("admin address in the start-up line");
    let sidecar_pid = sidecar.pid().unwrap();
    let ready = Instant::now();
    while !in_sync(&cp_url).await || op.http.get(&format!("http://{}/orders/warm", op.proxy)).await.is_err() {
        assert!(ready.elapsed() < Duration::from_secs(20), "the sidecar did not get in sync");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Everything at once until the deadline.
    let start = Instant::now();
    op.start = start;
    let deadline = start + a.duration;
    let (stop, current) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let tally = Arc::new(Tally::new(start));
    let cfg = Arc::new(LoadConfig {
        proxy: op.proxy,
        rate: a.rate,
        key: op.key.clone(),
        greedy_key,
        github_secret,
        stripe_secret,
        timeout: a.request_timeout,
    });
    let sampling = tokio::spawn(sampler(
        op.admin,
        sidecar_pid,
        op.cp_pid.clone(),
        tally.clone(),
        current.clone(),
        start,
        stop.clone(),
    ));
    let loading = tokio::spawn(load::run(cfg, tally.clone(), stop.clone()));
    let target = Target { proxy: op.proxy, header_timeout: a.header_read_timeout, send_timeout: a.send_timeout };
    let attacking = tokio::spawn(attacker(target, a.clone(), start, deadline, current.clone()));

    let never = Duration::from_secs(u64::MAX / 4);
    let every = |d: Duration| if d.is_zero() { never } else { d };
    let (mut next_apply, mut next_key, mut next_restart) =
        (every(a.apply_every), every(a.keys_every), every(a.restart_every));
    loop {
        let due = next_apply.min(next_key).min(next_restart);
        if due >= a.duration {
            break;
        }
        tokio::time::sleep_until((start + due).into()).await;
        if due == next_restart {
            op.restart_cp(a.cp_down).await;
            next_restart += every(a.restart_every);
        } else if due == next_key {
            op.rotate_key().await;
            next_key += every(a.keys_every);
        } else {
            op.apply().await;
            next_apply += every(a.apply_every);
        }
    }
    tokio::time::sleep_until(deadline.into()).await;
    stop.store(true, Ordering::Relaxed);
    loading.await.unwrap();
    let (periods, per_kind) = attacking.await.unwrap();
    let rows = sampling.await.unwrap();
    let elapsed = start.elapsed();
    let sidecar_alive = sidecar.running();

    // The results.
    let failed = tally.failed.load(Ordering::Relaxed);
    let ok = failed == 0 && op.stats.problems.is_empty() && sidecar_alive;
    let mut text = summary(&a, elapsed, &tally, &op.stats, &per_kind, &rows, stuck_open.load(Ordering::Relaxed), ok);
    if !sidecar_alive {
        text += "the sidecar was no longer running at the end\n";
    }
    std::fs::create_dir_all(&a.out_dir).unwrap();
    let out = |ext: &str| a.out_dir.join(format!("{}.{ext}", a.name));
    std::fs::write(out("csv"), report::csv(&rows)).unwrap();
    let title = format!(
        "Warden soak: {} at {} req/s, {} legitimate requests failed; shaded: attacks, dashed: control-plane restarts",
        humanish(elapsed.as_secs_f64().round()),
        a.rate,
        failed
    );
    std::fs::write(out("svg"), report::svg(&title, &rows, &periods, &op.stats.restart_at)).unwrap();
    std::fs::write(out("txt"), &text).unwrap();
    print!("{text}");

    sidecar.terminate();
    op.cp.terminate();
    let _ = sidecar.wait_exit(Duration::from_secs(5)).await;
    let _ = op.cp.wait_exit(Duration::from_secs(5)).await;
    drop((sidecar, app));
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("warden-soak: FAILED; logs kept in {}", work.keep().display());
        ExitCode::FAILURE
    }
}

#[allow(clippy::too_many_arguments)]
fn summary(
    a: &Args,
    elapsed: Duration,
    tally: &Tally,
    ops: &Stats,
    per_kind: &BTreeMap<Kind, (u64, Outcome)>,
    rows: &[Row],
    stuck_open: u64,
    ok: bool,
) -> String {
    let n = |x: &AtomicU64| x.load(Ordering::Relaxed);
    let mut s = String::new();
    let now = std::process::Command::new("date").arg("-Is").output().map(|o| o.stdout).unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        s,
        "# Warden soak {}: release build, {cores}-core machine (shared)",
        String::from_utf8_lossy(&now).trim()
    );
    let _ = writeln!(
        s,
        "duration: {:.0} s (--duration {}); sidecar --header-read-timeout {} --send-timeout {}",
        elapsed.as_secs_f64(),
        secs(a.duration),
        secs(a.header_read_timeout),
        secs(a.send_timeout)
    );
    let _ = writeln!(s);
    let lat = tally.all_latencies();
    let _ = writeln!(
        s,
        "legitimate requests: {} sent ({} req/s, HTTP/1.1 and HTTP/2; plain, API key, signed webhooks), {} ok, {} failed",
        n(&tally.sent),
        a.rate,
        n(&tally.ok),
        n(&tally.failed)
    );
    let ms = |q: f64| quantile(&lat, q) / 1e3;
    let _ = writeln!(
        s,
        "  latency: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.1} ms (deadline {})",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        lat.last().map_or(0.0, |v| f64::from(*v) / 1e3),
        secs(a.request_timeout)
    );
    let failures = tally.failures();
    if failures.is_empty() {
        let _ = writeln!(s, "  failures by reason: none");
    } else {
        let _ = writeln!(s, "  failures by reason:");
        for (reason, f) in &failures {
            let _ =
                writeln!(s, "    {:>6} × {reason} (first at {:.0} s, last at {:.0} s)", f.count, f.first_s, f.last_s);
        }
        let _ = writeln!(s, "  first failures in full:");
        for line in tally.samples().iter().take(20) {
            let _ = writeln!(s, "    {line}");
        }
    }
    let _ = writeln!(
        s,
        "over the limit on purpose (a client allowed 10/s, sent {}/s): {} sent, {} answered 429 rate_limited, {} admitted",
        a.rate / 10,
        n(&tally.over_sent),
        n(&tally.over_429),
        n(&tally.over_ok)
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "applies: {} (every {}, two versions in turn); served (version and its header) in {}",
        ops.applies,
        secs(a.apply_every),
        spread(&ops.apply_served_ms, "ms")
    );
    let _ = writeln!(
        s,
        "key rotations: {} (every {}); new key held by the sidecar in {}; old key's requests done {}; old key refused {}",
        ops.rotations,
        secs(a.keys_every),
        spread(&ops.new_key_ms, "ms"),
        spread(&ops.drain_ms, "ms"),
        spread(&ops.revoked_ms, "ms")
    );
    let _ = writeln!(
        s,
        "control-plane restarts: {} (every {}, SIGTERM, {} down, same port and store); sidecar back in sync in {}",
        ops.restarts,
        secs(a.restart_every),
        secs(a.cp_down),
        spread(&ops.resync_ms, "ms")
    );
    if ops.problems.is_empty() {
        let _ = writeln!(s, "operations that did not take effect: none");
    } else {
        let _ = writeln!(s, "operations that did not take effect: {}", ops.problems.len());
        for p in &ops.problems {
            let _ = writeln!(s, "  {p}");
        }
    }
    let _ = writeln!(s);
    let runs: u64 = per_kind.values().map(|(r, _)| r).sum();
    let _ = writeln!(
        s,
        "attacks: {runs} runs of ~{} each, one every {}-{}",
        secs(a.attack_secs),
        secs(a.attack_gap_min),
        secs(a.attack_gap_max)
    );
    let _ = writeln!(
        s,
        "  {:<20} {:>5} {:>12} {:>8} {:>8} {:>9}  answers",
        "kind", "runs", "connections", "cut off", "slowest", "left open"
    );
    for (kind, (r, o)) in per_kind {
        let answers: Vec<String> = o.answers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        // Kinds that send requests and read the answers are not waiting to be cut off.
        let watched = o.cut_off + o.not_cut_off > 0;
        let slowest = o.slowest_cut_off.as_secs_f64();
        let dash = |v: String| if watched { v } else { "-".into() };
        let _ = writeln!(
            s,
            "  {:<20} {r:>5} {:>12} {:>8} {:>8} {:>9}  {}",
            kind.name(),
            o.connections,
            dash(o.cut_off.to_string()),
            dash(if slowest < 1.0 { format!("{:.0} ms", slowest * 1e3) } else { format!("{slowest:.1} s") }),
            dash(o.not_cut_off.to_string()),
            if answers.is_empty() { "-".into() } else { answers.join(", ") }
        );
    }
    let _ = writeln!(
        s,
        "  (connections: for stalled-upstream, HTTP/2 requests on one connection; for hostile-spellings, one request each;\n   cut off: closed by the sidecar, slowest counted from the connection's opening)"
    );
    let _ = writeln!(s, "  connections the stalled upstream still held at the end: {stuck_open}");
    let _ = writeln!(s);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let rss = trend(rows, |r| Some(mib(r.sidecar_rss_kib)));
    let fds = trend(rows, |r| Some(r.sidecar_fds as f64));
    let grew = rss.last_q > rss.first_q * 1.05;
    let _ = writeln!(
        s,
        "sidecar RSS: start {:.1} MiB, peak {:.1} MiB, end {:.1} MiB; median of the first quarter {:.1} MiB, of the last quarter {:.1} MiB ({:+.1} %): grew {}",
        rss.start,
        rss.peak,
        rss.end,
        rss.first_q,
        rss.last_q,
        (rss.last_q / rss.first_q.max(f64::MIN_POSITIVE) - 1.0) * 100.0,
        if grew { "yes (more than 5 %)" } else { "no (within 5 %)" }
    );
    let _ = writeln!(
        s,
        "sidecar descriptors: start {:.0}, peak {:.0}, end {:.0}; median of the first quarter {:.0}, of the last quarter {:.0}",
        fds.start, fds.peak, fds.end, fds.first_q, fds.last_q
    );
    let peak = |f: fn(&Row) -> u64| rows.iter().map(f).max().unwrap_or(0);
    if let Some(last) = rows.last() {
        let _ = writeln!(
            s,
            "  of them client connections: peak {}, end {}; upstream connections open: peak {}, end {}",
            peak(|r| r.downstream),
            last.downstream,
            peak(|r| r.upstream),
            last.upstream
        );
    }
    let cp_rss = trend(rows, |r| (r.cp_rss_kib > 0).then(|| mib(r.cp_rss_kib)));
    let cp_fds = trend(rows, |r| (r.cp_rss_kib > 0).then_some(r.cp_fds as f64));
    let _ = writeln!(
        s,
        "control plane (a new process after each restart): RSS start {:.1} MiB, peak {:.1} MiB, end {:.1} MiB; descriptors start {:.0}, peak {:.0}, end {:.0}",
        cp_rss.start, cp_rss.peak, cp_rss.end, cp_fds.start, cp_fds.peak, cp_fds.end
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "result: {} ({} legitimate requests failed, {} operations did not take effect)",
        if ok { "PASS" } else { "FAIL" },
        n(&tally.failed),
        ops.problems.len()
    );
    s
}
