//! Many callers at once: dedup, find-or-create and plain writes must hold under concurrency,
//! and SQLite writers must queue instead of failing with "database is locked".

use crate::support::{event, key};
use robit_store::{Accepted, ConversationId, Store};
use robit_types::{ConversationKey, Platform};
use std::collections::HashSet;
use std::sync::Arc;
use tokio::task::JoinSet;

const TASKS: usize = 50;

conformance!(concurrent_deliveries_of_one_event_are_accepted_once);
async fn concurrent_deliveries_of_one_event_are_accepted_once(store: Arc<dyn Store>) {
    let key = key(Some("t1"));
    let mut tasks = JoinSet::new();
    for _ in 0..TASKS {
        let (store, key) = (Arc::clone(&store), key.clone());
        tasks.spawn(async move { store.accept(event("Ev1", &key, "hello")).await.unwrap() });
    }
    let outcomes = tasks.join_all().await;
    let new: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Accepted::New { conversation, .. } => Some(conversation.id),
            Accepted::Duplicate => None,
        })
        .collect();
    assert_eq!(new.len(), 1, "exactly one delivery is new");
    assert_eq!(store.history(new[0], 100).await.unwrap().len(), 1);
}

conformance!(concurrent_accepts_in_different_conversations_all_succeed);
async fn concurrent_accepts_in_different_conversations_all_succeed(store: Arc<dyn Store>) {
    let mut tasks = JoinSet::new();
    for i in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let key = ConversationKey::new(Platform::Slack, "T1", format!("C{i}"), None);
            match store.accept(event(&format!("Ev{i}"), &key, "hi")).await {
                Ok(Accepted::New { conversation, .. }) => conversation.id,
                other => panic!("accept {i} failed: {other:?}"),
            }
        });
    }
    let ids: HashSet<ConversationId> = tasks.join_all().await.into_iter().collect();
    assert_eq!(ids.len(), TASKS, "one conversation per channel");
}

conformance!(concurrent_find_or_create_yields_one_conversation);
async fn concurrent_find_or_create_yields_one_conversation(store: Arc<dyn Store>) {
    let key = key(Some("t1"));
    let mut tasks = JoinSet::new();
    for i in 0..TASKS {
        let (store, key) = (Arc::clone(&store), key.clone());
        // Half create through `conversation`, half through `accept`, as the engine does.
        tasks.spawn(async move {
            if i % 2 == 0 {
                store.conversation(&key).await.unwrap().id
            } else {
                match store
                    .accept(event(&format!("Ev{i}"), &key, "hi"))
                    .await
                    .unwrap()
                {
                    Accepted::New { conversation, .. } => conversation.id,
                    Accepted::Duplicate => panic!("distinct event ids are never duplicates"),
                }
            }
        });
    }
    let ids: HashSet<ConversationId> = tasks.join_all().await.into_iter().collect();
    assert_eq!(ids.len(), 1, "every caller got the same conversation");
    let id = ids.into_iter().next().unwrap();
    assert_eq!(store.history(id, 100).await.unwrap().len(), TASKS / 2);
}
