//! Warden's policy, with no I/O: what operators write, what sidecars enforce, and the one
//! decision both the sidecar and `wardenctl explain` run. The sidecar executes what this
//! crate decides; the control plane validates and builds with it. Its dependencies hold
//! no runtime, socket, TLS or database crate (`tests/tests/structure.rs` holds it to that).
//!
//! See `docs/architecture.md` for the life of a request and of a policy.
//!
//! # Layout
//!
//! - `yaml/`: the YAML model, validation with line/column errors, the snapshot builder.
//! - `snapshot/`: the compiled domain snapshot the request path reads.
//! - `auth/`: API keys, JWTs, webhook signatures, and the credentials they check against.
//! - `limits/`: rate limit definitions, GCRA counters, global quota shares.
//! - `normalize`, `host`, `client_ip`, `ipset`: what a request's head means.
//! - `decide`: the decision; `refusal`: every answer Warden gives instead of the app;
//!   `grpc`: how a gRPC caller is recognised and answered; `cors`: what browsers are told.
//! - `fallback`: signed bundles of a snapshot and key hashes for a sidecar that starts
//!   while no control-plane replica answers.
//! - `preview`: decision samples replayed through the current and a proposed policy.
//! - `sample`: what a decision sample keeps of a request's headers.
//! - `text`: what counts as a control character, and how one is shown.

pub mod auth;
pub mod client_ip;
pub mod cors;
pub mod decide;
pub mod fallback;
pub mod grpc;
pub mod host;
pub mod ipset;
pub mod limits;
pub mod normalize;
pub mod preview;
pub mod refusal;
pub mod sample;
pub mod snapshot;
pub mod text;
pub mod yaml;
