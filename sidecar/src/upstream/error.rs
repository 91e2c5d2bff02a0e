//! Why talking to an upstream failed, as the proxy sorts it into refusals: the
//! upstream's fault, the breakers', or the client's body.

use std::io;

use warden_policy::refusal::UpstreamFailure;

/// A failed connect, as the client is told.
pub fn connect_failure(e: &io::Error) -> UpstreamFailure {
    if e.kind() == io::ErrorKind::TimedOut { UpstreamFailure::ConnectTimeout } else { UpstreamFailure::Refused }
}

/// Why a request could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    Upstream(UpstreamFailure),
    /// The endpoint's circuit breakers are open: `max_connections` connections are busy and
    /// `max_pending` requests already wait for one.
    Overloaded,
    /// The request body passed the route's `max_body` while streaming.
    BodyTooLarge,
    /// The client's request body broke while streaming (its fault, not the upstream's).
    BadRequestBody,
}

impl From<UpstreamFailure> for SendError {
    fn from(f: UpstreamFailure) -> Self {
        SendError::Upstream(f)
    }
}
