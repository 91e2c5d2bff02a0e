//! `warden-sidecar`: parses flags, starts the listener, the admin port and whichever
//! policy source was chosen (control plane or local file), and drains on SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use http::uri::Authority;
use tokio::net::TcpListener;
use tokio::sync::watch;
use warden_policy::decide::HeadCaps;
use warden_policy::yaml as policy;
use warden_sidecar::control::{self, ControlConfig};
use warden_sidecar::edge::EdgeLimits;
use warden_sidecar::listener::ListenerConfig;
use warden_sidecar::live::Live;
use warden_sidecar::state::StateFile;
use warden_sidecar::telemetry::Telemetry;
use warden_sidecar::{admin, fallback, listener, policy_file, reload};

/// Warden's per-service sidecar proxy.
#[derive(Debug, Parser)]
#[command(name = "warden-sidecar", version)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["control_plane", "policy_file"]))]
struct Args {
    /// Which service's policy this sidecar receives.
    #[arg(long, env = "WARDEN_SERVICE")]
    service: Option<String>,
    /// Control plane URL, e.g. http://127.0.0.1:7070; several replicas' URLs,
    /// comma-separated, to fail over between.
    #[arg(long, env = "WARDEN_CONTROL_PLANE")]
    control_plane: Option<String>,
    /// Run standalone from this YAML file, reloaded when it changes.
    #[arg(long, env = "WARDEN_POLICY_FILE")]
    policy_file: Option<PathBuf>,
    /// Inbound traffic.
    #[arg(long, env = "WARDEN_LISTEN", default_value = "0.0.0.0:15001")]
    listen: SocketAddr,
    /// The local app: the upstream named `app`.
    #[arg(long, env = "WARDEN_UPSTREAM", default_value = "127.0.0.1:8080")]
    upstream: String,
    /// Health, readiness and config dump.
    #[arg(long, env = "WARDEN_ADMIN", default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// Where the last known good snapshot is kept (`<service>.snapshot.pb`), so a restart
    /// while the control plane is down still serves. Needs --service.
    #[arg(long, env = "WARDEN_STATE_DIR", default_value = "./warden-state")]
    state_dir: PathBuf,
    /// A signed bundle from `wardenctl fallback export`, served when it is newer than the
    /// last known good until a control-plane replica answers. Needs --fallback-key.
    #[arg(long, env = "WARDEN_FALLBACK_SNAPSHOT", requires_all = ["fallback_key", "control_plane"])]
    fallback_snapshot: Option<PathBuf>,
    /// The public key(s) a --fallback-snapshot must be signed with: 64 hex digits each,
    /// comma-separated (old and new during a key rotation).
    #[arg(long, env = "WARDEN_FALLBACK_KEY")]
    fallback_key: Option<fallback::TrustedKeys>,
    /// A --fallback-snapshot exported longer ago than this is not served: keys revoked
    /// since then would pass again.
    #[arg(long, env = "WARDEN_FALLBACK_MAX_AGE", default_value = "168h", value_parser = parse_duration)]
    fallback_max_age: Duration,
    /// Bearer token for the control plane.
    #[arg(long, env = "WARDEN_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// CA certificate (PEM) the control plane's TLS certificate must chain to; needed
    /// with an `https://` --control-plane.
    #[arg(long, env = "WARDEN_CONTROL_PLANE_CA")]
    control_plane_ca: Option<PathBuf>,
    /// This sidecar's name in `wardenctl status` (default: host name and listen port).
    #[arg(long, env = "WARDEN_INSTANCE")]
    instance: Option<String>,
    /// Worker threads (default: the CPUs this process may use: its cgroup's CPU quota,
    /// rounded down, and its affinity; a pod limited to 1.5 CPUs or less gets one).
    #[arg(long, env = "WARDEN_THREADS")]
    threads: Option<usize>,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, env = "WARDEN_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// How long a client may take to send a request's headers (slowloris guard).
    #[arg(long, env = "WARDEN_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,
    /// The longest a write to a client may make no progress (a client that stopped
    /// reading); then its connection is closed.
    #[arg(long, env = "WARDEN_SEND_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    send_timeout: Duration,
    /// Open downstream connections at most; more wait in the accept backlog.
    #[arg(long, env = "WARDEN_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// Longest request target (path and query); longer is 414.
    #[arg(long, env = "WARDEN_MAX_URI_BYTES", default_value = "8KiB", value_parser = parse_size)]
    max_uri_bytes: usize,
    /// Largest header block (names and values); larger is 431.
    #[arg(long, env = "WARDEN_MAX_HEADER_BYTES", default_value = "64KiB", value_parser = parse_size)]
    max_header_bytes: usize,
    /// The longest an upstream may go quiet in the middle of a response body.
    #[arg(long, env = "WARDEN_STREAM_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    stream_idle_timeout: Duration,
    /// Request bodies held in memory at once, all requests together (signed webhooks are
    /// buffered to check their signature); past it such requests get 503.
    #[arg(long, env = "WARDEN_MAX_BUFFERED_BYTES", default_value = "64MiB", value_parser = parse_size)]
    max_buffered_bytes: usize,
    /// Requests waiting on upstreams at once, all upstreams together; past it, 503
    /// `overloaded` (each endpoint's own circuit breakers trip first).
    #[arg(long, env = "WARDEN_MAX_IN_FLIGHT", default_value_t = 10_000)]
    max_in_flight: usize,
    /// Keys (addresses, clients) each rate limit tracks at once; past it, idle keys go
    /// first, then some active ones (which start over with a full budget).
    #[arg(long, env = "WARDEN_LIMIT_KEYS", default_value_t = 100_000)]
    limit_keys: usize,
    /// Decision samples (for `wardenctl apply --preview`): per route and second, this many
    /// requests kept whole and as many drawn from the rest, weighted; 0 turns sampling off.
    #[arg(long, env = "WARDEN_SAMPLES_PER_ROUTE", default_value_t = warden_sidecar::telemetry::samples::DEFAULT_PER_ROUTE)]
    samples_per_route: u32,
    /// One JSON line per request on stdout (`on`), or none (`off`).
    #[arg(long, env = "WARDEN_ACCESS_LOG", default_value = "on", value_parser = ["on", "off"])]
    access_log: String,
}

