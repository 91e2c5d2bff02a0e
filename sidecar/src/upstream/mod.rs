//! Talking to upstreams: the per-endpoint connection pools (`pool.rs`), the registry that
//! shares them across snapshots so a policy push never drops warm connections, sending a
//! request, and sorting failures into the refusals the client sees.

pub mod error;
pub mod pool;
pub mod pools;
pub mod resolve;
pub mod send;

pub use error::SendError;
pub use pool::{Affinity, Breakers, EndpointPool, InboundBody, RequestBody, UpstreamBody};
pub use pools::{BoundUpstream, Pools};
pub use resolve::check_resolvable;
pub use send::send;
pub use warden_policy::refusal::UpstreamFailure;
