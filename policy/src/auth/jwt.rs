//! JWT bearer tokens: signature checked with `jsonwebtoken` (RustCrypto backend) against
//! the keys of a JWKS, then `iss`, `aud`, `exp` and `nbf` (with a small leeway). The
//! claim naming the client (default `sub`) and the plan (default `plan`) become the same
//! `Identity` an API key gives. Keys are parsed once per snapshot, never per request.
//!
//! Verifying a signature costs 3-175 µs (HS256 to ES256, `tests/bench/auth.sh`), and a
//! client sends the same token for many requests, so verified tokens are remembered by
//! their SHA-256 until they expire (as Envoy's `jwt_cache_config` does). The cache lives
//! in the verifier, so a new policy or JWKS starts an empty one.
//!
//! A `jwks_file` is re-read every 2 s (`watch`) and new keys are used at once, like TLS
//! certificates: identity providers rotate keys, and Kubernetes updates mounted files in
//! place. Content that cannot be used is logged and the previous keys stay.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use warden_proto::v1 as pb;

use crate::auth::failure::AuthFailure;
use crate::auth::identity::Identity;

/// One key of the JWKS, ready to verify with.
struct VerifyKey {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

pub struct JwtVerifier {
    /// Swapped whole when `jwks_file` changes.
    keys: ArcSwap<Vec<VerifyKey>>,
    client_claim: String,
    plan_claim: String,
    leeway_s: u64,
    cache: TokenCache,
    /// Keys kept in a file on the sidecar's host (`jwks_file`): the sidecar reads it and
    /// hands the text to `load_jwks`; until then there are no keys.
    file: Option<JwksFile>,
}

/// A `jwks_file`, and what was last loaded from it.
struct JwksFile {
    path: String,
    config: pb::JwtAuth,
    /// SHA-256 of the content last handed over (used or refused).
    digest: Mutex<Vec<u8>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys.load();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref().unwrap_or("-")).collect();
        f.debug_struct("JwtVerifier").field("kids", &kids).field("client_claim", &self.client_claim).finish()
    }
}

/// One key of a parsed JWKS, with the algorithms it may verify.
pub struct JwksKey {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// Parses a JWKS document; every key must be usable.
pub fn parse_jwks(json: &str) -> Result<Vec<JwksKey>, String> {
    let set: JwkSet = serde_json::from_str(json).map_err(|e| format!("not a JWKS: {e}"))?;
    if set.keys.is_empty() {
        return Err("the JWKS has no keys".into());
    }
    set.keys
        .iter()
        .enumerate()
        .map(|(i, jwk)| {
            let name = jwk.common.key_id.clone().unwrap_or_else(|| format!("#{i}"));
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {name}: {e}"))?;
            // A key says which algorithm it is for, or its family's are allowed; never
            // another family's (the HS256-with-an-RSA-public-key confusion).
            let algorithms = match jwk.common.key_algorithm {
                Some(ka) => vec![
                    Algorithm::from_str(&ka.to_string())
                        .map_err(|_| format!("key {name}: '{ka}' is not a signing algorithm"))?,
                ],
                None => key.family().algorithms().to_vec(),
            };
            Ok(JwksKey { kid: jwk.common.key_id.clone(), key, algorithms })
        })
        .collect()
}

/// Whether a JWKS holds a symmetric (`kty: oct`, HS256) key: a secret, which belongs in a
/// file on the sidecar's host, never in a policy everyone with `wardenctl get` can read.
pub fn has_symmetric_key(json: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(json) else { return false };
    v["keys"].as_array().is_some_and(|keys| keys.iter().any(|k| k["kty"] == "oct"))
}

impl JwtVerifier {
    /// Compiles a pushed verifier. Keys in a `jwks_file` are not read here: see
    /// `jwks_file` and `load_jwks`.
    pub fn compile(j: &pb::JwtAuth) -> Result<JwtVerifier, String> {
        let file = (!j.jwks_file.is_empty()).then(|| j.jwks_file.clone());
        let keys = match &file {
            None if j.jwks_json.is_empty() => return Err("no jwks or jwks_file".into()),
            None => verify_keys(j, &j.jwks_json)?,
            Some(_) => Vec::new(),
        };
        Ok(JwtVerifier {
            keys: ArcSwap::from_pointee(keys),
            client_claim: j.client_claim.clone(),
            plan_claim: j.plan_claim.clone(),
            leeway_s: j.leeway_ms / 1000,
            cache: TokenCache::default(),
            file: file.map(|path| JwksFile { path, config: j.clone(), digest: Mutex::new(Vec::new()) }),
        })
    }

