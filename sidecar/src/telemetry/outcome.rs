//! What one request's handling found out, gathered as it goes and then turned into a
//! metric update, an access log line, a span and, for a refusal, a deny record.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method};
use warden_policy::refusal::Fault;
use warden_proto::v1 as pb;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecisionKind {
    /// Forwarded to the app.
    #[default]
    Forward,
    /// Refused by Warden.
    Deny,
    /// Forwarded, but a rule in dry run would have refused it.
    WouldDeny,
    /// A CORS preflight Warden answered itself.
    Preflight,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Forward => "forward",
            DecisionKind::Deny => "deny",
            DecisionKind::WouldDeny => "would_deny",
            DecisionKind::Preflight => "preflight",
        }
    }
}

/// One request's facts, gathered while it is handled.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub request_id: Option<HeaderValue>,
    /// The request id is the client's own `x-request-id`.
    pub request_id_from_client: bool,
    pub method: Method,
    pub host: String,
    pub path: String,
    pub client_ip: Option<IpAddr>,
    pub client: Option<Arc<str>>,
    pub route: Option<Arc<str>>,
    pub decision: DecisionKind,
    /// The rule and reason code of a refusal (or of what dry run would have refused).
    pub rule: Option<String>,
    pub code: Option<&'static str>,
    /// Whose doing the refusal (or what dry run would have refused) is.
    pub fault: Option<Fault>,
    pub upstream_time: Option<Duration>,
    /// Tries sent to the upstream (more than 1: retried).
    pub attempts: u32,
    /// The gRPC status Warden answered a gRPC caller's refusal with.
    pub grpc_status: Option<u8>,
    /// The request's span, when tracing is on.
    pub trace: Option<opentelemetry::Context>,
    /// Its trace id, as hex.
    pub trace_id: Option<String>,
    /// Set on the record of a WebSocket tunnel's close (`tunnel.rs`).
    pub tunnel: Option<TunnelStats>,
    /// The policy version that decided it (0: none was loaded).
    pub policy_version: u64,
    /// The auth provider the caller proved itself to, the API key's id if a key did, and
    /// the plan: set for a sampled or refused request (what its record says).
    pub auth_provider: Option<Arc<str>>,
    pub key_id: Option<Arc<str>>,
    pub plan: Option<Arc<str>>,
    /// What its deny record keeps of its headers, when it may have one.
    pub head: Option<Box<SampledHead>>,
    /// Where a rollout's candidate in shadow decided otherwise.
    pub shadow: Option<Box<ShadowDecision>>,
}

/// A shadow candidate's decision that differs from the live one (never enforced).
#[derive(Debug, Clone)]
pub struct ShadowDecision {
    /// True: the live version let it through and the candidate would refuse it
    /// (`shadow_deny`); false: the live version refused it and the candidate would let it
    /// through (`shadow_allow`).
    pub denied: bool,
    /// The route the candidate took (None: no route matched).
    pub route: Option<Arc<str>>,
    /// The candidate's refusal (`shadow_deny`), or the live one's (`shadow_allow`).
    pub rule: String,
    pub code: &'static str,
    /// What the candidate would have answered (`shadow_deny`).
    pub status: u16,
    pub version: u64,
}

impl ShadowDecision {
    pub fn as_str(&self) -> &'static str {
        if self.denied { "shadow_deny" } else { "shadow_allow" }
    }
}

/// What a decision sample or a deny record keeps of a request's headers
/// (`warden_policy::sample`).
#[derive(Debug, Clone, Default)]
pub struct SampledHead {
    pub headers: Vec<pb::Header>,
    pub credential_headers: Vec<String>,
}

/// Why a tunnel ended, as the access log, span and metrics say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// One side closed its connection (the other's is then closed too).
    Closed,
    /// A read or write failed.
    Broken,
    /// Nothing moved for the route's idle timeout.
    Idle,
    /// The sidecar shut down and the drain period ran out.
    Shutdown,
}

impl Closed {
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::Closed => "closed",
            Closed::Broken => "broken",
            Closed::Idle => "idle",
            Closed::Shutdown => "shutdown",
        }
    }
}

/// A closed tunnel's account.
#[derive(Debug, Clone, Copy)]
pub struct TunnelStats {
    pub closed: Closed,
    pub bytes_to_app: u64,
    pub bytes_to_client: u64,
    pub opened: SystemTime,
    pub lasted: Duration,
}
