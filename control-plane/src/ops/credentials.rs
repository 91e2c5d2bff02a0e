//! Publishing a service's credentials (its API keys, and the secrets its current policy
//! names) to its sidecars. One refresh at a time, process-wide: each reads the revision
//! the last one published and publishes only what changed since, so two at once would
//! build diverging changes on the same base. A policy that names other secrets is
//! published under the same lock, after the credentials it needs.

use warden_proto::v1 as pb;

use crate::hub::{Candidate, CredentialsState, secret_names};
use crate::ops::control_plane::ControlPlane;
use crate::store::{CredentialRows, KeyRow, StoreError};

impl ControlPlane {
    /// Publishes what changed in a service's credentials since the revision its sidecars
    /// were last sent, or the whole set the first time. Called after every key, secret or
    /// policy change.
    pub async fn refresh_credentials(&self, service: &str) -> Result<(), StoreError> {
        self.publish_with_credentials(service, None).await
    }

    /// Refreshes the credentials for the secrets `snapshot` names, then publishes it: its
    /// sidecars get the secrets before the policy that needs them. Under the same lock, so
    /// no other refresh reads the old policy's secret names in between.
    pub(super) async fn publish_with_credentials(
        &self,
        service: &str,
        snapshot: Option<pb::Snapshot>,
    ) -> Result<(), StoreError> {
        let _one_at_a_time = self.refreshing.lock().await;
        // A newer version was published while this one waited (another replica's change
        // read before a local apply): its credentials, for its secret names, stay.
        if snapshot.as_ref().is_some_and(|s| s.version <= self.hub.current_version(service)) {
            return Ok(());
        }
        let mut names = match &snapshot {
            Some(s) => secret_names(s),
            None => self.hub.secret_names(service),
        };
        // A running rollout's candidate may name secrets the live version does not.
        if let Some(c) = self.hub.candidate(service) {
            names.extend(secret_names(&c.snapshot));
            names.sort();
            names.dedup();
        }
        self.refresh_locked(service, names).await?;
        if let Some(s) = snapshot {
            self.hub.publish(s);
        }
        Ok(())
    }

    /// Refreshes the credentials for the secrets the live version and `candidate` name,
    /// then makes `candidate` the service's rollout candidate (None: none): its sidecars
    /// get the secrets before the candidate that needs them.
    pub(super) async fn publish_candidate(
        &self,
        service: &str,
        candidate: Option<Candidate>,
    ) -> Result<(), StoreError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let mut names = self.hub.secret_names(service);
        if let Some(c) = &candidate {
            names.extend(secret_names(&c.snapshot));
            names.sort();
            names.dedup();
        }
        let held = self.hub.credentials(service).map(|c| c.secret_names.clone()).unwrap_or_default();
        // Secrets come before the candidate that needs them and go after the one that did:
        // a canary sidecar never serves a candidate without its secrets.
        let shrinks = held.iter().any(|n| !names.contains(n));
        if names != held && !shrinks {
            self.refresh_locked(service, names.clone()).await?;
        }
        self.hub.publish_candidate(service, candidate);
        if shrinks {
            self.refresh_locked(service, names).await?;
        }
        Ok(())
    }

    async fn refresh_locked(&self, service: &str, names: Vec<String>) -> Result<(), StoreError> {
        let epoch = self.store.epoch();
        let state = match self.hub.credentials(service) {
            None => {
                let read = self.stored("credentials", self.store.credentials(service, 0, names.clone())).await?;
                CredentialsState::new(message(epoch, service, 0, read), names)
            }
            Some(current) => {
                if current.secret_names != names {
                    // The secrets sent change with no key or secret row changing.
                    self.stored("bump_credentials_revision", self.store.bump_credentials_revision()).await?;
                }
                let base = current.full.revision;
                let read = self.stored("credentials", self.store.credentials(service, base, names.clone())).await?;
                if read.revision == base {
                    return Ok(());
                }
                current.apply(message(epoch, service, base, read), names)
            }
        };
        self.hub.publish_credentials(service, state);
        Ok(())
    }
}

/// The credentials message sidecars get: the keys and secrets read at `read.revision`,
/// as a change on top of `base` (0: the whole set).
fn message(epoch: u64, service: &str, base: u64, read: CredentialRows) -> pb::Credentials {
    pb::Credentials {
        epoch,
        service: service.to_owned(),
        revision: read.revision,
        base_revision: base,
        keys: read.keys.into_iter().map(api_key).collect(),
        secrets: read
            .secrets
            .into_iter()
            .map(|s| pb::Secret { name: s.name, id: s.id, value: s.value, expires_unix_ms: s.expires_unix_ms })
            .collect(),
    }
}

/// A stored key as sidecars (and explain) check it: its hash and who it names.
pub(super) fn api_key(k: KeyRow) -> pb::ApiKey {
    pb::ApiKey {
        id: k.id,
        sha256: k.sha256,
        client: k.client,
        plan: k.plan,
        expires_unix_ms: k.expires_unix_ms,
        revoked_unix_ms: k.revoked_unix_ms,
    }
}
