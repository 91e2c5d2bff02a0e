//! What only the SQLite store has to show: its file survives a reopen, and an apply the
//! database refuses halfway leaves nothing behind. The contract both stores keep is
//! tested on both in `tests/tests/store.rs`.

use crate::store::api::Store;
use crate::store::model::NewVersion;
use crate::store::sqlite::Sqlite;

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
