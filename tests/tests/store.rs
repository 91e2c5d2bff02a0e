//! Both stores keep the same contract: every scenario here runs on the embedded SQLite
//! file and on a real PostgreSQL (a database of its own on the test server, see
//! `warden_e2e::postgres`), through the `Store` interface the operations layer uses.
//! Two handles on one database stand for two control-plane replicas.

// A test: failing loudly at the spot is what it is for (the helpers below are not #[test]s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use warden_control_plane::clock::now_unix_ms;
use warden_control_plane::store::{
    Change, Denial, DenialFilter, DenialMark, Location, Mark, NewKey, NewRollout, NewVersion, Retention, RolloutMode,
    RolloutState, Sample, SampleFilter, SampleRetention, ShadowRecords, Store, group_id,
};
use warden_e2e::{eventually, postgres};

/// A store, and how to open another handle on it (another replica).
struct Backend {
    location: Location,
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    async fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::parse(&format!("sqlite://{}/sub/warden.db", dir.path().display()), None).unwrap();
        let store = location.open().await.unwrap();
        Backend { location, store, _dir: Some(dir) }
    }

    async fn postgres() -> Backend {
        let db = postgres::database().await;
        let location = Location::parse(&db.url, None).unwrap();
        let store = location.open().await.unwrap();
        Backend { location, store, _dir: None }
    }

    async fn another(&self) -> Arc<dyn Store> {
        self.location.open().await.unwrap()
    }
}

/// Runs a scenario on both stores.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite() {
                super::$name(super::Backend::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                super::$name(super::Backend::postgres().await).await
            }
        }
    )*};
}

on_both!(
    versions_are_numbered_per_service_and_unchanged_content_is_not_stored,
    a_dry_run_writes_nothing_and_another_handle_sees_what_was_committed,
    concurrent_applies_to_one_service_get_one_number_each,
    keys_are_per_service_revocation_sticks_and_every_change_bumps_the_revision,
    a_new_secret_value_keeps_the_old_one_verifying_until_it_retires,
    the_deny_log_is_filtered_grouped_and_kept_within_its_bounds,
    sidecar_records_are_upserted_in_batches,
    samples_come_back_whole_and_are_kept_per_service_within_their_bounds,
    a_rollout_candidate_is_not_current_until_promoted_and_ends_once,
    a_running_rollout_refuses_other_changes_unless_forced,
    shadow_differences_are_counted_per_candidate,
    shadow_records_are_kept_apart_from_the_review_queue,
    refusal_groups_carry_their_span_and_counts_over_time_and_keep_their_marks,
    every_replica_signs_console_sessions_with_one_key,
);

fn doc(service: &str, yaml: &str) -> NewVersion {
    NewVersion {
        service: service.into(),
        author: "alice".into(),
        message: "m".into(),
        content_hash: warden_policy::yaml::content_hash(yaml),
        source_yaml: yaml.into(),
        rollout: None,
        force: false,
    }
}

async fn versions_are_numbered_per_service_and_unchanged_content_is_not_stored(b: Backend) {
    let store = &b.store;
    let r = store.apply(vec![doc("a", "x: 1"), doc("b", "y: 1")], false).await.unwrap();
    assert_eq!(r.iter().map(|s| (s.version.version, s.changed)).collect::<Vec<_>>(), [(1, true), (1, true)]);
    let r = store.apply(vec![doc("a", "x: 1"), doc("b", "y: 2")], false).await.unwrap();
    assert_eq!(r.iter().map(|s| (s.version.version, s.changed)).collect::<Vec<_>>(), [(1, false), (2, true)]);
    assert_eq!(r[1].previous.as_ref().unwrap().source_yaml, "y: 1");
    let h = store.history("b").await.unwrap();
    assert_eq!(h.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1]);
    assert!(h.iter().all(|v| v.source_yaml.is_empty() && v.author == "alice"), "listings carry no sources");
    assert_eq!(store.version("b", 1).await.unwrap().unwrap().source_yaml, "y: 1");
    assert_eq!(store.current("b").await.unwrap().unwrap().source_yaml, "y: 2");
    let current = store.list_current().await.unwrap();
    assert_eq!(current.iter().map(|v| (v.service.as_str(), v.version)).collect::<Vec<_>>(), [("a", 1), ("b", 2)]);
    let heads = store.heads().await.unwrap();
    assert_eq!(heads.versions, [("a".to_owned(), 1), ("b".to_owned(), 2)]);
}

