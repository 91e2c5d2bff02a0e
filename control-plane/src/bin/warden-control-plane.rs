//! `warden-control-plane`: opens the store (`--database-url`, or `--data-dir`), serves the sidecar streams and
//! the admin API on `--listen`, and `/healthz`, `/readyz` and `/metrics` on `--http`. Once
//! both ports are bound it announces its start with one JSON line on stderr carrying both
//! addresses (`grpc`, `http`), so port 0 works for either. Subcommands: `copy-store`
//! (moving to another database) and `fallback-key` (making the bundle signing key).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use warden_control_plane::console::Console;
use warden_control_plane::console::session::Sessions;
use warden_control_plane::http;
use warden_control_plane::ops::{ControlPlane, Options};
use warden_control_plane::server::{self, BearerToken, SidecarTokens};
use warden_control_plane::signing;
use warden_control_plane::store::{Location, Retention, SampleRetention};
use warden_policy::fallback::PublicKey;

/// Warden's control plane: versioned policy, pushed to sidecars.
#[derive(Debug, Parser)]
#[command(name = "warden-control-plane", version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// gRPC for sidecars and wardenctl.
    #[arg(long, env = "WARDEN_LISTEN", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// HTTP for probes, Prometheus and the console: /healthz, /readyz, /metrics, and the
    /// console at / (HTTPS with --tls-cert/--tls-key).
    #[arg(long, env = "WARDEN_HTTP", default_value = "127.0.0.1:7071")]
    http: SocketAddr,
    /// The web console on --http: on, or off (the probes and /metrics stay).
    #[arg(long, env = "WARDEN_CONSOLE", default_value = "on", value_parser = ["on", "off"])]
    console: String,
    /// File holding a token that signs in to the console read-only (the admin token signs
    /// in with every right).
    #[arg(long, env = "WARDEN_CONSOLE_READ_TOKEN_FILE")]
    console_read_token_file: Option<PathBuf>,
    /// The store: sqlite:///path/to/warden.db (embedded, one replica) or
    /// postgres://user@host/db (several replicas; ?sslmode=require for TLS).
    #[arg(long, env = "WARDEN_DATABASE_URL", conflicts_with = "data_dir", hide_env_values = true)]
    database_url: Option<String>,
    /// Shorthand for --database-url sqlite://DIR/warden.db (the default: ./warden-data).
    #[arg(long, env = "WARDEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// This replica's name in `wardenctl status` (default: host name and gRPC port).
    #[arg(long, env = "WARDEN_REPLICA_NAME")]
    replica_name: Option<String>,
    /// A private CA (PEM) for the database's TLS, beside Mozilla's roots.
    #[arg(long, env = "WARDEN_DATABASE_CA_FILE")]
    database_ca_file: Option<PathBuf>,
    /// File holding the bearer token `wardenctl` must present.
    #[arg(long, env = "WARDEN_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// File holding the bearer token sidecars must present (any service).
    #[arg(long, env = "WARDEN_SIDECAR_TOKEN_FILE")]
    sidecar_token_file: Option<PathBuf>,
    /// A directory of per-service sidecar tokens: the file `orders` holds the token that
    /// admits a sidecar to service `orders` only (a Kubernetes Secret mounted as a volume).
    #[arg(long, env = "WARDEN_SIDECAR_TOKENS_DIR")]
    sidecar_tokens_dir: Option<PathBuf>,
    /// Serve gRPC and --http over TLS with this certificate chain (PEM) ...
    #[arg(long, env = "WARDEN_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// ... and this private key (PEM).
    #[arg(long, env = "WARDEN_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How long the deny log keeps a refused request.
    #[arg(long, env = "WARDEN_DENY_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    deny_retention: std::time::Duration,
    /// The most refused requests the deny log keeps (the oldest go first).
    #[arg(long, env = "WARDEN_DENY_MAX_ROWS", default_value_t = 100_000)]
    deny_max_rows: i64,
    /// How long decision samples (what `apply --preview` replays) are kept.
    #[arg(long, env = "WARDEN_SAMPLE_RETENTION", default_value = "1h", value_parser = humantime::parse_duration)]
    sample_retention: std::time::Duration,
    /// The most decision samples kept per service (the oldest go first).
    #[arg(long, env = "WARDEN_SAMPLE_MAX_ROWS", default_value_t = 100_000)]
    sample_max_rows: i64,
    /// The Ed25519 private key (PKCS#8 PEM) `wardenctl fallback export` signs bundles
    /// with; every replica loads the same one (`fallback-key new` makes one).
    #[arg(long, env = "WARDEN_FALLBACK_SIGNING_KEY")]
    fallback_signing_key: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Copies every version, key, secret, sidecar record, denial and mark from one store into
    /// another, empty one (SQLite to PostgreSQL, or back), then reads both back and
    /// compares them; reports success only if they match. Stop the control plane first.
    CopyStore {
        /// The store to copy: sqlite:///path/warden.db or postgres://...
        #[arg(long)]
        from: String,
        /// The empty store to copy into.
        #[arg(long)]
        to: String,
        /// A private CA (PEM) for either database's TLS.
        #[arg(long)]
        database_ca_file: Option<PathBuf>,
    },
    /// Fallback signing keys: `new --out FILE` makes one (and prints its public key),
    /// `show FILE` prints the public key of one, for the sidecars' --fallback-key.
    FallbackKey {
        #[command(subcommand)]
        command: FallbackKeyCommand,
    },
}

