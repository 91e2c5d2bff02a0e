//! Warden's data plane: the sidecar beside one service. It executes what the policy crate
//! (`warden_policy`) decides: accepts connections, asks `decide`, forwards or answers, and
//! keeps the policy live as the control plane pushes it.
//!
//! The life of a request and of a policy, and where each step lives, are drawn once, in
//! `docs/architecture.md`.
//!
//! # Layout
//!
//! - `listener`, `detect`, `client_io`: accept TCP, TLS (`tls`), HTTP/1.1 or HTTP/2.
//! - `proxy`: one request, top to bottom; `edge`: its size caps; `signed_body`: bodies a
//!   signature covers.
//! - `tunnel`: WebSocket upgrades joined to the app's; `exchange`: a request's tries on the
//!   upstream (balancing, retries); `upstream/`:
//!   connection pools, circuit breakers, endpoint health, sending.
//! - `active`: what is served, as one value; `installer`: its one writer; `live`: how the
//!   rest reads it and sends changes; `control`, `policy_file`, `state`, `fallback`: how
//!   policy arrives and is kept; `reload`: `jwks_file` and certificate reloads.
//! - `report`: demand on global quotas out, quota shares in.
//! - `admin`: health, readiness and the config dump; `telemetry/`: logs, metrics, traces.
//! - `shards`: per-worker slots for what every request updates.

pub mod active;
pub mod admin;
pub mod client_io;
pub mod control;
pub mod detect;
pub mod edge;
pub mod exchange;
pub mod fallback;
pub mod installer;
pub mod listener;
pub mod live;
pub mod policy_file;
pub mod proxy;
pub mod reload;
pub mod report;
pub mod shards;
pub mod signed_body;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod tunnel;
pub mod upstream;
