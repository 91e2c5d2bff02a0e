//! Rolling back: an earlier version's content becomes current again as a new version (so
//! history only grows), validated with this build's policy model and applied like any
//! other policy: the same global-limit check, store unit and publish.

use warden_policy::yaml::parse_service;

use crate::ops::apply::{Applied, Change, result_of};
use crate::ops::control_plane::ControlPlane;
use crate::ops::error::OpsError;

/// Which version to restore.
#[derive(Debug, Clone, Default)]
pub struct RollbackRequest {
    pub service: String,
    /// The version to restore; 0 for the one before the current.
    pub to_version: u64,
    /// "unknown" when empty.
    pub author: String,
    /// "rollback to vN" when empty.
    pub message: String,
    /// Abort a running rollout of the service first (else the rollback is refused).
    pub force: bool,
}

impl ControlPlane {
    /// Makes an earlier version current again, as a new version.
    pub async fn rollback(&self, r: RollbackRequest) -> Result<Vec<Applied>, OpsError> {
        let out = self.rollback_unmetered(r).await;
        self.metrics.apply("rollback", result_of(&out, false));
        out
    }

    async fn rollback_unmetered(&self, r: RollbackRequest) -> Result<Vec<Applied>, OpsError> {
        let current = self
            .stored("current", self.store.current(&r.service))
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("service '{}' has no policy", r.service)))?;
        let to = match r.to_version {
            // The live version before the current one: no candidate that never went live.
            0 => {
                let not_live: Vec<u64> = self
                    .stored("rollouts", self.store.rollouts(Some(&r.service)))
                    .await?
                    .into_iter()
                    .filter(|x| x.state != crate::store::RolloutState::Promoted)
                    .map(|x| x.version)
                    .collect();
                (1..current.version).rev().find(|v| !not_live.contains(v)).unwrap_or(0)
            }
            v => v,
        };
        if to == 0 {
            return Err(OpsError::Precondition(format!(
                "service '{}' has only version {}: there is nothing to roll back to",
                r.service, current.version
            )));
        }
        if to == current.version {
            return Err(OpsError::Precondition(format!("version {to} is already current")));
        }
        let target = self
            .stored("version", self.store.version(&r.service, to))
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("service '{}' has no version {to}", r.service)))?;
        let parsed = parse_service(&format!("{}@v{to}", r.service), &target.source_yaml, Some(&r.service))
            .map_err(|e| OpsError::Precondition(format!("version {to} no longer validates:\n{e}")))?;
        let message = if r.message.is_empty() { format!("rollback to v{to}") } else { r.message };
        let change = Change { author: &r.author, message: &message, force: r.force, ..Change::default() };
        self.store_and_publish(vec![parsed], change).await
    }
}
