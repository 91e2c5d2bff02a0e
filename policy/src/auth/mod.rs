//! Who is calling: the auth providers a policy names (`api_key`, `jwt`, `hmac`), the
//! credentials they check against (key hashes and secrets, swapped separately from the
//! policy), and the reasons a credential is refused.
//!
//! API keys and JWTs are decided from the request head, inside `decide`. A webhook
//! signature covers the body, so `decide` only checks its header and hands the proxy a
//! `BodyCheck` to run once the body is buffered (up to the route's `max_body`). A replayed
//! decision sample proves itself by what it recorded (`recorded.rs`).

pub mod credentials;
pub mod failure;
pub mod hmac;
pub mod identity;
pub mod jwt;
pub mod provider;
pub mod recorded;

pub use credentials::{Credentials, InvalidCredentials, KeyHash, KeyRecord, SecretValue, hash_key};
pub use failure::AuthFailure;
pub use hmac::{BodyCheck, HmacVerifier};
pub use identity::{Identity, KEY_PREFIX};
pub use jwt::{JwtVerifier, has_symmetric_key, parse_jwks};
pub use provider::{AuthKind, AuthProvider, HeadCheck};
pub use recorded::RecordedAuth;

#[cfg(test)]
mod tests;
