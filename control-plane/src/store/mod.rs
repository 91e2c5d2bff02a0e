//! Durable storage behind one interface: `api.rs` (the async `Store` trait, one
//! transactional unit per method), `model.rs` (the domain types it speaks), `error.rs`
//! (`StoreError`, with `Unavailable` for a store that cannot answer now), and `sqlite.rs`
//! (the implementation: every version of every service's policy, every sidecar's last
//! word, API key hashes, webhook secrets and the deny log).

mod api;
mod error;
mod model;
mod sqlite;

pub use crate::clock::now_unix_ms;
pub use api::{Store, StoreFuture};
pub use error::StoreError;
pub use model::{
    CredentialRows, Denial, DenialFilter, DenialGroup, KeyRow, NewKey, NewVersion, PolicyVersion, Retention, SecretRow,
    SidecarRecord, Stored, StoredDenial,
};
pub use sqlite::Sqlite;
