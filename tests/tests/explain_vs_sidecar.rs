//! `wardenctl explain` and a running sidecar must give every request the same answer:
//! the same status and reason for each request Warden refuses before forwarding, and
//! FORWARD for each it forwards. Requests are random: the hostile generator's spellings
//! of paths, hosts and methods, with API keys (good, unknown, missing), forwarded-for
//! chains (allowed, denied, garbage), a header some routes match on, declared bodies on
//! both sides of `max_body`, second Host headers and over-long URIs. A limit is in play
//! too: explain reads its budget from the running sidecar (`--sidecar`) just before the
//! request is sent, and the limit's window is an hour, so nothing refills in between.
//! Seeded: a failure names the seed and the request, and `WARDEN_SEED` replays it.

// A test: failing loudly at the spot is what it is for.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use warden_e2e::hostile::{self, RawRequest, Rng};
use warden_e2e::{Stack, eventually};

const POLICY: &str = "service: orders
client_ip: { trusted_proxies: [127.0.0.1/32] }
access: { deny: [203.0.113.0/24] }
defaults: { max_body: 64KiB, case_insensitive_paths: true }
auth:
  keys: { type: api_key, header: x-api-key }
limits:
  per-ip: { key: client_ip, rate: 3/hour }
routes:
  - name: admin
    match: { host: admin.example.com }
    access: { allow: [10.0.0.0/8] }
  - name: internal
    match: { path_prefix: /internal/admin }
    access: { allow: [10.0.0.0/8] }
  - name: login
    match: { path: /auth/login, methods: [POST] }
    limits: [per-ip]
  - name: tenant
    match: { path_prefix: /tenant, headers: { x-tenant: blue } }
    rewrite: { path_prefix: /t }
  - name: files
    match: { path_prefix: /files }
    escaped_slashes: decode
  - name: api
    match: { path_prefix: /api }
    auth: keys
  - name: public
    match: { path_prefix: /public }
";

/// The base requests: (method, path, host).
const BASES: &[(&str, &str, &str)] = &[
    ("GET", "/internal/admin/users", "api.example.com"),
    ("GET", "/anything", "admin.example.com"),
    ("POST", "/auth/login", "api.example.com"),
    ("GET", "/auth/login", "api.example.com"),
    ("GET", "/tenant/a/b", "api.example.com"),
    ("GET", "/files/a/b", "api.example.com"),
    ("DELETE", "/api/v1/orders/7", "api.example.com"),
    ("PUT", "/public/x", "api.example.com"),
    ("GET", "/nowhere", "api.example.com"),
];

/// One random request, and the body it sends (as much as it declares, when it fits).
fn request(rng: &mut Rng, key: &str) -> (RawRequest, Vec<u8>) {
    let (method, path, host) = *rng.pick(BASES);
    let mut r = match rng.chance(40) {
        true => hostile::spelling(rng, method, path, host),
        false => RawRequest::new(method, path, Some(host)),
    };
    // The generator's forged headers are the differential test's business: here they
    // only add noise, but a forged x-forwarded-for changes the client, so keep one kind.
    r.headers.retain(|(k, _)| k != "x-forwarded-for");
    match rng.below(4) {
        0 => r.headers.push(("x-api-key".into(), key.into())),
        1 => r.headers.push(("x-api-key".into(), format!("wdn_{}", "0".repeat(40)))),
        2 => r.headers.push(("x-api-key".into(), "nonsense".into())),
        _ => {}
    }
    if rng.chance(30) {
        let hop = *rng.pick(&["10.1.2.3", "203.0.113.9", "198.51.100.7", "unknown", "10.1.2.3, 127.0.0.1"]);
        r.headers.push(("x-forwarded-for".into(), hop.into()));
    }
    if rng.chance(30) {
        r.headers.push(("x-tenant".into(), (*rng.pick(&["blue", "red"])).into()));
    }
    if rng.chance(5) {
        r.headers.push(("host".into(), "other.example.com".into()));
    }
    if rng.chance(3) {
        r.target.push_str(&format!("?pad={}", "p".repeat(9000)));
    }
    let mut body = Vec::new();
    if rng.chance(30) {
        let len = *rng.pick(&[10usize, 60 << 10, 70 << 10, 10 << 20]);
        r.headers.push(("content-length".into(), len.to_string()));
        if len <= 64 << 10 {
            body = vec![b'x'; len];
        }
    }
    (r, body)
}

/// What Warden did with a request: Some((status, code)) when it answered itself, None
/// when the app did.
fn sidecar_answer(raw: &str) -> Option<(u16, String)> {
    hostile::header(raw, "x-warden-denied-by")?;
    let json: serde_json::Value = serde_json::from_str(hostile::body(raw)).ok()?;
    Some((hostile::status(raw), json["error"]["code"].as_str()?.to_owned()))
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_and_the_sidecar_agree_on_random_requests() {
    let s = Stack::start(POLICY).await;
    let (key, _) = s.create_key("acme", &[]).await;
    eventually("the key reaches the sidecar", Duration::from_secs(10), || async {
        s.get_with("/api/x", &[("x-api-key", &key)]).await.status == http::StatusCode::OK
    })
    .await;
    let admin = s.sidecar.admin.to_string();
    let seed: u64 = std::env::var("WARDEN_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(20261201);
    let mut rng = Rng::new(seed);
    let (mut codes, mut forwarded) = (std::collections::BTreeMap::<String, usize>::new(), 0);
    for i in 0..150 {
        let (r, body) = request(&mut rng, &key);
        let mut args: Vec<String> =
            ["explain", "--service", "orders", "-o", "json", "--client-ip", "127.0.0.1"].map(String::from).into();
        args.extend(["--sidecar".into(), admin.clone(), r.method.clone(), r.target.clone()]);
        for (k, v) in r.host.iter().map(|h| ("host", h.as_str())).chain(r.headers.iter().map(|(k, v)| (&**k, &**v))) {
            args.extend(["-H".into(), format!("{k}: {v}")]);
        }
        let explained = s.cp.ctl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        let mut bytes = r.to_bytes();
        bytes.extend_from_slice(&body);
        let raw = s.sidecar.raw(&bytes).await;
        let what = format!("seed {seed}, request {i}: {:?}", String::from_utf8_lossy(&r.to_bytes()));
        let answered = sidecar_answer(&raw);
        if explained.code != 0 {
            // explain could not read the request (a URL or header http refuses): nor can
            // the sidecar's HTTP parser, which answers before Warden's rules.
            assert!(
                answered.is_none() && hostile::status(&raw) == 400,
                "{what}\nexplain: {explained:?}\nsidecar:\n{raw}"
            );
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&explained.stdout).unwrap();
        match (&answered, v["decision"].as_str()) {
            (None, Some("forward")) => {
                assert_eq!(hostile::status(&raw), 200, "{what}: the app should have answered:\n{raw}");
                forwarded += 1;
            }
            (Some((status, code)), Some("deny")) => {
                let said = (v["status"].as_u64().unwrap_or(0) as u16, v["code"].as_str().unwrap_or_default());
                assert_eq!((*status, code.as_str()), said, "{what}\nexplain: {}\nsidecar:\n{raw}", explained.stdout);
                *codes.entry(code.clone()).or_default() += 1;
            }
            _ => panic!("{what}\nexplain: {}\nsidecar:\n{raw}", explained.stdout),
        }
    }
    // Both kinds of answer, and many reasons, must be represented, or the test proves little.
    assert!(forwarded >= 20 && codes.len() >= 8, "forwarded {forwarded}, refused {codes:?}");
}
