//! Why a store call failed, in the two kinds callers act on differently: the store could
//! not be reached or was too busy (a later call may succeed: `/readyz` says not ready, the
//! admin API answers UNAVAILABLE), or it answered and the call itself failed (a broken
//! constraint, a row it cannot read: trying again will not help). Nothing here names a
//! database, so a networked one fits beside SQLite.

/// A failed store call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, busy or out of resources (locked, disk full, connection lost).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered and refused or failed the call.
    #[error("store: {0}")]
    Failed(String),
    /// A change to a service with a rollout running (one at a time; nothing was stored).
    #[error("service '{service}' has a {mode} rollout of v{version} running")]
    RolloutRunning { service: String, version: u64, mode: String },
}

impl StoreError {
    /// The `kind` label of `warden_store_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Failed(_) => "failed",
            StoreError::RolloutRunning { .. } => "conflict",
        }
    }
}
