//! One decision sample through one compiled policy, with the real `decide`: the request
//! rebuilt from what the sample kept (method, host, normalized path, the headers the
//! policy read, the client address), auth by what it proved (`auth::recorded`), and limits
//! admitting everything while noting which keys each would count, for `estimate.rs`.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use warden_proto::v1 as pb;

use crate::auth::credentials::Credentials;
use crate::auth::identity::Identity;
use crate::auth::recorded::RecordedAuth;
use crate::decide::decision::{Action, Env};
use crate::decide::request::{HeadCaps, Request, request_host};
use crate::decide::steps::decide;
use crate::limits::gcra::{RateDef, Verdict as Budget};
use crate::limits::limit::{Limit, LimitKey};
use crate::limits::view::LimitView;
use crate::normalize::decode_escaped_slashes;
use crate::snapshot::compiled::Snapshot;
use crate::snapshot::route::Route;

/// What a policy does with a sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Sent on: by which route, to which path (the upstream's, when rewritten) and host.
    Forward { route: Arc<str>, target: Option<String>, host: Option<String> },
    /// Refused, on the route it matched (None: before one, or none did).
    Refuse { route: Option<Arc<str>>, rule: String, code: &'static str, status: u16 },
    /// A CORS preflight Warden answers.
    Preflight { route: Arc<str> },
    /// The sample cannot say (a credential it never proved, a global quota that changed).
    Unknowable(&'static str),
}

/// A limit a forwarded sample counts in.
#[derive(Debug, Clone)]
pub struct LimitUse {
    pub limit: Arc<Limit>,
    pub key: Vec<u8>,
    pub rate: RateDef,
}

/// A sample's verdict, and the limits it counts in when forwarded.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub verdict: Verdict,
    pub limits: Vec<LimitUse>,
}

/// Admits everything and notes what each limit was asked.
struct Noting<'s> {
    snapshot: &'s Snapshot,
    asked: RefCell<Vec<LimitUse>>,
}

impl LimitView for Noting<'_> {
    fn check(&self, limit: &Limit, key: &[u8], _plan: Option<&str>, rate: &RateDef, take: bool) -> Option<Budget> {
        // `admit` checks every limit, then takes from each: one note per limit.
        if !take && let Some(l) = self.snapshot.limits.get(limit.index) {
            self.asked.borrow_mut().push(LimitUse { limit: l.clone(), key: key.to_vec(), rate: *rate });
        }
        None
    }
}

/// A sample as a request again.
pub struct Rebuilt {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    peer: IpAddr,
    auth: RecordedAuth,
    now_ms: i64,
}

impl Rebuilt {
    /// The request as `decide` reads it.
    pub fn request(&self) -> Request<'_> {
        Request { method: &self.method, uri: &self.uri, headers: &self.headers, peer: self.peer }
    }

    /// What it proved, for `Env::recorded`.
    pub fn auth(&self) -> &RecordedAuth {
        &self.auth
    }

    /// When it arrived (Unix ms).
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Notes the auth provider that refused it when it arrived (a deny record's rule): that
    /// provider's check is not made again, since the credential was not kept.
    pub fn refused_by(mut self, provider: &str) -> Self {
        self.auth.refused_by = Some(provider.into());
        self
    }
}

/// Rebuilds a sample's request; Err: why it cannot be replayed.
pub fn rebuild(s: &pb::DecisionSample) -> Result<Rebuilt, &'static str> {
    let method = Method::from_bytes(s.method.as_bytes()).map_err(|_| "its method cannot be replayed")?;
    let uri = Uri::try_from(if s.path.is_empty() { "/" } else { s.path.as_str() })
        .map_err(|_| "its path cannot be replayed")?;
    let peer = s.client_ip.parse().map_err(|_| "it has no client address")?;
    let mut headers = HeaderMap::new();
    if !s.host.is_empty() {
        headers.insert(header::HOST, HeaderValue::from_str(&s.host).map_err(|_| "its host cannot be replayed")?);
    }
    for h in &s.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(h.name.as_bytes()), HeaderValue::from_str(&h.value)) {
            headers.append(name, value);
        }
    }
    let credential_headers =
        s.credential_headers.iter().filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok()).collect();
    let proved = (!s.auth_provider.is_empty()).then(|| {
        let identity = Identity {
            client: s.client_id.as_str().into(),
            plan: (!s.plan.is_empty()).then(|| s.plan.as_str().into()),
            key_id: (!s.key_id.is_empty()).then(|| s.key_id.as_str().into()),
        };
        (Arc::from(s.auth_provider.as_str()), identity)
    });
    Ok(Rebuilt { method, uri, headers, peer, auth: RecordedAuth::new(proved, credential_headers), now_ms: s.unix_ms })
}

