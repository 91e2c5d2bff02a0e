//! Explaining a described request against a service's current policy, for the console's
//! explain form: the same steps `wardenctl explain --service` prints (`crate::explain`),
//! with an API key looked up in the store by its hash. The credential is used for this
//! one decision and never stored or logged; limit budgets live in the sidecars, so they
//! are not evaluated here.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use warden_policy::auth::{AuthKind, Credentials, hash_key};
use warden_policy::decide::Request;
use warden_policy::limits::view::Known;
use warden_policy::snapshot::Snapshot;
use warden_policy::yaml::{build, parse_service};
use warden_proto::v1 as pb;

use crate::clock::now_unix_ms;
use crate::explain::{self, Explained, Step};
use crate::ops::control_plane::ControlPlane;
use crate::ops::credentials::api_key;
use crate::ops::error::OpsError;

/// A request to explain.
#[derive(Debug, Clone, Default)]
pub struct ExplainRequest {
    pub service: String,
    pub method: String,
    pub host: String,
    /// With its query, if any.
    pub path: String,
    /// `name: value` each.
    pub headers: Vec<String>,
    /// 127.0.0.1 when empty.
    pub client_ip: String,
}

/// The answer: every step, the verdict last.
#[derive(Debug, Clone)]
pub struct ExplainAnswer {
    pub version: u64,
    pub steps: Vec<Step>,
    pub explained: Explained,
}

impl ControlPlane {
    /// Runs the sidecar's `decide` on the described request through the service's current
    /// policy, step by step.
    pub async fn explain(&self, r: ExplainRequest) -> Result<ExplainAnswer, OpsError> {
        let current = self.policy(&r.service, None).await?;
        let parsed =
            parse_service(&format!("{}@v{}", r.service, current.version), &current.source_yaml, Some(&r.service))
                .map_err(|e| OpsError::Precondition(e.to_string()))?;
        let snapshot = Snapshot::try_from(&build(&parsed.policy, &parsed.source, 0))
            .map_err(|e| OpsError::Precondition(e.to_string()))?;

        let invalid = OpsError::Invalid;
        let method = Method::from_bytes(r.method.trim().as_bytes())
            .map_err(|_| invalid(format!("'{}' is not an HTTP method", r.method)))?;
        let path = if r.path.trim().is_empty() { "/" } else { r.path.trim() };
        let uri: Uri = path.parse().map_err(|e| invalid(format!("'{path}' is not a path: {e}")))?;
        let mut headers = HeaderMap::new();
        if !r.host.trim().is_empty() {
            let host =
                HeaderValue::from_str(r.host.trim()).map_err(|_| invalid(format!("'{}' is not a host", r.host)))?;
            headers.insert(http::header::HOST, host);
        }
        for h in r.headers.iter().map(|h| h.trim()).filter(|h| !h.is_empty()) {
            let (k, v) = h.split_once(':').ok_or_else(|| invalid(format!("header '{h}': expected 'name: value'")))?;
            let name =
                HeaderName::from_bytes(k.trim().as_bytes()).map_err(|_| invalid(format!("header '{k}': bad name")))?;
            let value = HeaderValue::from_str(v.trim()).map_err(|_| invalid(format!("header '{k}': bad value")))?;
            headers.append(name, value);
        }
        let peer: IpAddr = match r.client_ip.trim() {
            "" => IpAddr::from([127, 0, 0, 1]),
            ip => ip.parse().map_err(|_| invalid(format!("'{ip}' is not an IP address")))?,
        };
        let req = Request { method: &method, uri: &uri, headers: &headers, peer };
        let now_ms = now_unix_ms();

        let route = explain::route(&snapshot, &req, &Known::default(), now_ms);
        let (creds, unsure) = match route.and_then(|r| r.auth.as_deref()) {
            Some(p) => match (explain::not_checkable(p), &p.kind) {
                (Some(why), _) => (Credentials::default(), Some(why)),
                (None, AuthKind::ApiKey) => {
                    (self.key_credentials(&snapshot.service, p.credential(&headers).ok()).await?, None)
                }
                (None, _) => (Credentials::default(), None),
            },
            None => (Credentials::default(), None),
        };
        let limit_step =
            |d: String| d.replace("budget not evaluated", "budget not evaluated (the budgets live in the sidecars)");
        let explained =
            explain::explain(&snapshot, &creds, &Known::default(), &req, now_ms, unsure.as_deref(), &limit_step);
        let mut steps = vec![("policy".to_owned(), format!("{} (v{})", snapshot.service, current.version))];
        steps.extend(explained.steps.iter().cloned());
        steps.push(("decision".into(), explained.verdict.clone()));
        Ok(ExplainAnswer { version: current.version, steps, explained })
    }

    /// The credentials holding the one key presented, if the store knows it.
    async fn key_credentials(&self, service: &str, key: Option<&str>) -> Result<Credentials, OpsError> {
        // A missing or malformed key needs no lookup: the auth step refuses it as live.
        let Some(key) = key else { return Ok(Credentials::default()) };
        let hash = hash_key(key);
        let found = self.stored("lookup_key", self.store.lookup_key(service, hash.0.to_vec())).await?;
        let keys = found.into_iter().map(api_key).collect();
        let proto = pb::Credentials { service: service.to_owned(), keys, ..Default::default() };
        Credentials::compile(&proto, None).map_err(|e| OpsError::Internal(e.to_string()))
    }
}
