//! Previews of small policies against hand-made samples: each kind of change, what is not
//! evaluable, and the limit estimate.

use warden_proto::v1 as pb;

use super::*;
use crate::yaml::{build, parse_service};

fn compile(yaml: &str, version: u64) -> Snapshot {
    let p = parse_service("p.yaml", yaml, None).unwrap();
    Snapshot::try_from(&build(&p.policy, &p.source, version)).unwrap()
}

/// Samples recorded by `current`'s version (none in the map: its headers).
fn run(current: &Snapshot, candidate: &Snapshot, samples: &[pb::DecisionSample]) -> Report {
    preview(current, candidate, &Credentials::default(), samples, &HashMap::new())
}

fn sample(id: &str, path: &str, weight: f64) -> pb::DecisionSample {
    pb::DecisionSample {
        unix_ms: 1_800_000_000_000,
        request_id: id.into(),
        method: "GET".into(),
        host: "api.example.com".into(),
        path: path.into(),
        client_ip: "10.0.0.1".into(),
        weight,
        ..Default::default()
    }
}

fn proved(mut s: pb::DecisionSample, provider: &str, client: &str) -> pb::DecisionSample {
    s.auth_provider = provider.into();
    s.client_id = client.into();
    s
}

const OPEN: &str = "service: orders
routes:
  - name: orders
    match: { path_prefix: /orders }
  - name: admin
    match: { path_prefix: /admin }
    auth: keys
auth:
  keys: { type: api_key, header: x-api-key }
  tokens: { type: jwt, jwks_file: /etc/warden/jwks.json }
";

#[test]
fn a_route_that_starts_asking_for_a_key_refuses_who_sends_none_and_cannot_judge_the_rest() {
    let current = compile(OPEN, 1);
    let candidate = compile(
        &OPEN.replace("    match: { path_prefix: /orders }\n", "    match: { path_prefix: /orders }\n    auth: keys\n"),
        2,
    );
    let mut with_header = sample("r3", "/orders/3", 5.0);
    with_header.credential_headers = vec!["x-api-key".into()];
    let samples = [
        sample("r1", "/orders/1", 10.0),
        proved(sample("r2", "/orders/2", 2.0), "keys", "acme"),
        with_header,
        proved(sample("r4", "/admin", 1.0), "keys", "acme"),
    ];
    let r = run(&current, &candidate, &samples);
    assert_eq!((r.samples, r.requests), (4, 18.0));
    assert_eq!(r.newly_refused.len(), 1, "{r:?}");
    let c = &r.newly_refused[0];
    assert_eq!(
        (c.route.as_str(), c.rule.as_str(), c.code.as_str(), c.client.as_str()),
        ("orders", "keys", "credential_missing", "10.0.0.1")
    );
    assert_eq!((c.requests, c.samples, c.examples.clone(), c.estimated), (10.0, 1, vec!["r1".to_owned()], false));
    assert!((r.newly_refused_share() - 10.0 / 13.0).abs() < 1e-9, "of the 13 judged");
    // It sent a key nobody checked: whether it is good, the sample cannot say.
    assert_eq!(r.not_evaluable.len(), 1);
    assert_eq!((r.not_evaluable[0].requests, r.not_evaluable[0].samples), (5.0, 1));
    assert!(r.newly_allowed.is_empty() && r.route_changes.is_empty() && r.rewrite_changes.is_empty());
}

#[test]
fn another_provider_is_not_evaluable_and_lifting_auth_newly_allows() {
    let current = compile(OPEN, 1);
    let to_jwt = compile(&OPEN.replace("    auth: keys\nauth:", "    auth: tokens\nauth:"), 2);
    let samples = [proved(sample("r1", "/admin", 3.0), "keys", "acme"), sample("r2", "/admin", 4.0)];
    let r = run(&current, &to_jwt, &samples);
    assert_eq!(r.not_evaluable.iter().map(|n| (n.requests, n.samples)).collect::<Vec<_>>(), [(3.0, 1)]);
    assert!(r.not_evaluable[0].reason.contains("another auth provider"));
    assert!(r.newly_refused.is_empty(), "a missing credential fails alike: {r:?}");

    let open = compile(&OPEN.replace("    auth: keys\nauth:", "\nauth:"), 2);
    let r = run(&current, &open, &samples);
    assert_eq!(r.newly_allowed.len(), 1);
    assert_eq!(
        (r.newly_allowed[0].route.as_str(), r.newly_allowed[0].code.as_str(), r.newly_allowed[0].requests),
        ("admin", "credential_missing", 4.0)
    );
}