async fn a_dry_run_writes_nothing_and_another_handle_sees_what_was_committed(b: Backend) {
    b.store.apply(vec![doc("a", "x: 1")], false).await.unwrap();
    let r = b.store.apply(vec![doc("a", "x: 2")], true).await.unwrap();
    assert_eq!(r[0].version.version, 2, "a dry run says what the version would be");
    let other = b.another().await;
    let cur = other.current("a").await.unwrap().unwrap();
    assert_eq!((cur.version, cur.source_yaml.as_str()), (1, "x: 1"));
    assert_eq!(other.epoch(), b.store.epoch(), "one store, one credentials epoch, whichever handle reads it");
    other.ping().await.unwrap();
}

/// Two replicas applying to one service at once: every apply gets its own number, none
/// is lost, none is numbered twice.
async fn concurrent_applies_to_one_service_get_one_number_each(b: Backend) {
    let other = b.another().await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = if i % 2 == 0 { b.store.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move { store.apply(vec![doc("orders", &format!("x: {i}"))], false).await }));
    }
    let mut numbers: Vec<u64> = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap().unwrap()[0].version.version);
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=10).collect::<Vec<_>>());
    assert_eq!(b.store.history("orders").await.unwrap().len(), 10);
}

fn key(id: &str, service: &str, hash: u8) -> NewKey {
    NewKey {
        id: id.into(),
        service: service.into(),
        client: "acme".into(),
        plan: "pro".into(),
        sha256: vec![hash; 32],
        prefix: "wdn_ab".into(),
        expires_unix_ms: 0,
    }
}

async fn keys_are_per_service_revocation_sticks_and_every_change_bumps_the_revision(b: Backend) {
    let store = &b.store;
    store.create_keys(vec![key("k1", "orders", 1)]).await.unwrap();
    store.create_keys(vec![key("k2", "orders", 2)]).await.unwrap();
    store.create_keys(vec![key("k3", "billing", 3)]).await.unwrap();
    assert!(store.create_keys(vec![key("k4", "orders", 1)]).await.is_err(), "a hash is unique");
    let read = store.credentials("orders", 0, vec![]).await.unwrap();
    assert_eq!((read.revision, read.keys.len()), (3, 2));
    assert_eq!(store.heads().await.unwrap().credentials_revision, 3);

    let revoked = store.revoke_key("k1").await.unwrap().unwrap();
    assert!(revoked.revoked_unix_ms > 0);
    let again = b.another().await.revoke_key("k1").await.unwrap().unwrap();
    assert_eq!(again.revoked_unix_ms, revoked.revoked_unix_ms, "a second revoke changes nothing");
    assert_eq!(store.revoke_key("nope").await.unwrap(), None);
    let read = store.credentials("orders", 3, vec![]).await.unwrap();
    assert_eq!(read.revision, 4);
    assert_eq!(read.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["k1"], "only what changed after r3");
    assert_eq!(store.credentials("orders", 4, vec![]).await.unwrap().keys, []);
    assert_eq!(store.lookup_key("orders", vec![2; 32]).await.unwrap().unwrap().id, "k2");
    assert_eq!(store.lookup_key("billing", vec![2; 32]).await.unwrap(), None);
    assert_eq!(store.keys(Some("orders".into()), None).await.unwrap().len(), 2);
    assert_eq!(store.keys(None, Some("acme".into())).await.unwrap().len(), 3);
    assert_eq!(store.bump_credentials_revision().await.unwrap(), 5);
}

