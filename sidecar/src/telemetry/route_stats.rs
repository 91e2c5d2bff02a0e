//! Per-route traffic and latency between reports (for `wardenctl top`, and the canary's
//! comparison with its baseline: refusals by reason, 5xx), counted in each worker's own
//! slot (`crate::shards`): a request does one map lookup and a few increments in memory no
//! other worker touches. A report takes every slot's windows and merges them;
//! a route quiet for a whole window is then forgotten, so routes a policy dropped do not
//! pile up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use warden_proto::v1 as pb;

use crate::shards::Sharded;

/// Latency buckets: bucket i counts up to 100 µs × 2^i, the last the rest.
pub const LATENCY_BUCKETS: usize = 18;

/// One route's counts since the last report.
#[derive(Default)]
struct Window {
    requests: u64,
    denials: u64,
    server_errors: u64,
    /// Refusals by reason code: a handful of codes, so a list.
    refusals: Vec<(&'static str, u64)>,
    buckets: [u64; LATENCY_BUCKETS],
}

impl Window {
    fn add(&mut self, other: &Window) {
        self.requests += other.requests;
        self.denials += other.denials;
        self.server_errors += other.server_errors;
        for &(code, n) in &other.refusals {
            self.refuse(code, n);
        }
        self.buckets.iter_mut().zip(&other.buckets).for_each(|(a, b)| *a += b);
    }

    fn refuse(&mut self, code: &'static str, n: u64) {
        match self.refusals.iter_mut().find(|(c, _)| *c == code) {
            Some((_, count)) => *count += n,
            None => self.refusals.push((code, n)),
        }
    }
}

/// How one request ended, as the windows count it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counted {
    /// Refused by Warden, with this reason code.
    pub refused: Option<&'static str>,
    /// Answered with a 5xx.
    pub server_error: bool,
}

type Routes = HashMap<Arc<str>, Window, foldhash::fast::RandomState>;

/// Every route's windows, and when the current one began.
pub struct RouteStats {
    windows: Sharded<Routes>,
    since: Mutex<Instant>,
}

impl Default for RouteStats {
    fn default() -> Self {
        RouteStats { windows: Sharded::default(), since: Mutex::new(Instant::now()) }
    }
}

impl RouteStats {
    /// Counts one request of `route` (None: it matched none).
    pub fn record(&self, route: Option<&Arc<str>>, how: Counted, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // The first bucket whose bound (100 µs × 2^i) holds the latency.
        let bucket = (0..LATENCY_BUCKETS - 1).find(|i| micros <= 100u64 << i).unwrap_or(LATENCY_BUCKETS - 1);
        let count = |w: &mut Window| {
            w.requests += 1;
            w.server_errors += u64::from(how.server_error);
            if let Some(code) = how.refused {
                w.denials += 1;
                w.refuse(code, 1);
            }
            w.buckets[bucket] += 1;
        };
        let mut routes = self.windows.mine();
        // Looked up by name: the route's `Arc` is cloned only the first time in a window.
        if let Some(w) = routes.get_mut(route.map_or("", |r| &**r)) {
            return count(w);
        }
        count(routes.entry(route.cloned().unwrap_or_else(|| Arc::from(""))).or_default());
    }

    /// The window since the last call, per route that had requests in it; `version` is the
    /// policy version served now.
    pub fn take(&self, version: u64) -> Vec<pb::RouteStats> {
        let mut since = self.since.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let interval_ms = u64::try_from((now - *since).as_millis()).unwrap_or(u64::MAX);
        *since = now;
        let mut merged = Routes::default();
        for mut routes in self.windows.each() {
            let taken = std::mem::take(&mut *routes);
            drop(routes);
            for (route, w) in taken {
                merged.entry(route).or_default().add(&w);
            }
        }
        merged
            .into_iter()
            .map(|(route, w)| pb::RouteStats {
                route: route.to_string(),
                interval_ms,
                requests: w.requests,
                denials: w.denials,
                latency_buckets: w.buckets.to_vec(),
                server_errors: w.server_errors,
                refusals: w
                    .refusals
                    .iter()
                    .map(|&(code, count)| pb::RefusalCount { code: code.to_owned(), count })
                    .collect(),
                policy_version: version,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_per_route_and_quiet_routes_are_forgotten() {
        let stats = RouteStats::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let refused = Counted { refused: Some("forbidden"), server_error: false };
        stats.record(Some(&a), Counted::default(), Duration::from_micros(50));
        stats.record(Some(&a), refused, Duration::from_millis(1));
        stats.record(Some(&b), Counted { refused: None, server_error: true }, Duration::from_secs(100));
        stats.record(None, refused, Duration::ZERO);
        stats.record(None, refused, Duration::ZERO);
        let mut first = stats.take(7);
        first.sort_by(|x, y| x.route.cmp(&y.route));
        let summary: Vec<(&str, u64, u64, u64)> =
            first.iter().map(|s| (&*s.route, s.requests, s.denials, s.server_errors)).collect();
        assert_eq!(summary, [("", 2, 2, 0), ("a", 2, 1, 0), ("b", 1, 0, 1)]);
        assert_eq!(first[0].refusals, [pb::RefusalCount { code: "forbidden".into(), count: 2 }]);
        assert_eq!(first[0].policy_version, 7);
        assert_eq!(first[1].latency_buckets[0], 1, "50 µs is in the first bucket");
        assert_eq!(first[1].latency_buckets[4], 1, "1 ms is at most 1.6 ms");
        assert_eq!(first[2].latency_buckets[LATENCY_BUCKETS - 1], 1, "the last bucket holds the rest");

        stats.record(Some(&a), Counted::default(), Duration::ZERO);
        let second = stats.take(7);
        assert_eq!(second.len(), 1, "only a had requests: {second:?}");
        assert_eq!(second[0].requests, 1, "a window starts from zero");
        stats.record(Some(&b), Counted::default(), Duration::ZERO);
        assert_eq!(stats.take(7).iter().map(|s| &*s.route).collect::<Vec<_>>(), ["b"], "and come back when used");
    }
}
