//! What an endpoint's recent answers say about it: requests outstanding now (what the
//! balancer compares) and passive outlier detection (failures in a row eject it for a
//! while, longer each time). Lives with the endpoint's pool, so a policy swap keeps it.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use warden_policy::snapshot::Outlier;

/// Longest ejection: the base doubled at most this many times.
const MAX_DOUBLINGS: u32 = 6;

/// One endpoint's health.
#[derive(Debug, Default)]
pub struct Health {
    outstanding: AtomicUsize,
    consecutive_failures: AtomicU32,
    /// Milliseconds since the process started (`now_ms`) until which it gets no new
    /// requests; 0: in rotation.
    ejected_until_ms: AtomicU64,
    /// Ejections in a row, without a calm spell between: how long the next one lasts.
    ejections: AtomicU32,
    /// Ejections since start, for `/config` and the metrics.
    ejections_total: AtomicU64,
}

/// A request outstanding on an endpoint, counted until dropped.
#[derive(Debug)]
pub struct Outstanding(Arc<Health>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Milliseconds on a monotonic clock that starts with the process.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// An endpoint's state, for `/config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HealthState {
    pub outstanding: usize,
    pub consecutive_failures: u32,
    /// Milliseconds left out of rotation; 0 when in it.
    pub ejected_for_ms: u64,
    pub ejections: u64,
}

impl Health {
    /// Counts a request until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> Outstanding {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        Outstanding(self.clone())
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    pub fn ejected(&self, now: u64) -> bool {
        now < self.ejected_until_ms.load(Ordering::Relaxed)
    }

    /// Notes an answer. A success ends a failure streak (and, once the endpoint has been
    /// back for a base ejection's time, its ejection history); the `consecutive_failures`-th
    /// failure in a row ejects it if `may_eject` (the upstream is under its `max_ejected`).
    /// True when this call ejected it.
    pub fn report(&self, ok: bool, cfg: &Outlier, may_eject: bool, now: u64) -> bool {
        if ok {
            self.consecutive_failures.store(0, Ordering::Relaxed);
            let until = self.ejected_until_ms.load(Ordering::Relaxed);
            if until != 0 && now > until.saturating_add(cfg.base_ejection.as_millis() as u64) {
                self.ejections.store(0, Ordering::Relaxed);
                self.ejected_until_ms.store(0, Ordering::Relaxed);
            }
            return false;
        }
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < cfg.consecutive_failures || !may_eject || self.ejected(now) {
            return false;
        }
        let n = self.ejections.fetch_add(1, Ordering::Relaxed).min(MAX_DOUBLINGS);
        let length = cfg.base_ejection.as_millis() as u64 * (1 << n);
        self.ejected_until_ms.store(now.saturating_add(length), Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.ejections_total.fetch_add(1, Ordering::Relaxed);
        true
    }

    pub fn state(&self, now: u64) -> HealthState {
        HealthState {
            outstanding: self.outstanding(),
            consecutive_failures: self.consecutive_failures.load(Ordering::Relaxed),
            ejected_for_ms: self.ejected_until_ms.load(Ordering::Relaxed).saturating_sub(now),
            ejections: self.ejections_total.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const CFG: Outlier =
        Outlier { consecutive_failures: 3, base_ejection: Duration::from_secs(10), max_ejected_percent: 50 };

    #[test]
    fn failures_in_a_row_eject_for_longer_each_time() {
        let h = Health::default();
        assert!(!h.report(false, &CFG, true, 0) && !h.report(false, &CFG, true, 0));
        assert!(!h.report(true, &CFG, true, 0), "a success ends the streak");
        assert!(!h.report(false, &CFG, true, 1) && !h.report(false, &CFG, true, 1));
        assert!(h.report(false, &CFG, true, 1), "the third failure in a row ejects");
        assert!(h.ejected(10_000) && !h.ejected(10_001), "for the base ejection");
        for _ in 0..3 {
            h.report(false, &CFG, true, 10_001);
        }
        assert!(h.ejected(30_000) && !h.ejected(30_002), "the second ejection is twice as long");
        assert!(!h.report(false, &CFG, false, 40_000) && !h.report(false, &CFG, false, 40_000));
        assert!(!h.report(false, &CFG, false, 40_000), "not past max_ejected");
        assert_eq!(h.state(40_000).ejections, 2);
    }
}
