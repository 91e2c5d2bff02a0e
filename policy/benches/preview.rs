//! How long `apply --preview` takes to replay 100,000 decision samples through a current
//! and a proposed 1,000-route policy (the target is 2 s), the replay alone (the control
//! plane adds reading the samples from its store).
//!
//!   cargo bench -p warden-policy --bench preview

// A benchmark: bad input should stop it loudly.
#![allow(clippy::expect_used)]

use std::collections::HashMap;
use std::time::Instant;

use warden_policy::auth::Credentials;
use warden_policy::preview::preview;
use warden_policy::snapshot::Snapshot;
use warden_policy::yaml::{build, parse_service};
use warden_proto::v1 as pb;

const ROUTES: usize = 1_000;
const SAMPLES: usize = 100_000;

fn policy(changed: bool) -> Snapshot {
    let mut yaml = String::from(
        "service: big\nauth:\n  keys: { type: api_key, header: x-api-key }\nlimits:\n  per-ip: { key: client_ip, rate: 50/s, burst: 100 }\nroutes:\n",
    );
    for i in 0..ROUTES {
        // The proposal: every tenth route starts asking for a key and gets a limit.
        let extra = if changed && i % 10 == 0 { "    auth: keys\n    limits: [per-ip]\n" } else { "" };
        yaml.push_str(&format!(
            "  - name: r{i}\n    match: {{ host: h{}.example.com, path_prefix: /api/{i} }}\n    rewrite: {{ path_prefix: /v2/{i} }}\n{extra}",
            i % 50
        ));
    }
    let parsed = parse_service("big.yaml", &yaml, None).expect("policy");
    Snapshot::try_from(&build(&parsed.policy, &parsed.source, if changed { 2 } else { 1 })).expect("compile")
}

fn main() {
    let (current, candidate) = (policy(false), policy(true));
    let samples: Vec<pb::DecisionSample> = (0..SAMPLES)
        .map(|n| {
            let route = n % ROUTES;
            pb::DecisionSample {
                unix_ms: 1_800_000_000_000 + (n as i64) * 36,
                request_id: format!("req-{n}"),
                method: "GET".into(),
                host: format!("h{}.example.com", route % 50),
                path: format!("/api/{route}/items/{n}"),
                client_ip: format!("10.0.{}.{}", n % 200, n % 250),
                headers: vec![pb::Header { name: "content-type".into(), value: "application/json".into() }],
                route: format!("r{route}"),
                decision: "forward".into(),
                policy_version: 1,
                weight: 3.0,
                instance: format!("pod-{}", n % 4),
                ..Default::default()
            }
        })
        .collect();
    let creds = Credentials::default();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let report = preview(&current, &candidate, &creds, &samples, &HashMap::new());
        runs.push(started.elapsed());
        std::hint::black_box(&report);
        assert!(report.newly_refused_share() > 0.05, "every tenth route now refuses who sends no key");
    }
    runs.sort();
    println!(
        "preview: {SAMPLES} samples, {ROUTES} routes, current and proposed: best {:.3} s, median {:.3} s (target <= 2 s)",
        runs[0].as_secs_f64(),
        runs[1].as_secs_f64()
    );
}
