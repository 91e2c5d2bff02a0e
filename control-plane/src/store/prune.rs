//! When each service's decision samples were last pruned: both stores prune a service's
//! samples after inserting its samples, at most every `EVERY_MS` per service, so every
//! busy service is kept within its cap and a quiet one costs nothing.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

const EVERY_MS: i64 = 5_000;

#[derive(Debug, Default)]
pub struct PruneClock(Mutex<HashMap<String, i64>>);

impl PruneClock {
    /// Whether `service` is due a prune at `now_ms`; if so, it counts as pruned now.
    pub fn due(&self, service: &str, now_ms: i64) -> bool {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match last.get(service) {
            Some(at) if now_ms - at < EVERY_MS => false,
            _ => {
                last.insert(service.to_owned(), now_ms);
                true
            }
        }
    }
}
