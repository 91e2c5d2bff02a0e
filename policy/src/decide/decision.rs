//! What `decide` reads besides the request (`Env`) and what it returns (`Decision`): the
//! action, and the facts every answer is logged with.

use std::borrow::Cow;

use http::HeaderValue;
use http::uri::PathAndQuery;

use crate::auth::credentials::Credentials;
use crate::auth::hmac::BodyCheck;
use crate::auth::identity::Identity;
use crate::auth::recorded::RecordedAuth;
use crate::client_ip::ClientIp;
use crate::cors::Cors;
use crate::decide::request::HeadCaps;
use crate::host::CanonicalHost;
use crate::limits::view::LimitView;
use crate::refusal::{RateLimitHeaders, Refusal};
use crate::snapshot::compiled::Snapshot;
use crate::snapshot::route::Route;

/// Everything a decision reads besides the request: the policy, the credentials, the
/// caps, the limit counters (through a view) and the time. Nothing else: no clock, no
/// I/O, so the sidecar and `wardenctl explain` get the same answer for the same inputs.
pub struct Env<'s, 'v> {
    pub snapshot: &'s Snapshot,
    pub creds: &'s Credentials,
    pub caps: HeadCaps,
    /// Borrowed only for the call: the decision does not keep it.
    pub limits: &'v dyn LimitView,
    /// Unix milliseconds: when keys expire and signatures go stale.
    pub now_ms: i64,
    /// A replayed decision sample's auth (`apply --preview`): checks go by what it
    /// recorded instead of credentials it no longer has. None: the request's own.
    pub recorded: Option<&'v RecordedAuth>,
}

/// A decision: what to do, and what was learnt on the way (for logs, metrics, traces),
/// as far as the decision got.
#[derive(Debug)]
pub struct Decision<'s, 'r> {
    pub action: Action<'s>,
    /// The route the request took, once one matched.
    pub route: Option<&'s Route>,
    /// The host routed on, canonical; None when the request names none (or it was refused first).
    pub host: Option<CanonicalHost<'r>>,
    /// The normalized path, once it was.
    pub path: Option<Cow<'r, str>>,
    pub client: Option<ClientIp>,
    /// Who the caller proved to be, once the route's auth passed (a refusal after it, by a
    /// limit or a size, still says who).
    pub identity: Option<Identity>,
    /// What rules in dry run would have refused, in order (the first is the one reported).
    pub would_deny: Vec<Refusal>,
}

/// Forward, refuse, or answer a CORS preflight.
#[derive(Debug)]
pub enum Action<'s> {
    Forward(Forward<'s>),
    Deny(Refusal),
    Preflight(Preflight<'s>),
}

/// A CORS preflight Warden answers itself (never forwarded).
#[derive(Debug)]
pub struct Preflight<'s> {
    pub cors: &'s Cors,
    /// The origin, when it is allowed (in dry run a refused one is answered without CORS).
    pub origin: Option<HeaderValue>,
}

/// How to forward a request.
#[derive(Debug)]
pub struct Forward<'s> {
    pub route: &'s Route,
    /// The upstream request target when it is not the request's own: the rewritten (or
    /// decoded, or normalized) path with the original query.
    pub path_and_query: Option<PathAndQuery>,
    /// The body must be read and its signature checked before it is forwarded
    /// (`decide::body`).
    pub body_check: Option<BodyCheck<'s>>,
    /// The `ratelimit` headers of the route's tightest limit.
    pub ratelimit: Option<RateLimitHeaders>,
}

/// What a signed body's check decided.
#[derive(Debug)]
pub enum BodyDecision {
    /// The signature is good: this is the sender.
    Passed(Identity),
    Refused(Refusal),
    /// The signature is bad but the policy is in dry run: forward, and report this.
    WouldDeny(Refusal),
}

impl<'s> Decision<'s, '_> {
    /// A refusal before anything but the request's form was known.
    pub(crate) fn refused(refusal: Refusal) -> Self {
        Decision {
            action: Action::Deny(refusal),
            route: None,
            host: None,
            path: None,
            client: None,
            identity: None,
            would_deny: Vec::new(),
        }
    }

    /// The refusal, when the request is refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match &self.action {
            Action::Deny(r) => Some(r),
            Action::Forward(_) | Action::Preflight(_) => None,
        }
    }
}
