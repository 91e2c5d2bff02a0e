//! Decision samples (`pb::DecisionSample`): a bounded sample of recent requests per route,
//! which `wardenctl apply --preview` replays through a proposed policy. Within each
//! second, every request of a route is kept up to the route's budget; past it a reservoir
//! of as many more is drawn uniformly from the rest, and each of those stands for
//! (rest ÷ drawn) requests. So a route with 1 % of the traffic still has its samples, and
//! the weights add up to the traffic. Each worker keeps windows of its own
//! (`crate::shards`) with its share of the budget; a request not drawn costs a map lookup,
//! two increments and, past the budget, a random number.
//!
//! A drawn request's sample is made and kept as soon as it is decided (`pick`, then
//! `keep`), not when its answer comes: a slow answer would otherwise miss its second, and
//! slow routes would be under-represented. So a sample says what was decided, not the
//! upstream's status.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use warden_proto::v1 as pb;

use crate::shards::Sharded;

/// Requests kept whole per route per second, by default; as many again are drawn.
pub const DEFAULT_PER_ROUTE: u32 = 10;
/// How long one window lasts.
const WINDOW: Duration = Duration::from_secs(1);
/// Samples waiting for the report stream; the oldest go first past it.
const MAX_QUEUED: usize = 10_000;

/// A drawn request: where its sample goes once it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    /// The worker's window it was drawn in.
    window: u64,
    /// None: kept whole; Some(i): reservoir slot i.
    slot: Option<usize>,
}

/// One route's samples in one worker's window.
#[derive(Default)]
struct RouteWindow {
    seen: u64,
    whole: Vec<pb::DecisionSample>,
    reservoir: Vec<Option<pb::DecisionSample>>,
}

#[derive(Default)]
struct Windows {
    /// Counts the windows this worker has had.
    window: u64,
    routes: HashMap<Arc<str>, RouteWindow, foldhash::fast::RandomState>,
}

/// Every worker's windows, and the samples of the ones closed, waiting to be reported.
pub struct Samples {
    /// Kept whole per route per window by each worker, and as many drawn; 0: sampling off.
    budget: u64,
    windows: Sharded<Windows>,
    since: Mutex<Instant>,
    queue: Mutex<VecDeque<pb::DecisionSample>>,
    dropped: AtomicU64,
    dropped_total: Counter,
}

impl Samples {
    /// `per_route` requests per route per second kept whole (0: none sampled), shared by
    /// `workers`.
    pub fn new(per_route: u32, workers: usize, dropped_total: Counter) -> Samples {
        let workers = u64::try_from(workers.max(1)).unwrap_or(1);
        Samples {
            budget: u64::from(per_route).div_ceil(workers),
            windows: Sharded::default(),
            since: Mutex::new(Instant::now()),
            queue: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
            dropped_total,
        }
    }

    /// Whether to sample this request of `route` (None: it matched no route).
    pub fn pick(&self, route: Option<&Arc<str>>) -> Option<Pick> {
        if self.budget == 0 {
            return None;
        }
        let mut windows = self.windows.mine();
        let window = windows.window;
        let name = route.map_or("", |r| &**r);
        let w = match windows.routes.get_mut(name) {
            Some(w) => w,
            None => windows.routes.entry(route.cloned().unwrap_or_else(|| Arc::from(""))).or_default(),
        };
        w.seen += 1;
        if w.seen <= self.budget {
            return Some(Pick { window, slot: None });
        }
        // Reservoir sampling (Algorithm R): the n-th of the rest takes a slot with
        // probability budget ÷ n.
        let n = w.seen - self.budget;
        let slot = if n <= self.budget { n - 1 } else { fastrand::u64(0..n) };
        (slot < self.budget).then(|| Pick { window, slot: Some(usize::try_from(slot).unwrap_or(usize::MAX)) })
    }

    /// Keeps a drawn request's sample (its `weight` is set when its window closes).
    pub fn keep(&self, route: Option<&Arc<str>>, pick: Pick, sample: pb::DecisionSample) {
        let mut windows = self.windows.mine();
        if windows.window != pick.window {
            return;
        }
        let Some(w) = windows.routes.get_mut(route.map_or("", |r| &**r)) else { return };
        match pick.slot {
            None => w.whole.push(sample),
            Some(i) => {
                if w.reservoir.len() <= i {
                    w.reservoir.resize_with(i + 1, || None);
                }
                w.reservoir[i] = Some(sample);
            }
        }
    }

    /// The samples of the windows closed so far (closing the current one if it is a
    /// second old), at most `max`, and how many were dropped since the last call.
    pub fn take(&self, max: usize) -> (Vec<pb::DecisionSample>, u64) {
        self.take_after(WINDOW, max)
    }

