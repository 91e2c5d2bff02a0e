//! Generated gRPC and protobuf types for `warden.v1`.
//!
//! This crate is the wire contract and nothing else: the sidecar and the control plane
//! convert these types into their own validated domain types at the border, so prost's
//! `Option<…>` fields never reach the request path.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

use prost::Message;
use prost::bytes::Bytes;

/// `warden.v1`: policy snapshots, the sidecar streams and (with the `grpc` feature) the
/// admin and sidecar services.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/warden.v1.rs"));
}

/// The largest message a Warden client accepts from the control plane. gRPC's usual 4 MiB
/// is too small for a whole credentials set past ~55,000 API keys (100,000 are 7.6 MB) or
/// a `keys list` as long; the control plane is authenticated, so this bounds mistakes, not
/// attacks: about 3 million keys.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// Deny records per report at most: a sidecar sends no more, the control plane keeps no
/// more of one report.
pub const MAX_DENIALS: usize = 2_000;

/// Decision samples per report at most, likewise.
pub const MAX_SAMPLES: usize = 5_000;

/// A message with its encoding, made once, on first use: the control plane keeps each
/// snapshot version and credentials change this way, so a push to 10,000 streams costs one
/// encoding and 10,000 reference counts, not 10,000 deep copies and encodings (and a whole
/// credentials set that only new sidecars need is encoded only if one connects).
#[derive(Debug, Default)]
pub struct Encoded<T> {
    message: T,
    bytes: std::sync::OnceLock<Bytes>,
}

impl<T: Message> Encoded<T> {
    pub fn new(message: T) -> Self {
        Encoded { message, bytes: std::sync::OnceLock::new() }
    }

    /// The encoding, shared.
    pub fn bytes(&self) -> Bytes {
        self.bytes.get_or_init(|| self.message.encode_to_vec().into()).clone()
    }
}

impl<T> std::ops::Deref for Encoded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A push made of encoded bytes must read as the message fields it stands for.
    #[test]
    fn a_push_of_encoded_bytes_is_the_nested_message_on_the_wire() {
        let snapshot = v1::Snapshot { service: "orders".into(), version: 7, ..Default::default() };
        let push = v1::SnapshotPush {
            snapshot: Some(Encoded::new(snapshot.clone()).bytes()),
            credentials: None,
            shadow: None,
        };
        /// The same field as a nested message, as protobuf defines it.
        #[derive(Clone, PartialEq, Message)]
        struct AsMessage {
            #[prost(message, optional, tag = "1")]
            snapshot: Option<v1::Snapshot>,
        }
        let decoded = AsMessage::decode(push.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.snapshot, Some(snapshot));
    }
}
