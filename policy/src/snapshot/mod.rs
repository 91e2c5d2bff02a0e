//! The domain snapshot the request path reads: validated, compiled, and free of prost's
//! `Option` soup. Built from the proto snapshot once per push (`compile.rs`), then swapped
//! in whole; the request path loads it once and never sees a half-applied policy.

pub mod compile;
pub mod compiled;
pub mod route;
pub mod route_index;
pub mod upstream;

pub use compile::{InvalidNetworks, InvalidRoute, InvalidSnapshot, InvalidUpstream};
pub use compiled::{Mode, Snapshot};
pub use route::{AccessRule, EscapedSlashes, HeaderOps, HostMatch, Mismatch, PathMatch, Retries, Route};
pub use route_index::RouteIndex;
pub use upstream::{DEFAULT_MAX_CONCURRENT_STREAMS, Outlier, Protocol, RetryBudget, Upstream, UpstreamTls};

#[cfg(test)]
mod tests;
