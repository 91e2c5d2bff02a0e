//! The gRPC server, translation only: the sidecar streams (`sidecar.rs`) and the admin
//! API (`admin.rs`) on one port (`grpc.rs`), bearer tokens (`auth.rs`), wire messages to
//! the operations layer's domain types and back (`convert.rs`), `OpsError` to a status
//! (`status.rs`). Every rule lives in `ops/`.

mod admin;
mod auth;
mod convert;
mod grpc;
mod sidecar;
mod status;

pub use auth::{Admitted, BearerToken, SidecarTokens};
pub use grpc::serve;
