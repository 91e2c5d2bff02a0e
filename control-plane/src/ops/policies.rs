//! Reading policy: one version of a service, every service's current version, a service's
//! history. Not-found answers are worded here, once, for every edge.

use crate::ops::control_plane::ControlPlane;
use crate::ops::error::OpsError;
use crate::store::{PolicyVersion, RolloutState};

impl ControlPlane {
    /// A service's current version (`version` None) or a given one, with its source.
    pub async fn policy(&self, service: &str, version: Option<u64>) -> Result<PolicyVersion, OpsError> {
        let found = match version {
            None => self.stored("current", self.store.current(service)).await?,
            Some(v) => self.stored("version", self.store.version(service, v)).await?,
        };
        found.ok_or_else(|| match version {
            None => OpsError::NotFound(format!("service '{service}' has no policy")),
            Some(v) => OpsError::NotFound(format!("service '{service}' has no version {v}")),
        })
    }

    /// Every service's current version, with sources, by service name.
    pub async fn services(&self) -> Result<Vec<PolicyVersion>, OpsError> {
        Ok(self.stored("list_current", self.store.list_current()).await?)
    }

    /// A service's versions, newest first, without sources, each with the state of its
    /// rollout if it was a rollout's candidate.
    pub async fn history(&self, service: &str) -> Result<Vec<(PolicyVersion, Option<RolloutState>)>, OpsError> {
        let versions = self.stored("history", self.store.history(service)).await?;
        if versions.is_empty() {
            return Err(OpsError::NotFound(format!("service '{service}' has no policy")));
        }
        let rollouts = self.stored("rollouts", self.store.rollouts(Some(service))).await?;
        Ok(versions
            .into_iter()
            .map(|v| {
                let state = rollouts.iter().find(|r| r.version == v.version).map(|r| r.state);
                (v, state)
            })
            .collect())
    }
}
