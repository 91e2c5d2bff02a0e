//! The PostgreSQL store, for several control-plane replicas on one database: the same
//! `Store` as SQLite, over a pool of connections (deadpool-postgres over tokio-postgres,
//! TLS by rustls when the URL asks for it). Every call is one transaction and gives up
//! within `CALL_TIMEOUT`, so an apply against a dead database fails in seconds with a
//! message naming the database instead of hanging. Schema changes are numbered migrations
//! (`migrations.rs`) applied at start-up. Changes that sidecars on other replicas must see
//! are announced with `NOTIFY` in the same transaction (`change_feed.rs` listens, on a
//! connection of its own: `session.rs`); `election.rs` elects the evaluator.

mod bigint;
mod canary;
mod change_feed;
mod console;
mod credentials;
mod denials;
mod election;
mod import;
mod migrations;
mod quotas;
mod rollouts;
mod samples;
mod session;
mod sidecars;
mod target;
mod traffic;
mod versions;

pub use target::Target;

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};

use crate::store::api::{Candidate, Store, StoreFuture};
use crate::store::error::StoreError;
use crate::store::model::{
    CanaryWindow, Change, CredentialRows, Denial, DenialBucket, DenialFilter, DenialGroup, DenialMark, Heads, KeyRow,
    Leader, NewKey, NewVersion, PolicyVersion, QuotaDemand, Retention, Rollout, RolloutState, Sample, SampleFilter,
    SampleRetention, SecretRow, ShadowCount, SidecarRecord, StoreCopy, Stored, StoredDenial, StoredSample, TrafficRow,
};
use crate::store::postgres::target::CALL_TIMEOUT;
use crate::store::prune::PruneClock;

/// Connections per replica.
const POOL_SIZE: usize = 16;
/// How long `copy-store`'s import may take.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(600);

/// A handle to the PostgreSQL store; clones share the pool.
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
    target: Arc<Target>,
    epoch: u64,
    /// When this replica last pruned the deny log (ms).
    pruned_at: Arc<AtomicI64>,
    /// When this replica last pruned each service's samples.
    samples_pruned: Arc<PruneClock>,
}

impl Postgres {
    /// Connects, applies the migrations this database lacks and reads the epoch.
    pub async fn open(target: Target) -> Result<Postgres, StoreError> {
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match &target.tls {
            Some(tls) => Manager::from_config(target.config.clone(), tls.clone(), manager_config),
            None => Manager::from_config(target.config.clone(), tokio_postgres::NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CALL_TIMEOUT))
            .create_timeout(Some(CALL_TIMEOUT))
            .recycle_timeout(Some(CALL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Failed(format!("{}: {e}", target.name)))?;
        let mut store = Postgres {
            pool,
            target: Arc::new(target),
            epoch: 0,
            pruned_at: Arc::new(AtomicI64::new(0)),
            samples_pruned: Arc::default(),
        };
        let mut client = store.client().await?;
        migrations::run(&mut client).await.map_err(|e| store.target.error(e))?;
        store.epoch = credentials::epoch(&client).await?;
        Ok(store)
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => self.target.error(e),
            PoolError::Timeout(_) => self.target.unavailable("no connection within the timeout"),
            e => self.target.unavailable(e),
        })
    }

    /// Runs one store call on a pooled connection, within `CALL_TIMEOUT`.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Object) -> Result<T, tokio_postgres::Error>,
    {
        self.with_timeout(CALL_TIMEOUT, f).await
    }

    /// `with`, within `limit`. A call cut off by it never returns its connection to the
    /// pool: the server may still be working on it, and the next borrower would wait.
    async fn with_timeout<T, F>(&self, limit: Duration, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Object) -> Result<T, tokio_postgres::Error>,
    {
        let call = async {
            let mut client = Borrowed(Some(self.client().await?));
            let out = match client.0.as_mut() {
                Some(c) => f(c).await.map_err(|e| self.target.error(e)),
                None => Err(self.target.unavailable("no connection")),
            };
            client.give_back();
            out
        };
        tokio::time::timeout(limit, call).await.map_err(|_| self.target.unavailable("no answer within the timeout"))?
    }
}

/// A pooled connection that goes back to the pool only when `give_back` says the call
/// finished; dropped otherwise (a call cut off midway), it is taken out and closed.
struct Borrowed(Option<Object>);

impl Borrowed {
    fn give_back(&mut self) {
        drop(self.0.take());
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(Object::take(object));
        }
    }
}

