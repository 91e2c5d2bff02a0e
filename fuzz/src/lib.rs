//! The fuzz targets' bodies, one function per target over the sidecar's public API. The
//! libFuzzer binaries in `fuzz_targets/` call them, and so does the corpus replay in
//! `sidecar/tests/fuzz_corpus.rs` (which compiles this file as a module), so what CI
//! replays on stable is exactly what was fuzzed. Each body must never panic, whatever the
//! bytes; where a property is asserted, a failed assertion is a finding like a panic.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::uri::Authority;
use http::{HeaderMap, Method};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warden_policy::auth::{Credentials, hash_key};
use warden_policy::host::canonical_host;
use warden_policy::normalize::{decode_escaped_slashes, exact_matches, normalize_path, prefix_matches};
use warden_policy::snapshot::Snapshot;
use warden_policy::yaml::{build, parse_file, parse_service};
use warden_proto::v1 as pb;
use warden_sidecar::installer::Origin;
use warden_sidecar::listener::{ListenerConfig, serve_io};
use warden_sidecar::live::Live;

/// A policy file: parse and validate every document (errors rendered with their line and
/// column), then build each valid one and compile the snapshot as a sidecar would, minus
/// the files it would read on its own host.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_file("fuzz.yaml", text) {
        Ok(docs) => {
            for doc in docs {
                for w in &doc.warnings {
                    let _ = w.to_string();
                }
                compile(&build(&doc.policy, &doc.source, 1));
            }
        }
        Err(errors) => {
            let _ = errors.to_string();
        }
    }
    // One service out of several (or the only one): the path standalone mode takes.
    if let Err(errors) = parse_service("fuzz.yaml", text, Some("orders")) {
        let _ = errors.to_string();
    }
}

/// A request path and a host, each as the request path reads them, with the properties
/// routing relies on. The input is `PATH[\nOTHER]`: PATH is normalized and parsed as a
/// host; OTHER (default `/`) is the pattern prefix and exact matching compare against.
pub fn normalize(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (raw, other) = text.split_once('\n').unwrap_or((text, "/"));
    if let Ok(path) = normalize_path(raw) {
        check_normal(raw, &path);
        assert_eq!(normalize_path(&path).as_deref(), Ok(&*path), "normalizing {raw:?} is not idempotent");
        let decoded = decode_escaped_slashes(&path);
        assert!(!decoded.contains("%2F"), "{raw:?}: the routing path {decoded:?} still has an escaped slash");
        check_normal(raw, &decoded);
        assert_eq!(decode_escaped_slashes(&decoded), decoded, "decoding {raw:?} is not idempotent");
        for pattern in [other, &*path] {
            let exact = exact_matches(&decoded, pattern);
            assert!(!exact || prefix_matches(&decoded, pattern), "{decoded:?} is exactly {pattern:?} but no prefix");
        }
        assert!(exact_matches(&decoded, &decoded) && prefix_matches(&decoded, &decoded));
    }
    let _ = prefix_matches(raw, other);
    let _ = exact_matches(raw, other);
    for candidate in [raw, other] {
        if let Ok(host) = canonical_host(candidate) {
            let full = host.as_str();
            assert!(!full.bytes().any(|b| b.is_ascii_uppercase()), "{candidate:?} → {full:?} is not lower case");
            assert!(!host.name().ends_with('.'), "{candidate:?} → {full:?} keeps a trailing dot");
            assert!(full.starts_with(host.name()), "{candidate:?}: the name is not the start of {full:?}");
            let again = canonical_host(full).unwrap_or_else(|e| panic!("{candidate:?} → {full:?} is refused: {e}"));
            assert_eq!((again.as_str(), again.name()), (full, host.name()), "{candidate:?} does not re-parse");
            assert!(again.unchanged(), "{full:?} is canonical but not kept as is");
        }
    }
}

/// What routes match and the app receives: starts with `/`, no empty, `.` or `..`
/// segment, and no segment ending in a dot (the app would drop it and see another path).
fn check_normal(raw: &str, path: &str) {
    assert!(path.starts_with('/'), "{raw:?} → {path:?} does not start with '/'");
    assert!(!path.contains("//"), "{raw:?} → {path:?} has an empty segment");
    for segment in path.split('/') {
        assert!(!segment.ends_with('.'), "{raw:?} → {path:?} has a segment {segment:?} ending in a dot");
    }
}

