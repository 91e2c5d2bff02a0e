//! Whether the store answers. Not readiness: a replica whose database is down keeps
//! streaming what it has to connected and reconnecting sidecars, so it stays ready; the
//! store's health is reported beside it (`warden_store_up`, `/healthz`, `wardenctl
//! status`). A ping every `CHECK_EVERY` keeps it current, and a store call that finds the
//! store unavailable marks it down at once.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::clock::now_unix_ms;
use crate::ops::control_plane::{ControlPlane, StoreHealth};
use crate::store::StoreError;

/// How often the store is pinged.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// How long a ping may take before the store counts as down.
const PING_WAIT: Duration = Duration::from_secs(2);

impl ControlPlane {
    /// Pings the store every `CHECK_EVERY` until the control plane is dropped.
    pub(super) fn watch_store(self: &Arc<Self>) {
        self.every(CHECK_EVERY, |cp| async move {
            cp.check_store().await;
        });
    }

    /// Pings the store now; records and returns its health.
    pub async fn check_store(&self) -> StoreHealth {
        let answered = match tokio::time::timeout(PING_WAIT, self.store.ping()).await {
            Ok(answered) => answered,
            Err(_) => {
                Err(StoreError::Unavailable(format!("{}: no answer within {PING_WAIT:?}", self.store.describe())))
            }
        };
        match answered {
            Ok(()) => self.store_answered(),
            Err(e) => {
                self.metrics.store_error("ping", &e);
                self.store_failed(&e);
            }
        }
        self.store_health()
    }

    /// The store's health as last seen.
    pub fn store_health(&self) -> StoreHealth {
        self.health.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(super) fn store_answered(&self) {
        self.set_health(true, String::new());
    }

    /// A call failed: the store is down if it was unavailable (a refused call says
    /// nothing about the store's health).
    pub(super) fn store_failed(&self, e: &StoreError) {
        if let StoreError::Unavailable(reason) = e {
            self.set_health(false, reason.clone());
        }
    }

    fn set_health(&self, up: bool, error: String) {
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        if health.up != up || health.since_unix_ms == 0 {
            match up {
                true => tracing::info!(store = %health.name, "the store answers"),
                false => {
                    tracing::warn!(store = %health.name, %error, "the store is unavailable: sidecars keep being served; changes fail until it is back")
                }
            }
            health.up = up;
            health.since_unix_ms = now_unix_ms();
            self.metrics.store_up(up);
        }
        health.error = error;
    }
}