#[derive(Debug, clap::Subcommand)]
enum FallbackKeyCommand {
    /// Makes a new Ed25519 key in a file that must not exist yet (mode 0600).
    New {
        #[arg(long)]
        out: PathBuf,
    },
    /// Prints the public key of a key file.
    Show { key: PathBuf },
}

/// `copy-store`: prints what was copied, as one JSON line on stdout.
async fn copy_store(from: &str, to: &str, ca_file: Option<&PathBuf>) -> anyhow::Result<()> {
    let ca = match ca_file {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading --database-ca-file {}", path.display()))?)
        }
        None => None,
    };
    let (from, to) = (Location::parse(from, ca.as_deref())?, Location::parse(to, ca.as_deref())?);
    let source = from.open().await.with_context(|| format!("opening the source ({})", from.describe()))?;
    let destination = to.open().await.with_context(|| format!("opening the destination ({})", to.describe()))?;
    let copied = warden_control_plane::ops::copy_store(source, destination)
        .await
        .with_context(|| format!("copying {} to {}", from.describe(), to.describe()))?;
    println!(
        "{}",
        serde_json::json!({
            "from": from.describe(), "to": to.describe(), "services": copied.services, "versions": copied.versions,
            "keys": copied.keys, "secrets": copied.secrets, "sidecars": copied.sidecars, "denials": copied.denials, "marks": copied.marks,
            "sha256": copied.digest, "verified": true,
        })
    );
    Ok(())
}

