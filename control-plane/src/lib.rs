//! Warden's control plane and its CLI.
//!
//! # Layout
//!
//! - `store`: the embedded SQLite store: every policy version, every sidecar's last word,
//!   API key hashes and webhook secrets.
//! - `hub`: each service's current compiled snapshot and credentials, shared by all its subscribers.
//! - `registry`: which sidecars are connected and what they ACKed or NACKed.
//! - `rollout`: traces of apply → build → push → ACKs (OTLP, when configured).
//! - `quota`: global quotas divided among sidecars by their reported demand.
//! - `traffic`: each sidecar's latest per-route traffic and latency, for `wardenctl top`.
//! - `server/`: the thin gRPC layer (sidecar streams, admin API).
//! - `cli/`: `wardenctl`, one file per command.
//!
//! Policy meaning (parsing, validation, building, `decide`) lives in the sidecar crate's
//! library; this crate stores, distributes and collects.

pub mod cli;
pub mod hub;
pub mod quota;
pub mod registry;
pub mod rollout;
pub mod server;
pub mod store;
pub mod traffic;
