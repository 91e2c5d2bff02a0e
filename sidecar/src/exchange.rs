//! One request's exchange with its upstream: tries on endpoints the balancer picks. A
//! request that never left (a connect that failed, breakers that were open, a stream the
//! connection refused) always goes to an endpoint not tried yet, whatever the route and
//! method. When the route has `retries`, a try that failed as they say is made again (on
//! another endpoint when there is one) while the method is idempotent (or the route says
//! `non_idempotent`), the body can be sent again, attempts are left, and the upstream's
//! retry budget allows. Outlier detection hears how every try went.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::{Either, Full};
use tokio::time::Instant;
use warden_policy::grpc;
use warden_policy::refusal::UpstreamFailure;
use warden_policy::snapshot::{Retries, Route};

use crate::upstream::{Affinity, BoundUpstream, EndpointPool, InboundBody, SendError, SendFailure, UpstreamBody, send};

/// What an exchange needs besides the request.
pub struct Exchange<'a> {
    pub upstream: &'a BoundUpstream,
    /// Its endpoints as they were when the request came (DNS may change them meanwhile).
    pub endpoints: &'a [Arc<EndpointPool>],
    /// The endpoint the first try goes to (picked before the request was written, since
    /// an HTTP/1.0 request without a Host is sent its name).
    pub first: usize,
    pub affinity: &'a Arc<Affinity>,
    pub route: &'a Route,
    pub stream_idle_timeout: Duration,
    /// When the response head must have come, tries included.
    pub deadline: Instant,
    /// The request again, for a retry: only when the route has retries and may repeat it.
    pub replay: Option<Replay>,
}

/// How the exchange ended, after how many tries, and what it did to the upstream's state.
pub struct Exchanged {
    pub result: Result<Response<UpstreamBody>, Failed>,
    pub attempts: u32,
    /// Retries the budget refused (0 or 1).
    pub budget_refused: u32,
    /// Endpoints this exchange's failures ejected (nearly always none).
    pub ejected: Vec<String>,
}

/// Why no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    Send(SendError),
    /// The deadline passed before a response head.
    Timeout,
}

/// A request that can be sent again: its head and its whole body.
pub struct Replay {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
}

impl Replay {
    /// For a route with retries, a request it may repeat: an idempotent method (RFC 9110
    /// §9.2.2) or a route that allows others, and a body held whole (`body`: none, or a
    /// signed body already read).
    pub fn new(route: &Route, req: &http::request::Parts, body: Option<&Bytes>) -> Option<Replay> {
        route.retries.as_ref()?;
        let idempotent = matches!(
            req.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
        );
        if !idempotent && !route.non_idempotent {
            return None;
        }
        Some(Replay {
            method: req.method.clone(),
            uri: req.uri.clone(),
            version: req.version,
            headers: req.headers.clone(),
            body: body?.clone(),
        })
    }

