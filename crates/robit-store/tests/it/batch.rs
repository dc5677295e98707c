//! Group commit: events that arrive together are taken in as one transaction on both
//! backends (SQLite's writer, PostgreSQL's batched statements), and each caller still gets
//! its own answer: its own conversation, message and turn, `Duplicate` for a repeated event
//! id even inside one batch, and an error only for the event that failed.
//!
//! The cases start many `accept`s at once so the writers form batches of them; each
//! assertion holds whatever the batches turn out to be.

use crate::support::{event, key, Backend, Raw, Setup};
use robit_store::{Accepted, NewEvent, NewTurn, Store, StoreError};
use robit_types::{ConversationKey, Platform};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

const CONVERSATIONS: usize = 20;
const PER_CONVERSATION: usize = 10;

fn journaled(id: &str, key: &ConversationKey, text: &str) -> NewEvent {
    NewEvent {
        turn: Some(NewTurn {
            job: format!("job of {id}"),
            route: Some(format!("route of {id}")),
            holder: "replica-a".into(),
            lease: Duration::from_secs(60),
            answers: None,
        }),
        ..event(id, key, text)
    }
}

fn conversation_key(c: usize) -> ConversationKey {
    ConversationKey::new(
        Platform::Slack,
        "T1",
        format!("C{c}"),
        Some(format!("{c}.1")),
    )
}

conformance!(concurrent_accepts_each_get_their_own_rows);
async fn concurrent_accepts_each_get_their_own_rows(store: Arc<dyn Store>) {
    let mut tasks = JoinSet::new();
    for c in 0..CONVERSATIONS {
        for m in 0..PER_CONVERSATION {
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                let id = format!("Ev-{c}-{m}");
                let text = format!("message {m} of conversation {c}");
                let key = conversation_key(c);
                let accepted = store.accept(journaled(&id, &key, &text)).await.unwrap();
                (c, id, text, accepted)
            });
        }
    }
    let mut conversation_ids: HashMap<usize, HashSet<i64>> = HashMap::new();
    let mut texts_by_message: HashMap<i64, String> = HashMap::new();
    let mut turns = HashSet::new();
    for (c, id, text, accepted) in tasks.join_all().await {
        let Accepted::New {
            conversation,
            message_id: Some(message),
            turn_id: Some(turn),
        } = accepted
        else {
            panic!("{id}: every distinct event is new, with a message and a turn: {accepted:?}");
        };
        assert_eq!(
            conversation.key,
            conversation_key(c),
            "{id} got its own key"
        );
        conversation_ids
            .entry(c)
            .or_default()
            .insert(conversation.id.0);
        assert!(
            texts_by_message.insert(message, text).is_none(),
            "message ids are not shared"
        );
        assert!(turns.insert(turn), "turn ids are not shared");
    }
    for (c, ids) in &conversation_ids {
        assert_eq!(ids.len(), 1, "conversation {c} was created once");
    }
    // Each caller's message id holds that caller's text, and each turn points at it.
    for ids in conversation_ids.values() {
        let conversation = robit_store::ConversationId(*ids.iter().next().unwrap());
        let history = store.history(conversation, 100).await.unwrap();
        assert_eq!(history.len(), PER_CONVERSATION);
        for stored in &history {
            assert_eq!(
                texts_by_message.get(&stored.id),
                Some(&stored.content),
                "message {} holds its caller's text",
                stored.id
            );
        }
        let journal = store.turns(conversation).await.unwrap();
        assert_eq!(journal.len(), PER_CONVERSATION);
        for turn in journal {
            assert!(turns.contains(&turn.id));
            assert_eq!(turn.holder, "replica-a");
        }
    }
}

