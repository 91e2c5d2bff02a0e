//! Why an operation did not happen, in classes each edge maps to its own vocabulary (gRPC
//! status codes in `server/`; HTTP statuses for the console to come). The messages are
//! written for the person who asked, since `wardenctl` prints them as they are.

use crate::store::StoreError;

/// A refused or failed operation.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The request is wrong: a policy that does not validate, a name that is not a name.
    #[error("{0}")]
    Invalid(String),
    /// What it names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Well formed, but not possible now: nothing to roll back to, a version that no
    /// longer validates, a report stream before its sidecar's Hello.
    #[error("{0}")]
    Precondition(String),
    /// The store failed (`Unavailable`: try again later).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The control plane itself failed (no randomness from the OS).
    #[error("{0}")]
    Internal(String),
}
