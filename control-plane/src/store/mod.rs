//! Durable storage behind one interface: `api.rs` (the async `Store` trait, one
//! transactional unit per method), `model.rs` (the domain types it speaks), `error.rs`
//! (`StoreError`, with `Unavailable` for a store that cannot answer now), the two
//! implementations, `sqlite.rs` (embedded, one replica) and `postgres.rs` (several
//! replicas on one database), `location.rs` (which one a database URL names) and
//! `prune.rs` (when each service's samples are pruned).

mod api;
mod error;
mod location;
mod model;
mod postgres;
mod prune;
mod sqlite;

pub use crate::clock::now_unix_ms;
pub use api::{Candidate, Store, StoreFuture};
pub use error::StoreError;
pub use location::Location;
pub use model::{
    CanaryWindow, Change, CredentialRows, Denial, DenialBucket, DenialFilter, DenialGroup, DenialMark, GroupOrder,
    Heads, KeyRow, Leader, Mark, NewKey, NewRollout, NewVersion, PolicyVersion, QuotaDemand, Retention, Rollout,
    RolloutMode, RolloutState, Sample, SampleFilter, SampleRetention, SecretRow, ShadowCount, ShadowRecords,
    SidecarRecord, StoreCopy, Stored, StoredDenial, StoredSample, TrafficRow, group_id,
};
pub use postgres::{Postgres, Target};
pub use sqlite::Sqlite;
