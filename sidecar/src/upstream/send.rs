//! Sending one request on a pooled connection, retrying only what provably never left.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use warden_policy::refusal::UpstreamFailure;

use crate::upstream::error::SendError;
use crate::upstream::pool::{self, Affinity, EndpointPool, InboundBody, RequestBody, UpstreamBody};

/// Sends a request (origin-form URI, Host set) to `endpoint` on a pooled connection,
/// preferring the one this downstream connection used last, streaming at most
/// `max_body` bytes of body. A reused connection that turns out closed before the
/// request was written is retried on another; once written, a failure is the caller's.
pub async fn send(
    endpoint: &Arc<EndpointPool>,
    affinity: &Arc<Affinity>,
    req: Request<InboundBody>,
    max_body: u64,
    stream_idle_timeout: Duration,
) -> Result<Response<UpstreamBody>, SendError> {
    let mut req = req.map(|b| RequestBody::new(b, max_body));
    let upload = req.body().upload();
    let failed = |f: UpstreamFailure| {
        use std::sync::atomic::Ordering::Acquire;
        match upload.as_deref() {
            Some(u) if u.too_large.load(Acquire) => SendError::BodyTooLarge,
            Some(u) if u.broken.load(Acquire) => SendError::BadRequestBody,
            _ => SendError::Upstream(f),
        }
    };
    // Two reused connections may be stale; the third attempt always dials (or waits).
    for attempt in 0..3 {
        let reused = if attempt < 2 { affinity.take(endpoint).or_else(|| endpoint.take_idle()) } else { None };
        let (mut sender, fresh) = match reused {
            Some(s) => (s, false),
            None => endpoint.acquire().await?,
        };
        if sender.ready().await.is_err() {
            if fresh {
                return Err(failed(UpstreamFailure::Protocol));
            }
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) if head_bytes(resp.headers()) > pool::UPSTREAM_BUFFER => {
                // hyper's buffer cap is a soft one (one read may bring more): the same
                // limit, held exactly. The connection is mid-message and goes with `sender`.
                tracing::debug!(endpoint = %endpoint.authority(), "upstream response head too large");
                return Err(failed(UpstreamFailure::Protocol));
            }
            Ok(resp) => {
                let upload = upload.clone();
                let lease = (sender, endpoint.clone(), affinity.clone());
                return Ok(resp.map(|body| UpstreamBody::new(body, upload, lease, stream_idle_timeout)));
            }
            Err(mut e) => match e.take_message() {
                Some(unsent) if !fresh => req = unsent,
                _ => {
                    tracing::debug!(error = %e.error(), endpoint = %endpoint.authority(), "upstream request failed");
                    return Err(failed(UpstreamFailure::Protocol));
                }
            },
        }
    }
    Err(failed(UpstreamFailure::Protocol))
}

/// A response head's size as sent: "name: value\r\n" per field.
fn head_bytes(headers: &http::HeaderMap) -> usize {
    headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum()
}