conformance!(a_repeated_event_among_others_is_stored_once);
async fn a_repeated_event_among_others_is_stored_once(store: Arc<dyn Store>) {
    let key = key(Some("1.1"));
    let mut tasks = JoinSet::new();
    for i in 0..60 {
        let (store, key) = (Arc::clone(&store), key.clone());
        // Every third delivery is the same event; the others are distinct.
        let id = if i % 3 == 0 {
            "Ev-repeated".to_string()
        } else {
            format!("Ev-{i}")
        };
        tasks.spawn(async move {
            let accepted = store.accept(journaled(&id, &key, &id)).await.unwrap();
            (id, accepted)
        });
    }
    let outcomes = tasks.join_all().await;
    let repeated: Vec<&Accepted> = outcomes
        .iter()
        .filter(|(id, _)| id == "Ev-repeated")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(repeated.len(), 20);
    assert_eq!(
        repeated
            .iter()
            .filter(|a| matches!(a, Accepted::New { .. }))
            .count(),
        1,
        "exactly one delivery of the repeated event is new"
    );
    for (id, accepted) in &outcomes {
        if id != "Ev-repeated" {
            assert!(
                matches!(accepted, Accepted::New { .. }),
                "{id} is new: {accepted:?}"
            );
        }
    }
    let conversation = store.conversation(&key).await.unwrap();
    let history = store.history(conversation.id, 100).await.unwrap();
    assert_eq!(
        history.len(),
        41,
        "40 distinct events and the repeated one, once"
    );
    assert_eq!(
        history
            .iter()
            .filter(|m| m.content == "Ev-repeated")
            .count(),
        1
    );
    assert_eq!(store.turns(conversation.id).await.unwrap().len(), 41);
}

/// PostgreSQL cannot store a NUL character in text, so an event carrying one fails in the
/// database (SQLite stores it). Batched with others, it fails alone: they are stored and
/// answered, it gets its own error (not the batch's), and nothing of it is kept, so a
/// redelivery is not taken for a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_event_that_fails_inside_a_batch_fails_alone() {
    Backend::Postgres
        .run(Setup::Migrated, |store, raw| async move {
            one_failing_event_fails_alone(store, raw, "bad \0 text").await
        })
        .await;
}

/// The same on SQLite, whose group-commit writer runs on its own driver: SQLite stores any
/// text, so a trigger refuses this one event's message, in the database, mid-batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_event_that_fails_inside_a_batch_fails_alone() {
    Backend::Sqlite
        .run(Setup::Migrated, |store, raw| async move {
            raw.execute(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages
                 WHEN NEW.content LIKE '%poison%'
                 BEGIN SELECT RAISE(ABORT, 'poisoned message'); END",
            )
            .await;
            one_failing_event_fails_alone(store, raw, "poison text").await
        })
        .await;
}

/// Event 17 of 40 sent at once carries `bad_text`, which the database refuses.
async fn one_failing_event_fails_alone(store: Arc<dyn Store>, raw: Raw, bad_text: &'static str) {
    let key = key(Some("1.1"));
    let mut tasks = JoinSet::new();
    for i in 0..40 {
        let (store, key) = (Arc::clone(&store), key.clone());
        tasks.spawn(async move {
            let id = format!("Ev-{i}");
            let text = if i == 17 {
                bad_text.to_string()
            } else {
                format!("text {i}")
            };
            let accepted = store.accept(journaled(&id, &key, &text)).await;
            (i, accepted)
        });
    }
    for (i, accepted) in tasks.join_all().await {
        match (i, accepted) {
            (17, Err(StoreError::Batch(e))) => {
                panic!("the failing event gets its own error, not the batch's: {e}")
            }
            (17, Err(_)) => {}
            (17, Ok(a)) => panic!("{bad_text:?} cannot be stored: {a:?}"),
            (_, Ok(Accepted::New { .. })) => {}
            (i, other) => panic!("event {i} is unaffected by event 17: {other:?}"),
        }
    }
    assert_eq!(
        raw.scalar("SELECT COUNT(*) FROM processed_events").await,
        39
    );
    assert_eq!(raw.scalar("SELECT COUNT(*) FROM messages").await, 39);
    assert_eq!(raw.scalar("SELECT COUNT(*) FROM turns").await, 39);
    // The failed event left nothing behind: sent again (fixed), it is new.
    assert!(matches!(
        store
            .accept(journaled("Ev-17", &key, "good text"))
            .await
            .unwrap(),
        Accepted::New { .. }
    ));
}

