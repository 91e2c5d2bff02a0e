//! Signed webhooks: an HMAC-SHA256 over the raw body, in GitHub's or Stripe's header
//! format. The header is checked first, from the request head (missing, malformed, or a
//! Stripe timestamp outside `tolerance`, all refused before a byte of body is read); the
//! body check runs once the proxy has buffered the body. Every active value of the named
//! secret is tried, so a rotation has no gap; comparisons are constant time.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use warden_proto::v1 as pb;

use crate::auth::credentials::Credentials;
use crate::auth::failure::AuthFailure;
use crate::auth::identity::Identity;

const GITHUB_HEADER: &str = "x-hub-signature-256";
const STRIPE_HEADER: &str = "stripe-signature";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Github,
    Stripe,
}

#[derive(Debug)]
pub struct HmacVerifier {
    scheme: Scheme,
    /// The secret's name.
    pub secret: String,
    tolerance: Duration,
}

/// A signature header that passed its checks, waiting for the body.
#[derive(Debug)]
pub struct BodyCheck<'a> {
    secrets: Vec<&'a [u8]>,
    signatures: Vec<[u8; 32]>,
    /// Stripe signs `"{t}.{body}"`.
    prefix: Option<String>,
    identity: Identity,
}

impl HmacVerifier {
    pub fn compile(h: &pb::HmacAuth) -> Result<HmacVerifier, String> {
        let scheme = match pb::HmacScheme::try_from(h.scheme) {
            Ok(pb::HmacScheme::Github) => Scheme::Github,
            Ok(pb::HmacScheme::Stripe) => Scheme::Stripe,
            _ => return Err(format!("unknown hmac scheme {}", h.scheme)),
        };
        if h.secret.is_empty() {
            return Err("hmac needs a secret name".into());
        }
        Ok(HmacVerifier { scheme, secret: h.secret.clone(), tolerance: Duration::from_millis(h.tolerance_ms) })
    }

    pub fn header_name(&self) -> &'static str {
        match self.scheme {
            Scheme::Github => GITHUB_HEADER,
            Scheme::Stripe => STRIPE_HEADER,
        }
    }

    pub fn check_head<'a>(
        &self,
        headers: &HeaderMap,
        creds: &'a Credentials,
        provider: &str,
        now_ms: i64,
    ) -> Result<BodyCheck<'a>, AuthFailure> {
        let header = self.header_name();
        let mut values = headers.get_all(header).iter();
        let value = values.next().ok_or(AuthFailure::SignatureMissing { header })?;
        if values.next().is_some() {
            return Err(AuthFailure::SignatureMalformed("the signature header is sent more than once"));
        }
        let value = value.to_str().map_err(|_| AuthFailure::SignatureMalformed("non-ASCII characters"))?;
        let (signatures, prefix) = match self.scheme {
            Scheme::Github => {
                let hex =
                    value.strip_prefix("sha256=").ok_or(AuthFailure::SignatureMalformed("expected 'sha256=<hex>'"))?;
                (
                    vec![digest(hex).ok_or(AuthFailure::SignatureMalformed("expected 64 hex digits after 'sha256='"))?],
                    None,
                )
            }
            Scheme::Stripe => {
                let (t, signatures) = parse_stripe(value)?;
                let age = (now_ms / 1000).unsigned_abs().abs_diff(t);
                if age > self.tolerance.as_secs() {
                    return Err(AuthFailure::SignatureStale { tolerance: self.tolerance });
                }
                (signatures, Some(format!("{t}.")))
            }
        };
        let missing = || AuthFailure::SecretNotSet { name: self.secret.clone() };
        let secrets: Vec<&[u8]> = creds.secret(&self.secret, now_ms).ok_or_else(missing)?.collect();
        if secrets.is_empty() {
            return Err(missing());
        }
        let identity = Identity { client: provider.into(), plan: None, key_id: None };
        Ok(BodyCheck { secrets, signatures, prefix, identity })
    }
}

impl BodyCheck<'_> {
    /// Who the sender will be if the signature verifies.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Whether any active secret signed this body.
    pub fn verify(self, body: &[u8]) -> Result<Identity, AuthFailure> {
        for secret in &self.secrets {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else { continue };
            if let Some(p) = &self.prefix {
                mac.update(p.as_bytes());
            }
            mac.update(body);
            let tag = mac.finalize().into_bytes();
            if self.signatures.iter().any(|s| bool::from(s.ct_eq(tag.as_slice()))) {
                return Ok(self.identity);
            }
        }
        Err(AuthFailure::SignatureInvalid)
    }
}

/// `t=1700000000,v1=<hex>[,v1=<hex>][,v0=...]`: the timestamp and every v1 signature
/// (Stripe sends several while a secret is being rolled).
fn parse_stripe(value: &str) -> Result<(u64, Vec<[u8; 32]>), AuthFailure> {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in value.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => {
                t = Some(v.parse::<u64>().map_err(|_| AuthFailure::SignatureMalformed("t is not a Unix time"))?)
            }
            Some(("v1", v)) => {
                signatures.push(digest(v).ok_or(AuthFailure::SignatureMalformed("v1 is not 64 hex digits"))?)
            }
            _ => {}
        }
    }
    let t = t.ok_or(AuthFailure::SignatureMalformed("no t= timestamp"))?;
    if signatures.is_empty() {
        return Err(AuthFailure::SignatureMalformed("no v1= signature"));
    }
    Ok((t, signatures))
}

fn digest(hex_text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(out)
}
