//! The end-to-end harness: starts the real `warden-control-plane`, `warden-sidecar` and
//! `wardenctl` binaries on 127.0.0.1 with port 0, reads the addresses they log, and gives
//! tests a client, an echo app and `eventually` (wait on a condition with a deadline,
//! never a fixed sleep).
//!
//! The binaries come from the same target directory as the test; `cargo nextest run
//! --workspace` (or `cargo test --workspace`) builds them first.

// A test harness: failing loudly at the spot is what it is for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod app;
pub mod attacks;
pub mod client;
pub mod fixtures;
pub mod grpc_peer;
pub mod hostile;
pub mod imports;
pub mod lenient;
pub mod measure;
pub mod otlp;
pub mod plot;
pub mod postgres;
pub mod process;
pub mod soak;
pub mod stack;
pub mod tls;
pub mod wait;

pub use app::App;
pub use client::{Client, Resp};
pub use fixtures::{closed_port, sign, write_policy};
pub use grpc_peer::{CallResult, GrpcServer, grpc_calls};
pub use lenient::LenientApp;
pub use measure::{cpu_secs, percentile};
pub use process::{ControlPlane, Ctl, Proc, Sidecar, wardenctl};
pub use stack::Stack;
pub use wait::eventually;
