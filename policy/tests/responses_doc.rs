//! docs/responses.md has the one table of Warden's own answers; `Refusal::row` is the
//! table in code. Every refusal must have its row in the docs with the same status,
//! `proxy-status` error and fault, and every code the docs list must be one Warden gives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use warden_policy::auth::AuthFailure;
use warden_policy::host::HostError;
use warden_policy::normalize::PathError;
use warden_policy::refusal::{RateLimitHeaders, Refusal, UpstreamFailure};

/// One of each refusal, and of each reason a credential is refused.
fn every_refusal() -> Vec<Refusal> {
    let unauthenticated = |failure| Refusal::Unauthenticated {
        rule: "keys".into(),
        failure,
        header: HeaderName::from_static("x-api-key"),
        challenge: None,
    };
    let id: Arc<str> = "key_1".into();
    let failures = [
        AuthFailure::Missing,
        AuthFailure::Malformed("x"),
        AuthFailure::KeyUnknown,
        AuthFailure::KeyExpired { id: id.clone(), at_unix_ms: 1 },
        AuthFailure::KeyRevoked { id },
        AuthFailure::TokenMalformed,
        AuthFailure::TokenUnknownKey,
        AuthFailure::TokenAlgorithm,
        AuthFailure::TokenSignature,
        AuthFailure::TokenIssuer,
        AuthFailure::TokenAudience,
        AuthFailure::TokenExpired,
        AuthFailure::TokenNotYetValid,
        AuthFailure::TokenMissingClaim("sub".into()),
        AuthFailure::TokenClaimInvalid("sub".into()),
        AuthFailure::SignatureMissing { header: "x-hub-signature-256" },
        AuthFailure::SignatureMalformed("x"),
        AuthFailure::SignatureInvalid,
        AuthFailure::SignatureStale { tolerance: Duration::from_secs(300) },
        AuthFailure::SecretNotSet { name: "gh".into() },
    ];
    let upstream = "app".to_owned();
    let mut all = vec![
        Refusal::NotReady,
        Refusal::BadPath(PathError::BadEscape),
        Refusal::NoRoute,
        Refusal::AddressDenied { rule: "access.deny".into(), ip: [192, 0, 2, 1].into() },
        Refusal::BodyTooLarge { limit: 1 },
        Refusal::BadBody,
        Refusal::BodyTimeout { after: Duration::from_secs(1) },
        Refusal::BufferFull,
        Refusal::DuplicateHost,
        Refusal::BadHost(HostError::Invalid),
        Refusal::BadMethod,
        Refusal::BadForwardedFor,
        Refusal::UriTooLong { limit: 1 },
        Refusal::HeadersTooLarge { limit: 1 },
        Refusal::Upstream { upstream: upstream.clone(), failure: UpstreamFailure::Refused },
        Refusal::Upstream { upstream: upstream.clone(), failure: UpstreamFailure::ConnectTimeout },
        Refusal::Upstream { upstream: upstream.clone(), failure: UpstreamFailure::Protocol },
        Refusal::Upstream { upstream: upstream.clone(), failure: UpstreamFailure::Tls },
        Refusal::ProtocolMismatch { upstream: upstream.clone() },
        Refusal::NoEndpoints { upstream: upstream.clone() },
        Refusal::CorsOriginNotAllowed { route: "web".into(), origin: "https://evil.example".into() },
        Refusal::UpstreamTimeout { upstream: upstream.clone(), after: Duration::from_secs(1) },
        Refusal::UpstreamOverloaded { upstream },
        Refusal::Overloaded,
        Refusal::RateLimited {
            rule: "per-ip".into(),
            message: String::new(),
            retry_after: 1,
            headers: Box::new(RateLimitHeaders {
                policy: http::HeaderValue::from_static(""),
                limit: http::HeaderValue::from_static(""),
            }),
        },
    ];
    all.extend(failures.into_iter().map(unauthenticated));
    all
}

/// The docs' rows: (status, codes, proxy-status error, fault, gRPC status).
fn documented() -> Vec<(u16, Vec<String>, String, String, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/responses.md")).unwrap();
    let table = doc.split("| situation | status |").nth(1).expect("the table of Warden's own responses");
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let tick = |c: &str| c.trim_matches('`').to_owned();
            let codes = cells[2].split('/').map(|c| tick(c.trim())).collect();
            (cells[1].parse().unwrap(), codes, tick(cells[3]), cells[4].to_owned(), cells[5].replace('`', ""))
        })
        .collect()
}

#[test]
fn the_docs_table_is_the_refusal_table() {
    let rows = documented();
    let mut seen = BTreeSet::new();
    for r in every_refusal() {
        let row = r.row();
        let doc = rows.iter().find(|(_, codes, ..)| codes.iter().any(|c| c == row.code));
        let Some((status, _, proxy_error, fault, grpc)) = doc else {
            panic!("docs/responses.md has no row for `{}`", row.code)
        };
        let grpc_want = format!("{} {}", row.grpc.code(), row.grpc.name());
        let want = (row.status.as_u16(), row.proxy_error, row.fault.as_str(), grpc_want.as_str());
        let got = (*status, proxy_error.as_str(), fault.as_str(), grpc.as_str());
        assert_eq!(got, want, "the docs' row for `{}`", row.code);
        seen.insert(row.code.to_owned());
    }
    let listed: BTreeSet<String> = rows.iter().flat_map(|(_, codes, ..)| codes.iter().cloned()).collect();
    let unknown: Vec<&String> = listed.difference(&seen).collect();
    assert!(unknown.is_empty(), "docs/responses.md lists codes Warden never gives: {unknown:?}");
}

#[test]
fn the_fault_picks_the_status_class() {
    for r in every_refusal() {
        let row = r.row();
        let ok = match row.fault.as_str() {
            "client" | "policy" => row.status.is_client_error(),
            "upstream" => matches!(row.status.as_u16(), 502..=504),
            _ => row.status.as_u16() == 503,
        };
        assert!(ok, "`{}` is {} but its fault is {}", row.code, row.status, row.fault.as_str());
    }
}
