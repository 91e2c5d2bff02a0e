//! What is going on: every sidecar's state against its service's current version and
//! credentials revision, the stored policies that no longer validate, whether the store
//! answers (`/readyz`), and the metrics (`/metrics`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ops::control_plane::{ControlPlane, InvalidPolicy};
use crate::ops::error::OpsError;
use crate::ops::metrics::FleetMember;
use crate::store::{SidecarRecord, StoreError};

/// How long `/readyz` waits for the store: past it the store counts as unavailable.
const READY_WAIT: Duration = Duration::from_secs(2);

/// One sidecar, as `wardenctl status` shows it.
#[derive(Debug, Clone)]
pub struct SidecarStatus {
    pub record: SidecarRecord,
    pub connected: bool,
    /// The credentials revision it checks against.
    pub acked_credentials: u64,
    /// Its service's current version and credentials revision, to tell who is behind.
    pub current_version: u64,
    pub current_credentials: u64,
}

/// The fleet and what is wrong with the stored policies.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub sidecars: Vec<SidecarStatus>,
    /// Services whose current stored policy no longer validates (not served).
    pub invalid_policies: Vec<InvalidPolicy>,
}

impl ControlPlane {
    /// Every known sidecar and every invalid stored policy, optionally of one service.
    pub fn status(&self, service: Option<&str>) -> Status {
        let sidecars = self
            .registry
            .list(service)
            .into_iter()
            .map(|s| SidecarStatus {
                current_version: self.hub.current_version(&s.record.service),
                current_credentials: self.hub.current_credentials(&s.record.service),
                record: s.record,
                connected: s.connected,
                acked_credentials: s.acked_credentials,
            })
            .collect();
        let invalid = self.invalid.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let invalid_policies = invalid.values().filter(|p| service.is_none_or(|s| p.service == s)).cloned().collect();
        Status { sidecars, invalid_policies }
    }

    /// Succeeds when the store answers within `READY_WAIT`.
    pub async fn ready(&self) -> Result<(), OpsError> {
        let ping = self.stored("ping", self.store.ping());
        match tokio::time::timeout(READY_WAIT, ping).await {
            Ok(answered) => Ok(answered?),
            Err(_) => {
                let e = StoreError::Unavailable(format!("no answer within {READY_WAIT:?}"));
                self.metrics.store_error("ping", &e);
                Err(e.into())
            }
        }
    }

    /// The metrics in Prometheus / OpenMetrics text.
    pub fn metrics_text(&self) -> String {
        let fleet: Vec<FleetMember> = self
            .registry
            .list(None)
            .into_iter()
            .map(|s| FleetMember {
                service: s.record.service,
                connected: s.connected,
                acked_version: s.record.acked_version,
            })
            .collect();
        let current: BTreeMap<String, u64> =
            self.hub.services().into_iter().map(|s| (s.clone(), self.hub.current_version(&s))).collect();
        self.metrics.encode(&fleet, &current)
    }
}
