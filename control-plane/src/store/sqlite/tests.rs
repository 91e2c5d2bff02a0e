//! The SQLite store through the `Store` interface: versions, credentials and the deny log
//! as the operations layer sees them, on a store in a temporary directory.

use std::sync::atomic::Ordering;

use crate::clock::now_unix_ms;
use crate::store::api::Store;
use crate::store::model::{Denial, DenialFilter, NewKey, NewVersion, Retention};
use crate::store::sqlite::Sqlite;
use crate::store::sqlite::denials::PRUNED_AT;

fn doc(service: &str, yaml: &str) -> NewVersion {
    NewVersion {
        service: service.into(),
        author: "alice".into(),
        message: "m".into(),
        content_hash: warden_policy::yaml::content_hash(yaml),
        source_yaml: yaml.into(),
    }
}

#[tokio::test]
async fn versions_are_numbered_per_service_and_unchanged_content_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open(dir.path()).unwrap();
    let r = store.apply(vec![doc("a", "x: 1"), doc("b", "y: 1")], false).await.unwrap();
    assert_eq!(r.iter().map(|s| (s.version.version, s.changed)).collect::<Vec<_>>(), [(1, true), (1, true)]);
    let r = store.apply(vec![doc("a", "x: 1"), doc("b", "y: 2")], false).await.unwrap();
    assert_eq!(r.iter().map(|s| (s.version.version, s.changed)).collect::<Vec<_>>(), [(1, false), (2, true)]);
    assert_eq!(r[1].previous.as_ref().unwrap().source_yaml, "y: 1");
    let h = store.history("b").await.unwrap();
    assert_eq!(h.iter().map(|v| v.version).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(store.version("b", 1).await.unwrap().unwrap().source_yaml, "y: 1");
    assert_eq!(store.current("b").await.unwrap().unwrap().source_yaml, "y: 2");
    assert_eq!(store.list_current().await.unwrap().len(), 2);
}

#[tokio::test]
async fn dry_run_writes_nothing_and_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Sqlite::open(dir.path()).unwrap();
        store.apply(vec![doc("a", "x: 1")], false).await.unwrap();
        let r = store.apply(vec![doc("a", "x: 2")], true).await.unwrap();
        assert_eq!(r[0].version.version, 2);
    }
    let store = Sqlite::open(dir.path()).unwrap();
    let cur = store.current("a").await.unwrap().unwrap();
    assert_eq!((cur.version, cur.source_yaml.as_str()), (1, "x: 1"));
}

#[tokio::test]
async fn an_apply_is_one_unit_all_versions_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open(dir.path()).unwrap();
    store.apply(vec![doc("a", "x: 1")], false).await.unwrap();
    // A document the database refuses, after one it accepted.
    store
        .conn
        .lock()
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON policy_versions WHEN NEW.service = 'refused'
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
    let err = store.apply(vec![doc("b", "y: 1"), doc("a", "x: 2"), doc("refused", "z: 1")], false).await;
    assert!(matches!(err, Err(crate::store::error::StoreError::Failed(_))), "{err:?}");
    assert!(store.current("b").await.unwrap().is_none(), "b's version rolled back with the rest");
    assert_eq!(store.current("a").await.unwrap().unwrap().version, 1);
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

#[tokio::test]
async fn keys_are_per_service_revocation_sticks_and_every_change_bumps_the_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open(dir.path()).unwrap();
    store.create_keys(vec![key("k1", "orders", 1)]).await.unwrap();
    store.create_keys(vec![key("k2", "orders", 2)]).await.unwrap();
    store.create_keys(vec![key("k3", "billing", 3)]).await.unwrap();
    assert!(store.create_keys(vec![key("k4", "orders", 1)]).await.is_err(), "a hash is unique");
    let read = store.credentials("orders", 0, vec![]).await.unwrap();
    assert_eq!((read.revision, read.keys.len()), (3, 2));

    let revoked = store.revoke_key("k1").await.unwrap().unwrap();
    assert!(revoked.revoked_unix_ms > 0);
    let again = store.revoke_key("k1").await.unwrap().unwrap();
    assert_eq!(again.revoked_unix_ms, revoked.revoked_unix_ms, "a second revoke changes nothing");
    assert_eq!(store.revoke_key("nope").await.unwrap(), None);
    let read = store.credentials("orders", 3, vec![]).await.unwrap();
    assert_eq!(read.revision, 4);
    assert_eq!(read.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["k1"], "only what changed after r3");
    assert_eq!(store.credentials("orders", 4, vec![]).await.unwrap().keys, []);
    assert_eq!(store.lookup_key("orders", vec![2; 32]).await.unwrap().unwrap().id, "k2");
    assert_eq!(store.lookup_key("billing", vec![2; 32]).await.unwrap(), None);
    assert_eq!(store.keys(Some("orders".into()), None).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_new_secret_value_keeps_the_old_one_verifying_until_it_retires() {
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open(dir.path()).unwrap();
    store.set_secret("stripe", b"one".to_vec(), 0).await.unwrap();
    store.set_secret("stripe", b"two".to_vec(), 3_600_000).await.unwrap();
    store.set_secret("github", b"gh".to_vec(), 0).await.unwrap();
    let secrets = store.credentials("orders", 0, vec!["stripe".into()]).await.unwrap().secrets;
    let values: Vec<&[u8]> = secrets.iter().map(|s| s.value.as_slice()).collect();
    assert_eq!(values, [b"one".as_slice(), b"two".as_slice()]);
    assert!(secrets[0].expires_unix_ms > now_unix_ms() && secrets[1].expires_unix_ms == 0);

    store.set_secret("stripe", b"three".to_vec(), 0).await.unwrap();
    let secrets = store.credentials("orders", 0, vec!["stripe".into()]).await.unwrap().secrets;
    assert_eq!(secrets.iter().map(|s| s.value.as_slice()).collect::<Vec<_>>(), [b"three".as_slice()]);
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
        ..Default::default()
    }
}

#[tokio::test]
async fn the_deny_log_is_filtered_grouped_and_kept_within_its_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open(dir.path()).unwrap();
    let now = now_unix_ms();
    let keep = Retention { max_age_ms: 60_000, max_rows: 3 };
    let records = vec![denial(now - 120_000, "old", "a"), denial(now, "l", "a"), denial(now, "l", "b")];
    PRUNED_AT.store(0, Ordering::Relaxed);
    store.insert_denials("orders", "i1", records, keep).await.unwrap();
    let all = store.denials(DenialFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 2, "older than the retention age: gone");
    let only_b = DenialFilter { client: "b".into(), limit: 10, ..Default::default() };
    assert_eq!(store.denials(only_b).await.unwrap().len(), 1);

    PRUNED_AT.store(0, Ordering::Relaxed);
    let more = (0..5).map(|i| denial(now + i, "l", "a")).collect();
    store.insert_denials("orders", "i1", more, keep).await.unwrap();
    let all = store.denials(DenialFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(all.len(), 3, "past the row cap the oldest go");
    assert_eq!(all[0].denial.request_id, format!("r{}", now + 4), "newest first");
    let groups = store.denial_groups(DenialFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!((groups[0].client_id.as_str(), groups[0].count), ("a", 3));
}