/// Bytes as the control plane's stream delivers them: the first byte picks a `Snapshot`
/// (even) or a `Credentials` (odd), the rest is the encoded message. A snapshot is
/// compiled and a route looked up; credentials are compiled, applied as a change on top
/// of themselves, and must survive their own round trip to disk.
pub fn snapshot(data: &[u8]) {
    let Some((&kind, message)) = data.split_first() else { return };
    if kind % 2 == 0 {
        if let Ok(s) = pb::Snapshot::decode(message) {
            compile(&s);
        }
        return;
    }
    let Ok(creds) = pb::Credentials::decode(message) else { return };
    let Ok(compiled) = Credentials::compile(&creds, None) else { return };
    let saved = compiled.to_proto(&creds.service);
    let again = Credentials::compile(&saved, Some(&creds.service))
        .unwrap_or_else(|e| panic!("credentials do not survive their own round trip: {e}"));
    assert_eq!(again.key_count(), compiled.key_count(), "the round trip lost keys");
    let change = pb::Credentials { base_revision: creds.revision, ..creds.clone() };
    let _ = compiled.apply(&change, Some(&creds.service));
}

/// Compiles a snapshot without reading files; when it compiles, looks a route up.
fn compile(s: &pb::Snapshot) {
    if let Ok(snapshot) = Snapshot::try_from(s) {
        for path in ["/", "/api/v1/x", "/ADMIN/x."] {
            let key = snapshot.routing_key(path);
            if let Some(route) = snapshot.route_for(&Method::GET, "api.example.com", &key, &HeaderMap::new()) {
                let _ = route.rewritten_path(&key);
            }
        }
    }
}

/// The raw bytes a client sends on one plain connection to the sidecar's listener
/// (HTTP/1.1, or h2c after the preface), served in-process over a `tokio::io::duplex`
/// with `FRONT_POLICY` active; the response is read to the end. Upstreams are
/// `127.0.0.1:1`, where nothing listens, so forwarded requests end in 502s.
pub fn http_front(data: &[u8]) {
    let front = FRONT.get_or_init(Front::new);
    front.runtime.block_on(front.exchange(data));
}

/// A policy that touches every stage of the request path: host and header matches,
/// access rules with a trusted proxy, API keys, webhook signatures, JWTs, limits,
/// rewrites, header edits, escaped slashes decoded, and a second upstream.
pub const FRONT_POLICY: &str = r#"service: orders
client_ip: { trusted_proxies: [127.0.0.1/32] }
upstreams:
  admin: { endpoints: ["127.0.0.1:1"], connect_timeout: 1s }
defaults: { timeout: 5s, max_body: 64KiB }
routes:
  - name: admin-host
    match: { host: admin.example.com }
    access: { allow: [10.0.0.0/8] }
  - name: partner-api
    match: { host: api.example.com, path_prefix: /api/v1 }
    rewrite: { path_prefix: /v2, host: partner.internal }
    auth: keys
    limits: [per-plan]
    request_headers: { set: { x-api-version: "1" }, remove: [cookie] }
    response_headers: { set: { x-served-by: warden }, remove: [x-app] }
  - name: wildcard
    match: { host: "*.example.com", path_prefix: /api }
    auth: users
  - name: canary
    match: { path_prefix: /orders, headers: { x-canary: "true" } }
    rewrite: { path_prefix: /canary/orders }
  - name: login
    match: { path: /login, methods: [POST] }
    limits: [login-per-ip]
  - name: github
    match: { path: /hooks/github, methods: [POST] }
    auth: github
    max_body: 4KiB
  - name: stripe
    match: { path: /hooks/stripe, methods: [POST] }
    auth: stripe
  - name: files
    match: { path_prefix: /files }
    escaped_slashes: decode
    limits: [per-partner]
  - name: internal
    match: { path_prefix: /internal/admin }
    access: { allow: [10.0.0.0/8] }
  - name: admin
    match: { path_prefix: /admin }
    upstream: admin
  - name: public
    match: { path_prefix: / }
