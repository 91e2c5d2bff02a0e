//! Auth decisions, one reason code at a time.

use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{EncodingKey, Header};
use warden_proto::v1 as pb;

use super::*;

const NOW_MS: i64 = 1_800_000_000_000;
const GOOD_KEY: &str = "wdn_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn provider(kind: pb::auth_provider::Kind) -> AuthProvider {
    AuthProvider::compile(&pb::AuthProvider { name: "p".into(), kind: Some(kind) }, "orders").unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

fn key(id: &str, key: &str, expires: i64, revoked: i64) -> pb::ApiKey {
    pb::ApiKey {
        id: id.into(),
        sha256: hash_key(key).0.to_vec(),
        client: "acme".into(),
        plan: "pro".into(),
        expires_unix_ms: expires,
        revoked_unix_ms: revoked,
    }
}

fn creds(keys: Vec<pb::ApiKey>, secrets: Vec<pb::Secret>) -> Credentials {
    let whole = pb::Credentials { service: "orders".into(), revision: 1, keys, secrets, base_revision: 0, epoch: 0 };
    Credentials::compile(&whole, Some("orders")).unwrap()
}

fn outcome(p: &AuthProvider, c: &Credentials, h: &HeaderMap) -> Result<Identity, &'static str> {
    match p.check_head(c, h, NOW_MS) {
        Ok(HeadCheck::Passed(id)) => Ok(id),
        Ok(HeadCheck::NeedsBody(_)) => Err("needs body"),
        Err(f) => Err(f.code()),
    }
}

#[test]
fn api_keys_each_refusal_has_its_own_reason() {
    let p = provider(pb::auth_provider::Kind::ApiKey(pb::ApiKeyAuth { header: "x-api-key".into() }));
    let old = "wdn_ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    let gone = "wdn_eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
    let c =
        creds(vec![key("k1", GOOD_KEY, 0, 0), key("k2", old, NOW_MS - 1, 0), key("k3", gone, 0, NOW_MS - 5)], vec![]);
    let id = outcome(&p, &c, &headers(&[("x-api-key", GOOD_KEY)])).unwrap();
    assert_eq!((&*id.client, id.plan.as_deref()), ("acme", Some("pro")));
    assert_eq!(outcome(&p, &c, &headers(&[])), Err("credential_missing"));
    assert_eq!(outcome(&p, &c, &headers(&[("x-api-key", "hunter2")])), Err("credential_malformed"));
    assert_eq!(
        outcome(&p, &c, &headers(&[("x-api-key", GOOD_KEY), ("x-api-key", GOOD_KEY)])),
        Err("credential_malformed"),
        "two keys are ambiguous"
    );
    let unknown = "wdn_1111111111111111111111111111111111111111111111111111111111111111";
    assert_eq!(outcome(&p, &c, &headers(&[("x-api-key", unknown)])), Err("key_unknown"));
    assert_eq!(outcome(&p, &c, &headers(&[("x-api-key", old)])), Err("key_expired"));
    assert_eq!(outcome(&p, &c, &headers(&[("x-api-key", gone)])), Err("key_revoked"));
}

#[test]
fn api_keys_in_authorization_need_the_bearer_scheme() {
    let p = provider(pb::auth_provider::Kind::ApiKey(pb::ApiKeyAuth { header: "authorization".into() }));
    let c = creds(vec![key("k1", GOOD_KEY, 0, 0)], vec![]);
    assert!(outcome(&p, &c, &headers(&[("authorization", &format!("Bearer {GOOD_KEY}"))])).is_ok());
    assert!(outcome(&p, &c, &headers(&[("authorization", &format!("bearer  {GOOD_KEY}"))])).is_ok());
    assert_eq!(outcome(&p, &c, &headers(&[("authorization", GOOD_KEY)])), Err("credential_malformed"));
    assert_eq!(outcome(&p, &c, &headers(&[("authorization", "Basic YTpi")])), Err("credential_malformed"));
    assert_eq!(p.challenge.as_ref().unwrap(), "Bearer realm=\"orders\"");
}

