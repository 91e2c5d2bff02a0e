//! The decision: given the active snapshot, the credentials, the limit counters and a
//! request's head, forward it (which route, which target, as whom) or refuse it (why).
//! Pure: no I/O, and the time is an argument. The sidecar and `wardenctl explain` call
//! this same function; the sidecar executes what it returns, explain prints its trace.

pub mod decision;
pub mod request;
pub mod steps;
pub mod trace;

pub use decision::{Action, BodyDecision, Decision, Env, Forward, Preflight};
pub use request::{HeadCaps, Request, check_head, check_method, request_host};
pub use steps::{body, decide};
pub use trace::{Step, Trace};
