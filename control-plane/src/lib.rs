//! Warden's control plane and its CLI.
//!
//! # Layout
//!
//! - `ops/`: the operations layer, every rule the control plane applies (apply, rollback,
//!   keys, secrets, credentials, status, denials, top, the sidecar streams), over the
//!   store interface and the in-process views below.
//! - `store/`: the async `Store` interface in domain types (one transactional unit per
//!   method, `Unavailable` for a store that cannot answer now) and its SQLite
//!   implementation: every policy version, every sidecar's last word, API key hashes,
//!   webhook secrets, the deny log.
//! - `hub`: each service's current compiled snapshot and credentials, shared by all its
//!   subscribers; `registry`: which sidecars are connected and what they ACKed or NACKed;
//!   `quota`: global quotas divided among sidecars by their reported demand; `traffic`:
//!   each sidecar's latest per-route traffic; `change_trace`: traces of apply → build → push →
//!   ACKs (OTLP, when configured). Views the operations feed.
//! - `server/`: the gRPC server (sidecar streams, admin API), translation only.
//! - `http`: `/healthz`, `/readyz`, `/metrics` and the console on `--http`;
//!   `console/`: the web console's pages, translation only.
//! - `cli/`: `wardenctl`, one file per command (a gRPC client of `server/`).
//! - `signing`: the fallback signing key file (`--fallback-signing-key`).
//! - `explain`: the step-by-step answer `wardenctl explain` and the console's form print
//!   (pure, over the policy crate's `decide`).
//! - `clock`: "now" in Unix milliseconds, the unit of every stored time.
//!
//! Imports run one way: `server` and `http` → `ops` → the views and `store`; `cli` reaches
//! the control plane over gRPC only.
//! Policy meaning (parsing, validation, building, `decide`) lives in the `warden-policy`
//! crate; this crate stores, distributes and collects. The life of a policy is drawn in
//! docs/architecture.md.

pub mod change_trace;
pub mod cli;
pub mod clock;
pub mod console;
pub mod explain;
pub mod http;
pub mod hub;
pub mod ops;
pub mod quota;
pub mod registry;
pub mod server;
pub mod signing;
pub mod store;
pub mod traffic;