#[test]
fn a_refusal_message_never_contains_the_key() {
    let p = provider(pb::auth_provider::Kind::ApiKey(pb::ApiKeyAuth { header: "x-api-key".into() }));
    let c = creds(vec![key("k1", GOOD_KEY, 0, NOW_MS)], vec![]);
    let f = p.check_head(&c, &headers(&[("x-api-key", GOOD_KEY)]), NOW_MS).unwrap_err();
    let msg = f.message("x-api-key");
    assert!(msg.contains("k1") && !msg.contains(&GOOD_KEY[4..]), "{msg}");
}

// HS256 keys come as `oct` JWKs; RS256/ES256/EdDSA are signed by pyjwt in tests/tests/auth.rs.
const OCT: &[u8] = b"an HS256 secret that is long enough";

fn jwt_provider(issuers: &[&str], audiences: &[&str]) -> AuthProvider {
    let k = jsonwebtoken_b64(OCT);
    let jwks = format!(r#"{{"keys":[{{"kty":"oct","kid":"k1","alg":"HS256","k":"{k}"}}]}}"#);
    provider(pb::auth_provider::Kind::Jwt(pb::JwtAuth {
        issuers: issuers.iter().map(|s| s.to_string()).collect(),
        audiences: audiences.iter().map(|s| s.to_string()).collect(),
        jwks_json: jwks,
        client_claim: "sub".into(),
        plan_claim: "plan".into(),
        leeway_ms: 30_000,
        header: "authorization".into(),
        ..Default::default()
    }))
}

fn jsonwebtoken_b64(bytes: &[u8]) -> String {
    // base64url without padding, written out to keep base64 out of the dependency list.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn token(claims: serde_json::Value, kid: &str, secret: &[u8]) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
}

fn bearer(t: &str) -> HeaderMap {
    headers(&[("authorization", &format!("Bearer {t}"))])
}

#[test]
fn jwts_are_verified_and_name_the_client_and_plan() {
    let p = jwt_provider(&["https://issuer.example"], &["orders"]);
    let c = Credentials::default();
    // The time is the caller's (`NOW_MS`, not the wall clock), as decide passes it.
    let now = (NOW_MS / 1000) as u64;
    let good = serde_json::json!({"sub": "acme", "plan": "pro", "iss": "https://issuer.example", "aud": "orders", "exp": now + 600});
    let check = |claims: serde_json::Value| outcome(&p, &c, &bearer(&token(claims, "k1", OCT)));
    let with = |k: &str, v: serde_json::Value| {
        let mut claims = good.clone();
        claims[k] = v;
        claims
    };
    let id = check(good.clone()).unwrap();
    assert_eq!((&*id.client, id.plan.as_deref()), ("acme", Some("pro")));
    assert_eq!(check(good.clone()), Ok(id), "a remembered token names the same client");
    assert_eq!(outcome(&p, &c, &bearer(&token(good.clone(), "k1", b"another secret"))), Err("token_bad_signature"));
    assert_eq!(outcome(&p, &c, &bearer(&token(good.clone(), "k9", OCT))), Err("token_unknown_key"));
    assert_eq!(check(with("exp", (now - 3600).into())), Err("token_expired"));
    assert!(check(with("exp", (now - 10).into())).is_ok(), "within the leeway");
    assert_eq!(check(with("nbf", (now + 3600).into())), Err("token_not_yet_valid"));
    assert_eq!(check(with("iss", "https://evil.example".into())), Err("token_bad_issuer"));
    assert_eq!(check(with("aud", "billing".into())), Err("token_bad_audience"));
    assert_eq!(check(with("sub", serde_json::Value::Null)), Err("token_missing_claim"));
    // A client or plan that would be a list (or parameters, or not travel) to the app.
    for bad in ["root,acme", "acme;admin", "a b", "", "caf\u{e9}"] {
        assert_eq!(check(with("sub", bad.into())), Err("token_claim_invalid"), "sub {bad:?}");
        assert_eq!(check(with("plan", bad.into())), Err("token_claim_invalid"), "plan {bad:?}");
    }
    assert_eq!(check(with("plan", serde_json::json!(["a", "b"]))), Err("token_claim_invalid"));
    assert_eq!(check(with("sub", 42.into())).map(|id| id.client), Ok("42".into()), "a number is a name");
    // CVE-2026-25537: a claim of the wrong type must not count as absent.
    assert_eq!(check(with("nbf", "99999999999".into())), Err("token_malformed"));
    assert_eq!(check(with("exp", "never".into())), Err("token_missing_claim"), "exp must be a number");
    assert_eq!(outcome(&p, &c, &bearer("not.a.jwt")), Err("token_malformed"));
    assert_eq!(outcome(&p, &c, &headers(&[])), Err("credential_missing"));
}

#[test]
fn a_jwt_whose_alg_its_key_does_not_allow_is_refused() {
    let p = jwt_provider(&[], &[]);
    let c = Credentials::default();
    // The time is the caller's (`NOW_MS`, not the wall clock), as decide passes it.
    let now = (NOW_MS / 1000) as u64;
    let mut header = Header::new(jsonwebtoken::Algorithm::HS384);
    header.kid = Some("k1".into());
    let t = jsonwebtoken::encode(
        &header,
        &serde_json::json!({"sub": "a", "exp": now + 60}),
        &EncodingKey::from_secret(OCT).unwrap(),
    )
    .unwrap();
    assert_eq!(outcome(&p, &c, &bearer(&t)), Err("token_bad_algorithm"));
    // alg "none": header {"alg":"none"}, no signature.
    let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.";
    assert!(matches!(outcome(&p, &c, &bearer(none)), Err("token_malformed" | "token_bad_algorithm")));
}

fn hmac_provider(scheme: pb::HmacScheme) -> AuthProvider {
    provider(pb::auth_provider::Kind::Hmac(pb::HmacAuth {
        scheme: scheme as i32,
        secret: "hooks".into(),
        tolerance_ms: 300_000,
    }))
}

fn secret(value: &str, expires: i64) -> pb::Secret {
    pb::Secret { name: "hooks".into(), id: value.into(), value: value.as_bytes().to_vec(), expires_unix_ms: expires }
}

fn sign(secret: &str, payload: &[u8]) -> String {
    let mut mac = <::hmac::Hmac<sha2::Sha256> as ::hmac::KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    ::hmac::Mac::update(&mut mac, payload);
    hex::encode(::hmac::Mac::finalize(mac).into_bytes())
}

fn body_verdict(p: &AuthProvider, c: &Credentials, h: &HeaderMap, body: &[u8]) -> Result<Identity, &'static str> {
    match p.check_head(c, h, NOW_MS).map_err(|f| f.code())? {
        HeadCheck::NeedsBody(check) => check.verify(body).map_err(|f| f.code()),
        HeadCheck::Passed(_) => Err("passed without the body"),
    }
}

