//! JWT bearer tokens: signature checked with `jsonwebtoken` (RustCrypto backend) against
//! the keys of a JWKS, then `iss`, `aud`, `exp` and `nbf` (with a small leeway). The
//! claim naming the client (default `sub`) and the plan (default `plan`) become the same
//! `Identity` an API key gives. Keys are parsed once per snapshot, never per request.

use std::str::FromStr;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use warden_proto::v1 as pb;

use super::{AuthFailure, Identity};

/// One key of the JWKS, ready to verify with.
struct VerifyKey {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

pub struct JwtVerifier {
    keys: Vec<VerifyKey>,
    client_claim: String,
    plan_claim: String,
    /// Set when the keys are in a file this process did not read (`wardenctl explain`).
    pub unread_file: Option<String>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self.keys.iter().map(|k| k.kid.as_deref().unwrap_or("-")).collect();
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

impl JwtVerifier {
    pub fn compile(j: &pb::JwtAuth, read_files: bool) -> Result<JwtVerifier, String> {
        let (json, unread_file) = match (j.jwks_json.is_empty(), j.jwks_file.is_empty()) {
            (false, _) => (Some(j.jwks_json.clone()), None),
            (true, false) if read_files => (
                Some(std::fs::read_to_string(&j.jwks_file).map_err(|e| format!("jwks_file {}: {e}", j.jwks_file))?),
                None,
            ),
            (true, false) => (None, Some(j.jwks_file.clone())),
            (true, true) => return Err("no jwks or jwks_file".into()),
        };
        let parsed = match &json {
            Some(json) => parse_jwks(json).map_err(|e| match j.jwks_file.is_empty() {
                true => e,
                false => format!("jwks_file {}: {e}", j.jwks_file),
            })?,
            None => Vec::new(),
        };
        let keys = parsed
            .into_iter()
            .map(|JwksKey { kid, key, algorithms }| {
                let mut v = Validation::new(Algorithm::RS256);
                v.algorithms = algorithms;
                v.leeway = j.leeway_ms / 1000;
                v.validate_nbf = true;
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
        Ok(JwtVerifier { keys, client_claim: j.client_claim.clone(), plan_claim: j.plan_claim.clone(), unread_file })
    }

    /// Verifies a token and names its client.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthFailure> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::TokenMalformed)?;
        let mut candidates = self
            .keys
            .iter()
            .filter(|k| header.kid.is_none() || k.kid == header.kid)
            .filter(|k| k.validation.algorithms.contains(&header.alg))
            .peekable();
        if candidates.peek().is_none() {
            return Err(if header.kid.is_some() && !self.keys.iter().any(|k| k.kid == header.kid) {
                AuthFailure::TokenUnknownKey
            } else {
                AuthFailure::TokenAlgorithm
            });
        }
        let mut last = AuthFailure::TokenSignature;
        for k in candidates {
            match jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &k.key, &k.validation) {
                Ok(data) => return self.identity(&data.claims),
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

    fn identity(&self, claims: &serde_json::Map<String, Value>) -> Result<Identity, AuthFailure> {
        let text = |v: &Value| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let client = claims
            .get(&self.client_claim)
            .and_then(text)
            .ok_or_else(|| AuthFailure::TokenMissingClaim(self.client_claim.clone()))?;
        let plan = claims.get(&self.plan_claim).and_then(text);
        Ok(Identity { client: client.into(), plan: plan.map(Into::into) })
    }
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
