//! Several replicas on one PostgreSQL database behave as one bot: each event is answered
//! once, and a conversation whose replica died continues on another after its lease expires.

use crate::support::{key, message, provider, RecordingSink};
use robit_core::{Engine, EngineConfig, LeaseConfig, Submission, TurnOutcome};
use robit_store::{PoolOptions, PostgresStore, Store};
use robit_testkit::llm::{FakeLlm, Reply};

use std::sync::Arc;
use std::time::{Duration, Instant};

fn pg_url() -> String {
    std::env::var("ROBIT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn shared_store() -> (Arc<dyn Store>, String) {
    let schema = format!(
        "robit_replicas_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let store = PostgresStore::connect_with_schema(&pg_url(), &schema, PoolOptions::default())
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at {} is needed (start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`): {e}", pg_url())
        });
    let store: Arc<dyn Store> = Arc::new(store);
    store.migrate().await.unwrap();
    (store, schema)
}

async fn drop_schema(schema: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}

fn replica(name: &str, store: Arc<dyn Store>, llm: &FakeLlm, ttl: Duration) -> Engine {
    let config = EngineConfig {
        lease: Some(LeaseConfig {
            holder: name.to_string(),
            ttl,
        }),
        ..EngineConfig::default()
    };
    Engine::new(config, store, Some(provider(llm)), None)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_delivered_to_two_replicas_is_answered_once() {
    let (store, schema) = shared_store().await;
    let llm = FakeLlm::start().await;
    let a = replica("replica-a", store.clone(), &llm, Duration::from_secs(5));
    let b = replica("replica-b", store.clone(), &llm, Duration::from_secs(5));
    let sink = RecordingSink::fast();
    let k = key("two-replicas");
    for i in 0..5 {
        let inbound = message(&k, &format!("question {i}"));
        let (ra, rb) = tokio::join!(
            a.submit(inbound.clone(), sink.clone()),
            b.submit(inbound, sink.clone())
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let duplicates = [&ra, &rb]
            .iter()
            .filter(|s| matches!(s, Submission::Duplicate))
            .count();
        assert_eq!(duplicates, 1, "exactly one replica takes each event");
        ra.wait().await;
        rb.wait().await;
    }
    assert_eq!(llm.chat_requests().len(), 5);
    assert_eq!(sink.messages().len(), 5);
    drop_schema(&schema).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_replicas_conversation_continues_elsewhere_after_its_lease_expires() {
    let (store, schema) = shared_store().await;
    let llm = FakeLlm::start().await;
    let k = key("failover");
    let sink = RecordingSink::fast();

    // Replica A answers once; then it is killed while holding the conversation's lease (as
    // in the middle of a turn), so nobody renews or releases the lease.
    let ttl = Duration::from_millis(1500);
    let a = replica("replica-a", store.clone(), &llm, ttl);
    assert_eq!(
        a.submit(message(&k, "first"), sink.clone())
            .await
            .unwrap()
            .wait()
            .await,
        TurnOutcome::Replied
    );
    drop(a);
    let conv = store.conversation(&k).await.unwrap();
    assert!(store.try_lease(conv.id, "replica-a", ttl).await.unwrap());
    let killed_at = Instant::now();

    // Replica B gets the next message and waits for the lease to expire, then answers with
    // the conversation's history from the store.
    let b = replica("replica-b", store.clone(), &llm, ttl);
    llm.push(Reply::text("B here"));
    let outcome = b
        .submit(message(&k, "second"), sink.clone())
        .await
        .unwrap()
        .wait()
        .await;
    assert_eq!(outcome, TurnOutcome::Replied);
    let waited = killed_at.elapsed();
    assert!(
        waited >= ttl - Duration::from_millis(100),
        "B answered before the lease expired: {waited:?}"
    );
    assert!(waited < Duration::from_secs(10));
    let last = llm.chat_requests().last().unwrap().body["messages"].clone();
    let contents: Vec<String> = last
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(contents.contains(&"first".to_string()), "{contents:?}");
    assert!(
        contents.contains(&"echo: first".to_string()),
        "{contents:?}"
    );
    assert_eq!(contents.last().unwrap(), "second");
    assert_eq!(sink.messages().last().unwrap(), "B here");
    drop_schema(&schema).await;
}
