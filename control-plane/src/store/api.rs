//! The `Store` interface: what the operations layer asks of durable storage, in domain
//! types. Each method is one transactional unit: an apply of several documents commits
//! all its versions or none, a key change and the credentials revision it bumps commit
//! together, a credentials read sees one revision. SQLite (`sqlite.rs`) implements it; a
//! networked database fits the same shape, which is why every method is async and every
//! error may be `StoreError::Unavailable`.
//!
//! Methods return boxed futures rather than `async fn` so the store can be shared as
//! `Arc<dyn Store>` (a test double, or another backend chosen at start-up), with no
//! generic parameter threaded through the server, the CLI and the HTTP port.

use std::future::Future;
use std::pin::Pin;

use crate::store::error::StoreError;
use crate::store::model::{
    CanaryWindow, Change, CredentialRows, Denial, DenialBucket, DenialFilter, DenialGroup, DenialMark, Heads, KeyRow,
    Leader, NewKey, NewVersion, PolicyVersion, QuotaDemand, Retention, Rollout, RolloutState, Sample, SampleFilter,
    SampleRetention, SecretRow, ShadowCount, SidecarRecord, StoreCopy, Stored, StoredDenial, StoredSample, TrafficRow,
};

/// What a store call returns: a `Send` future, so callers can run it on any worker.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Durable storage for policy versions, sidecar records, credentials and the deny log.
pub trait Store: Send + Sync + 'static {
    /// The credentials epoch, fixed when the store was created: revisions count within it,
    /// so a sidecar holding revision 7 of another store is not taken to be current.
    fn epoch(&self) -> u64;

    /// Succeeds when the store answers.
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Which store this is, for messages (`SQLite at …`, `PostgreSQL at host:port/db`;
    /// never a password).
    fn describe(&self) -> String {
        "the store".to_owned()
    }

    /// Changes made through other replicas, as they commit; None for a store only this
    /// process writes (SQLite).
    fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<Change>> {
        None
    }

    // Policy versions.

    /// Stores each document as its service's next version, all or none. A document whose
    /// content equals its service's current version is left alone (`changed: false`).
    /// With `dry_run`, computes the same answer and writes nothing.
    fn apply(&self, docs: Vec<NewVersion>, dry_run: bool) -> StoreFuture<'_, Vec<Stored>>;
    /// The current (highest) version of a service, with its source.
    fn current<'a>(&'a self, service: &'a str) -> StoreFuture<'a, Option<PolicyVersion>>;
    /// One version of a service, with its source.
    fn version<'a>(&'a self, service: &'a str, version: u64) -> StoreFuture<'a, Option<PolicyVersion>>;
    /// Every version of a service, newest first, without sources.
    fn history<'a>(&'a self, service: &'a str) -> StoreFuture<'a, Vec<PolicyVersion>>;
    /// The current version of every service, with sources, by service name.
    fn list_current(&self) -> StoreFuture<'_, Vec<PolicyVersion>>;
    /// Every service's current version and the credentials revision.
    fn heads(&self) -> StoreFuture<'_, Heads>;

    // Sidecars.

    /// Records what sidecars last said, all in one unit.
    fn save_sidecars(&self, records: Vec<SidecarRecord>) -> StoreFuture<'_, ()>;
    /// Every sidecar ever seen, by service and instance.
    fn sidecars(&self) -> StoreFuture<'_, Vec<SidecarRecord>>;

    // Credentials: every change bumps the credentials revision in the same unit.

    /// Stores new keys under one new credentials revision.
    fn create_keys(&self, keys: Vec<NewKey>) -> StoreFuture<'_, Vec<KeyRow>>;
    /// Keys, optionally of one service and one client, oldest first.
    fn keys(&self, service: Option<String>, client: Option<String>) -> StoreFuture<'_, Vec<KeyRow>>;
    /// Revokes a key (a second revoke changes nothing); None when there is no such key.
    fn revoke_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRow>>;
    /// The key of `service` with this hash.
    fn lookup_key<'a>(&'a self, service: &'a str, sha256: Vec<u8>) -> StoreFuture<'a, Option<KeyRow>>;
    /// Adds a value to a named secret. Values already set keep verifying for
    /// `retire_previous_after_ms` more (those set to retire sooner keep their date).
    fn set_secret<'a>(
        &'a self,
        name: &'a str,
        value: Vec<u8>,
        retire_previous_after_ms: i64,
    ) -> StoreFuture<'a, SecretRow>;
    /// Every secret value still verifying, without the values, by name then age.
    fn secrets(&self) -> StoreFuture<'_, Vec<SecretRow>>;
    /// Moves the credentials revision on with no key or secret change (a policy that
    /// starts naming other secrets changes what its sidecars hold); returns the new one.
    fn bump_credentials_revision(&self) -> StoreFuture<'_, u64>;
    /// What a service's sidecars get at the current revision: its keys changed after
    /// `since` (all of them for 0), and the still-verifying values of `secret_names`.
    fn credentials<'a>(
        &'a self,
        service: &'a str,
        since: u64,
        secret_names: Vec<String>,
    ) -> StoreFuture<'a, CredentialRows>;

    // `top` across replicas.

    /// Shares the latest traffic windows of the sidecars connected to this replica. A
    /// store only one replica uses keeps nothing (that replica has them all in memory).
    fn save_traffic(&self, rows: Vec<TrafficRow>) -> StoreFuture<'_, ()> {
        let _ = rows;
        Box::pin(async { Ok(()) })
    }
    /// The windows every replica shared that are newer than `since_unix_ms`.
    fn traffic(&self, since_unix_ms: i64) -> StoreFuture<'_, Vec<TrafficRow>> {
        let _ = since_unix_ms;
        Box::pin(async { Ok(Vec::new()) })
    }

    // Moving stores (`copy-store`).

    /// Writes `data` as it is (version numbers, authors, times, key ids and hashes, secret
    /// values) into this store, which must hold no policy version and no key, in one
    /// transaction. Keys come in at credentials revision 1; the store keeps its own epoch,
    /// so sidecars that meet it get whole key sets.
    fn import(&self, data: StoreCopy) -> StoreFuture<'_, ()>;

    // Global quotas across replicas.

    /// Publishes this replica's quota demand and returns the other replicas' (summed over
    /// those that published within `fresh_ms`). A store only one replica uses has no one
    /// to exchange with.
    fn exchange_demand<'a>(
        &'a self,
        replica: &'a str,
        mine: QuotaDemand,
        fresh_ms: i64,
    ) -> StoreFuture<'a, QuotaDemand> {
        let _ = (replica, mine, fresh_ms);
        Box::pin(async { Ok(QuotaDemand::default()) })
    }

    // A canary's sums across replicas.

    /// Replaces this replica's shared canary sums with `windows`. A store only one replica
    /// uses keeps nothing (that replica has every sidecar's windows).
    fn share_canary<'a>(&'a self, replica: &'a str, windows: Vec<CanaryWindow>) -> StoreFuture<'a, ()> {
        let _ = (replica, windows);
        Box::pin(async { Ok(()) })
    }
    /// Every replica's canary sums shared within `fresh_ms`.
    fn canary_windows(&self, fresh_ms: i64) -> StoreFuture<'_, Vec<CanaryWindow>> {
        let _ = fresh_ms;
        Box::pin(async { Ok(Vec::new()) })
    }

    // Electing one replica: the evaluator (the canary's automatic abort).

    /// This replica's candidacy. A store only one replica uses elects that replica.
    fn candidate(&self, replica: &str) -> Box<dyn Candidate> {
        let _ = replica;
        Box::new(Unopposed)
    }
    /// Which replica leads, as the store records it; None when nobody has led yet, or for a
    /// store only one replica uses.
    fn leader(&self) -> StoreFuture<'_, Option<Leader>> {
        Box::pin(async { Ok(None) })
    }

    // Decision samples.

    /// Stores one sidecar's decision samples, keeping each service's within `retention`.
    fn insert_samples<'a>(
        &'a self,
        service: &'a str,
        instance: &'a str,
        samples: Vec<Sample>,
        retention: SampleRetention,
    ) -> StoreFuture<'a, ()>;
    /// Samples matching the filter, newest first.
    fn samples(&self, filter: SampleFilter) -> StoreFuture<'_, Vec<StoredSample>>;

    // The deny log.

    /// Stores one sidecar's reported refusals, keeping the log within `retention`.
    fn insert_denials<'a>(
        &'a self,
        service: &'a str,
        instance: &'a str,
        denials: Vec<Denial>,
        retention: Retention,
    ) -> StoreFuture<'a, ()>;
    /// Refusals matching the filter, newest first.
    fn denials(&self, filter: DenialFilter) -> StoreFuture<'_, Vec<StoredDenial>>;
    /// Refusals matching the filter, counted by service, route, rule, reason and client,
    /// most first.
    fn denial_groups(&self, filter: DenialFilter) -> StoreFuture<'_, Vec<DenialGroup>>;
    /// Refusals matching the filter, counted by group and `bucket_ms`-long time bucket (at
    /// most `filter.limit` rows).
    fn denial_buckets(&self, filter: DenialFilter, bucket_ms: i64) -> StoreFuture<'_, Vec<DenialBucket>>;
    /// Sets a refusal group's mark, replacing any earlier one.
    fn set_denial_mark(&self, mark: DenialMark) -> StoreFuture<'_, ()>;
    /// Every refusal group's mark, newest first; or one group's.
    fn denial_marks(&self, group: Option<String>) -> StoreFuture<'_, Vec<DenialMark>>;

    // The console.

    /// The key console sessions are signed with: the stored one, or `fresh` stored as it
    /// when there is none yet, so every replica signs and checks with the same key.
    fn console_key(&self, fresh: Vec<u8>) -> StoreFuture<'_, Vec<u8>>;

    // Rollouts: a candidate version tried in shadow or on a canary, one per service at a
    // time. A running or aborted rollout's version is not current. Starting one is part of
    // `apply` (`NewVersion::rollout`).

    /// Adds a report's shadow differences to the service's counts (by candidate version,
    /// kind, route, rule, reason and client; the first examples stay).
    fn add_shadow_counts<'a>(&'a self, service: &'a str, counts: Vec<ShadowCount>) -> StoreFuture<'a, ()>;
    /// A candidate's shadow differences so far, most first.
    fn shadow_counts<'a>(&'a self, service: &'a str, version: u64) -> StoreFuture<'a, Vec<ShadowCount>>;
    /// Rollouts, newest first, of one service or of all.
    fn rollouts<'a>(&'a self, service: Option<&'a str>) -> StoreFuture<'a, Vec<Rollout>>;
    /// Ends a running rollout as promoted or aborted, saying by whom and why; None when it
    /// is not running (it ended already, through another replica perhaps).
    fn end_rollout<'a>(
        &'a self,
        service: &'a str,
        version: u64,
        state: RolloutState,
        by: &'a str,
        reason: &'a str,
    ) -> StoreFuture<'a, Option<Rollout>>;
}

/// One replica's standing in the election, asked again every tick (`ops/leader.rs`).
pub trait Candidate: Send {
    /// Takes the lead if it is free, confirms it if held: true while this replica leads.
    /// An error means it does not lead (now, or any more).
    fn lead(&mut self) -> StoreFuture<'_, bool>;
}

/// The one replica of a store no other replica uses: it always leads.
struct Unopposed;

impl Candidate for Unopposed {
    fn lead(&mut self) -> StoreFuture<'_, bool> {
        Box::pin(async { Ok(true) })
    }
}
