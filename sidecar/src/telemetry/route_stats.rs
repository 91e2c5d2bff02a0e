//! Per-route traffic and latency between reports (for `wardenctl top`), counted without a
//! lock: each route's counters are atomics, found in a map that is replaced, not changed,
//! when a route is seen for the first time. A request does one map load and three
//! relaxed increments; only a route's first request ever (or a report) takes the mutex.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use warden_proto::v1 as pb;

/// Latency buckets: bucket i counts up to 100 µs × 2^i, the last the rest.
pub const LATENCY_BUCKETS: usize = 18;

/// One route's counters since the last report.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    denials: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS],
}

type Routes = HashMap<Arc<str>, Arc<Counters>>;

/// Every route's counters, and when the current window began.
pub struct RouteStats {
    routes: ArcSwap<Routes>,
    /// Held to add a route or to close a window, never by a request of a known route.
    writer: Mutex<Instant>,
}

impl Default for RouteStats {
    fn default() -> Self {
        RouteStats { routes: ArcSwap::default(), writer: Mutex::new(Instant::now()) }
    }
}

impl RouteStats {
    /// Counts one request of `route` (None: it matched none).
    pub fn record(&self, route: Option<&Arc<str>>, denied: bool, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // The first bucket whose bound (100 µs × 2^i) holds the latency.
        let bucket = (0..LATENCY_BUCKETS - 1).find(|i| micros <= 100u64 << i).unwrap_or(LATENCY_BUCKETS - 1);
        let name: &str = route.map_or("", |r| r);
        let count = |c: &Counters| {
            c.requests.fetch_add(1, Relaxed);
            c.denials.fetch_add(u64::from(denied), Relaxed);
            c.buckets[bucket].fetch_add(1, Relaxed);
        };
        // Counted through the loaded map: no reference count to bump on the common path.
        match self.routes.load().get(name) {
            Some(c) => count(c),
            None => count(&self.add(route)),
        }
    }

    /// A route's first request: a new map with it added.
    fn add(&self, route: Option<&Arc<str>>) -> Arc<Counters> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let name = route.cloned().unwrap_or_else(|| Arc::from(""));
        // Another request may have added it since the caller looked.
        if let Some(c) = self.routes.load().get(&name) {
            return c.clone();
        }
        let mut routes = Routes::clone(&self.routes.load());
        let counters = routes.entry(name).or_default().clone();
        self.routes.store(Arc::new(routes));
        counters
    }

    /// The window since the last call, per route that had requests in it. Routes quiet
    /// for a whole window are forgotten, so routes a policy dropped do not pile up.
    pub fn take(&self) -> Vec<pb::RouteStats> {
        let mut since = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let interval_ms = u64::try_from((now - *since).as_millis()).unwrap_or(u64::MAX);
        *since = now;
        let routes = self.routes.load_full();
        let mut out = Vec::with_capacity(routes.len());
        let mut quiet = Vec::new();
        for (route, c) in routes.iter() {
            let requests = c.requests.swap(0, Relaxed);
            if requests == 0 {
                quiet.push(route.clone());
                continue;
            }
            out.push(pb::RouteStats {
                route: route.to_string(),
                interval_ms,
                requests,
                denials: c.denials.swap(0, Relaxed),
                latency_buckets: c.buckets.iter().map(|b| b.swap(0, Relaxed)).collect(),
            });
        }
        if !quiet.is_empty() {
            // A request that loaded the old map may still count into a forgotten route's
            // counters: one request lost from a window of a route that was idle.
            let mut kept = Routes::clone(&routes);
            for r in &quiet {
                kept.remove(r);
            }
            self.routes.store(Arc::new(kept));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_per_route_and_quiet_routes_are_forgotten() {
        let stats = RouteStats::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        stats.record(Some(&a), false, Duration::from_micros(50));
        stats.record(Some(&a), true, Duration::from_millis(1));
        stats.record(Some(&b), false, Duration::from_secs(100));
        stats.record(None, true, Duration::ZERO);
        let mut first = stats.take();
        first.sort_by(|x, y| x.route.cmp(&y.route));
        let summary: Vec<(&str, u64, u64)> = first.iter().map(|s| (&*s.route, s.requests, s.denials)).collect();
        assert_eq!(summary, [("", 1, 1), ("a", 2, 1), ("b", 1, 0)]);
        assert_eq!(first[1].latency_buckets[0], 1, "50 µs is in the first bucket");
        assert_eq!(first[1].latency_buckets[4], 1, "1 ms is at most 1.6 ms");
        assert_eq!(first[2].latency_buckets[LATENCY_BUCKETS - 1], 1, "the last bucket holds the rest");

        stats.record(Some(&a), false, Duration::ZERO);
        let second = stats.take();
        assert_eq!(second.len(), 1, "only a had requests: {second:?}");
        assert_eq!(second[0].requests, 1, "a window starts from zero");
        assert_eq!(stats.routes.load().len(), 1, "the quiet routes are forgotten");
        stats.record(Some(&b), false, Duration::ZERO);
        assert_eq!(stats.take().iter().map(|s| &*s.route).collect::<Vec<_>>(), ["b"], "and come back when used");
    }
}
