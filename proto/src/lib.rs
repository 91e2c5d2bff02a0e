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

/// The largest message a Warden client accepts from the control plane. gRPC's usual 4 MiB
/// is too small for a whole credentials set past ~55,000 API keys (100,000 are 7.6 MB) or
/// a `keys list` as long; the control plane is authenticated, so this bounds mistakes, not
/// attacks: about 3 million keys.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
