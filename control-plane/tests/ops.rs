//! The operations layer through its public API, over a real SQLite store or a store that
//! can be switched off: what is reported when a stored policy no longer validates, and
//! what happens when the store cannot answer (reported, UNAVAILABLE errors, counted).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use warden_control_plane::ops::{ApplyRequest, ControlPlane, OpsError};
use warden_control_plane::store::{
    CredentialRows, Denial, DenialBucket, DenialFilter, DenialGroup, DenialMark, Heads, KeyRow, NewKey, NewVersion,
    PolicyVersion, Retention, Rollout, RolloutState, Sample, SampleFilter, SampleRetention, SecretRow, ShadowCount,
    SidecarRecord, Sqlite, Store, StoreCopy, StoreError, StoreFuture, Stored, StoredDenial, StoredSample,
};

/// Valid once; this release refuses a route whose upstream is not defined.
const NO_LONGER_VALID: &str = "service: orders
routes:
  - name: a
    match: { path_prefix: /a }
    upstream: gone
";

const VALID: &str = "service: orders
routes:
  - name: a
    match: { path_prefix: /a }
";

fn apply(source: &str) -> ApplyRequest {
    ApplyRequest { source: source.into(), author: "test".into(), ..Default::default() }
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[tokio::test]
async fn a_stored_policy_that_no_longer_validates_is_reported_until_a_valid_version_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open(dir.path()).unwrap();
    let old = NewVersion {
        service: "orders".into(),
        author: "an older release".into(),
        message: String::new(),
        content_hash: warden_policy::yaml::content_hash(NO_LONGER_VALID),
        source_yaml: NO_LONGER_VALID.into(),
        rollout: None,
        force: false,
    };
    store.apply(vec![old], false).await.unwrap();

    let cp = ControlPlane::start(Arc::new(store)).await.unwrap();
    let invalid = cp.status(None).await.invalid_policies;
    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert_eq!((invalid[0].service.as_str(), invalid[0].version), ("orders", 1));
    assert!(invalid[0].error.contains("upstream 'gone' is not defined"), "{}", invalid[0].error);
    assert!(cp.status(Some("billing")).await.invalid_policies.is_empty(), "filtered by service");
    assert!(has_line(&cp.metrics_text(), "warden_stored_policies_invalid 1"));

    let applied = cp.apply(apply(VALID)).await.unwrap();
    assert_eq!((applied[0].version, applied[0].changed), (2, true));
    assert!(cp.status(None).await.invalid_policies.is_empty(), "a valid v2 replaced it");
    let metrics = cp.metrics_text();
    assert!(has_line(&metrics, "warden_stored_policies_invalid 0"), "{metrics}");
    assert!(has_line(&metrics, r#"warden_service_version{service="orders"} 2"#), "{metrics}");
    assert!(has_line(&metrics, r#"warden_applies_total{operation="apply",result="applied"} 1"#), "{metrics}");
}

#[tokio::test]
async fn a_store_that_cannot_answer_is_reported_and_counted_and_changes_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Switched { inner: Sqlite::open(dir.path()).unwrap(), down: AtomicBool::new(false) });
    let cp = ControlPlane::start(store.clone()).await.unwrap();
    assert!(cp.check_store().await.up);
    assert!(has_line(&cp.metrics_text(), "warden_store_up 1"));

    store.down.store(true, Ordering::Relaxed);
    let health = cp.check_store().await;
    assert!(!health.up && health.error.contains("connection refused"), "{health:?}");
    assert_eq!(cp.status(None).await.store, health, "status carries the store's health");
    let refused = cp.apply(apply(VALID)).await;
    assert!(matches!(refused, Err(OpsError::Store(StoreError::Unavailable(_)))), "{refused:?}");
    let invalid = cp.apply(apply("service: orders\nroutes: 7\n")).await;
    assert!(matches!(invalid, Err(OpsError::Invalid(_))), "refused before the store: {invalid:?}");
    let metrics = cp.metrics_text();
    for line in [
        "warden_store_up 0",
        r#"warden_store_errors_total{operation="ping",kind="unavailable"} 1"#,
        r#"warden_store_errors_total{operation="apply",kind="unavailable"} 1"#,
        r#"warden_applies_total{operation="apply",result="failed"} 1"#,
        r#"warden_applies_total{operation="apply",result="refused"} 1"#,
    ] {
        assert!(has_line(&metrics, line), "no {line} in:\n{metrics}");
    }

    store.down.store(false, Ordering::Relaxed);
    cp.apply(apply(VALID)).await.unwrap();
    assert!(cp.store_health().up, "a call that succeeds marks the store up again");
}

/// SQLite that answers every call with `Unavailable` while `down`, as a networked store
/// does when its database is unreachable.
struct Switched {
    inner: Sqlite,
    down: AtomicBool,
}

impl Switched {
    fn check<'a, T: Send + 'a>(&'a self, call: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        match self.down.load(Ordering::Relaxed) {
            true => Box::pin(async { Err(StoreError::Unavailable("connection refused".into())) }),
            false => call,
        }
    }
}

impl Store for Switched {
    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }
    fn ping(&self) -> StoreFuture<'_, ()> {
        self.check(self.inner.ping())
    }
    fn apply(&self, docs: Vec<NewVersion>, dry_run: bool) -> StoreFuture<'_, Vec<Stored>> {
        self.check(self.inner.apply(docs, dry_run))
    }
    fn current<'a>(&'a self, service: &'a str) -> StoreFuture<'a, Option<PolicyVersion>> {
        self.check(self.inner.current(service))
    }
    fn version<'a>(&'a self, service: &'a str, version: u64) -> StoreFuture<'a, Option<PolicyVersion>> {
        self.check(self.inner.version(service, version))
    }
    fn history<'a>(&'a self, service: &'a str) -> StoreFuture<'a, Vec<PolicyVersion>> {
        self.check(self.inner.history(service))
    }
    fn list_current(&self) -> StoreFuture<'_, Vec<PolicyVersion>> {
        self.check(self.inner.list_current())
    }
    fn heads(&self) -> StoreFuture<'_, Heads> {
        self.check(self.inner.heads())
    }
    fn import(&self, data: StoreCopy) -> StoreFuture<'_, ()> {
        self.check(self.inner.import(data))
    }
    fn save_sidecars(&self, records: Vec<SidecarRecord>) -> StoreFuture<'_, ()> {
        self.check(self.inner.save_sidecars(records))
    }
    fn sidecars(&self) -> StoreFuture<'_, Vec<SidecarRecord>> {
        self.check(self.inner.sidecars())
    }
    fn create_keys(&self, keys: Vec<NewKey>) -> StoreFuture<'_, Vec<KeyRow>> {
        self.check(self.inner.create_keys(keys))
    }
    fn keys(&self, service: Option<String>, client: Option<String>) -> StoreFuture<'_, Vec<KeyRow>> {
        self.check(self.inner.keys(service, client))
    }
    fn revoke_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<KeyRow>> {
        self.check(self.inner.revoke_key(id))
    }
    fn lookup_key<'a>(&'a self, service: &'a str, sha256: Vec<u8>) -> StoreFuture<'a, Option<KeyRow>> {
        self.check(self.inner.lookup_key(service, sha256))
    }
    fn set_secret<'a>(&'a self, name: &'a str, value: Vec<u8>, retire: i64) -> StoreFuture<'a, SecretRow> {
        self.check(self.inner.set_secret(name, value, retire))
    }
    fn secrets(&self) -> StoreFuture<'_, Vec<SecretRow>> {
        self.check(self.inner.secrets())
    }
    fn bump_credentials_revision(&self) -> StoreFuture<'_, u64> {
        self.check(self.inner.bump_credentials_revision())
    }
    fn credentials<'a>(&'a self, service: &'a str, since: u64, names: Vec<String>) -> StoreFuture<'a, CredentialRows> {
        self.check(self.inner.credentials(service, since, names))
    }
    fn insert_denials<'a>(
        &'a self,
        service: &'a str,
        instance: &'a str,
        denials: Vec<Denial>,
        retention: Retention,
    ) -> StoreFuture<'a, ()> {
        self.check(self.inner.insert_denials(service, instance, denials, retention))
    }
    fn denials(&self, filter: DenialFilter) -> StoreFuture<'_, Vec<StoredDenial>> {
        self.check(self.inner.denials(filter))
    }
    fn denial_groups(&self, filter: DenialFilter) -> StoreFuture<'_, Vec<DenialGroup>> {
        self.check(self.inner.denial_groups(filter))
    }
    fn denial_buckets(&self, filter: DenialFilter, bucket_ms: i64) -> StoreFuture<'_, Vec<DenialBucket>> {
        self.check(self.inner.denial_buckets(filter, bucket_ms))
    }
    fn set_denial_mark(&self, mark: DenialMark) -> StoreFuture<'_, ()> {
        self.check(self.inner.set_denial_mark(mark))
    }
    fn denial_marks(&self, group: Option<String>) -> StoreFuture<'_, Vec<DenialMark>> {
        self.check(self.inner.denial_marks(group))
    }
    fn console_key(&self, fresh: Vec<u8>) -> StoreFuture<'_, Vec<u8>> {
        self.check(self.inner.console_key(fresh))
    }
    fn add_shadow_counts<'a>(&'a self, service: &'a str, counts: Vec<ShadowCount>) -> StoreFuture<'a, ()> {
        self.check(self.inner.add_shadow_counts(service, counts))
    }
    fn shadow_counts<'a>(&'a self, service: &'a str, version: u64) -> StoreFuture<'a, Vec<ShadowCount>> {
        self.check(self.inner.shadow_counts(service, version))
    }
    fn rollouts<'a>(&'a self, service: Option<&'a str>) -> StoreFuture<'a, Vec<Rollout>> {
        self.check(self.inner.rollouts(service))
    }
    fn end_rollout<'a>(
        &'a self,
        service: &'a str,
        version: u64,
        state: RolloutState,
        by: &'a str,
        reason: &'a str,
    ) -> StoreFuture<'a, Option<Rollout>> {
        self.check(self.inner.end_rollout(service, version, state, by, reason))
    }
    fn insert_samples<'a>(
        &'a self,
        service: &'a str,
        instance: &'a str,
        samples: Vec<Sample>,
        retention: SampleRetention,
    ) -> StoreFuture<'a, ()> {
        self.check(self.inner.insert_samples(service, instance, samples, retention))
    }
    fn samples(&self, filter: SampleFilter) -> StoreFuture<'_, Vec<StoredSample>> {
        self.check(self.inner.samples(filter))
    }
}