async fn a_new_secret_value_keeps_the_old_one_verifying_until_it_retires(b: Backend) {
    let store = &b.store;
    store.set_secret("stripe", b"one".to_vec(), 0).await.unwrap();
    store.set_secret("stripe", b"two".to_vec(), 3_600_000).await.unwrap();
    store.set_secret("github", b"gh".to_vec(), 0).await.unwrap();
    let secrets = store.credentials("orders", 0, vec!["stripe".into()]).await.unwrap().secrets;
    let values: Vec<&[u8]> = secrets.iter().map(|s| s.value.as_slice()).collect();
    assert_eq!(values, [b"one".as_slice(), b"two".as_slice()]);
    assert!(secrets[0].expires_unix_ms > now_unix_ms() && secrets[1].expires_unix_ms == 0);

    store.set_secret("stripe", b"three".to_vec(), 0).await.unwrap();
    let secrets = store.credentials("orders", 0, vec!["stripe".into(), "github".into()]).await.unwrap().secrets;
    let values: Vec<&[u8]> = secrets.iter().map(|s| s.value.as_slice()).collect();
    assert_eq!(values, [b"three".as_slice(), b"gh".as_slice()], "in the order asked for");
    let listed = store.secrets().await.unwrap();
    assert_eq!(listed.len(), 2, "github and the one active stripe value");
    assert!(listed.iter().all(|s| s.value.is_empty()), "listings carry no values");
}

fn denial(at: i64, rule: &str, client: &str) -> Denial {
    Denial {
        unix_ms: at,
        request_id: format!("r{at}"),
        rule: rule.into(),
        code: "rate_limited".into(),
        client_id: client.into(),
        status: 429,
        dry_run: client == "b",
        policy_version: 7,
        headers: vec![("x-tenant".into(), "acme".into())],
        auth_provider: "keys".into(),
        key_id: "key_1".into(),
        ..Default::default()
    }
}