impl Store for Postgres {
    fn epoch(&self) -> u64 {
        self.epoch
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.with(async |c| c.execute("SELECT 1", &[]).await.map(drop)))
    }

    fn describe(&self) -> String {
        self.target.name.clone()
    }

    fn candidate(&self, replica: &str) -> Box<dyn Candidate> {
        Box::new(election::PgCandidate::new(Target::clone(&self.target), replica.to_owned()))
    }

    fn leader(&self) -> StoreFuture<'_, Option<Leader>> {
        Box::pin(self.with(async |c| election::leader(c).await))
    }

    fn changes(&self) -> Option<tokio::sync::mpsc::Receiver<Change>> {
        Some(change_feed::listen(Target::clone(&self.target)))
    }

    fn apply(&self, docs: Vec<NewVersion>, dry_run: bool) -> StoreFuture<'_, Vec<Stored>> {
        Box::pin(async move { self.with(async move |c| versions::apply(c, docs, dry_run).await).await? })
    }

    fn current<'a>(&'a self, service: &'a str) -> StoreFuture<'a, Option<PolicyVersion>> {
        Box::pin(self.with(async move |c| versions::current(&*c, service).await))
    }

    fn version<'a>(&'a self, service: &'a str, version: u64) -> StoreFuture<'a, Option<PolicyVersion>> {
        Box::pin(self.with(async move |c| versions::get(c, service, version).await))
    }

    fn history<'a>(&'a self, service: &'a str) -> StoreFuture<'a, Vec<PolicyVersion>> {
        Box::pin(self.with(async move |c| versions::history(c, service).await))
    }

    fn list_current(&self) -> StoreFuture<'_, Vec<PolicyVersion>> {
        Box::pin(self.with(async |c| versions::list_current(c).await))
    }

    fn heads(&self) -> StoreFuture<'_, Heads> {
        Box::pin(self.with(async |c| {
            let versions = versions::heads(c).await?;
            Ok(Heads { versions, credentials_revision: credentials::revision(c).await? })
        }))
    }

    fn save_sidecars(&self, records: Vec<SidecarRecord>) -> StoreFuture<'_, ()> {
        Box::pin(self.with(async move |c| sidecars::save(c, &records).await))
    }

    fn sidecars(&self) -> StoreFuture<'_, Vec<SidecarRecord>> {
        Box::pin(self.with(async |c| sidecars::list(c).await))
    }

    fn create_keys(&self, keys: Vec<NewKey>) -> StoreFuture<'_, Vec<KeyRow>> {
        Box::pin(self.with(async move |c| credentials::create_keys(c, keys).await))
    }

    fn keys(&self, service: Option<String>, client: Option<String>) -> StoreFuture<'_, Vec<KeyRow>> {
        Box::pin(self.with(async move |c| credentials::keys(c, service.as_deref(), client.as_deref()).await))
    }

    fn revoke_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRow>> {
        Box::pin(self.with(async move |c| credentials::revoke_key(c, id).await))
    }

    fn lookup_key<'a>(&'a self, service: &'a str, sha256: Vec<u8>) -> StoreFuture<'a, Option<KeyRow>> {
        Box::pin(self.with(async move |c| credentials::lookup_key(c, service, &sha256).await))
    }

    fn set_secret<'a>(
        &'a self,
        name: &'a str,
        value: Vec<u8>,
        retire_previous_after_ms: i64,
    ) -> StoreFuture<'a, SecretRow> {
        Box::pin(self.with(async move |c| credentials::set_secret(c, name, value, retire_previous_after_ms).await))
    }

    fn secrets(&self) -> StoreFuture<'_, Vec<SecretRow>> {
        Box::pin(self.with(async |c| credentials::secrets(c).await))
    }

    fn bump_credentials_revision(&self) -> StoreFuture<'_, u64> {
        Box::pin(self.with(async |c| credentials::bump_revision(c).await))
    }

    fn credentials<'a>(
        &'a self,
        service: &'a str,
        since: u64,
        secret_names: Vec<String>,
    ) -> StoreFuture<'a, CredentialRows> {
        Box::pin(self.with(async move |c| credentials::credentials(c, service, since, &secret_names).await))
    }

    fn exchange_demand<'a>(
        &'a self,
        replica: &'a str,
        mine: QuotaDemand,
        fresh_ms: i64,
    ) -> StoreFuture<'a, QuotaDemand> {
        Box::pin(self.with(async move |c| quotas::exchange(c, replica, mine, fresh_ms).await))
    }

    fn save_traffic(&self, rows: Vec<TrafficRow>) -> StoreFuture<'_, ()> {
        Box::pin(self.with(async move |c| traffic::save(c, &rows).await))
    }

    fn traffic(&self, since_unix_ms: i64) -> StoreFuture<'_, Vec<TrafficRow>> {
        Box::pin(self.with(async move |c| traffic::since(c, since_unix_ms).await))
    }

    fn import(&self, data: StoreCopy) -> StoreFuture<'_, ()> {
        // A whole store in one transaction: far longer than any other call.
        Box::pin(self.with_timeout(IMPORT_TIMEOUT, async move |c| import::import(c, &data).await))
    }

    fn insert_denials<'a>(
        &'a self,
        service: &'a str,
        instance: &'a str,
        records: Vec<Denial>,
        retention: Retention,
    ) -> StoreFuture<'a, ()> {
        let pruned_at = self.pruned_at.clone();
        Box::pin(self.with(async move |c| denials::insert(c, service, instance, &records, retention, &pruned_at).await))
    }

    fn denials(&self, filter: DenialFilter) -> StoreFuture<'_, Vec<StoredDenial>> {
        Box::pin(self.with(async move |c| denials::list(c, &filter).await))
    }

    fn insert_samples<'a>(
        &'a self,
        service: &'a str,
        instance: &'a str,
        records: Vec<Sample>,
        retention: SampleRetention,
    ) -> StoreFuture<'a, ()> {
        let pruned = self.samples_pruned.clone();
        Box::pin(self.with(async move |c| samples::insert(c, service, instance, &records, retention, &pruned).await))
    }

    fn samples(&self, filter: SampleFilter) -> StoreFuture<'_, Vec<StoredSample>> {
        Box::pin(self.with(async move |c| samples::list(c, &filter).await))
    }

    fn denial_groups(&self, filter: DenialFilter) -> StoreFuture<'_, Vec<DenialGroup>> {
        Box::pin(self.with(async move |c| denials::groups(c, &filter).await))
    }

    fn denial_buckets(&self, filter: DenialFilter, bucket_ms: i64) -> StoreFuture<'_, Vec<DenialBucket>> {
        Box::pin(self.with(async move |c| denials::buckets(c, &filter, bucket_ms).await))
    }

    fn set_denial_mark(&self, mark: DenialMark) -> StoreFuture<'_, ()> {
        Box::pin(self.with(async move |c| console::set_mark(c, &mark).await))
    }

    fn denial_marks(&self, group: Option<String>) -> StoreFuture<'_, Vec<DenialMark>> {
        Box::pin(self.with(async move |c| console::marks(c, group.as_deref()).await))
    }

    fn console_key(&self, fresh: Vec<u8>) -> StoreFuture<'_, Vec<u8>> {
        Box::pin(self.with(async move |c| console::key(c, &fresh).await))
    }

    fn add_shadow_counts<'a>(&'a self, service: &'a str, counts: Vec<ShadowCount>) -> StoreFuture<'a, ()> {
        Box::pin(self.with(async move |c| rollouts::add_shadow_counts(c, service, &counts).await))
    }

    fn shadow_counts<'a>(&'a self, service: &'a str, version: u64) -> StoreFuture<'a, Vec<ShadowCount>> {
        Box::pin(self.with(async move |c| rollouts::shadow_counts(c, service, version).await))
    }

    fn rollouts<'a>(&'a self, service: Option<&'a str>) -> StoreFuture<'a, Vec<Rollout>> {
        Box::pin(self.with(async move |c| rollouts::list(c, service).await))
    }

    fn share_canary<'a>(&'a self, replica: &'a str, windows: Vec<CanaryWindow>) -> StoreFuture<'a, ()> {
        Box::pin(self.with(async move |c| canary::share(c, replica, &windows).await))
    }

    fn canary_windows(&self, fresh_ms: i64) -> StoreFuture<'_, Vec<CanaryWindow>> {
        Box::pin(self.with(async move |c| canary::fresh(c, fresh_ms).await))
    }

    fn end_rollout<'a>(
        &'a self,
        service: &'a str,
        version: u64,
        state: RolloutState,
        by: &'a str,
        reason: &'a str,
    ) -> StoreFuture<'a, Option<Rollout>> {
        Box::pin(self.with(async move |c| rollouts::end(c, service, version, state, by, reason).await))
    }
}
