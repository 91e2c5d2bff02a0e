//! Auth through real sidecars: API keys created, used, rotated, expired and revoked with
//! `wardenctl`; JWTs signed by PyJWT; GitHub and Stripe signatures computed by Python's
//! hmac; forged identity headers; what `explain -H` says; and that no key or secret ever
//! shows up in a response, a listing, /config or a log.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use warden_control_plane::ops::keys::generate;
use warden_control_plane::store::Store as _;
use warden_e2e::stack::orders_sidecar;
use warden_e2e::{ControlPlane, Resp, Sidecar, Stack, eventually, sign, write_policy};

const POLICY: &str = "service: orders
routes:
  - name: partner
    match: { path_prefix: /partner }
    auth: partner-keys
  - name: bearer
    match: { path_prefix: /bearer }
    auth: bearer-keys
    forward_credentials: true
  - name: open
    match: { path_prefix: / }
auth:
  partner-keys: { type: api_key, header: x-api-key }
  bearer-keys: { type: api_key }
";

async fn with_key(s: &Stack, path: &str, key: &str) -> Resp {
    s.get_with(path, &[("x-api-key", key)]).await
}

fn assert_refused(r: &Resp, code: &str, rule: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(e["code"], code, "{}", r.text());
    assert_eq!(e["rule"], rule);
    assert_eq!(e["layer"], "warden-sidecar");
    assert_eq!(r.header("x-warden-denied-by"), Some(rule));
    let status = r.header("proxy-status").unwrap_or_default();
    assert!(status.contains("error=http_request_denied"), "{status}");
}

