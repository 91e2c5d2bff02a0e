//! One service's compiled policy at one version: what the request path reads, loaded
//! once per request, never seen half-applied.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method};

use crate::auth::AuthProvider;
use crate::ipset::IpSet;
use crate::limits::limit::Limit;
use crate::snapshot::route::{AccessRule, Route};
use crate::snapshot::route_index::RouteIndex;
use crate::snapshot::upstream::Upstream;

/// Whether rules deny or only report what they would deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    DryRun,
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
