//! What `wardenctl top` shows: the latest per-route traffic and latency window each
//! sidecar reported (every 2 s on the report stream); and, for a service with a canary
//! running, the recent windows it is judged on (`ops/canary.rs`). Kept in memory only; a
//! sidecar not heard from for `FRESH` drops out of `top`, a window older than `KEPT_MS` is
//! forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use crate::clock::now_unix_ms;

/// Windows older than this are not shown.
const FRESH_MS: i64 = 30_000;
/// Windows are kept this long for the canary's sliding window (30 s) and a margin.
const KEPT_MS: i64 = 40_000;

/// The upper bound of a latency bucket, in ms (bucket i: 100 µs × 2^i).
fn bound_ms(i: usize) -> f64 {
    0.1 * f64::from(1u32 << i.min(30))
}

/// The latency under which a share `q` of the requests fell (a bucket's upper bound).
pub fn quantile(buckets: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let want = (total as f64 * q).ceil() as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= want {
            return Some(bound_ms(i));
        }
    }
    None
}

/// One route's traffic over one reporting window of one sidecar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTraffic {
    /// "" = requests no route matched.
    pub route: String,
    pub interval_ms: u64,
    pub requests: u64,
    /// Of them, refused by Warden.
    pub denials: u64,
    /// Latency to the response head: bucket i counts requests up to 100 µs × 2^i.
    pub latency_buckets: Vec<u64>,
    /// Answered with a 5xx.
    pub server_errors: u64,
    /// Warden's refusals by reason code.
    pub refusals: Vec<(String, u64)>,
    /// The policy version the sidecar served when the window closed.
    pub policy_version: u64,
}

/// A route's latest window on one sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopRow {
    pub service: String,
    pub instance: String,
    pub traffic: RouteTraffic,
    /// When it was reported.
    pub unix_ms: i64,
}

/// (service, instance) → the windows it reported lately, each with when, oldest first.
type Recent = HashMap<(String, String), VecDeque<(i64, Vec<RouteTraffic>)>>;

/// The recent windows per sidecar.
#[derive(Default)]
pub struct Traffic {
    recent: Mutex<Recent>,
}

impl Traffic {
    /// A sidecar's new windows: its latest (for `top`), and with `keep` (a canary is being
    /// judged) the ones before it too.
    pub fn report(&self, service: &str, instance: &str, routes: Vec<RouteTraffic>, keep: bool) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now_unix_ms();
        recent.retain(|_, windows| {
            while windows.front().is_some_and(|(at, _)| now - *at >= KEPT_MS) {
                windows.pop_front();
            }
            !windows.is_empty()
        });
        let windows = recent.entry((service.to_owned(), instance.to_owned())).or_default();
        if !keep {
            windows.clear();
        }
        windows.push_back((now, routes));
    }

    /// Every window of `service` reported since `since_unix_ms`, by instance.
    pub fn since(&self, service: &str, since_unix_ms: i64) -> Vec<(String, RouteTraffic)> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        recent
            .iter()
            .filter(|((s, _), _)| s == service)
            .flat_map(|((_, i), windows)| {
                windows
                    .iter()
                    .filter(|(at, _)| *at >= since_unix_ms)
                    .flat_map(move |(_, routes)| routes.iter().map(move |r| (i.clone(), r.clone())))
            })
            .collect()
    }

    /// Fresh windows, optionally of one service ("" = all), by service, route and instance.
    pub fn rows(&self, service: &str) -> Vec<TopRow> {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now_unix_ms();
        let mut rows: Vec<TopRow> = recent
            .iter()
            .filter_map(|(k, windows)| windows.back().map(|(at, routes)| (k, at, routes)))
            .filter(|((s, _), at, _)| (service.is_empty() || s == service) && now - **at < FRESH_MS)
            .flat_map(|((s, i), at, routes)| {
                routes.iter().map(move |r| TopRow {
                    service: s.clone(),
                    instance: i.clone(),
                    traffic: r.clone(),
                    unix_ms: *at,
                })
            })
            .collect();
        rows.sort_by(|a, b| {
            (&a.service, &a.traffic.route, &a.instance).cmp(&(&b.service, &b.traffic.route, &b.instance))
        });
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_bucket_bounds() {
        // 90 requests under 0.1 ms, 9 under 0.4 ms, 1 under 3.2 ms.
        let b = [90, 0, 9, 0, 0, 1];
        assert_eq!(quantile(&b, 0.5), Some(0.1));
        assert_eq!(quantile(&b, 0.99), Some(0.4));
        assert_eq!(quantile(&b, 1.0), Some(3.2));
        assert_eq!(quantile(&[0, 0], 0.5), None);
    }
}