/// Reads a token file; None when the flag is absent.
fn token(flag: &str, path: Option<&PathBuf>) -> anyhow::Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let token = std::fs::read_to_string(path).with_context(|| format!("reading {flag} {}", path.display()))?;
    let token = token.trim();
    anyhow::ensure!(!token.is_empty(), "{flag} {} is empty", path.display());
    Ok(Some(token.to_owned()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    warden_telemetry::init_logging();
    match &args.command {
        Some(Command::CopyStore { from, to, database_ca_file }) => {
            return copy_store(from, to, database_ca_file.as_ref()).await;
        }
        Some(Command::FallbackKey { command: FallbackKeyCommand::New { out } }) => {
            println!("{}", signing::generate(out)?);
            return Ok(());
        }
        Some(Command::FallbackKey { command: FallbackKeyCommand::Show { key } }) => {
            println!("{}", PublicKey::of(&signing::load(key)?));
            return Ok(());
        }
        None => {}
    }
    let fallback_key = match &args.fallback_signing_key {
        Some(path) => {
            let key = signing::load(path).context("--fallback-signing-key")?;
            tracing::info!(public_key = %PublicKey::of(&key), "fallback bundles are signed with this key");
            Some(Arc::new(key))
        }
        None => None,
    };
    let location = location(&args)?;
    let store = location.open().await.with_context(|| format!("opening the store ({})", location.describe()))?;
    let admin_token = token("--admin-token-file", args.admin_token_file.as_ref())?;
    if admin_token.is_none() {
        tracing::warn!(
            "no --admin-token-file: ACCEPTING EVERY CALLER. Set --admin-token-file before exposing this port beyond localhost."
        );
    }
    let console = match args.console.as_str() {
        "off" => None,
        _ => {
            let read = token("--console-read-token-file", args.console_read_token_file.as_ref())?;
            let sessions = Sessions::new(admin_token.clone(), read, args.tls_cert.is_some());
            Some(Arc::new(Console { sessions }))
        }
    };
    let admin_token = BearerToken::new(admin_token);
    let per_service = match &args.sidecar_tokens_dir {
        Some(dir) => tokens_dir(dir)?,
        None => Vec::new(),
    };
    let sidecar_tokens =
        SidecarTokens::new(token("--sidecar-token-file", args.sidecar_token_file.as_ref())?, per_service);
    if sidecar_tokens.is_open() {
        tracing::warn!(
            "no --sidecar-token-file or --sidecar-tokens-dir: ACCEPTING EVERY SIDECAR. Set one before exposing this port beyond localhost."
        );
    }
    let (tls, http_tls) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let cert = std::fs::read(cert).with_context(|| format!("reading --tls-cert {}", cert.display()))?;
            let key = std::fs::read(key).with_context(|| format!("reading --tls-key {}", key.display()))?;
            let http_tls = https_config(&cert, &key).context("--tls-cert/--tls-key for --http")?;
            let grpc =
                tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(cert, key));
            (Some(grpc), Some(http_tls))
        }
        _ => (None, None),
    };
    let retention = Retention {
        max_age_ms: i64::try_from(args.deny_retention.as_millis()).unwrap_or(i64::MAX),
        max_rows: args.deny_max_rows,
    };
    let sample_retention = SampleRetention {
        max_age_ms: i64::try_from(args.sample_retention.as_millis()).unwrap_or(i64::MAX),
        max_rows: args.sample_max_rows,
    };
    let traces = warden_telemetry::Traces::from_env("warden-control-plane", Default::default(), Default::default())
        .context("setting up OTLP tracing from the OTEL_* environment")?;
    if traces.is_some() {
        tracing::info!("tracing: apply -> build -> push -> ACK spans export over OTLP as configured by OTEL_*");
    }
    // Bound before starting (connections wait in the backlog meanwhile), so the replica's
    // default name can carry the port actually bound.
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding --listen {}", args.listen))?;
    let http = TcpListener::bind(args.http).await.with_context(|| format!("binding --http {}", args.http))?;
    let (grpc_addr, http_addr) = (listener.local_addr()?, http.local_addr()?);
    let replica = args.replica_name.clone().unwrap_or_else(|| {
        let host = hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "control-plane".into());
        format!("{host}:{}", grpc_addr.port())
    });
    let cp = ControlPlane::start_with(
        store,
        Options { replica: replica.clone(), retention, sample_retention, traces, fallback_key },
    )
    .await?;
    if let Some(console) = &console {
        // Held in memory once read: sessions outlive a later store outage.
        let (console, cp) = (console.clone(), cp.clone());
        tokio::spawn(async move {
            while let Err(e) = console.sessions.preload(&cp).await {
                tracing::warn!(error = %e, "console session key not read yet; trying again");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        });
    }
    tracing::info!(grpc = %grpc_addr, http = %http_addr, store = %location.describe(), %replica, "warden-control-plane listening");
    warden_telemetry::announce_start("warden-control-plane", &[("grpc", grpc_addr), ("http", http_addr)]);
    tokio::select! {
        r = server::serve(listener, cp.clone(), admin_token, sidecar_tokens, tls) => r?,
        () = warden_control_plane::http::serve(http, cp, http::Options { console, tls: http_tls }) => {}
        _ = tokio::signal::ctrl_c() => {}
        () = terminate() => {}
    }
    tracing::info!("stopped");
    Ok(())
}

/// The --http port's TLS: the gRPC port's certificate and key, HTTP/1.1.
fn https_config(cert: &[u8], key: &[u8]) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(cert).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The store the flags name.
fn location(args: &Args) -> anyhow::Result<Location> {
    let ca = match &args.database_ca_file {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading --database-ca-file {}", path.display()))?)
        }
        None => None,
    };
    Ok(match (&args.database_url, &args.data_dir) {
        (Some(url), _) => Location::parse(url, ca.as_deref())?,
        (None, Some(dir)) => Location::data_dir(dir.clone()),
        (None, None) => Location::data_dir(PathBuf::from("./warden-data")),
    })
}

/// Per-service sidecar tokens from a directory: file name = service, content = token.
/// Dot-files are skipped (a mounted Kubernetes Secret keeps its versions in `..data`).
fn tokens_dir(dir: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading --sidecar-tokens-dir {}", dir.display()))? {
        let path = entry?.path();
        let Some(service) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        if service.starts_with('.') || path.is_dir() {
            continue;
        }
        let token = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let token = token.trim();
        anyhow::ensure!(!token.is_empty(), "{} is empty", path.display());
        out.push((service, token.to_owned()));
    }
    anyhow::ensure!(!out.is_empty(), "--sidecar-tokens-dir {} holds no token files", dir.display());
    tracing::info!(services = out.len(), "per-service sidecar tokens loaded");
    Ok(out)
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
