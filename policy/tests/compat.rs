//! Upgrade safety, pinned (as sozu pins its state format): a policy, a snapshot and a set
//! of credentials written by Warden 0.1 must load in every later release. The snapshot and
//! credentials are a sidecar's `--state-dir` files (`orders.snapshot.pb`,
//! `orders.credentials.pb`) exactly as 0.1 wrote them; a sidecar upgraded in place serves
//! them until the control plane answers. A release that cannot read them must say so here
//! first, and ship a migration.
//!
//! The fixtures were written once with `WARDEN_WRITE_FIXTURES=1 cargo test -p
//! warden-policy --test compat`; never regenerate them to make this test pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderValue, Method, Uri};
use prost::Message;
use warden_policy::auth::{Credentials, hash_key};
use warden_policy::decide::{Action, Env, HeadCaps, Request, decide};
use warden_policy::limits::Known;
use warden_policy::snapshot::Snapshot;
use warden_policy::yaml::{build, parse_service};
use warden_proto::v1 as pb;

/// The API key the pinned credentials hold (for client `acme`, plan `pro`).
const KEY: &str = "wdn_0123456789abcdef0123456789abcdef";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1")
}

/// Writes the fixtures as this release makes them; only when asked, and only once.
fn write_fixtures() {
    let yaml = std::fs::read_to_string(dir().join("orders.yaml")).unwrap();
    let parsed = parse_service("orders.yaml", &yaml, None).unwrap();
    std::fs::write(dir().join("orders.snapshot.pb"), build(&parsed.policy, &parsed.source, 7).encode_to_vec()).unwrap();
    let creds = pb::Credentials {
        service: "orders".into(),
        revision: 12,
        epoch: 3,
        keys: vec![pb::ApiKey {
            id: "key_01".into(),
            sha256: hash_key(KEY).0.to_vec(),
            client: "acme".into(),
            plan: "pro".into(),
            expires_unix_ms: 0,
            revoked_unix_ms: 0,
        }],
        secrets: vec![pb::Secret {
            name: "gh-hook".into(),
            id: "sec_01".into(),
            value: b"a webhook secret".to_vec(),
            expires_unix_ms: 0,
        }],
        base_revision: 0,
    };
    std::fs::write(dir().join("orders.credentials.pb"), creds.encode_to_vec()).unwrap();
}

fn decide_status(
    snapshot: &Snapshot,
    creds: &Credentials,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    let uri: Uri = uri.parse().unwrap();
    let env = Env {
        snapshot,
        creds,
        caps: HeadCaps::default(),
        limits: &Known::default(),
        now_ms: 1_800_000_000_000,
        recorded: None,
    };
    let req = Request { method: &method, uri: &uri, headers: &h, peer: [192, 0, 2, 1].into() };
    match decide(&env, &req, None).action {
        Action::Forward(f) => format!("forward {}", f.route.name),
        Action::Deny(r) => format!("{} {}", r.status().as_u16(), r.code()),
        Action::Preflight(p) => format!("preflight {}", p.origin.is_some()),
    }
}

#[test]
fn what_0_1_wrote_still_loads_and_decides_the_same() {
    if std::env::var_os("WARDEN_WRITE_FIXTURES").is_some() && !dir().join("orders.snapshot.pb").exists() {
        write_fixtures();
    }
    // The policy, as an operator wrote it for 0.1.
    let yaml = std::fs::read_to_string(dir().join("orders.yaml")).unwrap();
    let parsed =
        parse_service("orders.yaml", &yaml, None).unwrap_or_else(|e| panic!("0.1's policy no longer validates:\n{e}"));
    assert_eq!(parsed.policy.service, "orders");

    // The snapshot and credentials a 0.1 sidecar kept on disk.
    let bytes = std::fs::read(dir().join("orders.snapshot.pb")).unwrap();
    let proto = pb::Snapshot::decode(bytes.as_slice()).unwrap();
    assert_eq!((proto.service.as_str(), proto.version), ("orders", 7));
    let snapshot = Snapshot::try_from(&proto).unwrap_or_else(|e| panic!("0.1's snapshot no longer compiles: {e}"));
    let bytes = std::fs::read(dir().join("orders.credentials.pb")).unwrap();
    let creds = Credentials::compile(&pb::Credentials::decode(bytes.as_slice()).unwrap(), Some("orders")).unwrap();
    assert_eq!((creds.revision, creds.key_count()), (12, 1));

    // (method, target, headers, what 0.1 decided)
    type Case<'a> = (Method, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        (Method::GET, "/healthz", &[], "forward health"),
        (Method::GET, "http://api.example.com/api/v1/x", &[], "401 credential_missing"),
        (Method::GET, "http://api.example.com/api/v1/x", &[("x-api-key", KEY)], "forward partner-api"),
        (Method::GET, "/me", &[("authorization", "Bearer not.a.jwt")], "401 token_malformed"),
        (Method::POST, "/hooks/github", &[], "401 signature_missing"),
        (Method::GET, "/files%2Fa", &[], "forward files"),
        (Method::GET, "/orders%2Fa", &[], "400 bad_path"),
        (Method::GET, "/admin/x", &[("x-admin", "yes")], "403 address_denied"),
        (Method::DELETE, "/orders/1", &[], "404 no_route"),
    ];
    for (method, uri, headers, want) in cases {
        assert_eq!(&decide_status(&snapshot, &creds, method.clone(), uri, headers), want, "{method} {uri} {headers:?}");
    }
}