    fn request(&self) -> Request<InboundBody> {
        let mut req = Request::new(Either::Right(Full::new(self.body.clone())));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// Runs the exchange.
pub async fn exchange(x: Exchange<'_>, req: Request<InboundBody>) -> Exchanged {
    let (upstream, retries, endpoints) = (x.upstream, x.route.retries.as_ref(), x.endpoints);
    let max_attempts = retries.map_or(1, |r| r.attempts);
    let per_try = retries.and_then(|r| r.per_try_timeout);
    // The budget is a share of the requests that may be retried.
    if retries.is_some() {
        upstream.budget.request();
    }
    let mut done = Exchanged { result: Err(Failed::Timeout), attempts: 0, budget_refused: 0, ejected: Vec::new() };
    // Endpoints that failed a try: filled only on the way to a retry, so an answered
    // request allocates nothing for it.
    let (mut tried, mut endpoint, mut next) = (Vec::new(), x.first, Some(req));
    let report = |done: &mut Exchanged, i: usize, ok: bool| {
        if upstream.report(endpoints, i, ok) {
            done.ejected.push(endpoints[i].authority().to_string());
        }
    };
    // A failure the route's retries name, with attempts, time and a body to send again:
    // tried again if the budget allows.
    let retry = |done: &mut Exchanged, named: bool| {
        let eligible = named && done.attempts < max_attempts && Instant::now() < x.deadline && x.replay.is_some();
        if !eligible {
            return false;
        }
        let granted = upstream.budget.withdraw(&upstream.retry_budget);
        done.budget_refused += u32::from(!granted);
        granted
    };
    loop {
        let Some(req) = next.take().or_else(|| x.replay.as_ref().map(Replay::request)) else {
            done.result = Err(Failed::Send(SendError::Upstream(UpstreamFailure::Protocol)));
            return done;
        };
        done.attempts += 1;
        let pool = &endpoints[endpoint];
        let left = x.deadline.saturating_duration_since(Instant::now());
        let try_for = per_try.map_or(left, |p| p.min(left));
        let outstanding = pool.health.begin();
        let sent = send(pool, x.affinity, req, x.route.max_body, x.stream_idle_timeout);
        match tokio::time::timeout(try_for, sent).await {
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                let grpc_status = resp.headers().get(grpc::GRPC_STATUS).and_then(|v| v.to_str().ok()?.parse().ok());
                report(&mut done, endpoint, status < 500 && grpc_status != Some(14));
                if !retry(&mut done, retries.is_some_and(|r| r.on_response(status, grpc_status))) {
                    done.result = Ok(resp.map(|b| b.outstanding(outstanding)));
                    return done;
                }
                tried.push(endpoint);
                tracing::debug!(upstream = %upstream.name, status, attempts = done.attempts, "retrying an answer the route names");
            }
            Ok(Err(SendFailure { error, unsent })) => {
                tried.push(endpoint);
                if matches!(error, SendError::Upstream(_)) {
                    report(&mut done, endpoint, false);
                }
                let client_side = matches!(error, SendError::BodyTooLarge | SendError::BadRequestBody);
                match unsent {
                    // Never sent: another endpoint, for every route and method.
                    Some(req) if !client_side && upstream.pick(endpoints, &tried).is_some() => next = Some(*req),
                    Some(req) if retries.is_some_and(|r| retry_on(r, error, true)) && done.attempts < max_attempts => {
                        next = Some(*req);
                    }
                    _ if !client_side && retry(&mut done, retries.is_some_and(|r| retry_on(r, error, false))) => {}
                    _ => {
                        done.result = Err(Failed::Send(error));
                        return done;
                    }
                }
            }
            Err(_) => {
                tried.push(endpoint);
                report(&mut done, endpoint, false);
                // A try past its own timeout counts as a 504; past the deadline, none is left.
                if !retry(&mut done, retries.is_some_and(|r| r.on_response(504, None))) {
                    done.result = Err(Failed::Timeout);
                    return done;
                }
            }
        }
        // Another endpoint when there is one not tried yet, else any.
        endpoint = upstream.pick(endpoints, &tried).or_else(|| upstream.pick(endpoints, &[])).unwrap_or(endpoint);
    }
}

/// Whether a failure to get an answer is one the route's retries name. `unsent`: the
/// request never left (a connect that failed or timed out, a refused stream).
fn retry_on(r: &Retries, error: SendError, unsent: bool) -> bool {
    match error {
        SendError::Upstream(UpstreamFailure::Refused | UpstreamFailure::ConnectTimeout | UpstreamFailure::Tls) => {
            r.on_connect_failure
        }
        SendError::Upstream(UpstreamFailure::Protocol) if unsent => r.on_refused_stream || r.on_reset,
        SendError::Upstream(UpstreamFailure::Protocol) => r.on_reset,
        SendError::Overloaded => r.on_refused_stream,
        SendError::BodyTooLarge | SendError::BadRequestBody => false,
    }
}