#[test]
fn github_signatures_cover_the_body_and_any_active_secret_verifies() {
    let p = hmac_provider(pb::HmacScheme::Github);
    let c = creds(vec![], vec![secret("old", NOW_MS + 1000), secret("new", 0), secret("retired", NOW_MS - 1)]);
    let body = br#"{"action":"opened"}"#;
    let sig = |s: &str| headers(&[("x-hub-signature-256", &format!("sha256={}", sign(s, body)))]);
    assert_eq!(&*body_verdict(&p, &c, &sig("new"), body).unwrap().client, "p");
    assert!(body_verdict(&p, &c, &sig("old"), body).is_ok(), "the value being rotated out still verifies");
    assert_eq!(body_verdict(&p, &c, &sig("retired"), body), Err("signature_invalid"));
    assert_eq!(body_verdict(&p, &c, &sig("new"), b"{\"action\":\"closed\"}"), Err("signature_invalid"));
    assert_eq!(body_verdict(&p, &c, &headers(&[]), body), Err("signature_missing"));
    assert_eq!(body_verdict(&p, &c, &headers(&[("x-hub-signature-256", "md5=abc")]), body), Err("signature_malformed"));
    assert_eq!(body_verdict(&p, &creds(vec![], vec![]), &sig("new"), body), Err("auth_unavailable"));
}