async fn the_deny_log_is_filtered_grouped_and_kept_within_its_bounds(b: Backend) {
    let store = &b.store;
    let now = now_unix_ms();
    let keep = Retention { max_age_ms: 60_000, max_rows: 4 };
    let mut records = vec![denial(now - 120_000, "old", "a"), denial(now, "l", "b")];
    records.extend((1..=4).map(|i| denial(now + i, "l", "a")));
    // The first insert of a store prunes: past the retention age, then past the row cap.
    store.insert_denials("orders", "i1", records, keep).await.unwrap();
    let all = store.denials(DenialFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 4, "the old one aged out, then the oldest past the cap: {all:?}");
    assert_eq!(all[0].denial.request_id, format!("r{}", now + 4), "newest first");
    assert_eq!((all[0].service.as_str(), all[0].instance.as_str(), all[0].denial.status), ("orders", "i1", 429));
    assert_eq!(all[0].denial, denial(now + 4, "l", "a"), "every field comes back, head fields too");
    let only_rule = DenialFilter { rule: "l".into(), since_unix_ms: now + 3, limit: 10, ..Default::default() };
    assert_eq!(store.denials(only_rule).await.unwrap().len(), 2);
    let groups = store.denial_groups(DenialFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!((groups[0].client_id.as_str(), groups[0].count, groups[0].dry_run), ("a", 4, 0));
    assert_eq!(groups[0].last_unix_ms, now + 4);
}

async fn refusal_groups_carry_their_span_and_counts_over_time_and_keep_their_marks(b: Backend) {
    let store = &b.store;
    const HOUR: i64 = 3_600_000;
    // Whole hours, so the buckets are known: two refusals an hour ago, one now.
    let now = now_unix_ms() / HOUR * HOUR + 10;
    let keep = Retention { max_age_ms: 10 * HOUR, max_rows: 100 };
    let records = vec![denial(now - HOUR, "l", "a"), denial(now - HOUR + 5, "l", "a"), denial(now, "l", "a")];
    store.insert_denials("orders", "i1", records, keep).await.unwrap();
    let filter = DenialFilter { limit: 10, ..Default::default() };
    let groups = store.denial_groups(filter.clone()).await.unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    let g = &groups[0];
    assert_eq!((g.first_unix_ms, g.last_unix_ms, g.count), (now - HOUR, now, 3));
    assert_eq!(g.example_request_id, format!("r{now}"), "the newest refusal's id");
    assert_eq!(g.id(), group_id("orders", "", "l", "rate_limited", "a"));
    assert_eq!(g.id().len(), 12);
    let mut buckets = store.denial_buckets(filter.clone(), HOUR).await.unwrap();
    buckets.sort_by_key(|x| x.start_unix_ms);
    let counts: Vec<(String, i64, u64)> = buckets.into_iter().map(|x| (x.group, x.start_unix_ms, x.count)).collect();
    assert_eq!(counts, [(g.id(), now - 10 - HOUR, 2), (g.id(), now - 10, 1)]);

    // A mark set through one replica is read through another; a new one replaces it.
    let mark = |m: Mark, note: &str| DenialMark {
        group: g.id(),
        service: "orders".into(),
        route: String::new(),
        rule: "l".into(),
        code: "rate_limited".into(),
        client_id: "a".into(),
        mark: m,
        note: note.into(),
        owner: "team-api".into(),
        author: "ada".into(),
        unix_ms: now,
    };
    store.set_denial_mark(mark(Mark::FalsePositive, "partner")).await.unwrap();
    let other = b.another().await;
    assert_eq!(other.denial_marks(None).await.unwrap(), [mark(Mark::FalsePositive, "partner")]);
    other.set_denial_mark(mark(Mark::Expected, "on purpose")).await.unwrap();
    assert_eq!(store.denial_marks(Some(g.id())).await.unwrap(), [mark(Mark::Expected, "on purpose")]);
    assert!(store.denial_marks(Some("000000000000".into())).await.unwrap().is_empty());
}

async fn every_replica_signs_console_sessions_with_one_key(b: Backend) {
    let first = b.store.console_key(vec![1; 32]).await.unwrap();
    assert_eq!(first, vec![1; 32], "the first key offered is kept");
    let other = b.another().await;
    assert_eq!(other.console_key(vec![2; 32]).await.unwrap(), first, "a later replica reads the same key");
}

fn sample(at: i64, route: &str) -> Sample {
    Sample {
        unix_ms: at,
        request_id: format!("r{at}"),
        method: "GET".into(),
        host: "api.example.com".into(),
        path: format!("/{route}"),
        client_ip: "10.0.0.1".into(),
        client_id: "acme".into(),
        auth_provider: "keys".into(),
        key_id: "key_1".into(),
        headers: vec![("x-tenant".into(), "acme".into()), ("x-region".into(), "eu".into())],
        credential_headers: vec!["x-api-key".into()],
        route: route.into(),
        decision: "forward".into(),
        status: 200,
        policy_version: 3,
        weight: 12.5,
        plan: "gold".into(),
        ..Default::default()
    }
}

async fn samples_come_back_whole_and_are_kept_per_service_within_their_bounds(b: Backend) {
    let now = now_unix_ms();
    let keep = SampleRetention { max_age_ms: 60_000, max_rows: 3 };
    let mut orders = vec![sample(now - 120_000, "old")];
    orders.extend((1..=5).map(|i| sample(now + i, "a")));
    // The first insert of a store prunes: past the age, then each service past its cap.
    b.store.insert_samples("orders", "i1", orders, keep).await.unwrap();
    b.another()
        .await
        .insert_samples("billing", "i2", vec![sample(now, "b"), sample(now + 1, "b")], keep)
        .await
        .unwrap();
    let of = |service: &str| SampleFilter { service: service.into(), limit: 100, ..Default::default() };
    let kept = b.store.samples(of("orders")).await.unwrap();
    assert_eq!(kept.iter().map(|s| s.sample.unix_ms).collect::<Vec<_>>(), [now + 5, now + 4, now + 3], "newest first");
    assert_eq!((kept[0].service.as_str(), kept[0].instance.as_str()), ("orders", "i1"));
    assert_eq!(kept[0].sample, sample(now + 5, "a"), "every field comes back");
    assert_eq!(b.store.samples(of("billing")).await.unwrap().len(), 2, "a quiet service keeps its own");
    let recent = SampleFilter { since_unix_ms: now + 4, limit: 100, ..Default::default() };
    assert_eq!(b.store.samples(recent).await.unwrap().len(), 2);
}

async fn a_rollout_candidate_is_not_current_until_promoted_and_ends_once(b: Backend) {
    let store = &b.store;
    store.apply(vec![doc("orders", "v: 1")], false).await.unwrap();
    let plan = NewRollout {
        mode: RolloutMode::Canary,
        canary_percent: 25,
        canary_instances: vec!["o-1".into()],
        abort_if: vec!["refused>+2%".into()],
    };
    let candidate = NewVersion { rollout: Some(plan.clone()), ..doc("orders", "v: 2") };
    let stored = store.apply(vec![candidate], false).await.unwrap().remove(0);
    let r = stored.rollout.expect("a rollout started");
    assert_eq!((stored.version.version, r.base_version, r.state), (2, 1, RolloutState::Canary));
    assert_eq!(
        (r.canary_instances.as_slice(), r.abort_if.as_slice()),
        (&plan.canary_instances[..], &plan.abort_if[..])
    );
    // The live version stays current, everywhere a replica looks.
    let other = b.another().await;
    assert_eq!(other.current("orders").await.unwrap().unwrap().version, 1);
    assert_eq!(other.list_current().await.unwrap()[0].version, 1);
    assert_eq!(other.heads().await.unwrap().versions, [("orders".to_owned(), 1)]);
    assert_eq!(other.rollouts(Some("orders")).await.unwrap(), std::slice::from_ref(&r));

    // Ended once: whoever asks second finds it over.
    let aborted = store.end_rollout("orders", 2, RolloutState::Aborted, "evaluator", "refused").await.unwrap();
    let aborted = aborted.expect("it was running");
    assert_eq!(
        (aborted.state, aborted.ended_by.as_str(), aborted.reason.as_str()),
        (RolloutState::Aborted, "evaluator", "refused")
    );
    assert!(aborted.ended_unix_ms >= r.started_unix_ms);
    assert_eq!(other.end_rollout("orders", 2, RolloutState::Promoted, "bob", "").await.unwrap(), None);
    assert_eq!(store.current("orders").await.unwrap().unwrap().version, 1, "an aborted candidate is never current");

    // The next version is numbered after the aborted one; a promoted candidate is current.
    let shadow =
        NewRollout { mode: RolloutMode::Shadow, canary_percent: 0, canary_instances: vec![], abort_if: vec![] };
    let next = store.apply(vec![NewVersion { rollout: Some(shadow), ..doc("orders", "v: 3") }], false).await.unwrap();
    assert_eq!((next[0].version.version, next[0].previous.as_ref().unwrap().version), (3, 1));
    assert_eq!(store.rollouts(None).await.unwrap().iter().map(|r| r.version).collect::<Vec<_>>(), [3, 2]);
    store.end_rollout("orders", 3, RolloutState::Promoted, "bob", "looks fine").await.unwrap().unwrap();
    assert_eq!(other.current("orders").await.unwrap().unwrap().version, 3);
}

async fn a_running_rollout_refuses_other_changes_unless_forced(b: Backend) {
    use warden_control_plane::store::StoreError;
    let store = &b.store;
    store.apply(vec![doc("orders", "v: 1")], false).await.unwrap();
    let shadow =
        NewRollout { mode: RolloutMode::Shadow, canary_percent: 0, canary_instances: vec![], abort_if: vec![] };
    store.apply(vec![NewVersion { rollout: Some(shadow.clone()), ..doc("orders", "v: 2") }], false).await.unwrap();
    // Through another replica that has not heard of it: refused all the same.
    let other = b.another().await;
    let refused = other.apply(vec![doc("orders", "v: 3")], false).await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::RolloutRunning { service, version: 2, mode } if service == "orders" && mode == "shadow"),
        "{refused:?}"
    );
    let second = other.apply(vec![NewVersion { rollout: Some(shadow), ..doc("orders", "v: 4") }], false).await;
    assert!(matches!(second, Err(StoreError::RolloutRunning { .. })), "one rollout at a time: {second:?}");
    assert_eq!(store.current("orders").await.unwrap().unwrap().version, 1, "nothing was stored");
    // Unchanged content stores nothing, so it is no change to refuse.
    assert!(!other.apply(vec![doc("orders", "v: 1")], false).await.unwrap()[0].changed);
    let forced = other.apply(vec![NewVersion { force: true, ..doc("orders", "v: 3") }], false).await.unwrap().remove(0);
    let aborted = forced.aborted.expect("the running rollout was aborted");
    assert_eq!((aborted.version, aborted.state, forced.version.version), (2, RolloutState::Aborted, 3));
    assert_eq!(store.current("orders").await.unwrap().unwrap().version, 3);
    assert!(store.rollouts(Some("orders")).await.unwrap().iter().all(|r| !r.state.running()));
}