fn parse_size(s: &str) -> Result<usize, String> {
    policy::parse_size(s).and_then(|n| usize::try_from(n).map_err(|_| format!("'{s}' is too large")))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    policy::parse_duration(s)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    warden_telemetry::init_logging();
    // Sized by what the process may use, not by the node's cores: the standard library
    // reads the cgroup's CPU quota (v1 and v2) and the affinity mask, as Go's automaxprocs
    // does. Each worker is a current-thread runtime of its own (`listener.rs`); this
    // thread's also runs the control-plane stream, the admin port and the reloads.
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)).max(1);
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run(args, threads))
}

async fn run(args: Args, threads: usize) -> anyhow::Result<()> {
    if args.control_plane.is_some() && args.service.is_none() {
        anyhow::bail!("--service is required with --control-plane");
    }
    // The control plane refuses these too; saying so here beats retrying forever.
    if let Some(s) = args.service.as_deref().filter(|s| !policy::is_service_name(s)) {
        anyhow::bail!("--service {:?}: a service name is 1-63 characters of a-z, 0-9 and '-'", s);
    }
    if let Some(i) = args.instance.as_deref().filter(|i| !warden_policy::text::is_instance_name(i)) {
        anyhow::bail!("--instance {:?}: an instance name is 1-253 printable ASCII characters, no spaces", i);
    }
    let app: Authority =
        args.upstream.parse().with_context(|| format!("--upstream {}: expected host:port", args.upstream))?;
    let state = args.service.clone().map(|s| StateFile::new(args.state_dir.clone(), s));
    let limits = EdgeLimits {
        head: HeadCaps { max_uri_bytes: args.max_uri_bytes, max_header_bytes: args.max_header_bytes },
        stream_idle_timeout: args.stream_idle_timeout,
        max_buffered_bytes: args.max_buffered_bytes,
        max_in_flight: args.max_in_flight,
    };
    let service_name = format!("warden-sidecar-{}", args.service.as_deref().unwrap_or("standalone"));
    let telemetry = Telemetry::new(args.access_log == "on", args.service.as_deref())
        // Samples are for the control plane: a standalone sidecar draws none.
        .with_sampling(if args.control_plane.is_some() { args.samples_per_route } else { 0 }, threads)
        .with_traces_from_env(&service_name)
        .context("setting up OTLP tracing from the OTEL_* environment")?;
    if telemetry.traces.is_some() {
        tracing::info!("tracing: spans export over OTLP as configured by OTEL_*");
    }
    telemetry.metrics.worker_threads.set(i64::try_from(threads).unwrap_or(i64::MAX));
    let live = Arc::new(
        Live::new(app, args.service.clone(), state)
            .with_limits(limits)
            .with_limit_keys(args.limit_keys)
            .with_telemetry(telemetry),
    );

    let proxy_listener =
        TcpListener::bind(args.listen).await.with_context(|| format!("binding --listen {}", args.listen))?;
    let admin_listener =
        TcpListener::bind(args.admin).await.with_context(|| format!("binding --admin {}", args.admin))?;
    let proxy_addr = proxy_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    if let Some(v) = live.load_from_disk().await {
        tracing::info!(version = v, "serving the last known good snapshot from disk until the control plane answers");
    }
    if let (Some(file), Some(keys)) = (&args.fallback_snapshot, &args.fallback_key) {
        let loaded = fallback::load(file, keys, &live, args.fallback_max_age)
            .await
            .with_context(|| format!("--fallback-snapshot {}", file.display()))?;
        if loaded.stale {
            tracing::warn!(version = loaded.version, max_age = ?args.fallback_max_age, "the fallback bundle is older than --fallback-max-age: not served");
        } else {
            tracing::info!(
                version = loaded.version,
                serving = loaded.serving,
                keys = loaded.keys,
                signed_by = %loaded.signed_by,
                "fallback bundle verified; what in it is newer than the last known good is served until the control plane answers"
            );
        }
    }

    if let Some(url) = args.control_plane.clone() {
        anyhow::ensure!(
            args.control_plane_ca.is_none() || url.split(',').all(|u| u.trim().starts_with("https://")),
            "--control-plane-ca is for an https:// --control-plane (got {url})"
        );
        let token = match &args.token_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("reading --token-file {}", f.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        let host = hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "sidecar".into());
        let ca = match &args.control_plane_ca {
            Some(f) => Some(std::fs::read(f).with_context(|| format!("reading --control-plane-ca {}", f.display()))?),
            None => None,
        };
        let instance = args.instance.clone().unwrap_or_else(|| format!("{host}:{}", proxy_addr.port()));
        let cfg = ControlConfig::new(&url, args.service.clone().unwrap_or_default(), instance, token, ca);
        anyhow::ensure!(!cfg.urls.is_empty(), "--control-plane names no URL");
        tokio::spawn(warden_sidecar::report::run(cfg.clone(), live.clone()));
        tokio::spawn(control::run(cfg, live.clone()));
    } else if let Some(path) = args.policy_file.clone() {
        tokio::spawn(policy_file::watch(path, args.service.clone(), live.clone()));
    }

    tokio::spawn(admin::serve(admin_listener, live.clone()));
    tokio::spawn(reload::certificates(live.clone()));
    tokio::spawn(reload::jwks(live.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let cfg = ListenerConfig {
        drain_timeout: args.drain_timeout,
        header_read_timeout: args.header_read_timeout,
        max_connections: args.max_connections.max(1),
        send_timeout: args.send_timeout,
    };
    let workers =
        listener::serve(proxy_listener, live.clone(), stop_rx, cfg, threads).context("starting the workers")?;
    let server = tokio::spawn(workers);
    tracing::info!(proxy = %proxy_addr, admin = %admin_addr, threads, "warden-sidecar listening");
    warden_telemetry::announce_start("warden-sidecar", &[("proxy", proxy_addr), ("admin", admin_addr)]);

    shutdown_signal().await;
    live.start_draining();
    tracing::info!("shutting down: readiness off");
    let _ = stop_tx.send(true);
    server.await?;
    live.flush_snapshot().await;
    // Flush the access log and queued spans; off the runtime thread, which must keep driving the gRPC channel.
    let flushing = live.clone();
    let _ = tokio::task::spawn_blocking(move || {
        flushing.telemetry().flush_access_log(Duration::from_secs(2));
        if let Some(t) = &flushing.telemetry().traces {
            t.shutdown();
        }
    })
    .await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
