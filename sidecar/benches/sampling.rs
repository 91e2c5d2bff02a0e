//! What decision sampling adds to a request at the default rate (target: 0.3 µs): a
//! million requests over ten routes at 50,000 a second, each asked `Samples::pick` and,
//! when drawn, made into a sample and kept, with the window closing every second of
//! requests as the report stream closes it. Measured beside the same loop without
//! sampling, in one run.
//!
//!   cargo bench -p warden-sidecar --bench sampling

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use warden_proto::v1 as pb;
use warden_sidecar::telemetry::Samples;
use warden_sidecar::telemetry::samples::DEFAULT_PER_ROUTE;

const REQUESTS: usize = 1_000_000;
const PER_SECOND: usize = 50_000;

/// The loop, with (`Some`) or without sampling; returns the time per request.
fn run(samples: Option<&Samples>, routes: &[Arc<str>]) -> Duration {
    let started = Instant::now();
    let mut kept = 0usize;
    for n in 0..REQUESTS {
        let route = &routes[n % routes.len()];
        std::hint::black_box(route);
        if let Some(s) = samples {
            if let Some(pick) = s.pick(Some(route)) {
                let sample = pb::DecisionSample {
                    request_id: format!("{n:026}"),
                    method: "GET".into(),
                    host: "api.example.com".into(),
                    path: format!("/{route}/{n}"),
                    client_ip: "10.0.0.1".into(),
                    route: route.to_string(),
                    decision: "forward".into(),
                    headers: vec![pb::Header { name: "x-tenant".into(), value: "acme".into() }],
                    ..Default::default()
                };
                s.keep(Some(route), pick, sample);
            }
            if n % PER_SECOND == PER_SECOND - 1 {
                kept += s.take_closing(usize::MAX).0.len();
            }
        }
    }
    std::hint::black_box(kept);
    started.elapsed() / u32::try_from(REQUESTS).unwrap_or(u32::MAX)
}

fn main() {
    let routes: Vec<Arc<str>> = (0..10).map(|i| Arc::from(format!("route-{i}"))).collect();
    let samples = Samples::new(DEFAULT_PER_ROUTE, 1, Counter::default());
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        without.push(run(None, &routes));
        with.push(run(Some(&samples), &routes));
    }
    with.sort();
    without.sort();
    let added = with[2].saturating_sub(without[2]);
    println!(
        "sampling at {DEFAULT_PER_ROUTE} per route per second, {PER_SECOND} requests/s over 10 routes: {:.0} ns per request added (median of 5; target <= 300 ns)",
        added.as_nanos()
    );
}
