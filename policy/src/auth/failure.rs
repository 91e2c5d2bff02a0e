//! Why a credential was refused: one variant per reason code, each with a message that
//! tells the caller what to fix without echoing the credential or anything secret.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential header.
    Missing,
    /// The header is there but not in the expected shape.
    Malformed(&'static str),
    KeyUnknown,
    KeyExpired {
        id: Arc<str>,
        at_unix_ms: i64,
    },
    KeyRevoked {
        id: Arc<str>,
    },
    /// Not a JWT (bad segments, base64, JSON, or a claim of the wrong type).
    TokenMalformed,
    /// The token's `kid` is not in the JWKS.
    TokenUnknownKey,
    /// The token's `alg` is not one its key allows.
    TokenAlgorithm,
    TokenSignature,
    TokenIssuer,
    TokenAudience,
    TokenExpired,
    TokenNotYetValid,
    TokenMissingClaim(String),
    /// The client or plan claim is there but not one plain name: a `,` or `;` would make it
    /// a list to the app, control or non-ASCII characters cannot travel in a header.
    TokenClaimInvalid(String),
    SignatureMissing {
        header: &'static str,
    },
    SignatureMalformed(&'static str),
    SignatureInvalid,
    SignatureStale {
        tolerance: Duration,
    },
    /// The policy names a secret nobody has set: nothing can be verified.
    SecretNotSet {
        name: String,
    },
}

impl AuthFailure {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthFailure::SecretNotSet { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthFailure::Missing => "credential_missing",
            AuthFailure::Malformed(_) => "credential_malformed",
            AuthFailure::KeyUnknown => "key_unknown",
            AuthFailure::KeyExpired { .. } => "key_expired",
            AuthFailure::KeyRevoked { .. } => "key_revoked",
            AuthFailure::TokenMalformed => "token_malformed",
            AuthFailure::TokenUnknownKey => "token_unknown_key",
            AuthFailure::TokenAlgorithm => "token_bad_algorithm",
            AuthFailure::TokenSignature => "token_bad_signature",
            AuthFailure::TokenIssuer => "token_bad_issuer",
            AuthFailure::TokenAudience => "token_bad_audience",
            AuthFailure::TokenExpired => "token_expired",
            AuthFailure::TokenNotYetValid => "token_not_yet_valid",
            AuthFailure::TokenMissingClaim(_) => "token_missing_claim",
            AuthFailure::TokenClaimInvalid(_) => "token_claim_invalid",
            AuthFailure::SignatureMissing { .. } => "signature_missing",
            AuthFailure::SignatureMalformed(_) => "signature_malformed",
            AuthFailure::SignatureInvalid => "signature_invalid",
            AuthFailure::SignatureStale { .. } => "signature_stale",
            AuthFailure::SecretNotSet { .. } => "auth_unavailable",
        }
    }

    /// The RFC 6750 `error` for a Bearer challenge: none when nothing was sent,
    /// `invalid_request` when it is not shaped as one, `invalid_token` when it is no good.
    pub fn bearer_error(&self) -> Option<&'static str> {
        match self {
            AuthFailure::Missing | AuthFailure::SignatureMissing { .. } | AuthFailure::SecretNotSet { .. } => None,
            AuthFailure::Malformed(_) | AuthFailure::SignatureMalformed(_) => Some("invalid_request"),
            _ => Some("invalid_token"),
        }
    }

    /// Whether the verdict depends on keys or secrets (rather than on the request alone):
    /// what `wardenctl explain` can only say when it has them.
    pub fn needs_credentials(&self) -> bool {
        !matches!(
            self,
            AuthFailure::Missing
                | AuthFailure::Malformed(_)
                | AuthFailure::TokenMalformed
                | AuthFailure::SignatureMissing { .. }
                | AuthFailure::SignatureMalformed(_)
                | AuthFailure::SignatureStale { .. }
        )
    }

    /// What the caller reads. `header`: where the credential is expected.
    pub fn message(&self, header: &str) -> String {
        match self {
            AuthFailure::Missing if header == "authorization" => {
                "This route needs a credential: send 'Authorization: Bearer <credential>'.".into()
            }
            AuthFailure::Missing => format!("This route needs an API key in the '{header}' header."),
            AuthFailure::Malformed(why) => format!("The credential is malformed: {why}."),
            AuthFailure::KeyUnknown => "The API key is not valid for this service.".into(),
            AuthFailure::KeyExpired { id, at_unix_ms } => {
                let at = std::time::UNIX_EPOCH + Duration::from_millis(at_unix_ms.unsigned_abs());
                format!(
                    "The API key {id} expired at {}. Use a newer key or ask for one.",
                    humantime::format_rfc3339_seconds(at)
                )
            }
            AuthFailure::KeyRevoked { id } => format!("The API key {id} has been revoked. Use a newer key."),
            AuthFailure::TokenMalformed => "The bearer token is not a well-formed JWT.".into(),
            AuthFailure::TokenUnknownKey => "The token was signed with a key this service does not know (kid).".into(),
            AuthFailure::TokenAlgorithm => "The token's signing algorithm is not accepted for its key.".into(),
            AuthFailure::TokenSignature => "The token's signature does not verify.".into(),
            AuthFailure::TokenIssuer => "The token was issued by an issuer this service does not accept.".into(),
            AuthFailure::TokenAudience => "The token is not meant for this service (audience).".into(),
            AuthFailure::TokenExpired => "The token has expired. Get a new one.".into(),
            AuthFailure::TokenNotYetValid => "The token is not valid yet (nbf).".into(),
            AuthFailure::TokenMissingClaim(claim) => {
                format!("The token has no valid '{claim}' claim, which this service requires.")
            }
            AuthFailure::TokenClaimInvalid(claim) => format!(
                "The token's '{claim}' claim must be one name of 1-256 visible ASCII characters without ',' or ';'."
            ),
            AuthFailure::SignatureMissing { header } => format!("The request is not signed: no '{header}' header."),
            AuthFailure::SignatureMalformed(why) => format!("The signature header is malformed: {why}."),
            AuthFailure::SignatureInvalid => "The signature does not match the request body.".into(),
            AuthFailure::SignatureStale { tolerance } => format!(
                "The signature's timestamp is more than {} from now; a replayed or delayed delivery is refused.",
                crate::yaml::units::format_duration(*tolerance)
            ),
            // The secret's name is for the operator (`wardenctl explain`, apply warnings).
            AuthFailure::SecretNotSet { .. } => {
                "Signatures for this route cannot be checked yet: its webhook secret is not set.".into()
            }
        }
    }
}
