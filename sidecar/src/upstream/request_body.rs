//! The request body on its way upstream: streamed, capped at the route's `max_body`, and
//! recording whether it was sent whole (a connection is reused only then).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
/// How a request body's upload went, shared by the request side, the response side and
/// the caller.
#[derive(Debug, Default)]
pub struct Upload {
    /// Sent whole: the connection may be reused once the response is read.
    pub(super) sent: AtomicBool,
    /// Cut off at the route's `max_body`.
    pub(super) too_large: AtomicBool,
    /// The client's body broke (bad chunk framing, connection lost mid-body).
    pub(super) broken: AtomicBool,
}

/// A request body as it arrives: streamed from the client, or already buffered (a signed
/// webhook, whose signature had to be checked before forwarding).
pub type InboundBody = http_body_util::Either<Incoming, http_body_util::Full<Bytes>>;

/// The request body on its way upstream: streamed, never buffered, cut off with an error
/// once it passes `limit` bytes, and recording when it has been sent whole. Trailers
/// (a gRPC client's, say) pass as they came.
pub struct RequestBody {
    inner: InboundBody,
    limit: u64,
    seen: u64,
    /// None for a request without a body (most of them): nothing to track, nothing to
    /// allocate.
    upload: Option<Arc<Upload>>,
}

/// The error a body cut off at its limit ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body passed its limit of {0} bytes")]
pub struct BodyTooLarge(u64);

impl RequestBody {
    pub(super) fn new(inner: InboundBody, limit: u64) -> Self {
        let upload = (!inner.is_end_stream()).then(Arc::default);
        RequestBody { inner, limit, seen: 0, upload }
    }

    pub(super) fn upload(&self) -> Option<Arc<Upload>> {
        self.upload.clone()
    }

    /// The body as it came, for a request that was never sent.
    pub(super) fn into_inner(self) -> InboundBody {
        self.inner
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.seen = self.seen.saturating_add(data.len() as u64);
            if self.seen > self.limit {
                if let Some(u) = &self.upload {
                    u.too_large.store(true, Ordering::Release);
                }
                return Poll::Ready(Some(Err(Box::new(BodyTooLarge(self.limit)))));
            }
        }
        if let Some(u) = &self.upload {
            if matches!(polled, Poll::Ready(Some(Err(_)))) {
                u.broken.store(true, Ordering::Release);
            } else if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
                u.sent.store(true, Ordering::Release);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
