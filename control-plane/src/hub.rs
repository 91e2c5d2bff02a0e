//! The current compiled snapshot and credentials of every service, each built once per
//! change and shared by every subscribed sidecar stream through `watch` channels: a new
//! version wakes each subscriber, which sends the same `Arc`'d message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use warden_proto::v1 as pb;
use warden_sidecar::policy::{PolicyErrors, build, parse_service};

use crate::store::PolicyVersion;

type Slot = watch::Sender<Option<Arc<pb::Snapshot>>>;
type CredentialsSlot = watch::Sender<Option<Arc<pb::Credentials>>>;

/// Snapshots and credentials by service.
#[derive(Default)]
pub struct Hub {
    services: Mutex<HashMap<String, Slot>>,
    credentials: Mutex<HashMap<String, CredentialsSlot>>,
}

impl Hub {
    /// Makes `snapshot` its service's current one and wakes every subscriber, unless a
    /// newer version is already published (two applies racing past the store).
    pub fn publish(&self, snapshot: pb::Snapshot) {
        let service = snapshot.service.clone();
        let snapshot = Arc::new(snapshot);
        let mut services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        services.entry(service).or_insert_with(|| watch::channel(None).0).send_if_modified(|current| {
            if current.as_ref().is_some_and(|c| c.version >= snapshot.version) {
                return false;
            }
            *current = Some(snapshot);
            true
        });
    }

    /// A receiver that sees the service's current snapshot and every later one.
    pub fn subscribe(&self, service: &str) -> watch::Receiver<Option<Arc<pb::Snapshot>>> {
        let mut services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        services.entry(service.to_owned()).or_insert_with(|| watch::channel(None).0).subscribe()
    }

    /// Makes `creds` its service's current credentials, unless a later revision is
    /// already published.
    pub fn publish_credentials(&self, creds: pb::Credentials) {
        let service = creds.service.clone();
        let creds = Arc::new(creds);
        let mut all = self.credentials.lock().unwrap_or_else(PoisonError::into_inner);
        all.entry(service).or_insert_with(|| watch::channel(None).0).send_if_modified(|current| {
            if current.as_ref().is_some_and(|c| c.revision > creds.revision) {
                return false;
            }
            *current = Some(creds);
            true
        });
    }

    /// A receiver that sees the service's current credentials and every later one.
    pub fn subscribe_credentials(&self, service: &str) -> watch::Receiver<Option<Arc<pb::Credentials>>> {
        let mut all = self.credentials.lock().unwrap_or_else(PoisonError::into_inner);
        all.entry(service.to_owned()).or_insert_with(|| watch::channel(None).0).subscribe()
    }

    /// The credentials revision subscribers of `service` are being sent, 0 for none.
    pub fn current_credentials(&self, service: &str) -> u64 {
        let all = self.credentials.lock().unwrap_or_else(PoisonError::into_inner);
        all.get(service).and_then(|s| s.borrow().as_ref().map(|c| c.revision)).unwrap_or(0)
    }

    /// The secrets the service's current policy names (its hmac providers).
    pub fn secret_names(&self, service: &str) -> Vec<String> {
        let services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(slot) = services.get(service) else { return Vec::new() };
        let current = slot.borrow();
        let Some(snapshot) = current.as_ref() else { return Vec::new() };
        let mut names: Vec<String> = snapshot
            .auth
            .iter()
            .filter_map(|p| match &p.kind {
                Some(pb::auth_provider::Kind::Hmac(h)) => Some(h.secret.clone()),
                _ => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Every service with a published snapshot or credentials.
    pub fn services(&self) -> Vec<String> {
        let mut out: Vec<String> =
            self.services.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect();
        out.extend(self.credentials.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned());
        out.sort();
        out.dedup();
        out
    }

    /// The version subscribers of `service` are being sent, 0 for none.
    pub fn current_version(&self, service: &str) -> u64 {
        let services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        services.get(service).and_then(|s| s.borrow().as_ref().map(|s| s.version)).unwrap_or(0)
    }
}

/// Builds the snapshot for a stored version, re-validating its source with this build's
/// policy model.
pub fn snapshot_of(v: &PolicyVersion) -> Result<pb::Snapshot, PolicyErrors> {
    let parsed = parse_service(&format!("{}@v{}", v.service, v.version), &v.source_yaml, Some(&v.service))?;
    Ok(build(&parsed.policy, &v.source_yaml, v.version))
}
