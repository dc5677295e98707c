//! Per-conversation leases: who may run a conversation's turns when there are several
//! replicas.

use crate::support::key;
use robit_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

const LONG: Duration = Duration::from_secs(60);

conformance!(lease_is_exclusive_renewable_and_releasable);
async fn lease_is_exclusive_renewable_and_releasable(store: Arc<dyn Store>) {
    let conversation = store.conversation(&key(None)).await.unwrap().id;
    assert!(store
        .try_lease(conversation, "replica-a", LONG)
        .await
        .unwrap());
    assert!(!store
        .try_lease(conversation, "replica-b", LONG)
        .await
        .unwrap());
    assert!(
        store
            .try_lease(conversation, "replica-a", LONG)
            .await
            .unwrap(),
        "the holder renews"
    );

    // Only the holder can release.
    store
        .release_lease(conversation, "replica-b")
        .await
        .unwrap();
    assert!(!store
        .try_lease(conversation, "replica-b", LONG)
        .await
        .unwrap());
    store
        .release_lease(conversation, "replica-a")
        .await
        .unwrap();
    assert!(store
        .try_lease(conversation, "replica-b", LONG)
        .await
        .unwrap());

    // Leases are per conversation.
    let other = store.conversation(&key(Some("t1"))).await.unwrap().id;
    assert!(store.try_lease(other, "replica-a", LONG).await.unwrap());
}

conformance!(expired_lease_is_taken_over);
async fn expired_lease_is_taken_over(store: Arc<dyn Store>) {
    let conversation = store.conversation(&key(None)).await.unwrap().id;
    assert!(store
        .try_lease(conversation, "replica-a", Duration::from_millis(100))
        .await
        .unwrap());
    // Real time, not tokio's paused clock: expiry is judged by the database.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(store
        .try_lease(conversation, "replica-b", LONG)
        .await
        .unwrap());
    assert!(!store
        .try_lease(conversation, "replica-a", LONG)
        .await
        .unwrap());
}

conformance!(renewal_extends_the_lease);
async fn renewal_extends_the_lease(store: Arc<dyn Store>) {
    let conversation = store.conversation(&key(None)).await.unwrap().id;
    let ttl = Duration::from_millis(1000);
    assert!(store
        .try_lease(conversation, "replica-a", ttl)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(store
        .try_lease(conversation, "replica-a", ttl)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    // 1.2 s after the first take, but only 0.6 s after the renewal.
    assert!(!store
        .try_lease(conversation, "replica-b", ttl)
        .await
        .unwrap());
}

conformance!(concurrent_lease_attempts_have_one_winner);
async fn concurrent_lease_attempts_have_one_winner(store: Arc<dyn Store>) {
    let conversation = store.conversation(&key(None)).await.unwrap().id;
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            store
                .try_lease(conversation, &format!("replica-{i}"), LONG)
                .await
                .unwrap()
        });
    }
    let winners = tasks
        .join_all()
        .await
        .into_iter()
        .filter(|&won| won)
        .count();
    assert_eq!(winners, 1);
}
