//! Access rules and limits fail closed: when the store cannot answer, a turn is refused with
//! a message instead of running with the stored deny rules and the limits switched off.

use crate::support::{key, message, Harness, RecordingSink};
use robit_core::{EngineConfig, TurnOutcome};
use robit_types::Rate;
use sqlx::Connection;
use std::time::Duration;

/// Breaks one table of the engine's real database file, so reading it fails as it would in
/// an outage while the rest of the store (dedup, messages) keeps working.
async fn drop_table(h: &Harness, table: &str) {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", h.db.display()))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn unreadable_access_rules_refuse_the_turn_with_a_message() {
    let h = Harness::start().await;
    let sink = RecordingSink::fast();
    let k = key("fail-closed");
    // Before any read, so no cached copy of the rules can stand in for the store.
    drop_table(&h, "access_rules").await;
    let outcome = h.say(&sink, message(&k, "hello")).await;
    assert_eq!(outcome, TurnOutcome::Refused("unavailable".into()));
    assert!(
        h.llm.chat_requests().is_empty(),
        "the model was asked anyway"
    );
    let last = sink.messages().last().cloned().unwrap_or_default();
    assert!(last.contains("can't check"), "{last}");
}

#[tokio::test]
async fn an_unreadable_rate_limit_refuses_the_turn_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        limits: robit_core::LimitsConfig {
            user_turns: Some(Rate::per(100, Duration::from_secs(60))),
            ..Default::default()
        },
        ..EngineConfig::default()
    };
    let h = Harness::open(
        &dir.path().join("robit.db"),
        robit_testkit::FakeLlm::start().await,
        config,
    )
    .await;
    let sink = RecordingSink::fast();
    let k = key("limits-closed");
    assert_eq!(h.say(&sink, message(&k, "one")).await, TurnOutcome::Replied);
    drop_table(&h, "rate_buckets").await;
    let outcome = h.say(&sink, message(&k, "two")).await;
    assert_eq!(outcome, TurnOutcome::Refused("unavailable".into()));
}