#[test]
fn route_and_rewrite_changes_are_counted() {
    let current = compile(OPEN, 1);
    let candidate = compile(
        &OPEN.replace(
            "  - name: orders\n    match: { path_prefix: /orders }\n",
            "  - name: v2\n    match: { path_prefix: /orders/v2 }\n  - name: orders\n    match: { path_prefix: /orders }\n    rewrite: { path_prefix: /api/orders }\n",
        ),
        2,
    );
    let samples = [sample("r1", "/orders/v2/7", 2.0), sample("r2", "/orders/1", 3.0)];
    let r = run(&current, &candidate, &samples);
    assert_eq!(
        r.route_changes.iter().map(|m| (m.from.as_str(), m.to.as_str(), m.requests)).collect::<Vec<_>>(),
        [("orders", "v2", 2.0)]
    );
    assert_eq!(
        r.rewrite_changes.iter().map(|m| (m.route.as_str(), m.from.as_str(), m.to.as_str())).collect::<Vec<_>>(),
        [("orders", "/orders/1", "/api/orders/1")]
    );
    assert!(r.newly_refused.is_empty() && r.newly_allowed.is_empty());
}

#[test]
fn a_new_local_limit_is_estimated_from_the_recorded_rate_and_a_new_global_one_is_not_guessed() {
    let current = compile(OPEN, 1);
    let limited = OPEN.replace(
        "    match: { path_prefix: /orders }\n",
        "    match: { path_prefix: /orders }\n    limits: [per-ip]\n",
    ) + "limits:\n  per-ip: { key: client_ip, rate: 10/s, burst: 10 }\n";
    // One client at 100 requests a second for ten seconds, sampled as one sample a second.
    let samples: Vec<pb::DecisionSample> = (0..10)
        .map(|i| {
            let mut s = sample(&format!("r{i}"), "/orders/1", 100.0);
            s.unix_ms += i * 1000;
            s
        })
        .collect();
    let r = run(&current, &compile(&limited, 2), &samples);
    let c = &r.newly_refused[0];
    assert_eq!((c.rule.as_str(), c.code.as_str(), c.estimated), ("per-ip", "rate_limited", true));
    // 10 a second pass (the burst the first second): 900 of 1,000 refused.
    assert!((c.requests - 900.0).abs() < 1.0, "{c:?}");

    let global = limited.replace("burst: 10 }", "burst: 10, scope: global }");
    let r = run(&current, &compile(&global, 2), &samples);
    assert!(r.newly_refused.is_empty());
    assert_eq!(r.not_evaluable.iter().map(|n| n.samples).sum::<usize>(), 10, "{r:?}");
}

#[test]
fn a_header_the_samples_never_recorded_is_not_guessed_at() {
    let current = compile(OPEN, 1);
    let by_tenant = OPEN.replace(
        "routes:\n",
        "routes:\n  - name: globex\n    match: { path_prefix: /orders, headers: { x-tenant: globex } }\n    auth: keys\n",
    );
    let samples = [sample("r1", "/orders/1", 2.0), sample("r2", "/admin", 3.0)];
    let r = run(&current, &compile(&by_tenant, 2), &samples);
    // /orders may be Globex's: the sample cannot say. /admin cannot be: judged as usual.
    assert_eq!(r.not_evaluable.iter().map(|n| (n.requests, n.samples)).collect::<Vec<_>>(), [(2.0, 1)], "{r:?}");
    assert!(r.not_evaluable[0].reason.contains("did not record"));
    assert!(r.newly_refused.is_empty());

    // Recorded by a version that read x-tenant: judged.
    let mut globex = sample("r3", "/orders/1", 4.0);
    globex.headers = vec![pb::Header { name: "x-tenant".into(), value: "globex".into() }];
    globex.policy_version = 7;
    let kept = HashMap::from([(7, SampledHeaders::of(&compile(&by_tenant, 7)))]);
    let r = preview(&current, &compile(&by_tenant, 2), &Credentials::default(), &[globex], &kept);
    assert_eq!(r.newly_refused.iter().map(|c| (c.route.as_str(), c.requests)).collect::<Vec<_>>(), [("globex", 4.0)]);
    assert!(r.not_evaluable.is_empty());
}
