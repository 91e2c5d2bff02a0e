//! One compiled auth provider, and the head check `decide` runs: an API key against the
//! credentials, a JWT against its keys, or a webhook signature's header (the body is
//! checked later, by the `BodyCheck` it returns).

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use warden_proto::v1 as pb;

use crate::auth::credentials::{Credentials, hash_key};
use crate::auth::failure::AuthFailure;
use crate::auth::hmac::{BodyCheck, HmacVerifier};
use crate::auth::identity::{Identity, KEY_PREFIX};
use crate::auth::jwt::JwtVerifier;

/// One compiled auth provider.
#[derive(Debug)]
pub struct AuthProvider {
    pub name: Arc<str>,
    pub kind: AuthKind,
    /// The header carrying the credential (removed before forwarding unless the route
    /// says `forward_credentials`).
    pub header: HeaderName,
    /// `www-authenticate` on a 401: `Bearer` for the Authorization header, else a scheme
    /// named after the provider's type with the header it reads.
    pub challenge: Option<HeaderValue>,
}

#[derive(Debug)]
pub enum AuthKind {
    ApiKey,
    Jwt(Box<JwtVerifier>),
    Hmac(HmacVerifier),
}

/// What checking a request's head found.
#[derive(Debug)]
pub enum HeadCheck<'a> {
    Passed(Identity),
    /// The signature header is well-formed; the body decides.
    NeedsBody(BodyCheck<'a>),
}

impl AuthProvider {
    /// Compiles a pushed provider (a `jwks_file` is the sidecar's to read: see
    /// `JwtVerifier::load_jwks`).
    pub fn compile(p: &pb::AuthProvider, service: &str) -> Result<AuthProvider, String> {
        use pb::auth_provider::Kind;
        let (kind, header, scheme) = match &p.kind {
            Some(Kind::ApiKey(k)) => (AuthKind::ApiKey, k.header.as_str(), "ApiKey"),
            Some(Kind::Jwt(j)) => (AuthKind::Jwt(Box::new(JwtVerifier::compile(j)?)), j.header.as_str(), "JWT"),
            Some(Kind::Hmac(h)) => {
                let verifier = HmacVerifier::compile(h)?;
                let header = verifier.header_name();
                (AuthKind::Hmac(verifier), header, "HMAC-SHA256")
            }
            None => return Err("no type".into()),
        };
        // RFC 9110 §11.6.1: every 401 carries a challenge. Only Authorization has a
        // standard one (RFC 6750 Bearer); elsewhere the scheme says what is expected where.
        let challenge = match header {
            "authorization" => format!("Bearer realm=\"{service}\""),
            other => format!("{scheme} realm=\"{service}\", header=\"{other}\""),
        };
        Ok(AuthProvider {
            name: p.name.as_str().into(),
            kind,
            header: HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| format!("'{header}' is not a header name"))?,
            challenge: HeaderValue::try_from(challenge).ok(),
        })
    }

    /// Checks the credential in a request's head against `creds` at `now_ms` (Unix ms).
    pub fn check_head<'a>(
        &'a self,
        creds: &'a Credentials,
        headers: &HeaderMap,
        now_ms: i64,
    ) -> Result<HeadCheck<'a>, AuthFailure> {
        match &self.kind {
            AuthKind::ApiKey => {
                let key = self.credential(headers)?;
                if !key.starts_with(KEY_PREFIX) || key.len() < KEY_PREFIX.len() + 16 {
                    return Err(AuthFailure::Malformed("this is not a Warden API key (they start with 'wdn_')"));
                }
                let record = creds.key(&hash_key(key)).ok_or(AuthFailure::KeyUnknown)?;
                if record.revoked_unix_ms != 0 {
                    return Err(AuthFailure::KeyRevoked { id: record.id.clone() });
                }
                if record.expires_unix_ms != 0 && record.expires_unix_ms <= now_ms {
                    return Err(AuthFailure::KeyExpired { id: record.id.clone(), at_unix_ms: record.expires_unix_ms });
                }
                Ok(HeadCheck::Passed(record.identity.clone()))
            }
            AuthKind::Jwt(v) => v.verify(self.credential(headers)?, now_ms).map(HeadCheck::Passed),
            AuthKind::Hmac(v) => v.check_head(headers, creds, &self.name, now_ms).map(HeadCheck::NeedsBody),
        }
    }

    /// The credential: the header's value, after `Bearer ` when the header is
    /// `authorization`. Exactly one such header.
    pub fn credential<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, AuthFailure> {
        let mut values = headers.get_all(&self.header).iter();
        let value = values.next().ok_or(AuthFailure::Missing)?;
        if values.next().is_some() {
            return Err(AuthFailure::Malformed("the credential header is sent more than once"));
        }
        let value = value.to_str().map_err(|_| AuthFailure::Malformed("the credential has non-ASCII characters"))?;
        if self.header != http::header::AUTHORIZATION {
            return Ok(value.trim());
        }
        match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() => Ok(rest.trim()),
            _ => Err(AuthFailure::Malformed("expected 'Authorization: Bearer <credential>'")),
        }
    }
}
