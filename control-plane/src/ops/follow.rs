//! Following changes made through other replicas (several replicas on one PostgreSQL):
//! the store's change feed names what changed as it commits, and this replica reads it
//! and publishes it to its own sidecars as if it had been applied here. A periodic check
//! of the store's heads (every service's current version, the credentials revision) is
//! the safety net for a notification lost while the feed reconnected.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::ops::control_plane::ControlPlane;
use crate::store::{Change, StoreError};

/// How often the heads are compared when no notification came.
const RECHECK: Duration = Duration::from_secs(2);

impl ControlPlane {
    /// Follows `changes` (and checks the heads every `RECHECK`) until the control plane
    /// is dropped.
    pub(super) fn follow(self: &Arc<Self>, mut changes: mpsc::Receiver<Change>) {
        let cp = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut recheck = tokio::time::interval(RECHECK);
            recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let change = tokio::select! {
                    c = changes.recv() => match c {
                        Some(c) => c,
                        None => return,
                    },
                    _ = recheck.tick() => Change::Resync,
                };
                let Some(cp) = cp.upgrade() else { return };
                if let Err(e) = cp.catch_up(change).await {
                    tracing::warn!(error = %e, "catching up with the store failed; the next check retries");
                }
            }
        });
    }

    /// Publishes what `change` says changed, read back from the store.
    async fn catch_up(&self, change: Change) -> Result<(), StoreError> {
        match change {
            Change::Policy(service) => self.serve_rollout(&service).await?,
            Change::Credentials(Some(service)) => self.refresh_credentials(&service).await?,
            Change::Credentials(None) => {
                for service in self.hub.services() {
                    self.refresh_credentials(&service).await?;
                }
            }
            Change::Resync => {
                let heads = self.stored("heads", self.store.heads()).await?;
                for (service, version) in heads.versions {
                    if version > self.hub.current_version(&service)
                        && let Some(v) = self.stored("current", self.store.current(&service)).await?
                    {
                        self.serve_stored(v).await?;
                    }
                }
                for service in self.hub.services() {
                    if self.hub.current_credentials(&service) < heads.credentials_revision {
                        self.refresh_credentials(&service).await?;
                    }
                }
                self.serve_rollouts().await?;
            }
        }
        Ok(())
    }
}