/// Waits until `path` with `key` gets `status` (a change reaching the sidecar).
async fn until_status(s: &Stack, sidecar: &Sidecar, key: &str, status: StatusCode) {
    eventually(&format!("{} answers {status}", sidecar.proxy), Duration::from_secs(5), || async {
        s.client
            .send(Method::GET, &sidecar.url("/partner/x"), &[("x-api-key", key)], Bytes::new())
            .await
            .is_ok_and(|r| r.status == status)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_thousand_keys_reach_the_sidecar_in_one_credentials_set() {
    // 100,000 keys make a 7.6 MB credentials message, past gRPC's usual 4 MiB limit.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = warden_control_plane::store::Sqlite::open(&dir.path().join("data")).expect("store");
    let request = |client: String| warden_control_plane::ops::KeyRequest {
        service: "orders".into(),
        client,
        ..Default::default()
    };
    let keys: Vec<_> = (0..100_000).map(|i| generate(&request(format!("c{i}"))).expect("a key")).collect();
    let (last, _) = keys[keys.len() - 1].clone();
    store.create_keys(keys.into_iter().map(|(_, k)| k).collect()).await.expect("stored");
    drop(store);

    let s = Stack::start_in(dir, POLICY).await;
    let r = with_key(&s, "/partner/1", &last).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(s.app.last().headers["x-warden-client"], "c99999");
    let out = s.cp.ctl(&["keys", "list", "--service", "orders", "--client", "c99999"]).await;
    assert!(out.stdout.contains("c99999"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_identify_the_client_rotate_without_a_gap_and_revoke_everywhere() {
    let s = Stack::start(POLICY).await;
    let (first, first_id) = s.create_key("acme", &["--plan", "pro"]).await;
    assert!(first.starts_with("wdn_") && first.len() == 4 + 64, "{first}");
    until_status(&s, &s.sidecar, &first, StatusCode::OK).await;

    // The app learns who called, never the key, and never what the client claimed.
    let r = s
        .get_with("/partner/1", &[("x-api-key", &first), ("x-warden-client", "root"), ("X-Warden-Plan", "gold")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = s.app.last();
    let h = |k: &str| seen.headers.get(k).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(h("x-warden-client").as_deref(), Some("acme"));
    assert_eq!(h("x-warden-plan").as_deref(), Some("pro"));
    assert_eq!(h("x-warden-auth").as_deref(), Some("partner-keys"), "which provider vouched");
    assert_eq!(h("x-api-key"), None, "the credential is removed unless the route forwards it");
    assert_eq!(seen.headers.get_all("x-warden-client").iter().count(), 1);

    // On a route without auth a forged identity never reaches the app.
    s.get_with("/anything", &[("x-warden-client", "root"), ("x-warden-anything", "1")]).await;
    assert!(s.app.last().headers.keys().all(|k| !k.as_str().starts_with("x-warden-")));

    // Every way a key can be wrong has its own reason; none echoes the key.
    let r = s.get("/partner/1").await;
    assert_refused(&r, "credential_missing", "partner-keys");
    assert_eq!(r.header("www-authenticate"), Some("ApiKey realm=\"orders\", header=\"x-api-key\""));
    assert_refused(&with_key(&s, "/partner/1", "letmein").await, "credential_malformed", "partner-keys");
    let unknown = format!("wdn_{}", "0".repeat(64));
    let r = with_key(&s, "/partner/1", &unknown).await;
    assert_refused(&r, "key_unknown", "partner-keys");
    assert!(!r.text().contains(&unknown[4..]));

    // Rotation: a second key for the same client works at once, the first keeps working.
    let (second, _) = s.create_key("acme", &["--plan", "pro"]).await;
    until_status(&s, &s.sidecar, &second, StatusCode::OK).await;
    assert_eq!(with_key(&s, "/partner/1", &first).await.status, StatusCode::OK);

    // A second sidecar of the same service: a revocation reaches both.
    let other = s.start_another_sidecar("orders-2").await;
    until_status(&s, &other, &first, StatusCode::OK).await;
    let out = s.cp.ctl(&["keys", "revoke", &first_id]).await;
    assert_eq!(out.code, 0, "{out:?}");
    until_status(&s, &s.sidecar, &first, StatusCode::UNAUTHORIZED).await;
    until_status(&s, &other, &first, StatusCode::UNAUTHORIZED).await;
    let r = with_key(&s, "/partner/1", &first).await;
    assert_refused(&r, "key_revoked", "partner-keys");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains(&first_id), "{}", r.text());
    assert!(!r.text().contains(&first[4..]));
    assert_eq!(with_key(&s, "/partner/1", &second).await.status, StatusCode::OK, "the other key is untouched");

    // Listings show ids, clients and states; never a key.
    let out = s.cp.ctl(&["keys", "list", "--service", "orders"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&first_id) && out.stdout.contains("revoked") && out.stdout.contains("active"));
    for key in [&first, &second] {
        assert!(!out.stdout.contains(&key[4..]), "a listing shows a key: {}", out.stdout);
        assert!(!s.sidecar.proc.output().contains(&key[4..]), "the sidecar logged a key");
        assert!(!s.cp.proc.output().contains(&key[4..]), "the control plane logged a key");
    }
    let status = s.cp.ctl(&["status", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    for sc in v["sidecars"].as_array().unwrap() {
        assert_eq!(sc["acked_credentials"], sc["current_credentials"], "{sc}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_keys_expire_and_a_forwarding_route_keeps_the_header() {
    let s = Stack::start(POLICY).await;
    let (key, _) = s.create_key("shortlived", &["--expires", "2s"]).await;
    let auth = format!("Bearer {key}");
    let bearer = |path: &'static str| {
        let auth = auth.clone();
        let s = &s;
        async move { s.get_with(path, &[("authorization", &auth)]).await }
    };
    eventually("the new key works", Duration::from_secs(5), || async { bearer("/bearer/1").await.status == 200 }).await;
    let seen = s.app.last();
    assert_eq!(seen.headers.get("authorization").unwrap().to_str().unwrap(), auth, "forward_credentials");
    assert_eq!(seen.headers.get("x-warden-client").unwrap(), "shortlived");
    assert_eq!(seen.headers.get("x-warden-plan"), None, "no plan, no header");

    let r = s.get_with("/bearer/1", &[("authorization", &format!("Basic {key}"))]).await;
    assert_refused(&r, "credential_malformed", "bearer-keys");
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"orders\", error=\"invalid_request\""));
    assert_eq!(s.get("/bearer/1").await.header("www-authenticate"), Some("Bearer realm=\"orders\""));

    eventually("the key expires", Duration::from_secs(10), || async { bearer("/bearer/1").await.status == 401 }).await;
    assert_refused(&bearer("/bearer/1").await, "key_expired", "bearer-keys");
}

#[tokio::test(flavor = "multi_thread")]
async fn jwts_signed_by_pyjwt_pass_with_every_algorithm_and_fail_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().to_string_lossy().into_owned();
    sign(&["keys", &keys]);
    let policy = format!(
        "service: orders
routes:
  - name: api
    match: {{ path_prefix: /api }}
    auth: users
auth:
  users:
    type: jwt
    issuers: [https://id.example.com]
    audiences: [orders]
    jwks_file: {keys}/jwks.json
    plan_claim: tier
"
    );
    let s = Stack::start(&policy).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = |extra: &str| {
        format!(
            r#"{{"sub": "user-42", "tier": "free", "iss": "https://id.example.com", "aud": "orders", "exp": {}{extra}}}"#,
            now + 300
        )
    };
    let call = |token: String| {
        let s = &s;
        async move { s.get_with("/api/me", &[("authorization", &format!("Bearer {token}"))]).await }
    };

    for (kid, alg) in [("rsa1", "RS256"), ("ec1", "ES256"), ("ed1", "EdDSA"), ("hs1", "HS256")] {
        let r = call(sign(&["jwt", &keys, kid, alg, &claims("")])).await;
        assert_eq!(r.status, StatusCode::OK, "{alg}: {}", r.text());
        let seen = s.app.last();
        assert_eq!(seen.headers.get("x-warden-client").unwrap(), "user-42", "{alg}");
        assert_eq!(seen.headers.get("x-warden-plan").unwrap(), "free", "{alg}");
        assert!(seen.headers.get("authorization").is_none(), "{alg}: the token is not forwarded");
    }

    let refused = |r: Resp, code: &str| {
        assert_refused(&r, code, "users");
        let challenge = r.header("www-authenticate").unwrap();
        assert!(challenge.starts_with("Bearer realm=\"orders\""), "{challenge}");
    };
    let rsa = |c: String| sign(&["jwt", &keys, "rsa1", "RS256", &c]);
    let expired = format!(r#"{{"sub": "u", "iss": "https://id.example.com", "aud": "orders", "exp": {}}}"#, now - 3600);
    refused(call(rsa(expired)).await, "token_expired");
    refused(call(rsa(claims(&format!(r#", "nbf": {}"#, now + 3600)))).await, "token_not_yet_valid");
    refused(call(rsa(claims("").replace("\"orders\"", "\"billing\""))).await, "token_bad_audience");
    refused(call(rsa(claims("").replace("id.example.com", "evil.example.com"))).await, "token_bad_issuer");
    let good = rsa(claims(""));
    let (head, sig) = good.rsplit_once('.').unwrap();
    let flipped = match sig.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &sig[1..]),
    };
    refused(call(format!("{head}.{flipped}")).await, "token_bad_signature");
    refused(call("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.".into()).await, "token_malformed");
    // An RS256 token whose header says HS256, signed with the RSA *public* key as the
    // HMAC secret: the classic confusion. The key only allows RS256.
    refused(call(sign(&["confused", &keys, "rsa1", &claims("")])).await, "token_bad_algorithm");

    // The identity provider rotates its keys: the file changes in place, the sidecar picks
    // the new keys up, and tokens signed with the old ones (remembered or not) stop working.
    let rotated = dir.path().join("rotated");
    let rotated = rotated.to_string_lossy().into_owned();
    sign(&["keys", &rotated]);
    let new_token = sign(&["jwt", &rotated, "ec1", "ES256", &claims("")]);
    std::fs::copy(format!("{rotated}/jwks.json"), format!("{keys}/jwks.json")).unwrap();
    eventually("the new JWKS is in use", Duration::from_secs(10), || async {
        call(new_token.clone()).await.status == StatusCode::OK
    })
    .await;
    refused(call(good.clone()).await, "token_bad_signature");
}

const HOOKS: &str = "service: orders
routes:
  - name: github
    match: { path: /hooks/github, methods: [POST] }
    auth: github
    max_body: 64KiB
  - name: stripe
    match: { path: /hooks/stripe, methods: [POST] }
    auth: stripe
auth:
  github: { type: hmac, scheme: github, secret: gh-hook }
  stripe: { type: hmac, scheme: stripe, secret: stripe-hook, tolerance: 5m }
";

#[tokio::test(flavor = "multi_thread")]
async fn webhook_signatures_are_checked_over_the_exact_body_and_secrets_rotate() {
    let s = Stack::start(HOOKS).await;
    // Before any secret is set nothing can be verified, and the refusal says so.
    let r = s.post("/hooks/github", &[("x-hub-signature-256", &format!("sha256={}", "0".repeat(64)))], b"{}").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "auth_unavailable");

    let secret_v1 = "gh-secret-one-7d1f";
    s.set_secret("gh-hook", secret_v1, &[]).await;
    s.set_secret("stripe-hook", "whsec_s3cr3t", &[]).await;

    // Bytes that any re-encoding would change: the app must get them as sent.
    let body: &[u8] = b"{\"zen\": \"Keep it logically awesome.\",\n  \"n\":1.50, \"u\":\"\\u00e9\"}\r\n\x00\xff";
    let file = s.dir.path().join("body.bin");
    std::fs::write(&file, body).unwrap();
    let file = file.to_string_lossy().into_owned();
    let gh = |secret: &str| sign(&["github", secret, &file]);

    let sig = gh(secret_v1);
    eventually("the secret reaches the sidecar", Duration::from_secs(5), || async {
        s.post("/hooks/github", &[("x-hub-signature-256", &sig)], body).await.status == StatusCode::OK
    })
    .await;
    let seen = s.app.last();
    assert_eq!(seen.body.as_ref(), body, "the app receives the body byte for byte");
    assert_eq!(seen.headers.get("x-warden-client").unwrap(), "github");
    assert!(seen.headers.get("x-hub-signature-256").is_none());

    let r = s.post("/hooks/github", &[("x-hub-signature-256", &gh("wrong"))], body).await;
    assert_refused(&r, "signature_invalid", "github");
    assert_eq!(r.header("www-authenticate"), Some("HMAC-SHA256 realm=\"orders\", header=\"x-hub-signature-256\""));
    let mut tampered = body.to_vec();
    tampered[3] ^= 1;
    assert_refused(
        &s.post("/hooks/github", &[("x-hub-signature-256", &sig)], &tampered).await,
        "signature_invalid",
        "github",
    );
    assert_refused(&s.post("/hooks/github", &[], body).await, "signature_missing", "github");
    let big = vec![b'x'; 65 * 1024];
    let r = s.post("/hooks/github", &[("x-hub-signature-256", &sig)], &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "buffered only up to max_body");

    // Rotation: the new value verifies at once and the old one keeps working...
    s.set_secret("gh-hook", "gh-secret-two-99aa", &[]).await;
    let new_sig = gh("gh-secret-two-99aa");
    eventually("the new secret verifies", Duration::from_secs(5), || async {
        s.post("/hooks/github", &[("x-hub-signature-256", &new_sig)], body).await.status == StatusCode::OK
    })
    .await;
    assert_eq!(s.post("/hooks/github", &[("x-hub-signature-256", &sig)], body).await.status, StatusCode::OK);
    // ...until it is retired.
    s.set_secret("gh-hook", "gh-secret-three-5e5e", &["--retire-previous-after", "0s"]).await;
    eventually("old values retire", Duration::from_secs(5), || async {
        s.post("/hooks/github", &[("x-hub-signature-256", &new_sig)], body).await.status == StatusCode::UNAUTHORIZED
    })
    .await;

    // Stripe: t.body, within the tolerance.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let stripe = |t: u64| sign(&["stripe", "whsec_s3cr3t", &file, &t.to_string()]);
    let r = s.post("/hooks/stripe", &[("stripe-signature", &stripe(now - 10))], body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(s.app.last().body.as_ref(), body);
    assert_refused(
        &s.post("/hooks/stripe", &[("stripe-signature", &stripe(now - 600))], body).await,
        "signature_stale",
        "stripe",
    );
    assert_refused(
        &s.post("/hooks/stripe", &[("stripe-signature", "t=1,v1=zz")], body).await,
        "signature_malformed",
        "stripe",
    );

    // explain has no body: it checks the header and says what it cannot know.
    let out = s
        .cp
        .ctl(&["explain", "--service", "orders", "POST", "/hooks/github", "-H", &format!("x-hub-signature-256: {sig}")])
        .await;
    assert!(out.stdout.contains("not evaluated: the signature covers the body"), "{out:?}");
    let out = s.cp.ctl(&["explain", "--service", "orders", "POST", "/hooks/github"]).await;
    assert!(out.stdout.contains("DENY 401 signature_missing"), "{out:?}");

    // Secret values appear nowhere.
    let listed = s.cp.ctl(&["secrets", "list"]).await;
    assert!(listed.stdout.contains("gh-hook") && listed.stdout.contains("stripe-hook"), "{listed:?}");
    let config = s.get_admin("/config").await;
    let got = s.cp.ctl(&["get", "orders", "-o", "json"]).await;
    for secret in [secret_v1, "gh-secret-two-99aa", "whsec_s3cr3t"] {
        for (what, text) in [
            ("secrets list", &listed.stdout),
            ("/config", &config),
            ("get", &got.stdout),
            ("the sidecar log", &s.sidecar.proc.output()),
            ("the control plane log", &s.cp.proc.output()),
        ] {
            assert!(!text.contains(secret), "{what} shows a secret");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_evaluates_the_credential_it_is_given() {
    let s = Stack::start(POLICY).await;
    let (key, id) = s.create_key("acme", &["--plan", "pro"]).await;
    let explain = |header: String| {
        let s = &s;
        async move {
            let out = s.cp.ctl(&["explain", "--service", "orders", "GET", "/partner/1", "-H", &header]).await;
            assert_eq!(out.code, 0, "{out:?}");
            out.stdout
        }
    };
    let out = explain(format!("x-api-key: {key}")).await;
    assert!(out.contains("partner-keys (api_key, header x-api-key): PASSED as client 'acme', plan 'pro'"), "{out}");
    assert!(out.contains("FORWARD via route 'partner'"), "{out}");
    s.cp.ctl(&["keys", "revoke", &id]).await;
    let out = explain(format!("x-api-key: {key}")).await;
    assert!(out.contains("REFUSED 401 key_revoked") && out.contains("DENY 401 key_revoked"), "{out}");
    let out = explain("accept: */*".into()).await;
    assert!(out.contains("DENY 401 credential_missing"), "{out}");
    let out = s.cp.ctl(&["explain", "--service", "orders", "GET", "/other"]).await;
    assert!(out.stdout.contains("none on this route"), "{out:?}");

    // From a file the keys are not at hand, and explain says so instead of guessing.
    let file = write_policy(s.dir.path(), "p.yaml", POLICY);
    let out = s.cp.ctl(&["explain", "-f", &file, "GET", "/partner/1", "-H", &format!("x-api-key: {key}")]).await;
    assert!(out.stdout.contains("not evaluated: keys are kept by the control plane"), "{out:?}");
    assert!(out.stdout.contains("FORWARD via route 'partner' if the credential is valid"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_survive_a_sidecar_restart_while_the_control_plane_is_down() {
    let mut s = Stack::start(POLICY).await;
    let (key, _) = s.create_key("acme", &[]).await;
    // The sidecar ACKs credentials after persisting them.
    eventually("the sidecar ACKs the credentials", Duration::from_secs(5), || async {
        let out = s.cp.ctl(&["status", "-o", "json"]).await;
        serde_json::from_str::<serde_json::Value>(&out.stdout).is_ok_and(|v| {
            let sc = &v["sidecars"][0];
            sc["acked_credentials"].as_u64() > Some(0) && sc["acked_credentials"] == sc["current_credentials"]
        })
    })
    .await;
    s.cp.proc.kill9();
    s.sidecar.proc.kill9();

    let state = s.dir.path().join("state");
    let file = state.join("orders.credentials.pb");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).expect("credentials file").permissions());
    assert_eq!(mode & 0o777, 0o600, "the credentials file holds secrets: owner-only");
    let sidecar = orders_sidecar(&s.cp.url(), s.app.addr, &state, "orders-1", &[]).await;
    let url = sidecar.url("/partner/1");
    let r = s.client.send(Method::GET, &url, &[("x-api-key", &key)], Bytes::new()).await;
    assert_eq!(r.map(|r| r.status), Ok(StatusCode::OK), "the key still works");
    let unknown = format!("wdn_{}", "1".repeat(64));
    let r = s.client.send(Method::GET, &url, &[("x-api-key", &unknown)], Bytes::new()).await;
    assert_eq!(r.map(|r| r.status), Ok(StatusCode::UNAUTHORIZED));
}

/// Whether `status` shows the stack's sidecar connected and holding the current
/// credentials revision (some, not none).
async fn credentials_current(s: &Stack) -> bool {
    let out = s.cp.ctl(&["status", "-o", "json"]).await;
    serde_json::from_str::<serde_json::Value>(&out.stdout).is_ok_and(|v| {
        let sc = &v["sidecars"][0];
        sc["connected"] == true
            && sc["acked_credentials"].as_u64() > Some(0)
            && sc["acked_credentials"] == sc["current_credentials"]
    })
}

/// A sidecar that reconnects already holding the current credentials (the control plane
/// restarted, nothing changed meanwhile) is sent none and has nothing to ACK: `status`
/// must still show it current, not behind until the next key change.
#[tokio::test(flavor = "multi_thread")]
async fn a_sidecar_that_reconnects_with_current_credentials_is_shown_in_sync() {
    let mut s = Stack::start(POLICY).await;
    s.create_key("acme", &[]).await;
    eventually("the sidecar ACKs the credentials", Duration::from_secs(5), || credentials_current(&s)).await;
    s.cp.proc.terminate();
    assert!(s.cp.proc.wait_exit(Duration::from_secs(10)).await.is_some(), "the control plane stops on SIGTERM");
    s.cp = ControlPlane::start(&s.cp.data_dir, &s.cp.addr.to_string()).await;
    eventually("status shows the reconnected sidecar's credentials current", Duration::from_secs(15), || {
        credentials_current(&s)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn buffered_webhook_bodies_share_one_memory_budget() {
    use tokio::io::AsyncWriteExt;
    let s = Stack::start_with(HOOKS, &["--max-buffered-bytes", "64KiB"]).await;
    s.set_secret("gh-hook", "budget-secret", &[]).await;
    let zeros = format!("sha256={}", "0".repeat(64));
    let headers = [("x-hub-signature-256", zeros.as_str())];
    let body = vec![b'x'; 8 * 1024];
    let small = || s.post("/hooks/github", &headers, &body);
    eventually("the secret reaches the sidecar", Duration::from_secs(15), || async {
        small().await.status == StatusCode::UNAUTHORIZED
    })
    .await;

    // Senders that declare 60 KiB each and send nothing hold nothing: the budget is
    // taken as bytes arrive, not for what a header promises.
    let head = format!(
        "POST /hooks/github HTTP/1.1\r\nhost: x\r\ncontent-length: 61440\r\nx-hub-signature-256: {zeros}\r\n\r\n"
    );
    let mut promised = Vec::new();
    for _ in 0..32 {
        let mut tcp = tokio::net::TcpStream::connect(s.sidecar.proxy).await.expect("connect");
        tcp.write_all(head.as_bytes()).await.expect("write");
        promised.push(tcp);
    }
    assert_eq!(small().await.status, StatusCode::UNAUTHORIZED, "promises spend no budget");

    // One that has sent 58 KiB of its 60 holds that much, and the next body does not fit.
    let mut slow = tokio::net::TcpStream::connect(s.sidecar.proxy).await.expect("connect");
    slow.write_all(head.as_bytes()).await.expect("write");
    slow.write_all(&[b'x'; 58 * 1024]).await.expect("write");
    // Only once the sidecar holds those bytes: a small body sent while they are still in
    // flight could take its share first, and the slow one would be the one refused.
    eventually("the sidecar holds the slow body", Duration::from_secs(15), || async {
        let config = s.client.get(&s.sidecar.admin_url("/config")).await.unwrap().json();
        config["buffered_kib"]["now"].as_u64() >= Some(58)
    })
    .await;
    eventually("the budget is spent", Duration::from_secs(15), || async {
        let r = small().await;
        r.status == StatusCode::SERVICE_UNAVAILABLE && r.json()["error"]["code"] == "buffer_full"
    })
    .await;
    drop(slow);
    eventually("the budget comes back", Duration::from_secs(15), || async {
        small().await.status == StatusCode::UNAUTHORIZED
    })
    .await;
}
