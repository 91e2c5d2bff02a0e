//! Warden's data plane: the sidecar that sits beside one service, and the policy model
//! that the control plane and `wardenctl` share with it.
//!
//! # The life of a request
//!
//! ```text
//! listener.rs   accept TCP, speak HTTP/1.1 or h2c (hyper-util auto)
//!   proxy.rs    handle(req):
//!                 snapshot = live.snapshot()          one atomic load, no lock
//!                 path     = normalize_path(uri)      normalize.rs
//!                 client   = client_ip::derive(..)    client_ip.rs (trusted proxies, x-forwarded-for)
//!                 decision = decide(&snapshot, head)  decide.rs: access -> route -> route access -> auth -> rewrite
//!                                                     (pure; also what `wardenctl explain` runs)
//!                 Deny(r)    -> r.response()          deny.rs (the one place for refusals)
//!                 Forward(r) -> upstream client       upstream.rs (pooled keep-alive)
//! ```
//!
//! # The life of a policy
//!
//! ```text
//! YAML -> policy::parse_file -> policy::build -> proto Snapshot   (control plane or --policy-file)
//!      -> control.rs receives it -> live.install():
//!           config::Snapshot::compile (typed InvalidSnapshot -> NACK)
//!           upstream::check_resolvable
//!           ArcSwap::store, then state::SnapshotWriter (last known good, group commit)
//!      -> control.rs ACKs once the write of it (or of a newer one) is done
//! ```
//!
//! # Layout
//!
//! - `policy/`: the YAML model, validation with line/column errors, the snapshot builder.
//! - `config/`: the compiled domain snapshot the request path reads.
//! - `auth/`: API keys, JWTs, webhook signatures, and the credentials they check against.
//! - `limits/`: rate limits and quotas (GCRA counters that outlive snapshots).
//! - `normalize`, `client_ip`, `ipset`, `decide`, `deny`: pure request logic.
//! - `proxy`, `listener`, `upstream`, `tls`: the request path's I/O.
//! - `live`, `control`, `policy_file`, `state`: how policy arrives and is kept.
//! - `report`: demand on global quotas out, quota shares in.
//! - `admin`: health, readiness and the config dump; `telemetry`: logging set-up.
//! - `text`: what counts as a control character, and how one is shown (also for the
//!   control plane and `wardenctl`).

pub mod admin;
pub mod auth;
pub mod client_io;
pub mod client_ip;
pub mod config;
pub mod control;
pub mod decide;
pub mod deny;
pub mod detect;
pub mod host;
pub mod ipset;
pub mod limits;
pub mod listener;
pub mod live;
pub mod normalize;
pub mod policy;
pub mod policy_file;
pub mod proxy;
pub mod report;
pub mod signed_body;
pub mod state;
pub mod telemetry;
pub mod text;
pub mod tls;
pub mod upstream;
