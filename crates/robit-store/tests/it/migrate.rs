//! Migrations: status before and after, idempotence, and a SQLite file that outlives its
//! process.

use crate::support::{event, key};
use robit_store::{Accepted, PoolOptions, SqliteStore, Store};
use std::sync::Arc;

conformance!(fresh migrating_twice_is_idempotent);
async fn migrating_twice_is_idempotent(store: Arc<dyn Store>) {
    let before = store.migration_status().await.unwrap();
    assert!(before.applied.is_empty(), "{before:?}");
    assert_eq!(before.pending, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(
        before.server_version.starts_with("SQLite 3.")
            || before.server_version.starts_with("PostgreSQL "),
        "{before:?}"
    );
    // Reading the status wrote nothing, so it still reads the same.
    assert_eq!(store.migration_status().await.unwrap(), before);

    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let after = store.migration_status().await.unwrap();
    assert_eq!(after.applied, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(after.pending.is_empty());
    store.ping().await.unwrap();
}

#[tokio::test]
async fn sqlite_data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("robit.db");
    let key = key(Some("t1"));

    let store = SqliteStore::connect(&path, PoolOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let Accepted::New { conversation, .. } = store
        .accept(event("Ev1", &key, "remember me"))
        .await
        .unwrap()
    else {
        panic!("a first delivery must be new");
    };
    store
        .set_model(conversation.id, Some("gpt-4o"))
        .await
        .unwrap();
    store.close().await;

    let reopened = SqliteStore::connect(&path, PoolOptions::default())
        .await
        .unwrap();
    reopened.migrate().await.unwrap();
    let again = reopened.conversation(&key).await.unwrap();
    assert_eq!(again.id, conversation.id);
    assert_eq!(again.model.as_deref(), Some("gpt-4o"));
    assert_eq!(
        reopened.history(again.id, 10).await.unwrap()[0].content,
        "remember me"
    );
    assert_eq!(
        reopened
            .accept(event("Ev1", &key, "remember me"))
            .await
            .unwrap(),
        Accepted::Duplicate,
        "dedup survives a restart too"
    );
}
