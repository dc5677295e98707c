//! `Store::accept`: dedup of platform events and find-or-create of their conversation, in
//! one transaction.

use crate::support::{event, key};
use robit_store::{Accepted, MessageRole, MessageStatus, NewEvent, Store};
use robit_types::{ConversationKey, EventId, Platform, UserId};
use std::sync::Arc;

conformance!(accept_stores_event_message_and_conversation);
async fn accept_stores_event_message_and_conversation(store: Arc<dyn Store>) {
    let key = key(Some("1700000000.000100"));
    let Accepted::New {
        conversation,
        message_id,
        ..
    } = store.accept(event("Ev1", &key, "hello")).await.unwrap()
    else {
        panic!("a first delivery must be new");
    };
    assert_eq!(conversation.key, key);
    assert_eq!(conversation.model, None);
    assert_eq!(store.conversation(&key).await.unwrap(), conversation);

    let history = store.history(conversation.id, 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(Some(history[0].id), message_id);
    assert_eq!(history[0].role, MessageRole::User);
    assert_eq!(history[0].content, "hello");
    assert_eq!(history[0].status, MessageStatus::Complete);
    assert_eq!(history[0].author, Some(UserId::new("U1")));
    assert!(
        history[0].created_at > 1_600_000_000_000,
        "created_at is unix ms"
    );
}

conformance!(accept_without_message_creates_only_the_conversation);
async fn accept_without_message_creates_only_the_conversation(store: Arc<dyn Store>) {
    let key = key(None);
    let command = NewEvent {
        message: None,
        turn: None,
        ..event("Ev1", &key, "")
    };
    let Accepted::New {
        conversation,
        message_id,
        ..
    } = store.accept(command).await.unwrap()
    else {
        panic!("a first delivery must be new");
    };
    assert_eq!(message_id, None);
    assert_eq!(
        conversation.key.thread, None,
        "no thread reads back as none"
    );
    assert!(store.history(conversation.id, 10).await.unwrap().is_empty());
}

conformance!(duplicate_event_is_reported_and_writes_nothing);
async fn duplicate_event_is_reported_and_writes_nothing(store: Arc<dyn Store>) {
    let first_key = key(Some("t1"));
    let Accepted::New { conversation, .. } = store
        .accept(event("Ev1", &first_key, "hello"))
        .await
        .unwrap()
    else {
        panic!("a first delivery must be new");
    };

    // A retry of the same event, and a (malformed) reuse of its id for another thread.
    assert_eq!(
        store
            .accept(event("Ev1", &first_key, "hello again"))
            .await
            .unwrap(),
        Accepted::Duplicate
    );
    let other_key = key(Some("t2"));
    assert_eq!(
        store
            .accept(event("Ev1", &other_key, "elsewhere"))
            .await
            .unwrap(),
        Accepted::Duplicate
    );

    let history = store.history(conversation.id, 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].content, "hello");
    let other = store.conversation(&other_key).await.unwrap();
    assert!(store.history(other.id, 10).await.unwrap().is_empty());
}

conformance!(same_event_id_on_two_platforms_is_two_events);
async fn same_event_id_on_two_platforms_is_two_events(store: Arc<dyn Store>) {
    let slack = key(None);
    let discord = ConversationKey::new(Platform::Discord, "G1", "C1", None);
    let on_slack = store.accept(event("123", &slack, "hi")).await.unwrap();
    let on_discord = store
        .accept(NewEvent {
            event_id: EventId::new("123"),
            ..event("123", &discord, "hi")
        })
        .await
        .unwrap();
    let (
        Accepted::New {
            conversation: a, ..
        },
        Accepted::New {
            conversation: b, ..
        },
    ) = (on_slack, on_discord)
    else {
        panic!("both deliveries must be new");
    };
    assert_ne!(a.id, b.id);
    assert_eq!(b.key.platform, Platform::Discord);
}
