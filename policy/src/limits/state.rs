//! Limit counters that outlive snapshots: found again by each limit's fingerprint, so a
//! policy push resets nobody's budget unless that limit's definition changed. The
//! sidecar binds each snapshot's limits here when it installs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::limits::gcra::Buckets;
use crate::snapshot::compiled::Snapshot;

/// Counters by limit fingerprint, held weakly: they live as long as a snapshot uses them
/// and are found again by the next snapshot with the same definition.
#[derive(Debug)]
pub struct LimitState {
    by_fingerprint: Mutex<HashMap<String, Weak<Buckets>>>,
    max_keys: usize,
}

impl LimitState {
    /// Each limit tracks at most `max_keys` keys at once.
    pub fn new(max_keys: usize) -> Self {
        LimitState { by_fingerprint: Mutex::new(HashMap::new()), max_keys }
    }

    /// The counters of each of the snapshot's limits, by `Limit::index`: the ones a
    /// previous snapshot used for the same definition, else new ones.
    pub fn bind(&self, snapshot: &Snapshot) -> Vec<Arc<Buckets>> {
        snapshot.limits.iter().map(|l| self.buckets(&l.fingerprint)).collect()
    }

    fn buckets(&self, fingerprint: &str) -> Arc<Buckets> {
        let mut all = self.by_fingerprint.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|_, b| b.strong_count() > 0);
        if let Some(b) = all.get(fingerprint).and_then(Weak::upgrade) {
            return b;
        }
        let b = Arc::new(Buckets::new(self.max_keys));
        all.insert(fingerprint.to_owned(), Arc::downgrade(&b));
        b
    }
}

impl Default for LimitState {
    fn default() -> Self {
        LimitState::new(100_000)
    }
}
