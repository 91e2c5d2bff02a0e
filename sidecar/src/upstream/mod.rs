//! Talking to upstreams: dialling (TCP, TLS, the HTTP/1.1 or HTTP/2 handshake:
//! `connect.rs`, `tls.rs`), the per-endpoint connection pools (`pool.rs`), the registry
//! that shares them across snapshots so a policy push never drops warm connections
//! (`pools.rs`), endpoint names resolved and refreshed (`resolve.rs`), each endpoint's health
//! and the retry budget (`health.rs`, `budget.rs`), the bodies on their way (`request_body.rs`, `response_body.rs`), sending a request (`send.rs`), and
//! sorting failures into the refusals the client sees.

pub mod budget;
pub mod connect;
pub mod error;
pub mod health;
pub mod pool;
pub mod pools;
pub mod request_body;
pub mod resolve;
pub mod response_body;
pub mod send;
pub mod tls;

pub use error::SendError;
pub use pool::{Affinity, Breakers, EndpointPool};
pub use pools::{BoundUpstream, EndpointSet, Pools, Resolved};
pub use request_body::{InboundBody, RequestBody};
pub use resolve::{resolve_all, spawn_refresh};
pub use response_body::{Deadline, UpstreamBody};
pub use send::{SendFailure, send};
pub use warden_policy::refusal::UpstreamFailure;
