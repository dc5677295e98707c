//! Retention of dedup records (`processed_events`), the lookup of a conversation that must
//! not create one, and SQLite's `synchronous` setting.

use crate::support::{event, key, Raw};
use robit_store::{Accepted, PoolOptions, SqliteStore, Store};
use std::sync::Arc;

conformance!(raw pruning_forgets_only_event_ids_older_than_the_cutoff);
async fn pruning_forgets_only_event_ids_older_than_the_cutoff(store: Arc<dyn Store>, raw: Raw) {
    // The index pruning relies on exists on this backend.
    let indexes = raw
        .scalar(match raw {
            Raw::Sqlite(_) => {
                "SELECT COUNT(*) FROM sqlite_master
                 WHERE type = 'index' AND name = 'processed_events_by_time'"
            }
            Raw::Postgres(_) => {
                "SELECT COUNT(*) FROM pg_indexes
                 WHERE indexname = 'processed_events_by_time' AND schemaname = current_schema()"
            }
        })
        .await;
    assert_eq!(indexes, 1);

    let k = key(Some("t1"));
    for id in ["Old1", "Old2", "New1"] {
        assert!(matches!(
            store.accept(event(id, &k, id)).await.unwrap(),
            Accepted::New { .. }
        ));
    }
    // Age two records by eight days.
    raw.scalar(
        "UPDATE processed_events SET received_at = received_at - 691200000
         WHERE event_id IN ('Old1', 'Old2') RETURNING CAST(1 AS BIGINT)",
    )
    .await;
    let week_ago = now_ms() - 7 * 86_400_000;
    assert_eq!(store.prune_processed_events(week_ago).await.unwrap(), 2);
    assert_eq!(store.prune_processed_events(week_ago).await.unwrap(), 0);
    assert_eq!(raw.scalar("SELECT COUNT(*) FROM processed_events").await, 1);
    // A recent id is still a duplicate; a pruned one would be taken as new.
    assert_eq!(
        store.accept(event("New1", &k, "again")).await.unwrap(),
        Accepted::Duplicate
    );
    assert!(matches!(
        store.accept(event("Old1", &k, "again")).await.unwrap(),
        Accepted::New { .. }
    ));
}

conformance!(finding_a_conversation_never_creates_one);
async fn finding_a_conversation_never_creates_one(store: Arc<dyn Store>) {
    let k = key(Some("t9"));
    assert_eq!(store.find_conversation(&k).await.unwrap(), None);
    assert_eq!(store.find_conversation(&k).await.unwrap(), None);
    let Accepted::New { conversation, .. } = store.accept(event("E1", &k, "hi")).await.unwrap()
    else {
        panic!("new");
    };
    assert_eq!(
        store.find_conversation(&k).await.unwrap(),
        Some(conversation)
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn sqlite_synchronous_is_normal_by_default_and_full_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let normal = SqliteStore::connect(dir.path().join("n.db"), PoolOptions::default())
        .await
        .unwrap();
    assert_eq!(normal.synchronous().await.unwrap(), 1, "NORMAL");
    normal.close().await;
    let full = SqliteStore::connect(
        dir.path().join("f.db"),
        PoolOptions {
            sqlite_full_sync: true,
            ..PoolOptions::default()
        },
    )
    .await
    .unwrap();
    full.migrate().await.unwrap();
    assert_eq!(full.synchronous().await.unwrap(), 2, "FULL");
    full.close().await;
}