    /// `take`, closing the current window however young it is (a benchmark's second).
    pub fn take_closing(&self, max: usize) -> (Vec<pb::DecisionSample>, u64) {
        self.take_after(Duration::ZERO, max)
    }

    fn take_after(&self, age: Duration, max: usize) -> (Vec<pb::DecisionSample>, u64) {
        let closed = self.close_window(age);
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        for sample in closed {
            if queue.len() >= MAX_QUEUED {
                queue.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.dropped_total.inc();
            }
            queue.push_back(sample);
        }
        let n = queue.len().min(max);
        (queue.drain(..n).collect(), self.dropped.swap(0, Ordering::Relaxed))
    }

    /// Every worker's samples, weighted, once a window has lasted `age`.
    fn close_window(&self, age: Duration) -> Vec<pb::DecisionSample> {
        let mut since = self.since.lock().unwrap_or_else(PoisonError::into_inner);
        if since.elapsed() < age {
            return Vec::new();
        }
        *since = Instant::now();
        let mut out = Vec::new();
        for mut windows in self.windows.each() {
            windows.window += 1;
            let routes = std::mem::take(&mut windows.routes);
            drop(windows);
            for (_, w) in routes {
                let drawn: Vec<pb::DecisionSample> = w.reservoir.into_iter().flatten().collect();
                let rest = w.seen.saturating_sub(self.budget);
                // Each drawn sample stands for an equal part of the rest.
                let weight = if drawn.is_empty() { 0.0 } else { rest as f64 / drawn.len() as f64 };
                out.extend(w.whole.into_iter().map(|s| pb::DecisionSample { weight: 1.0, ..s }));
                out.extend(drawn.into_iter().map(|s| pb::DecisionSample { weight, ..s }));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(path: &str) -> pb::DecisionSample {
        pb::DecisionSample { path: path.into(), ..Default::default() }
    }

    /// Runs `n` requests of `route` through pick and keep.
    fn run(s: &Samples, route: &Arc<str>, n: u64) {
        for i in 0..n {
            if let Some(p) = s.pick(Some(route)) {
                s.keep(Some(route), p, sample(&format!("/{route}/{i}")));
            }
        }
    }

    fn closed(s: &Samples) -> Vec<pb::DecisionSample> {
        *s.since.lock().unwrap() -= WINDOW;
        s.take(usize::MAX).0
    }

    #[test]
    fn a_quiet_route_keeps_every_request_and_a_busy_one_a_weighted_draw() {
        let s = Samples::new(10, 1, Counter::default());
        let (busy, quiet): (Arc<str>, Arc<str>) = ("busy".into(), "quiet".into());
        run(&s, &busy, 9_900);
        run(&s, &quiet, 100);
        let taken = closed(&s);
        let of = |r: &str| taken.iter().filter(|x| x.path.starts_with(&format!("/{r}/"))).collect::<Vec<_>>();
        let (b, q) = (of("busy"), of("quiet"));
        assert_eq!((b.len(), q.len()), (20, 20), "each route: its budget whole and as many drawn");
        let weight = |v: &[&pb::DecisionSample]| v.iter().map(|x| x.weight).sum::<f64>();
        assert!((weight(&b) - 9_900.0).abs() < 1e-6, "the weights add up to the traffic: {}", weight(&b));
        assert!((weight(&q) - 100.0).abs() < 1e-6, "{}", weight(&q));
        assert_eq!(b.iter().filter(|x| x.weight == 1.0).count(), 10);
        // The draw comes from the whole second, not its start.
        let late = b.iter().filter(|x| x.weight > 1.0 && x.path["/busy/".len()..].parse::<u64>().unwrap() > 5_000);
        assert!(late.count() > 0, "the reservoir holds requests from late in the window");
        assert!(closed(&s).is_empty(), "a closed window is reported once");
    }

    #[test]
    fn a_sample_kept_after_its_window_closed_is_dropped_and_off_means_off() {
        let s = Samples::new(10, 2, Counter::default());
        let route: Arc<str> = "r".into();
        let p = s.pick(Some(&route)).unwrap();
        assert!(closed(&s).is_empty());
        s.keep(Some(&route), p, sample("/late"));
        assert!(closed(&s).is_empty(), "the late sample went nowhere");
        assert!(Samples::new(0, 1, Counter::default()).pick(Some(&route)).is_none());
        // Two workers share the budget: each keeps ceil(10 / 2) whole and draws as many.
        run(&s, &route, 20);
        let taken = closed(&s);
        assert_eq!(taken.len(), 10);
        assert_eq!(taken.iter().filter(|x| x.weight == 1.0).count(), 5);
        assert!((taken.iter().map(|x| x.weight).sum::<f64>() - 20.0).abs() < 1e-9);
    }
}
