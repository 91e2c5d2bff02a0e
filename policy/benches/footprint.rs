//! Memory a sidecar needs for a large policy and key set: the RSS this process grows by
//! when it compiles a 1,000-route snapshot and holds 100,000 API keys (plus the protobuf
//! messages they arrived in, as a sidecar does briefly). Add the sidecar's idle RSS (see
//! docs/performance.md) for the total.
//!
//!   cargo bench -p warden-policy --bench footprint

// A benchmark: bad input should stop it loudly.
#![allow(clippy::expect_used)]

use warden_policy::auth::{Credentials, hash_key};
use warden_policy::snapshot::Snapshot;
use warden_policy::yaml::{build, parse_service};
use warden_proto::v1 as pb;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut yaml = String::from("service: big\nauth:\n  keys: { type: api_key, header: x-api-key }\nroutes:\n");
    for i in 0..1000 {
        yaml.push_str(&format!(
            "  - name: r{i}\n    match: {{ host: h{i}.example.com, path_prefix: /api/{i} }}\n    auth: keys\n    rewrite: {{ path_prefix: /v2/{i} }}\n    request_headers: {{ set: {{ x-route: \"{i}\" }} }}\n"
        ));
    }
    let before = rss_kib();
    let parsed = parse_service("big.yaml", &yaml, None).expect("policy");
    let proto = build(&parsed.policy, &parsed.source, 1);
    let snapshot = Snapshot::try_from(&proto).expect("compile");
    drop(parsed);
    let after_routes = rss_kib();
    let keys = (0..100_000u32)
        .map(|i| pb::ApiKey {
            id: format!("key_{i:026}"),
            sha256: hash_key(&format!("wdn_{i:064x}")).0.to_vec(),
            client: format!("client-{}", i % 20_000),
            plan: ["free", "pro", "enterprise"][i as usize % 3].into(),
            expires_unix_ms: 0,
            revoked_unix_ms: 0,
        })
        .collect();
    let push =
        pb::Credentials { service: "big".into(), revision: 1, keys, secrets: vec![], base_revision: 0, epoch: 1 };
    let creds = Credentials::compile(&push, Some("big")).expect("credentials");
    drop(push);
    let after_keys = rss_kib();
    println!("1,000 routes (snapshot, source kept): {:>7.1} MiB", (after_routes - before) as f64 / 1024.0);
    println!("100,000 API keys (table):             {:>7.1} MiB", (after_keys - after_routes) as f64 / 1024.0);
    println!("together:                             {:>7.1} MiB", (after_keys - before) as f64 / 1024.0);
    std::hint::black_box((&snapshot, &creds));
}
