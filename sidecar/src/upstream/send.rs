//! Sending one request on a pooled connection, HTTP/1.1 or HTTP/2, retrying only what
//! provably never left.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, Version};
use warden_policy::refusal::UpstreamFailure;

use crate::upstream::connect::UPSTREAM_BUFFER;
use crate::upstream::error::SendError;
use crate::upstream::pool::{Affinity, EndpointPool};
use crate::upstream::request_body::{InboundBody, RequestBody};
use crate::upstream::response_body::{Lease, UpstreamBody};

/// Why a request failed, and the request itself when it provably never left (so it can
/// go to another endpoint whatever its method).
#[derive(Debug)]
pub struct SendFailure {
    pub error: SendError,
    pub unsent: Option<Box<Request<InboundBody>>>,
}

/// Sends a request to `endpoint` on a pooled connection, streaming at most `max_body`
/// bytes of body: as HTTP/2 when the request's version says so (its URI then absolute, for
/// `:scheme` and `:authority`), else as HTTP/1.1 (origin-form URI, Host set), preferring
/// the connection this downstream connection used last. A request that provably never
/// left (a reused connection found closed) is sent again on another; one that could not
/// be sent at all comes back in the failure; once written, a failure is the caller's.
pub async fn send(
    endpoint: &Arc<EndpointPool>,
    affinity: &Arc<Affinity>,
    req: Request<InboundBody>,
    max_body: u64,
    stream_idle_timeout: Duration,
) -> Result<Response<UpstreamBody>, SendFailure> {
    let req = req.map(|b| RequestBody::new(b, max_body));
    let upload = req.body().upload();
    let failed = |f: UpstreamFailure| {
        use std::sync::atomic::Ordering::Acquire;
        match upload.as_deref() {
            Some(u) if u.too_large.load(Acquire) => SendError::BodyTooLarge,
            Some(u) if u.broken.load(Acquire) => SendError::BadRequestBody,
            _ => SendError::Upstream(f),
        }
    };
    let sent = match req.version() {
        Version::HTTP_2 => send_http2(endpoint, req).await,
        _ => send_http1(endpoint, affinity, req).await,
    };
    match sent {
        Ok((resp, lease)) => Ok(resp.map(|body| UpstreamBody::new(body, upload.clone(), lease, stream_idle_timeout))),
        Err(Unsent(error, req)) => Err(SendFailure { error, unsent: Some(Box::new(req.map(RequestBody::into_inner))) }),
        Err(Lost(SendError::Upstream(f))) => Err(SendFailure { error: failed(f), unsent: None }),
        Err(Lost(error)) => Err(SendFailure { error, unsent: None }),
    }
}

type Sent = (Response<hyper::body::Incoming>, Lease);

/// How a try failed inside this file: before the request left, or after.
enum Failed {
    Unsent(SendError, Box<Request<RequestBody>>),
    Lost(SendError),
}
use Failed::{Lost, Unsent};

impl From<UpstreamFailure> for Failed {
    fn from(f: UpstreamFailure) -> Self {
        Lost(SendError::Upstream(f))
    }
}

async fn send_http1(
    endpoint: &Arc<EndpointPool>,
    affinity: &Arc<Affinity>,
    mut req: Request<RequestBody>,
) -> Result<Sent, Failed> {
    // Two reused connections may be stale; the third attempt always dials (or waits).
    for attempt in 0..3 {
        let reused = if attempt < 2 { affinity.take(endpoint).or_else(|| endpoint.take_idle()) } else { None };
        let (mut sender, fresh) = match reused {
            Some(s) => (s, false),
            None => match endpoint.acquire().await {
                Ok(s) => s,
                Err(e) => return Err(Unsent(e, Box::new(req))),
            },
        };
        if sender.ready().await.is_err() {
            if fresh {
                return Err(Unsent(SendError::Upstream(UpstreamFailure::Protocol), Box::new(req)));
            }
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) if head_bytes(resp.headers()) > UPSTREAM_BUFFER => {
                // hyper's buffer cap is a soft one (one read may bring more): the same
                // limit, held exactly. The connection is mid-message and goes with `sender`.
                tracing::debug!(endpoint = %endpoint.authority(), "upstream response head too large");
                return Err(UpstreamFailure::Protocol.into());
            }
            Ok(resp) => {
                let lease = Lease::Http1 { sender, endpoint: endpoint.clone(), affinity: affinity.clone() };
                return Ok((resp, lease));
            }
            Err(mut e) => match e.take_message() {
                Some(unsent) if !fresh => req = unsent,
                Some(unsent) => return Err(Unsent(SendError::Upstream(UpstreamFailure::Protocol), Box::new(unsent))),
                None => {
                    tracing::debug!(error = %e.error(), endpoint = %endpoint.authority(), "upstream request failed");
                    return Err(UpstreamFailure::Protocol.into());
                }
            },
        }
    }
    Err(Unsent(SendError::Upstream(UpstreamFailure::Protocol), Box::new(req)))
}

async fn send_http2(endpoint: &Arc<EndpointPool>, mut req: Request<RequestBody>) -> Result<Sent, Failed> {
    // A connection that went away (GOAWAY, closed) before taking the request hands it
    // back: once on another open one, then on a new one.
    for _ in 0..2 {
        let (mut sender, slot, fresh) = match endpoint.acquire_stream().await {
            Ok(s) => s,
            Err(e) => return Err(Unsent(e, Box::new(req))),
        };
        match sender.try_send_request(req).await {
            Ok(resp) if head_bytes(resp.headers()) > UPSTREAM_BUFFER => {
                tracing::debug!(endpoint = %endpoint.authority(), "upstream response head too large");
                return Err(UpstreamFailure::Protocol.into());
            }
            Ok(resp) => return Ok((resp, Lease::Http2(slot))),
            Err(mut e) => match e.take_message() {
                Some(unsent) if !fresh => req = unsent,
                Some(unsent) => return Err(Unsent(SendError::Upstream(UpstreamFailure::Protocol), Box::new(unsent))),
                None => {
                    tracing::debug!(error = %e.error(), endpoint = %endpoint.authority(), "upstream HTTP/2 request failed");
                    return Err(UpstreamFailure::Protocol.into());
                }
            },
        }
    }
    Err(Unsent(SendError::Upstream(UpstreamFailure::Protocol), Box::new(req)))
}

/// A response head's size as sent: "name: value\r\n" per field.
fn head_bytes(headers: &http::HeaderMap) -> usize {
    headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum()
}
