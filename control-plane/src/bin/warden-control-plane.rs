//! `warden-control-plane`: opens the store in `--data-dir` and serves the sidecar streams
//! and the admin API on `--listen`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use warden_control_plane::server::{self, ControlPlane};
use warden_control_plane::store::Store;
use warden_sidecar::telemetry;

/// Warden's control plane: versioned policy, pushed to sidecars.
#[derive(Debug, Parser)]
#[command(name = "warden-control-plane", version)]
struct Args {
    /// gRPC for sidecars and wardenctl.
    #[arg(long, env = "WARDEN_LISTEN", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// The embedded store.
    #[arg(long, env = "WARDEN_DATA_DIR", default_value = "./warden-data")]
    data_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init_logging();
    let store =
        Store::open(&args.data_dir).with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
    let cp = ControlPlane::start(store).await?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding --listen {}", args.listen))?;
    tracing::info!(grpc = %listener.local_addr()?, data_dir = %args.data_dir.display(), "warden-control-plane listening");
    tokio::select! {
        r = server::serve(listener, cp) => r?,
        _ = tokio::signal::ctrl_c() => {}
        () = terminate() => {}
    }
    tracing::info!("stopped");
    Ok(())
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
