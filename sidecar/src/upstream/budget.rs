//! The retry budget (Linkerd's and Finagle's): an upstream takes retries up to a share of
//! its requests plus a small steady allowance, counted over a sliding window, so a failing
//! upstream sees at most that many more requests, never a retry storm.

use std::sync::atomic::{AtomicU64, Ordering};

use warden_policy::snapshot::RetryBudget;

use crate::upstream::health::now_ms;

/// The window requests and retries are counted over.
const WINDOW_MS: u64 = 10_000;

/// Requests and retries in the current and the previous window.
#[derive(Debug, Default)]
pub struct Budget {
    window: AtomicU64,
    requests: [AtomicU64; 2],
    retries: [AtomicU64; 2],
    /// Retries refused for want of budget, since start.
    pub exhausted: AtomicU64,
}

impl Budget {
    /// The slot of the current window, clearing it when a new window begins.
    fn slot(&self) -> usize {
        let w = now_ms() / WINDOW_MS;
        let seen = self.window.load(Ordering::Relaxed);
        let slot = (w % 2) as usize;
        if seen != w && self.window.compare_exchange(seen, w, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.requests[slot].store(0, Ordering::Relaxed);
            self.retries[slot].store(0, Ordering::Relaxed);
            if w > seen + 1 {
                // More than a window without traffic: the previous one is empty too.
                self.requests[1 - slot].store(0, Ordering::Relaxed);
                self.retries[1 - slot].store(0, Ordering::Relaxed);
            }
        }
        slot
    }

    /// Counts a request (the first try).
    pub fn request(&self) {
        self.requests[self.slot()].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry from the budget, if there is one left.
    pub fn withdraw(&self, cfg: &RetryBudget) -> bool {
        let slot = self.slot();
        let requests = self.requests[0].load(Ordering::Relaxed) + self.requests[1].load(Ordering::Relaxed);
        let retries = self.retries[0].load(Ordering::Relaxed) + self.retries[1].load(Ordering::Relaxed);
        // Over the two windows (up to 20 s): the ratio of requests, plus the steady rate.
        let allowed = requests as f64 * f64::from(cfg.ratio_percent) / 100.0
            + cfg.min_per_second() * (2 * WINDOW_MS) as f64 / 1000.0;
        if (retries as f64) < allowed {
            self.retries[slot].fetch_add(1, Ordering::Relaxed);
            true
        } else {
            self.exhausted.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retries_stay_within_the_ratio_and_the_steady_allowance() {
        let cfg = RetryBudget { ratio_percent: 20, min_count: 1, min_period: Duration::from_secs(1) };
        let b = Budget::default();
        for _ in 0..1000 {
            b.request();
        }
        let granted = (0..1000).filter(|_| b.withdraw(&cfg)).count();
        // 20 % of 1000, plus 1/s over the 20 s the two windows span.
        assert!((200..=221).contains(&granted), "{granted}");
        assert_eq!(b.exhausted.load(Ordering::Relaxed), 1000 - granted as u64);
    }
}
