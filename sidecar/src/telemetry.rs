//! Process-wide logging set-up shared by the Warden binaries: human-readable lines on
//! stderr, level from `WARDEN_LOG` (default `info`), colour only on a terminal.

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
