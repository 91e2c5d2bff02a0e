//! The gRPC peer (`tools/grpc_peer.py`, grpcio's C core): a server and a client Warden
//! did not write, for the gRPC tests.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::process::Proc;

/// A running gRPC server answering `*/Unary`, `*/Deadline`, `*/ServerStream`,
/// `*/ClientStream` and `*/Bidi` for any service.
pub struct GrpcServer {
    pub proc: Proc,
    pub addr: SocketAddr,
}

fn script() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tools/grpc_peer.py")
}

impl GrpcServer {
    /// Plaintext HTTP/2.
    pub async fn start() -> GrpcServer {
        GrpcServer::start_with(&[]).await
    }

    /// With `serve` arguments: `--tls CERT KEY`, `--client-ca CA`.
    pub async fn start_with(args: &[&str]) -> GrpcServer {
        let mut cmd = Command::new("python3");
        cmd.arg(script()).arg("serve").args(args);
        let proc = Proc::spawn_command("grpc_peer.py serve", cmd);
        let line = proc
            .wait_for_json("listening line (pip install grpcio?)", Duration::from_secs(20), |v| v["listening"].is_u64())
            .await;
        let port = u16::try_from(line["listening"].as_u64().unwrap_or_default()).expect("a port");
        GrpcServer { proc, addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }
}

/// One call's outcome, as the grpcio client saw it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct CallResult {
    pub name: String,
    /// `OK`, `UNAUTHENTICATED`, ...
    pub code: String,
    pub details: Option<String>,
    pub responses: Vec<String>,
    pub initial_metadata: std::collections::BTreeMap<String, String>,
    pub trailing_metadata: std::collections::BTreeMap<String, String>,
    pub seconds: f64,
}

/// Makes `calls` (see the script) to `target` with grpcio's client, in order, on one
/// channel.
pub async fn grpc_calls(target: SocketAddr, calls: serde_json::Value) -> Vec<CallResult> {
    let out = tokio::process::Command::new("python3")
        .arg(script())
        .arg("calls")
        .arg(target.to_string())
        .arg(calls.to_string())
        .output()
        .await
        .expect("run python3");
    assert!(out.status.success(), "grpc_peer.py calls failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("grpc_peer.py printed {e}: {}", String::from_utf8_lossy(&out.stdout)))
}
