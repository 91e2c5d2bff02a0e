//! The metrics every request updates: `warden_requests_total{route,status,decision}` and
//! the request and upstream latency histograms by route. Counted in each worker's own slot
//! (`crate::shards`) and summed when `/metrics` is scraped: a `Family` would take a shared lock
//! and a histogram's mutex per request, the lines every worker writes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, LabelValueEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::shards::Sharded;

/// A route name as a label value: the snapshot's own `Arc<str>`, shared rather than
/// copied for every request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct RouteName(pub(super) Option<Arc<str>>);

impl EncodeLabelValue for RouteName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0.as_deref().unwrap_or(""), encoder)
    }
}

/// Histogram bounds: 100 µs × 2^i (to ~13 s), then +Inf.
const BOUNDS: usize = 18;

#[derive(Clone, Copy)]
struct Histogram {
    buckets: [u64; BOUNDS + 1],
    count: u64,
    sum: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: [0; BOUNDS + 1], count: 0, sum: 0.0 }
    }
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let nanos = d.as_nanos();
        let i = (0..BOUNDS).find(|i| nanos <= 100_000u128 << i).unwrap_or(BOUNDS);
        self.buckets[i] += 1;
        self.count += 1;
        self.sum += d.as_secs_f64();
    }

    fn add(&mut self, other: &Histogram) {
        self.buckets.iter_mut().zip(&other.buckets).for_each(|(a, b)| *a += b);
        self.count += other.count;
        self.sum += other.sum;
    }

    /// (upper bound, count in this bucket), as the encoder wants them.
    fn buckets(&self) -> Vec<(f64, u64)> {
        let bound = |i: usize| if i < BOUNDS { 0.0001 * f64::from(1u32 << i) } else { f64::INFINITY };
        self.buckets.iter().enumerate().map(|(i, n)| (bound(i), *n)).collect()
    }
}

/// One route's counts in one worker's slot.
#[derive(Default)]
struct Route {
    /// (status, decision, requests): a route sees few of them, so a scan beats a map.
    outcomes: Vec<(u16, &'static str, u64)>,
    latency: Histogram,
    upstream: Histogram,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct RequestLabels {
    route: RouteName,
    status: u16,
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct RouteLabels {
    route: RouteName,
}

/// By route name ("": requests that matched none).
type Routes = HashMap<Arc<str>, Route, foldhash::fast::RandomState>;

#[derive(Default)]
pub struct RequestCounts {
    slots: Sharded<Routes>,
}

impl std::fmt::Debug for RequestCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestCounts")
    }
}

impl RequestCounts {
    /// Counts one request.
    pub fn record(
        &self,
        route: Option<&Arc<str>>,
        status: u16,
        decision: &'static str,
        latency: Duration,
        upstream: Option<Duration>,
    ) {
        let count = |r: &mut Route| {
            match r.outcomes.iter_mut().find(|(s, d, _)| *s == status && *d == decision) {
                Some((_, _, n)) => *n += 1,
                None => r.outcomes.push((status, decision, 1)),
            }
            r.latency.observe(latency);
            if let Some(u) = upstream {
                r.upstream.observe(u);
            }
        };
        let mut routes = self.slots.mine();
        // Looked up by name: the route's `Arc` (shared by every worker) is cloned only the
        // first time this worker counts it.
        if let Some(r) = routes.get_mut(route.map_or("", |r| &**r)) {
            return count(r);
        }
        count(routes.entry(route.cloned().unwrap_or_else(|| Arc::from(""))).or_default());
    }

    /// Every slot summed, in a stable order.
    #[allow(clippy::type_complexity)]
    fn sum(
        &self,
    ) -> (BTreeMap<RequestLabels, u64>, BTreeMap<RouteLabels, Histogram>, BTreeMap<RouteLabels, Histogram>) {
        let (mut requests, mut latency, mut upstream) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        for routes in self.slots.each() {
            for (name, r) in routes.iter() {
                let name = RouteName((!name.is_empty()).then(|| name.clone()));
                for &(status, decision, n) in &r.outcomes {
                    *requests.entry(RequestLabels { route: name.clone(), status, decision }).or_default() += n;
                }
                let labels = RouteLabels { route: name.clone() };
                latency.entry(labels.clone()).or_insert_with(Histogram::default).add(&r.latency);
                if r.upstream.count > 0 {
                    upstream.entry(labels).or_insert_with(Histogram::default).add(&r.upstream);
                }
            }
        }
        (requests, latency, upstream)
    }
}

impl Collector for RequestCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (requests, latency, upstream) = self.sum();
        if !requests.is_empty() {
            let mut family = encoder.encode_descriptor(
                "requests",
                "Requests by route, status and decision",
                None,
                MetricType::Counter,
            )?;
            for (labels, n) in &requests {
                family.encode_family(labels)?.encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
        }
        for (name, help, histograms) in [
            ("request_duration_seconds", "Time from request to response head, by route", &latency),
            ("upstream_duration_seconds", "Time the upstream took to answer, by route", &upstream),
        ] {
            if histograms.is_empty() {
                continue;
            }
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (labels, h) in histograms {
                family.encode_family(labels)?.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets(), None)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(counts: &Arc<RequestCounts>) -> String {
        let mut registry = prometheus_client::registry::Registry::with_prefix("warden");
        registry.register_collector(Box::new(counts.clone()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn every_workers_counts_are_summed_when_scraped() {
        let counts = Arc::new(RequestCounts::default());
        assert!(!scrape(&counts).contains("warden_requests_total"), "nothing before the first request");
        let app: Arc<str> = Arc::from("app");
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (counts, app) = (counts.clone(), app.clone());
                std::thread::spawn(move || {
                    for _ in 0..3 {
                        let ms = Duration::from_millis(1);
                        counts.record(Some(&app), 200, "forward", ms, Some(ms));
                    }
                    counts.record(Some(&app), 429, "deny", Duration::from_micros(50), None);
                    counts.record(None, 404, "deny", Duration::from_secs(60), None);
                })
            })
            .collect();
        workers.into_iter().for_each(|w| w.join().unwrap());
        let text = scrape(&counts);
        for line in [
            r#"warden_requests_total{route="app",status="200",decision="forward"} 6"#,
            r#"warden_requests_total{route="app",status="429",decision="deny"} 2"#,
            r#"warden_requests_total{route="",status="404",decision="deny"} 2"#,
            r#"warden_request_duration_seconds_count{route="app"} 8"#,
            r#"warden_request_duration_seconds_bucket{le="0.0001",route="app"} 2"#,
            // Cumulative: 1 ms is within 1.6 ms.
            r#"warden_request_duration_seconds_bucket{le="0.0016",route="app"} 8"#,
            r#"warden_request_duration_seconds_bucket{le="13.1072",route=""} 0"#,
            r#"warden_request_duration_seconds_bucket{le="+Inf",route=""} 2"#,
            r#"warden_upstream_duration_seconds_count{route="app"} 6"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(!text.contains(r#"warden_upstream_duration_seconds_count{route=""}"#), "no upstream, no histogram");
    }
}
