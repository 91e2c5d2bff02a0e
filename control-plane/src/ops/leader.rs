//! The evaluator: one replica at a time runs what must run once for the whole fleet (the
//! canary's automatic abort). Every replica stands with the store (`Store::candidate`:
//! a PostgreSQL advisory lock; a store only one replica uses elects it) and asks again
//! every `TICK`, so a dead evaluator's place is taken within about a tick of PostgreSQL
//! dropping its session. A replica that cannot confirm its lead stops evaluating at once.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::clock::now_unix_ms;
use crate::ops::control_plane::ControlPlane;
use crate::store::Leader;

/// How often each replica stands again (and the evaluator confirms it leads).
const TICK: Duration = Duration::from_secs(1);
/// A recorded leader that has not confirmed for this long is not named by `status`.
const STALE_MS: i64 = 10_000;

impl ControlPlane {
    /// Stands for evaluator every `TICK` until the control plane is dropped.
    pub(super) fn stand_for_evaluator(self: &Arc<Self>) {
        let candidate = Arc::new(tokio::sync::Mutex::new(self.store.candidate(self.registry.replica())));
        self.every(TICK, move |cp| {
            let candidate = candidate.clone();
            async move {
                let leads = candidate.lock().await.lead().await;
                if let Err(e) = &leads {
                    tracing::debug!(error = %e, "standing for evaluator failed");
                }
                cp.set_leading(leads.unwrap_or(false));
            }
        });
    }

    fn set_leading(&self, leads: bool) {
        let mut since = self.leading.lock().unwrap_or_else(PoisonError::into_inner);
        match (since.is_some(), leads) {
            (false, true) => {
                *since = Some(now_unix_ms());
                tracing::info!(replica = %self.registry.replica(), "this replica is now the evaluator");
            }
            (true, false) => {
                *since = None;
                tracing::warn!(replica = %self.registry.replica(), "this replica is no longer the evaluator");
            }
            _ => {}
        }
        self.metrics.evaluator(leads);
    }

    /// Whether this replica is the evaluator now.
    pub fn is_evaluator(&self) -> bool {
        self.leading.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    /// The evaluator: this replica if it leads, else the one the store records, if that
    /// one confirmed recently; None while there is none (an election under way, or the
    /// store down).
    pub(super) async fn evaluator(&self) -> Option<Leader> {
        let since = *self.leading.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(since) = since {
            let replica = self.registry.replica().to_owned();
            return Some(Leader { replica, since_unix_ms: since, renewed_unix_ms: now_unix_ms() });
        }
        // With the store down, asking it would only make `status` wait.
        if !self.store_health().up {
            return None;
        }
        let recorded = self.stored("leader", self.store.leader()).await.ok().flatten()?;
        (now_unix_ms() - recorded.renewed_unix_ms < STALE_MS).then_some(recorded)
    }
}
