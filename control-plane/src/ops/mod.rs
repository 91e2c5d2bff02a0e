//! The operations layer: every rule the control plane applies, over the `Store` interface
//! and the in-process views (hub, registry, quota board, traffic). The gRPC server
//! (`server/`), the HTTP port (`http.rs`) and, in time, a console call these and only
//! translate: wire types to the domain types here and back, `OpsError` to their own
//! status codes. One file per operation, each an `impl ControlPlane` block:
//!
//! - `control_plane.rs`: the state they share; `startup.rs`: loading it, and reporting
//!   stored policies that no longer validate; `follow.rs`: keeping it current with
//!   changes made through other replicas; `health.rs`: whether the store answers;
//!   `quotas.rs`: global quota demand shared with other replicas; `leader.rs`: which
//!   replica is the evaluator.
//! - `apply.rs`, `rollback.rs`, `policies.rs`: policy versions (validate, the global-limit
//!   check, missing-secret warnings, one store unit, publish); `preview.rs`: what a file
//!   would do to recent sampled requests; `rollout.rs`: a candidate tried in shadow or on
//!   a canary before it is promoted, `canary.rs`: the canary's comparison and automatic
//!   abort.
//! - `keys.rs`, `secrets.rs`, `credentials.rs`: credentials, and publishing them under one
//!   process-wide lock.
//! - `sidecars.rs` (with `receipt.rs`): the sidecar streams; `status.rs`, `denials.rs`,
//!   `top.rs`: what is going on; `suggest.rs`: the change that would let a false
//!   positive through; `explain.rs`: a described request, step by step; `metrics.rs`: the metrics they keep.
//! - `copy.rs`: moving a store to another database, verified; `fallback.rs`: signed
//!   bundles for sidecars that start while no replica answers.
//! - `console_key.rs`: the console's session signing key, kept in the store.
//! - `error.rs`: `OpsError`.

mod apply;
mod canary;
mod console_key;
mod control_plane;
mod copy;
mod credentials;
mod denials;
mod error;
mod explain;
mod fallback;
mod follow;
mod health;
pub mod keys;
mod leader;
mod metrics;
mod policies;
mod preview;
mod quotas;
mod receipt;
mod rollback;
mod rollout;
mod secrets;
mod sidecars;
mod startup;
mod status;
mod suggest;
mod top;

pub use crate::hub::Candidate;
pub use crate::quota::{Reply as QuotaReply, Share as QuotaShare, Usage as QuotaUsage};
pub use crate::registry::Event;
pub use crate::traffic::{RouteTraffic, TopRow};
pub use apply::{Applied, ApplyRequest};
pub use canary::{AbortIf, CanaryReport, Side as CanarySide};
pub use control_plane::{ControlPlane, InvalidPolicy, Options, StoreHealth};
pub use copy::{Copied, copy_store};
pub use denials::{MarkRequest, Reviewed};
pub use error::OpsError;
pub use explain::{ExplainAnswer, ExplainRequest};
pub use fallback::FallbackExport;
pub use keys::KeyRequest;
pub use preview::{PreviewRequest, ServicePreview, sample_to_proto};
pub use receipt::check_names;
pub use rollback::RollbackRequest;
pub use rollout::{EndRollout, RolloutPlan, RolloutReport};
pub use sidecars::{Hello, Report, Reporter, Session, ToStore};
pub use status::{SidecarStatus, Status};
pub use suggest::{Suggestion, loosenable};