async fn shadow_differences_are_counted_per_candidate(b: Backend) {
    use warden_control_plane::store::ShadowCount;
    let count = |version, rule: &str, n, examples: &[&str]| ShadowCount {
        version,
        denied: true,
        route: "r".into(),
        rule: rule.into(),
        code: "forbidden".into(),
        client_id: String::new(),
        count: n,
        examples: examples.iter().map(|e| e.to_string()).collect(),
    };
    b.store.add_shadow_counts("orders", vec![count(2, "a", 3, &["x1"]), count(2, "b", 1, &["y1"])]).await.unwrap();
    b.another()
        .await
        .add_shadow_counts("orders", vec![count(2, "a", 4, &["x9"]), count(3, "a", 1, &[])])
        .await
        .unwrap();
    let counts = b.store.shadow_counts("orders", 2).await.unwrap();
    assert_eq!(counts, [count(2, "a", 7, &["x1"]), count(2, "b", 1, &["y1"])], "summed, the first examples kept");
    assert_eq!(b.store.shadow_counts("orders", 3).await.unwrap().len(), 1);
    assert!(b.store.shadow_counts("billing", 2).await.unwrap().is_empty());
}

async fn shadow_records_are_kept_apart_from_the_review_queue(b: Backend) {
    let store = &b.store;
    let now = now_unix_ms();
    let real = denial(now, "keys", "a");
    let shadow_deny = Denial { shadow: true, policy_version: 9, ..denial(now + 1, "keys", "b") };
    let shadow_allow = Denial { shadow_allowed_by: 9, ..denial(now + 2, "ip-block", "c") };
    let keep = Retention { max_age_ms: 60_000, max_rows: 100 };
    store.insert_denials("orders", "o-1", vec![real, shadow_deny, shadow_allow], keep).await.unwrap();
    let read = |shadow| async move {
        let filter = DenialFilter { limit: 10, shadow, ..Default::default() };
        let rows = store.denials(filter.clone()).await.unwrap();
        let groups = store.denial_groups(filter).await.unwrap();
        (rows.iter().map(|d| d.denial.client_id.clone()).collect::<Vec<_>>(), groups.len())
    };
    assert_eq!(
        read(ShadowRecords::Real).await,
        (vec!["c".to_owned(), "a".to_owned()], 2),
        "the queue: enforced refusals"
    );
    assert_eq!(read(ShadowRecords::Denied(9)).await, (vec!["b".to_owned()], 1));
    assert_eq!(read(ShadowRecords::Denied(8)).await, (vec![], 0), "another candidate's");
    assert_eq!(read(ShadowRecords::AllowedBy(9)).await, (vec!["c".to_owned()], 1));
    let back = store.denials(DenialFilter { limit: 10, shadow: ShadowRecords::Denied(9), ..Default::default() });
    let d = back.await.unwrap().remove(0).denial;
    assert!(d.shadow && d.shadow_allowed_by == 0 && d.policy_version == 9, "{d:?}");
}