    /// The `jwks_file` the keys are to come from, if they are in one.
    pub fn jwks_file(&self) -> Option<&str> {
        self.file.as_ref().map(|f| f.path.as_str())
    }

    /// Uses the keys in `text`, the content of `jwks_file` (and forgets the tokens
    /// verified with the old ones). Ok(false) when it is what was last handed over, or
    /// there is no file; Err when it cannot be used, and the old keys stay.
    pub fn load_jwks(&self, text: &str) -> Result<bool, String> {
        let Some(r) = &self.file else { return Ok(false) };
        let digest = Sha256::digest(text.as_bytes()).to_vec();
        let mut current = r.digest.lock().unwrap_or_else(PoisonError::into_inner);
        if *current == digest {
            return Ok(false);
        }
        // Refused content is remembered too, so it is reported once, not every round.
        *current = digest;
        let keys = verify_keys(&r.config, text).map_err(|e| format!("jwks_file {}: {e}", r.path))?;
        self.keys.store(Arc::new(keys));
        self.cache.clear();
        Ok(true)
    }

    /// Verifies a token and names its client.
    /// Verifies a token at `now_ms` (Unix milliseconds: the caller's clock, not this
    /// function's) and names its client.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Identity, AuthFailure> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = u64::try_from(now_ms / 1000).unwrap_or(0);
        if let Some(id) = self.cache.get(&digest, now) {
            return Ok(id);
        }
        let (identity, claims) = self.verify_uncached(token, now)?;
        // Remembered only within the window the checks just accepted it for.
        let number = |name: &str| claims.get(name).and_then(Value::as_u64);
        let until = number("exp").map_or(now, |exp| exp.saturating_add(self.leeway_s));
        let from = number("nbf").map_or(0, |nbf| nbf.saturating_sub(self.leeway_s));
        self.cache.put(digest, CachedToken { identity: identity.clone(), from, until });
        Ok(identity)
    }

    fn verify_uncached(
        &self,
        token: &str,
        now: u64,
    ) -> Result<(Identity, serde_json::Map<String, Value>), AuthFailure> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::TokenMalformed)?;
        let keys = self.keys.load();
        let mut candidates = keys
            .iter()
            .filter(|k| header.kid.is_none() || k.kid == header.kid)
            .filter(|k| k.validation.algorithms.contains(&header.alg))
            .peekable();
        if candidates.peek().is_none() {
            return Err(if header.kid.is_some() && !keys.iter().any(|k| k.kid == header.kid) {
                AuthFailure::TokenUnknownKey
            } else {
                AuthFailure::TokenAlgorithm
            });
        }
        let mut last = AuthFailure::TokenSignature;
        for k in candidates {
            match jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &k.key, &k.validation) {
                Ok(data) => {
                    self.check_times(&data.claims, now)?;
                    return self.identity(&data.claims).map(|id| (id, data.claims));
                }
                Err(e) => {
                    last = failure(e.kind());
                    // Another key with no kid may still match; any other verdict is final.
                    if last != AuthFailure::TokenSignature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    /// `exp` and `nbf` against `now` (Unix seconds), with the leeway, as jsonwebtoken
    /// would check them against its own clock.
    fn check_times(&self, claims: &serde_json::Map<String, Value>, now: u64) -> Result<(), AuthFailure> {
        let time = |name: &str| match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)).map(Some).ok_or(AuthFailure::TokenMalformed),
        };
        // `exp` is required: the decoding checked it is there.
        if time("exp")?.is_some_and(|exp| exp < now.saturating_sub(self.leeway_s)) {
            return Err(AuthFailure::TokenExpired);
        }
        if time("nbf")?.is_some_and(|nbf| nbf > now.saturating_add(self.leeway_s)) {
            return Err(AuthFailure::TokenNotYetValid);
        }
        Ok(())
    }

    fn identity(&self, claims: &serde_json::Map<String, Value>) -> Result<Identity, AuthFailure> {
        // The names travel in headers to the app: one name each, visible ASCII, of a sane
        // length. A `,` or `;` would read as a list (or parameters) to the app's framework.
        let text = |name: &String, v: &Value| {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(AuthFailure::TokenClaimInvalid(name.clone())),
            };
            let plain = s.bytes().all(|b| b.is_ascii_graphic() && b != b',' && b != b';');
            if (1..=256).contains(&s.len()) && plain {
                Ok(s)
            } else {
                Err(AuthFailure::TokenClaimInvalid(name.clone()))
            }
        };
        let client = match claims.get(&self.client_claim) {
            None | Some(Value::Null) => return Err(AuthFailure::TokenMissingClaim(self.client_claim.clone())),
            Some(v) => text(&self.client_claim, v)?,
        };
        let plan = match claims.get(&self.plan_claim) {
            None | Some(Value::Null) => None,
            Some(v) => Some(text(&self.plan_claim, v)?),
        };
        Ok(Identity { client: client.into(), plan: plan.map(Into::into), key_id: None })
    }
}

