//! What a rollout's candidate in shadow costs a request (target: no more than the live
//! decision itself): the benchmark lab's full policy (API key, two rate limits, header
//! rewrites) decided for 200,000 requests as the sidecar decides it, then the same with a
//! candidate (its per-client limit changed) decided beside it in its own limit buckets
//! and the outcomes compared, as the proxy does. Interleaved rounds, median per request.
//!
//!   cargo bench -p warden-policy --bench shadow

// A benchmark: bad input should stop it loudly.
#![allow(clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, Uri};
use warden_policy::auth::{Credentials, hash_key};
use warden_policy::decide::{Env, HeadCaps, Request, decide};
use warden_policy::limits::{self, Counters, LimitState, Quotas, Shadowed};
use warden_policy::snapshot::Snapshot;
use warden_policy::yaml::{build, parse_service};
use warden_proto::v1 as pb;

const REQUESTS: usize = 200_000;
const ROUNDS: usize = 7;
const POLICY: &str = include_str!("../../tests/bench/policy-full.yaml");

fn snapshot(yaml: &str, version: u64) -> Snapshot {
    let parsed = parse_service("bench.yaml", yaml, None).expect("the bench policy parses");
    Snapshot::try_from(&build(&parsed.policy, yaml, version)).expect("the bench policy compiles")
}

/// Decides `REQUESTS` requests with `live`, and with `shadow` beside it when given;
/// returns the time per request.
fn run(live: &Snapshot, shadow: Option<&Snapshot>, creds: &Credentials) -> Duration {
    let (live_state, shadow_state, quotas) = (LimitState::default(), LimitState::default(), Quotas::default());
    let live_buckets = live_state.bind(live);
    let shadow_buckets = shadow.map(|s| shadow_state.bind(s));
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_static("wdn_bench_key"));
    let (method, peer) = (Method::GET, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)));
    let uris: Vec<Uri> = (0..64).map(|i| format!("/orders/{i}").parse().expect("uri")).collect();
    let mut differed = 0usize;
    let started = Instant::now();
    for n in 0..REQUESTS {
        let head = Request { method: &method, uri: &uris[n % uris.len()], headers: &headers, peer };
        let now = Instant::now();
        let counters = Counters { buckets: &live_buckets, quotas: &quotas, now, now_ns: limits::now_ns() };
        let env =
            Env { snapshot: live, creds, caps: HeadCaps::default(), limits: &counters, now_ms: 0, recorded: None };
        let decision = decide(&env, &head, None);
        if let (Some(s), Some(buckets)) = (shadow, &shadow_buckets) {
            let counters = Shadowed(Counters { buckets, quotas: &quotas, now, now_ns: limits::now_ns() });
            let env =
                Env { snapshot: s, creds, caps: HeadCaps::default(), limits: &counters, now_ms: 0, recorded: None };
            let candidate = decide(&env, &head, None);
            differed += usize::from(decision.refusal().is_some() != candidate.refusal().is_some());
        }
        std::hint::black_box(&decision);
    }
    std::hint::black_box(differed);
    started.elapsed() / u32::try_from(REQUESTS).expect("fits")
}

fn main() {
    let live = snapshot(POLICY, 1);
    let candidate = snapshot(
        &POLICY.replace(
            "rate: 100000000/min, burst: 1000000 }\n  per-address",
            "rate: 90000000/min, burst: 1000000 }\n  per-address",
        ),
        2,
    );
    assert_ne!(live.content_hash, candidate.content_hash, "the candidate differs");
    let key = pb::ApiKey {
        id: "key_bench".into(),
        sha256: hash_key("wdn_bench_key").0.to_vec(),
        client: "bench".into(),
        ..Default::default()
    };
    let creds =
        pb::Credentials { service: "full".into(), revision: 1, keys: vec![key], epoch: 1, ..Default::default() };
    let creds = Credentials::compile(&creds, Some("full")).expect("credentials");
    let (mut alone, mut beside) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        alone.push(run(&live, None, &creds));
        beside.push(run(&live, Some(&candidate), &creds));
    }
    alone.sort();
    beside.sort();
    let (live_ns, with_ns) = (alone[ROUNDS / 2].as_nanos(), beside[ROUNDS / 2].as_nanos());
    let shadow_ns = with_ns.saturating_sub(live_ns);
    println!(
        "full policy, {REQUESTS} requests x {ROUNDS} rounds (median): live decision {live_ns} ns; with a candidate in shadow {with_ns} ns; the shadow adds {shadow_ns} ns = {:.2}x the live decision (target <= 1.00x)",
        shadow_ns as f64 / live_ns as f64
    );
}
