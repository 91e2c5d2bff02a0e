//! `OpsError` as a gRPC status: the one place the admin API and the sidecar streams pick
//! a status code. A store that cannot answer now is UNAVAILABLE (worth retrying);
//! `wardenctl` reports it, like an unreachable control plane, with exit code 3.

use tonic::Status;

use crate::ops::OpsError;
use crate::store::StoreError;

/// The status an operation's failure is answered with.
pub fn status(e: OpsError) -> Status {
    match e {
        OpsError::Invalid(m) => Status::invalid_argument(m),
        OpsError::NotFound(m) => Status::not_found(m),
        OpsError::Precondition(m) => Status::failed_precondition(m),
        OpsError::Store(e @ StoreError::Unavailable(_)) => Status::unavailable(e.to_string()),
        OpsError::Store(e @ StoreError::Failed(_)) => Status::internal(e.to_string()),
        OpsError::Store(e @ StoreError::RolloutRunning { .. }) => Status::failed_precondition(e.to_string()),
        OpsError::Internal(m) => Status::internal(m),
    }
}