async fn sidecar_records_are_upserted_in_batches(b: Backend) {
    use warden_control_plane::store::SidecarRecord;
    let record = |instance: &str, acked: u64| SidecarRecord {
        service: "orders".into(),
        instance: instance.into(),
        peer: "127.0.0.1:1".into(),
        acked_version: acked,
        last_seen_unix_ms: 5,
        ..Default::default()
    };
    b.store.save_sidecars(vec![record("i1", 1), record("i2", 1)]).await.unwrap();
    b.another().await.save_sidecars(vec![record("i2", 2)]).await.unwrap();
    let all = b.store.sidecars().await.unwrap();
    assert_eq!(all, [record("i1", 1), record("i2", 2)]);
}

/// On PostgreSQL, a change committed through one handle is announced to the others' change
/// feeds as it commits; a dry run announces nothing.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_announces_committed_changes_to_every_replica() {
    let b = Backend::postgres().await;
    let mut feed = b.another().await.changes().expect("PostgreSQL has a change feed");
    let next = async |feed: &mut tokio::sync::mpsc::Receiver<Change>| {
        tokio::time::timeout(Duration::from_secs(5), feed.recv()).await.expect("a change within 5 s").unwrap()
    };
    assert_eq!(next(&mut feed).await, Change::Resync, "a new feed first says: compare everything");
    b.store.apply(vec![doc("orders", "x: 1")], true).await.unwrap();
    b.store.apply(vec![doc("orders", "x: 2")], false).await.unwrap();
    assert_eq!(next(&mut feed).await, Change::Policy("orders".into()), "the dry run was not announced");
    b.store.create_keys(vec![key("k1", "orders", 1)]).await.unwrap();
    assert_eq!(next(&mut feed).await, Change::Credentials(Some("orders".into())));
    b.store.set_secret("stripe", b"s".to_vec(), 0).await.unwrap();
    assert_eq!(next(&mut feed).await, Change::Credentials(None));
    assert!(Backend::sqlite().await.store.changes().is_none(), "SQLite has one writer: no feed");
}

/// On PostgreSQL one candidate leads at a time, and the store records which; when the
/// leader's session ends another candidate leads at its next try. A SQLite store's one
/// replica always leads.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_elects_one_leader_at_a_time() {
    let b = Backend::postgres().await;
    let other = b.another().await;
    let (mut a, mut c) = (b.store.candidate("cp-a"), other.candidate("cp-c"));
    assert!(a.lead().await.unwrap(), "the first to stand leads");
    assert!(!c.lead().await.unwrap(), "a second does not while the first holds");
    assert!(a.lead().await.unwrap(), "the leader confirms it still leads");
    assert_eq!(other.leader().await.unwrap().map(|l| l.replica), Some("cp-a".to_owned()));
    drop(a);
    // Dropping the candidate closes its session; PostgreSQL then frees the lock.
    let c = tokio::sync::Mutex::new(c);
    eventually("the second candidate leads", Duration::from_secs(5), || async { c.lock().await.lead().await.unwrap() })
        .await;
    assert_eq!(b.store.leader().await.unwrap().map(|l| l.replica), Some("cp-c".to_owned()));
    assert!(Backend::sqlite().await.store.candidate("local").lead().await.unwrap());
}