auth:
  keys: { type: api_key, header: x-api-key }
  github: { type: hmac, scheme: github, secret: gh-hook }
  stripe: { type: hmac, scheme: stripe, secret: stripe-hook, tolerance: 5m }
  users:
    type: jwt
    issuers: [https://id.example.com]
    audiences: [orders]
    jwks: { keys: [ { kty: EC, crv: P-256, kid: fuzz, x: 9Hl946wqfo2zkarsw6ClievziQXlNSgsQ6DHUbdYPTo, y: JBfSooInLt3E64xeWtAL0IuwPhnDbC_w6qLx82Zd9w0 } ] }
limits:
  login-per-ip: { key: client_ip, rate: 3/min }
  per-plan: { key: client_id, plans: { free: 3/min, pro: 10/min }, default: 1/min }
  per-partner: { key: "header:x-partner-id", rate: 2/hour }
"#;

/// The API key `FRONT_POLICY`'s `keys` provider knows (client `acme`, plan `free`).
pub const FRONT_API_KEY: &str = "wdn_fuzz_key";
/// The value of the `gh-hook` secret the `github` provider signs with.
pub const FRONT_GITHUB_SECRET: &[u8] = b"gh-secret";

/// Everything `http_front` builds once: a paused-clock runtime (every timer, hyper's
/// header-read timeout included, fires as soon as the connection is idle, so an input
/// costs no wall-clock waiting) and the compiled policy and credentials.
struct Front {
    runtime: tokio::runtime::Runtime,
    snapshot: pb::Snapshot,
    credentials: pb::Credentials,
}

static FRONT: OnceLock<Front> = OnceLock::new();

/// The client: a trusted proxy in `FRONT_POLICY`, so `x-forwarded-for` is read too.
const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);
/// Longer than any timer that ends a connection (header read 10 s, HTTP/2 keep-alive
/// 10 s + 20 s, a signed body's start 10 s), on the paused clock.
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(120);

impl Front {
    fn new() -> Front {
        // A broken harness must fail loudly, not fuzz nothing.
        #[allow(clippy::expect_used)]
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime");
        #[allow(clippy::expect_used)]
        let parsed = parse_service("front.yaml", FRONT_POLICY, Some("orders")).expect("FRONT_POLICY is valid");
        let credentials = pb::Credentials {
            service: "orders".into(),
            revision: 1,
            keys: vec![pb::ApiKey {
                id: "k1".into(),
                sha256: hash_key(FRONT_API_KEY).0.to_vec(),
                client: "acme".into(),
                plan: "free".into(),
                ..Default::default()
            }],
            secrets: vec![
                pb::Secret {
                    name: "gh-hook".into(),
                    id: "s1".into(),
                    value: FRONT_GITHUB_SECRET.to_vec(),
                    ..Default::default()
                },
                pb::Secret {
                    name: "stripe-hook".into(),
                    id: "s2".into(),
                    value: b"whsec_fuzz".to_vec(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        Front { runtime, snapshot: build(&parsed.policy, &parsed.source, 1), credentials }
    }

    /// A sidecar of its own for each input, so no input's limits or pools shape the next
    /// one's outcome (libFuzzer needs inputs to be reproducible one by one).
    async fn live(&self) -> Arc<Live> {
        let live = Live::new(Authority::from_static("127.0.0.1:1"), Some("orders".into()), None);
        #[allow(clippy::expect_used)]
        live.install(self.snapshot.clone(), Origin::PolicyFile).await.expect("FRONT_POLICY compiles");
        #[allow(clippy::expect_used)]
        live.install_credentials(self.credentials.clone(), Origin::PolicyFile).await.expect("the credentials compile");
        Arc::new(live)
    }

    async fn exchange(&self, input: &[u8]) {
        let live = self.live().await;
        let (client, server) = tokio::io::duplex(64 << 10);
        let cfg = ListenerConfig {
            drain_timeout: Duration::from_secs(1),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1,
            send_timeout: Duration::from_secs(10),
        };
        let served = tokio::spawn(async move { serve_io(server, PEER, live, &cfg).await });
        let (mut rx, mut tx) = tokio::io::split(client);
        // The write half stays open until the server closes: hyper drops a request in
        // flight when its client half-closes, and that request would never be handled.
        let write = async {
            let _ = tx.write_all(input).await;
            tx
        };
        let read = async {
            let mut buf = vec![0; 16 << 10];
            while matches!(rx.read(&mut buf).await, Ok(n) if n > 0) {}
        };
        let _ = tokio::time::timeout(EXCHANGE_DEADLINE, async { tokio::join!(write, read) }).await;
        served.abort();
        if let Err(e) = served.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}