/// Another replica creates a conversation while this batch's statement runs: the statement's
/// snapshot does not see it, so the batch gives the key an id of its own, and its insert then
/// waits for the other transaction and does nothing. The event must still land in the
/// conversation that exists, with a message (the batch is taken apart and the event runs
/// again) and without one (its answer is looked up after the commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_conversation_created_meanwhile_by_another_replica_is_joined() {
    Backend::Postgres
        .run(Setup::Migrated, |store, raw| async move {
            let Raw::Postgres(pool) = raw else {
                unreachable!("a PostgreSQL case")
            };
            for (round, with_message) in [(1, true), (2, false)] {
                let key = ConversationKey::new(
                    Platform::Slack,
                    "T1",
                    format!("C-race-{round}"),
                    Some("1.1".into()),
                );
                let mut other = pool.begin().await.unwrap();
                let theirs: i64 = sqlx::query_scalar(
                    "INSERT INTO conversations (platform, workspace, channel, thread, created_at)
                     VALUES ($1, $2, $3, $4, 0) RETURNING id",
                )
                .bind(key.platform.as_str())
                .bind(key.workspace.as_str())
                .bind(key.channel.as_str())
                .bind("1.1")
                .fetch_one(&mut *other)
                .await
                .unwrap();
                let mut event = journaled(&format!("Ev-race-{round}"), &key, "meanwhile");
                if !with_message {
                    event.message = None;
                    event.turn = None;
                }
                let accepting = {
                    let store = Arc::clone(&store);
                    tokio::spawn(async move { store.accept(event).await })
                };
                // The batch's conversation insert waits on the uncommitted row's key. (Only the
                // statement's start is in `pg_stat_activity`: it is cut at 1 kB.)
                loop {
                    let waiting: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM pg_stat_activity
                         WHERE wait_event_type = 'Lock' AND query LIKE '%WITH input AS%'",
                    )
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                    if waiting > 0 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                other.commit().await.unwrap();
                let Accepted::New {
                    conversation,
                    message_id,
                    ..
                } = accepting.await.unwrap().unwrap()
                else {
                    panic!("a first delivery is new")
                };
                assert_eq!(
                    conversation.id.0, theirs,
                    "round {round}: the existing conversation"
                );
                assert_eq!(message_id.is_some(), with_message);
                let history = store.history(conversation.id, 10).await.unwrap();
                assert_eq!(history.len(), usize::from(with_message));
            }
        })
        .await;
}

/// The writer keeps its connections out of the pool, so it must notice one that died: a
/// backend killed under a batch fails that batch (its caller hears an error rather than
/// waiting), nothing of it is stored, and the next event goes through on another connection.
/// The batch is held on a lock of an uncommitted row so the test knows which backend is the
/// writer's (the one its transaction blocks) and kills it mid-statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_writer_connection_killed_under_a_batch_is_replaced() {
    Backend::Postgres
        .run(Setup::Migrated, |store, raw| async move {
            let Raw::Postgres(pool) = raw else {
                unreachable!("a PostgreSQL case")
            };
            let key = ConversationKey::new(Platform::Slack, "T1", "C-killed", Some("1.1".into()));
            let mut other = pool.begin().await.unwrap();
            let blocker: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut *other)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO conversations (platform, workspace, channel, thread, created_at)
                 VALUES ('slack', 'T1', 'C-killed', '1.1', 0)",
            )
            .execute(&mut *other)
            .await
            .unwrap();
            let accepting = {
                let store = Arc::clone(&store);
                let first = journaled("Ev-killed-1", &key, "first");
                tokio::spawn(async move { store.accept(first).await })
            };
            let writer: i32 = loop {
                let blocked: Option<i32> = sqlx::query_scalar(
                    "SELECT pid FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))",
                )
                .bind(blocker)
                .fetch_optional(&pool)
                .await
                .unwrap();
                if let Some(pid) = blocked {
                    break pid;
                }
                tokio::task::yield_now().await;
            };
            let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(writer)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert!(killed, "backend {writer} was not terminated");
            let first = accepting.await.unwrap();
            assert!(
                first.is_err(),
                "a batch whose connection died answered {first:?}"
            );
            other.rollback().await.unwrap();

            let second = store
                .accept(journaled("Ev-killed-2", &key, "second"))
                .await
                .expect("the next batch runs on a live connection");
            assert!(matches!(second, Accepted::New { .. }), "{second:?}");
            // The killed batch stored nothing, so its event is new when delivered again.
            let again = store
                .accept(journaled("Ev-killed-1", &key, "first"))
                .await
                .unwrap();
            let Accepted::New { conversation, .. } = again else {
                panic!("the failed event was stored after all: {again:?}")
            };
            let texts: Vec<String> = store
                .history(conversation.id, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.content)
                .collect();
            assert_eq!(texts, ["second", "first"]);
        })
        .await;
}
