//! Rate limits and quotas: the compiled definitions a route names, and the check that
//! runs after auth. Counting is GCRA (`gcra.rs`); the counters live outside the snapshot,
//! found again by each limit's fingerprint, so a policy push resets nobody's budget unless
//! that limit's definition changed.
//!
//! A route's limits are checked in two passes: first without counting, so a request that
//! one limit refuses does not use up the others; then, if all admit it, counted in each.

pub mod admit;
pub mod gcra;
pub mod global;
pub mod limit;
pub mod state;
pub mod view;

pub use admit::admit;
pub use gcra::{Buckets, RateDef, Verdict, now_ns};
pub use global::Quotas;
pub use limit::{Limit, LimitKey, LimitRequest};
pub use state::LimitState;
pub use view::{Counters, Known, LimitView, Shadowed};
