//! A compiled route: what it matches, what it checks (access, auth, limits, size) and
//! what it changes (rewrites, header edits), and the matching itself.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::auth::AuthProvider;
use crate::cors::Cors;
use crate::ipset::IpSet;
use crate::limits::limit::Limit;
use crate::normalize::{exact_matches, prefix_matches};
use crate::refusal::Refusal;
use crate::snapshot::upstream::Upstream;

/// What a request whose path has an escaped slash gets from the route it matched (decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// 400 `bad_path`.
    Reject,
    /// Forwarded with `%2F` decoded.
    Decode,
}

/// Who may send requests: deny wins; a non-empty allow list admits only its networks.
#[derive(Debug)]
pub struct AccessRule {
    /// `access`, or `routes.<name>.access`: what a refusal names as its rule.
    pub name: Arc<str>,
    pub allow: IpSet,
    pub deny: IpSet,
}

impl AccessRule {
    /// None when `ip` may pass; otherwise the refusal.
    pub fn check(&self, ip: IpAddr) -> Option<Refusal> {
        let list = if self.deny.contains(ip) {
            "deny"
        } else if !self.allow.is_empty() && !self.allow.contains(ip) {
            "allow"
        } else {
            return None;
        };
        Some(Refusal::AddressDenied { rule: format!("{}.{list}", self.name), ip })
    }
}

#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    pub host: HostMatch,
    pub path: PathMatch,
    /// Empty = any method.
    pub methods: Vec<Method>,
    /// Each must be present with exactly this value.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Replaces the matched path or prefix.
    pub rewrite_path: Option<String>,
    pub rewrite_host: Option<HeaderValue>,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    pub timeout: Duration,
    pub upstream: Arc<Upstream>,
    /// Checked after the route matched.
    pub access: Option<AccessRule>,
    /// The largest request body, in bytes.
    pub max_body: u64,
    /// Who may call: checked after the route's access.
    pub auth: Option<Arc<AuthProvider>>,
    /// Keep the credential header for the app.
    pub forward_credentials: bool,
    /// Checked in order after auth.
    pub limits: Vec<Arc<Limit>>,
    /// What a path with `%2F` that routed here gets.
    pub escaped_slashes: EscapedSlashes,
    /// The longest deadline a gRPC caller's `grpc-timeout` may set.
    pub max_grpc_timeout: Option<Duration>,
    /// Tries made again when one fails; None: only a request never sent is.
    pub retries: Option<Retries>,
    /// Retries may repeat non-idempotent methods.
    pub non_idempotent: bool,
    /// The longest a streamed response may go quiet (None: the sidecar's default).
    pub idle_timeout: Option<Duration>,
    /// WebSocket upgrades are tunnelled to the app.
    pub upgrades: bool,
    /// CORS answered by Warden (the defaults' merged in).
    pub cors: Option<Arc<Cors>>,
}

/// A route's retries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retries {
    /// Tries in all, the first included.
    pub attempts: u32,
    pub on_connect_failure: bool,
    pub on_reset: bool,
    pub on_refused_stream: bool,
    pub on_5xx: bool,
    pub on_status: Vec<u16>,
    pub on_grpc_status: Vec<u8>,
    /// The longest one try may take until its response head.
    pub per_try_timeout: Option<Duration>,
}

impl Retries {
    /// Whether an answer with this status (and, for gRPC, this `grpc-status` in its head)
    /// is tried again.
    pub fn on_response(&self, status: u16, grpc_status: Option<u8>) -> bool {
        (self.on_5xx && (500..=599).contains(&status))
            || self.on_status.contains(&status)
            || grpc_status.is_some_and(|g| self.on_grpc_status.contains(&g))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.com`, stored as `.example.com`: matches `a.example.com`, not `example.com`.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Any,
    /// With or without one trailing slash.
    Exact(String),
    /// On segment boundaries.
    Prefix(String),
}

#[derive(Debug, Default)]
pub struct HeaderOps {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

/// Why a route did not match a request (for `explain`), checked in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    Host,
    Path,
    Method,
    Header,
}

impl Mismatch {
    pub fn describe(self) -> &'static str {
        match self {
            Mismatch::Host => "host differs",
            Mismatch::Path => "path differs",
            Mismatch::Method => "method not listed",
            Mismatch::Header => "a required header is missing or differs",
        }
    }
}

impl Route {
    /// None when the route matches; otherwise the first reason it does not.
    pub fn mismatch(&self, method: &Method, host: &str, path: &str, headers: &HeaderMap) -> Option<Mismatch> {
        let host_ok = match &self.host {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h == host,
            HostMatch::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
        };
        if !host_ok {
            return Some(Mismatch::Host);
        }
        let path_ok = match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(p) => exact_matches(path, p),
            PathMatch::Prefix(p) => prefix_matches(path, p),
        };
        if !path_ok {
            return Some(Mismatch::Path);
        }
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return Some(Mismatch::Method);
        }
        if !self.headers.iter().all(|(k, v)| headers.get(k) == Some(v)) {
            return Some(Mismatch::Header);
        }
        None
    }

    /// True when the route's path pattern matches `path` if case is ignored (for `explain`).
    pub fn path_matches_ignoring_case(&self, path: &str) -> bool {
        let path = path.to_ascii_lowercase();
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(p) => exact_matches(&path, &p.to_ascii_lowercase()),
            PathMatch::Prefix(p) => prefix_matches(&path, &p.to_ascii_lowercase()),
        }
    }

    /// The path the upstream receives: the rewrite replaces the matched part.
    /// None when the route does not rewrite (the normalized path is sent as is).
    pub fn rewritten_path(&self, path: &str) -> Option<String> {
        let new = self.rewrite_path.as_deref()?;
        let rest = match &self.path {
            PathMatch::Prefix(p) if p != "/" => &path[p.len()..],
            PathMatch::Prefix(_) | PathMatch::Any => path,
            PathMatch::Exact(_) => "",
        };
        let mut out = String::with_capacity(new.len() + rest.len());
        out.push_str(new.trim_end_matches('/'));
        if !rest.is_empty() && !rest.starts_with('/') {
            out.push('/');
        }
        out.push_str(rest);
        if out.is_empty() {
            out.push('/');
        }
        Some(out)
    }
}