/// What `snapshot` does with a rebuilt sample whose recording kept none of the
/// `unrecorded` headers (ones `snapshot` reads and the recording policy did not).
pub fn replay(snapshot: &Snapshot, creds: &Credentials, r: &Rebuilt, unrecorded: &[HeaderName]) -> Replayed {
    let noting = Noting { snapshot, asked: RefCell::new(Vec::new()) };
    let env =
        Env { snapshot, creds, caps: HeadCaps::default(), limits: &noting, now_ms: r.now_ms, recorded: Some(&r.auth) };
    let d = decide(&env, &r.request(), None);
    let turns_on = turns_on_unrecorded(snapshot, r, d.route, unrecorded);
    let verdict = match (r.auth.unknown().or(turns_on), &d.action) {
        (Some(why), _) => Verdict::Unknowable(why),
        (None, Action::Forward(f)) => Verdict::Forward {
            route: f.route.name.clone(),
            target: f.path_and_query.as_ref().map(|pq| pq.path().to_owned()),
            host: f.route.rewrite_host.as_ref().and_then(|h| h.to_str().ok()).map(str::to_owned),
        },
        (None, Action::Deny(refusal)) => Verdict::Refuse {
            route: d.route.map(|r| r.name.clone()),
            rule: refusal.rule(),
            code: refusal.code(),
            status: refusal.status().as_u16(),
        },
        (None, Action::Preflight(_)) => {
            Verdict::Preflight { route: d.route.map_or_else(|| Arc::from(""), |r| r.name.clone()) }
        }
    };
    let limits = match verdict {
        Verdict::Forward { .. } => noting.asked.into_inner(),
        _ => Vec::new(),
    };
    Replayed { verdict, limits }
}

/// Whether the decision may turn on a header the sample never recorded: a route up to the
/// one taken that would match but for such a header, or a limit of that route keyed by one.
fn turns_on_unrecorded(
    snapshot: &Snapshot,
    r: &Rebuilt,
    taken: Option<&Route>,
    unrecorded: &[HeaderName],
) -> Option<&'static str> {
    if unrecorded.is_empty() {
        return None;
    }
    let host = request_host(&r.uri, &r.headers).ok().flatten();
    let host = host.as_ref().map_or("", |h| h.name());
    let decoded = decode_escaped_slashes(r.uri.path());
    let key = snapshot.routing_key(&decoded);
    for route in &snapshot.routes {
        let reads: Vec<&(HeaderName, HeaderValue)> =
            route.headers.iter().filter(|(name, _)| unrecorded.contains(name)).collect();
        if !reads.is_empty() {
            // With the values it asks for, would it match?
            let mut headers = r.headers.clone();
            for (name, value) in reads {
                headers.insert(name.clone(), value.clone());
            }
            if route.mismatch(&r.method, host, &key, &headers).is_none() {
                return Some("the policy matches on a header the samples did not record");
            }
        }
        if taken.is_some_and(|t| std::ptr::eq(t, route)) {
            let by_unrecorded = |l: &Arc<Limit>| matches!(&l.key, LimitKey::Header(h) if unrecorded.contains(h));
            if route.limits.iter().any(by_unrecorded) {
                return Some("the policy limits by a header the samples did not record");
            }
            break;
        }
    }
    None
}
