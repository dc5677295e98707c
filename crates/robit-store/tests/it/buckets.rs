//! Token buckets shared through the store: the budget several replicas draw platform calls
//! and turn limits from.

use robit_store::{Store, Take};
use robit_types::Rate;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Slow enough that the test's own run time refills nothing worth counting.
const SLOW: Rate = Rate {
    burst: 3.0,
    per_second: 0.01,
};

conformance!(bucket_grants_its_burst_then_says_how_long_to_wait);
async fn bucket_grants_its_burst_then_says_how_long_to_wait(store: Arc<dyn Store>) {
    for _ in 0..3 {
        assert_eq!(
            store.take_tokens("b:1", SLOW, 1.0).await.unwrap(),
            Take::Granted
        );
    }
    match store.take_tokens("b:1", SLOW, 1.0).await.unwrap() {
        // One token at 0.01/s is 100 s away, minus what trickled in meanwhile.
        Take::Wait(d) => assert!(
            d > Duration::from_secs(90) && d <= Duration::from_secs(100),
            "{d:?}"
        ),
        Take::Granted => panic!("a fourth token out of a burst of three"),
    }
    // Buckets are independent.
    assert_eq!(
        store.take_tokens("b:2", SLOW, 1.0).await.unwrap(),
        Take::Granted
    );
}

conformance!(bucket_refills_over_time);
async fn bucket_refills_over_time(store: Arc<dyn Store>) {
    let fast = Rate {
        burst: 1.0,
        per_second: 20.0,
    };
    assert_eq!(
        store.take_tokens("b", fast, 1.0).await.unwrap(),
        Take::Granted
    );
    let Take::Wait(wait) = store.take_tokens("b", fast, 1.0).await.unwrap() else {
        panic!("the bucket should be empty");
    };
    assert!(wait <= Duration::from_millis(50), "{wait:?}");
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    assert_eq!(
        store.take_tokens("b", fast, 1.0).await.unwrap(),
        Take::Granted
    );
}

conformance!(blocked_bucket_waits_out_the_pause);
async fn blocked_bucket_waits_out_the_pause(store: Arc<dyn Store>) {
    store
        .block_bucket("b", SLOW, Duration::from_secs(30))
        .await
        .unwrap();
    match store.take_tokens("b", SLOW, 1.0).await.unwrap() {
        Take::Wait(d) => assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        ),
        Take::Granted => panic!("a blocked bucket granted a call"),
    }
    // A shorter block does not shorten the longer one.
    store
        .block_bucket("b", SLOW, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(matches!(
        store.take_tokens("b", SLOW, 1.0).await.unwrap(),
        Take::Wait(d) if d > Duration::from_secs(25)
    ));
}

conformance!(concurrent_takers_never_overdraw);
async fn concurrent_takers_never_overdraw(store: Arc<dyn Store>) {
    let mut takers = JoinSet::new();
    for _ in 0..20 {
        let store = store.clone();
        takers.spawn(async move { store.take_tokens("shared", SLOW, 1.0).await.unwrap() });
    }
    let granted = takers
        .join_all()
        .await
        .into_iter()
        .filter(|t| *t == Take::Granted)
        .count();
    assert_eq!(granted, 3, "twenty racing takers share a burst of three");
}