/// A verified token: who it names, and the Unix seconds it is good for (leeway included).
#[derive(Clone)]
struct CachedToken {
    identity: Identity,
    from: u64,
    until: u64,
}

/// Verified tokens by SHA-256, in shards so request threads rarely meet on a lock. A full
/// shard is emptied rather than tracked for eviction order: the next requests re-verify.
#[derive(Default)]
struct TokenCache {
    shards: [Mutex<HashMap<[u8; 32], CachedToken>>; 16],
}

/// Tokens remembered per shard (so 16k in all, a few MB at most).
const SHARD_CAPACITY: usize = 1024;

impl TokenCache {
    fn shard(&self, digest: &[u8; 32]) -> &Mutex<HashMap<[u8; 32], CachedToken>> {
        &self.shards[usize::from(digest[0] & 15)]
    }

    fn get(&self, digest: &[u8; 32], now: u64) -> Option<Identity> {
        let shard = self.shard(digest).lock().unwrap_or_else(PoisonError::into_inner);
        let hit = shard.get(digest)?;
        (hit.from <= now && now <= hit.until).then(|| hit.identity.clone())
    }

    fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    fn put(&self, digest: [u8; 32], token: CachedToken) {
        let mut shard = self.shard(&digest).lock().unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= SHARD_CAPACITY {
            shard.clear();
        }
        shard.insert(digest, token);
    }
}

/// A JWKS document's keys, each with the checks every token must pass.
fn verify_keys(j: &pb::JwtAuth, json: &str) -> Result<Vec<VerifyKey>, String> {
    let keys = parse_jwks(json)?
        .into_iter()
        .map(|JwksKey { kid, key, algorithms }| {
            let mut v = Validation::new(Algorithm::RS256);
            v.algorithms = algorithms;
            v.leeway = j.leeway_ms / 1000;
            // The times are checked against the caller's clock (`check_times`), not the
            // library's.
            v.validate_exp = false;
            v.validate_nbf = false;
            let mut required = vec!["exp"];
            if !j.issuers.is_empty() {
                v.set_issuer(&j.issuers);
                required.push("iss");
            }
            if j.audiences.is_empty() {
                v.validate_aud = false;
            } else {
                v.set_audience(&j.audiences);
                required.push("aud");
            }
            v.set_required_spec_claims(&required);
            VerifyKey { kid, key, validation: v }
        })
        .collect();
    Ok(keys)
}

fn failure(kind: &ErrorKind) -> AuthFailure {
    match kind {
        ErrorKind::InvalidSignature => AuthFailure::TokenSignature,
        ErrorKind::ExpiredSignature => AuthFailure::TokenExpired,
        ErrorKind::ImmatureSignature => AuthFailure::TokenNotYetValid,
        ErrorKind::InvalidIssuer => AuthFailure::TokenIssuer,
        ErrorKind::InvalidAudience => AuthFailure::TokenAudience,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => AuthFailure::TokenAlgorithm,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthFailure::TokenIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => AuthFailure::TokenAudience,
        ErrorKind::MissingRequiredClaim(c) => AuthFailure::TokenMissingClaim(c.clone()),
        _ => AuthFailure::TokenMalformed,
    }
}
