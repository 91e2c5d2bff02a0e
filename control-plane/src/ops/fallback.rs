//! Fallback bundles (`wardenctl fallback export`): what a service's sidecars are sent now
//! (its snapshot, its API key hashes), signed with the control plane's key, for a pod that
//! starts while no replica answers. Never a webhook secret: the bundle may live in a
//! ConfigMap.

use warden_policy::fallback::{self, PublicKey};
use warden_proto::v1 as pb;

use crate::clock::now_unix_ms;
use crate::ops::control_plane::ControlPlane;
use crate::ops::error::OpsError;

/// A sealed bundle and what it holds.
#[derive(Debug)]
pub struct FallbackExport {
    /// The file's bytes.
    pub bundle: Vec<u8>,
    pub version: u64,
    pub keys: usize,
    /// The key that verifies it.
    pub public_key: PublicKey,
}

impl ControlPlane {
    /// Seals the snapshot and keys this replica serves to `service`'s sidecars now.
    pub fn export_fallback(&self, service: &str) -> Result<FallbackExport, OpsError> {
        let key = self.fallback_key.as_ref().ok_or_else(|| {
            OpsError::Precondition(
                "this control plane has no signing key: start it with --fallback-signing-key (docs/replicas.md)".into(),
            )
        })?;
        let snapshot = self
            .hub
            .snapshot(service)
            .ok_or_else(|| OpsError::NotFound(format!("service '{service}' has no policy being served")))?;
        let mut credentials = self
            .hub
            .credentials(service)
            .map(|c| pb::Credentials::clone(&c.full))
            .unwrap_or_else(|| pb::Credentials { service: service.to_owned(), ..Default::default() });
        credentials.secrets.clear();
        let contents = pb::FallbackContents {
            snapshot: Some(pb::Snapshot::clone(&snapshot)),
            credentials: Some(credentials),
            created_unix_ms: now_unix_ms(),
        };
        Ok(FallbackExport {
            version: snapshot.version,
            keys: contents.credentials.as_ref().map_or(0, |c| c.keys.len()),
            bundle: fallback::seal(&contents, key),
            public_key: PublicKey::of(key),
        })
    }
}
