//! The response body coming back: streamed, cut off when it stalls or when a gRPC call's
//! deadline passes, and giving its connection back when read to the end.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::upstream::connect::Http1Sender;
use crate::upstream::health::Outstanding;
use crate::upstream::pool::{Affinity, EndpointPool, StreamSlot};
use crate::upstream::request_body::Upload;

/// What an exchange holds of its connection until its response body is done.
pub(super) enum Lease {
    /// A whole HTTP/1.1 connection: kept for this downstream connection's next request, or
    /// given back to the pool, once both bodies went through whole; closed otherwise.
    Http1 { sender: Http1Sender, endpoint: Arc<EndpointPool>, affinity: Arc<Affinity> },
    /// One stream of a shared HTTP/2 connection, freed when dropped (hyper resets a
    /// stream abandoned mid-body).
    Http2(#[allow(dead_code)] StreamSlot),
}

/// A gRPC call's deadline: when it passes mid-response the call ends with `trailers`
/// (`grpc-status: 4`) and the upstream stream is reset.
pub struct Deadline {
    pub at: tokio::time::Instant,
    pub trailers: HeaderMap,
}

/// An upstream response body that returns its connection for reuse once read to the end.
pub struct UpstreamBody {
    inner: Incoming,
    done: bool,
    upload: Option<Arc<Upload>>,
    lease: Option<Lease>,
    /// The longest wait for the next piece of the body.
    idle_timeout: Duration,
    /// Armed the first time the body has to wait (most small bodies never do).
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
    deadline: Option<(Pin<Box<tokio::time::Sleep>>, HeaderMap)>,
    /// Ended by Warden (the deadline's trailers were sent).
    cut: bool,
    /// Counts the exchange as outstanding on its endpoint until the body is done.
    _outstanding: Option<Outstanding>,
}

/// The error a stalled response body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing for {0:?} in the middle of a response body")]
pub struct StreamIdle(Duration);

impl UpstreamBody {
    pub(super) fn new(inner: Incoming, upload: Option<Arc<Upload>>, lease: Lease, idle_timeout: Duration) -> Self {
        UpstreamBody {
            inner,
            done: false,
            upload,
            lease: Some(lease),
            idle_timeout,
            idle: None,
            deadline: None,
            cut: false,
            _outstanding: None,
        }
    }

    /// Keeps the exchange counted on its endpoint until the body is dropped.
    pub fn outstanding(mut self, o: Outstanding) -> Self {
        self._outstanding = Some(o);
        self
    }

    /// Ends the body with `d.trailers` if it is still going at `d.at`.
    pub fn with_deadline(mut self, d: Deadline) -> Self {
        self.deadline = Some((Box::pin(tokio::time::sleep_until(d.at)), d.trailers));
        self
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.cut {
            return Poll::Ready(None);
        }
        if let Some((sleep, _)) = self.deadline.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
            && let Some((_, trailers)) = self.deadline.take()
        {
            self.cut = true;
            self.lease = None;
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Pending => {
                let timeout = self.idle_timeout;
                let idle = self.idle.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if idle.as_mut().poll(cx).is_ready() {
                    // The connection is mid-message: it cannot be reused.
                    self.lease = None;
                    return Poll::Ready(Some(Err(Box::new(StreamIdle(timeout)))));
                }
            }
            Poll::Ready(Some(Ok(_))) => {
                let timeout = self.idle_timeout;
                if let Some(idle) = self.idle.as_mut() {
                    idle.as_mut().reset(tokio::time::Instant::now() + timeout);
                }
            }
            Poll::Ready(None) => self.done = true,
            Poll::Ready(Some(Err(_))) => self.lease = None,
        }
        polled.map(|frame| frame.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.cut || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // The server side may drop a body as soon as it has written Content-Length bytes,
        // without polling for the end: `is_end_stream` covers that case.
        let request_sent = self.upload.as_ref().is_none_or(|u| u.sent.load(Ordering::Acquire));
        let finished = (self.done || self.inner.is_end_stream()) && request_sent;
        if finished && let Some(Lease::Http1 { sender, endpoint, affinity }) = self.lease.take() {
            affinity.keep(endpoint, sender);
        }
    }
}
