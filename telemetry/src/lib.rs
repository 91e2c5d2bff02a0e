//! How Warden's own processes report on themselves, the same way in the sidecar and the
//! control plane: log lines on stderr (`init_logging`) and OpenTelemetry traces exported
//! over OTLP (`traces`). The control plane needs these and nothing of the proxy's, so
//! they are a crate of their own.

pub mod traces;

pub use traces::Traces;

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
