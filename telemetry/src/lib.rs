//! How Warden's own processes report on themselves, the same way in the sidecar and the
//! control plane: log lines on stderr (`init_logging`) and OpenTelemetry traces exported
//! over OTLP (`traces`). The control plane needs these and nothing of the proxy's, so
//! they are a crate of their own.

pub mod traces;

pub use traces::Traces;

/// Announces a start: one JSON line on stderr saying which process this is and what it
/// bound, e.g. `{"warden":"started","process":"warden-sidecar","version":"0.1.0",
/// "pid":42,"proxy":"127.0.0.1:8080","admin":"127.0.0.1:15000"}`. A contract
/// (docs/operations.md): whoever starts a Warden process with port 0 reads the ports here,
/// not from log text, which may change.
pub fn announce_start(process: &str, bound: &[(&str, std::net::SocketAddr)]) {
    let mut line = serde_json::json!({
        "warden": "started",
        "process": process,
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
    });
    for (name, addr) in bound {
        line[*name] = serde_json::Value::String(addr.to_string());
    }
    eprintln!("{line}");
}

/// Installs the global subscriber for Warden's own logs (stderr; the sidecar's access log
/// is stdout). Call once, first thing in `main`: human-readable lines, level from
/// `WARDEN_LOG` (default `info`), colour only on a terminal.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