#[test]
fn stripe_signatures_carry_a_timestamp_that_must_be_recent() {
    let p = hmac_provider(pb::HmacScheme::Stripe);
    let c = creds(vec![], vec![secret("whsec", 0)]);
    let body = br#"{"type":"charge.succeeded"}"#;
    let at = |t: i64, s: &str| {
        let payload = [format!("{t}.").as_bytes(), body].concat();
        headers(&[("stripe-signature", &format!("t={t},v1={},v0=ignored", sign(s, &payload)))])
    };
    let now = NOW_MS / 1000;
    assert!(body_verdict(&p, &c, &at(now - 60, "whsec"), body).is_ok());
    assert_eq!(body_verdict(&p, &c, &at(now - 301, "whsec"), body), Err("signature_stale"));
    assert_eq!(body_verdict(&p, &c, &at(now + 301, "whsec"), body), Err("signature_stale"));
    assert_eq!(body_verdict(&p, &c, &at(now, "other"), body), Err("signature_invalid"));
    assert_eq!(body_verdict(&p, &c, &headers(&[("stripe-signature", "v1=00")]), body), Err("signature_malformed"));
    // Two v1 signatures while the sender rolls its secret: either may match.
    let payload = [format!("{now}.").as_bytes(), body].concat();
    let both = format!("t={now},v1={},v1={}", sign("stale-one", &payload), sign("whsec", &payload));
    assert!(body_verdict(&p, &c, &headers(&[("stripe-signature", &both)]), body).is_ok());
}

#[test]
fn changes_apply_on_top_of_the_revision_they_were_made_for() {
    let other = "wdn_2222222222222222222222222222222222222222222222222222222222222222";
    let c1 = creds(vec![key("k1", GOOD_KEY, 0, 0)], vec![]);
    let change = |base: u64, revision: u64, keys: Vec<pb::ApiKey>| pb::Credentials {
        service: "orders".into(),
        revision,
        keys,
        secrets: vec![secret("s", 0)],
        base_revision: base,
        epoch: 0,
    };
    let c2 =
        c1.apply(&change(1, 2, vec![key("k1", GOOD_KEY, 0, NOW_MS), key("k2", other, 0, 0)]), Some("orders")).unwrap();
    assert_eq!(c2.revision, 2);
    assert_eq!(c2.key(&hash_key(GOOD_KEY)).map(|k| k.revoked_unix_ms), Some(NOW_MS), "the change wins");
    assert!(c2.key(&hash_key(other)).is_some());
    assert_eq!(c2.key_count(), 2);
    assert_eq!(c1.key(&hash_key(GOOD_KEY)).map(|k| k.revoked_unix_ms), Some(0), "the old revision is untouched");
    assert!(c2.secret("hooks", NOW_MS).is_some(), "secrets come whole with every change");
    assert!(matches!(c1.apply(&change(7, 8, vec![]), None), Err(InvalidCredentials::Gap { base: 7, have: 1 })));

    // Enough changes fold the overlay into the base; nothing is lost on the way.
    let mut c = c2;
    for i in 0..1100u64 {
        let k = format!("wdn_{i:064x}");
        c = c.apply(&change(c.revision, c.revision + 1, vec![key(&format!("n{i}"), &k, 0, 0)]), None).unwrap();
    }
    assert_eq!(c.key_count(), 1102);
    assert!(c.key(&hash_key(&format!("wdn_{:064x}", 5))).is_some());
    let round_trip = Credentials::compile(&c.to_proto("orders"), Some("orders")).unwrap();
    assert_eq!(round_trip.key_count(), 1102);
    assert_eq!(round_trip.key(&hash_key(GOOD_KEY)).map(|k| k.revoked_unix_ms), Some(NOW_MS));
}
