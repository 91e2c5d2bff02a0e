//! The domain snapshot the request path reads: validated, compiled, and free of prost's
//! `Option` soup. Built from the proto snapshot once per push (`convert.rs`), then swapped
//! in whole; the request path loads it once and never sees a half-applied policy.

mod compile;
mod route_index;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

pub use compile::{CompileContext, InvalidSnapshot};
pub use route_index::RouteIndex;

use crate::auth::AuthProvider;
use crate::ipset::IpSet;
use crate::limits::Limit;
use crate::normalize::{exact_matches, prefix_matches};
use crate::refusal::Refusal;

/// Whether rules deny or only report what they would deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    DryRun,
}

/// What a request whose path has an escaped slash gets from the route it matched (decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// 400 `bad_path`.
    Reject,
    /// Forwarded with `%2F` decoded.
    Decode,
}

/// One service's compiled policy at one version.
#[derive(Debug)]
pub struct Snapshot {
    pub service: Arc<str>,
    pub version: u64,
    pub content_hash: String,
    pub mode: Mode,
    /// Routes match the path lower-cased (their patterns are stored lower-cased).
    pub case_insensitive_paths: bool,
    /// In file order: the first match wins.
    pub routes: Vec<Route>,
    /// The routes that can match a path, by its first segment.
    pub route_index: RouteIndex,
    /// `app` first, then the policy's upstreams by name.
    pub upstreams: Vec<Arc<Upstream>>,
    pub default_timeout: Duration,
    pub default_max_body: u64,
    pub source_yaml: String,
    /// Peers whose `x-forwarded-for` is believed.
    pub trusted_proxies: IpSet,
    /// Checked for every request, before routing.
    pub access: Option<AccessRule>,
    /// By name.
    pub auth: Vec<Arc<AuthProvider>>,
    /// By name.
    pub limits: Vec<Arc<Limit>>,
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

/// A named set of endpoints and how to connect to them. What connects is the sidecar's:
/// it binds each upstream, by `index`, to connection pools that outlive snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub name: Arc<str>,
    /// Where it sits in `Snapshot::upstreams`.
    pub index: usize,
    /// `host:port` each; empty for `app`, whose one endpoint is the sidecar's `--upstream`.
    pub endpoints: Vec<Authority>,
    pub connect_timeout: Duration,
    /// Circuit breakers per endpoint: connections open at once, requests waiting for one
    /// (0: the sidecar's default).
    pub max_connections: u32,
    pub max_pending: u32,
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

impl Snapshot {
    /// The path routes compare with: `path` (normalized, `%2F` decoded), lower-cased when
    /// the policy matches paths ignoring case. Same length as `path`, so a prefix's
    /// length also measures it in `path`.
    pub fn routing_key<'p>(&self, path: &'p str) -> Cow<'p, str> {
        if self.case_insensitive_paths && path.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(path.to_ascii_lowercase())
        } else {
            Cow::Borrowed(path)
        }
    }

    /// The first route, in file order, that matches the request; `path` is a routing key.
    pub fn route_for(&self, method: &Method, host: &str, path: &str, headers: &HeaderMap) -> Option<&Route> {
        self.route_index
            .candidates(path)
            .map(|i| &self.routes[i])
            .find(|r| r.mismatch(method, host, path, headers).is_none())
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

#[cfg(test)]
mod tests;
