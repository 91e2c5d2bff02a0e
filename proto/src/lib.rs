//! Generated gRPC and protobuf types for `warden.v1`.
//!
//! This crate is the wire contract and nothing else: the sidecar and the control plane
//! convert these types into their own validated domain types at the border, so prost's
//! `Option<…>` fields never reach the request path.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `warden.v1`: policy snapshots, the sidecar streams and the admin service.
pub mod v1 {
    tonic::include_proto!("warden.v1");
}
