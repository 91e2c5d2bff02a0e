//! The current compiled snapshot of every service, built once per service and version and
//! shared by every subscribed sidecar stream through a `watch` channel: a new version
//! wakes each subscriber, which sends the same `Arc`'d snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;
use warden_proto::v1 as pb;
use warden_sidecar::policy::{PolicyErrors, build, parse_service};

use crate::store::PolicyVersion;

type Slot = watch::Sender<Option<Arc<pb::Snapshot>>>;

/// Snapshots by service.
#[derive(Default)]
pub struct Hub {
    services: Mutex<HashMap<String, Slot>>,
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
