//! Reading history back: order, limit, reset, the model override, and every message field.

use crate::support::key;
use robit_store::{MessageRole, MessageStatus, NewMessage, Store};
use robit_types::UserId;
use std::sync::Arc;

conformance!(history_is_the_newest_messages_oldest_first);
async fn history_is_the_newest_messages_oldest_first(store: Arc<dyn Store>) {
    let conversation = store.conversation(&key(None)).await.unwrap();
    for i in 0..10 {
        store
            .append_message(
                conversation.id,
                NewMessage::user(UserId::new("U1"), format!("m{i}")),
            )
            .await
            .unwrap();
    }
    let contents =
        |h: Vec<robit_store::StoredMessage>| h.into_iter().map(|m| m.content).collect::<Vec<_>>();
    assert_eq!(
        contents(store.history(conversation.id, 3).await.unwrap()),
        ["m7", "m8", "m9"]
    );
    assert_eq!(store.history(conversation.id, 100).await.unwrap().len(), 10);
    assert!(store.history(conversation.id, 0).await.unwrap().is_empty());

    // Another conversation's messages never leak in.
    let other = store.conversation(&key(Some("t1"))).await.unwrap();
    store
        .append_message(other.id, NewMessage::user(UserId::new("U2"), "elsewhere"))
        .await
        .unwrap();
    assert_eq!(
        contents(store.history(conversation.id, 1).await.unwrap()),
        ["m9"]
    );
}

conformance!(reset_hides_old_messages_and_shows_new_ones);
async fn reset_hides_old_messages_and_shows_new_ones(store: Arc<dyn Store>) {
    let conversation = store.conversation(&key(None)).await.unwrap();
    let user = || UserId::new("U1");
    store
        .append_message(conversation.id, NewMessage::user(user(), "before"))
        .await
        .unwrap();
    store.reset(conversation.id).await.unwrap();
    assert!(store.history(conversation.id, 10).await.unwrap().is_empty());

    let after = store
        .append_message(conversation.id, NewMessage::user(user(), "after"))
        .await
        .unwrap();
    let history = store.history(conversation.id, 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].id, history[0].content.as_str()),
        (after, "after")
    );

    // Resetting an empty history, and resetting twice, are harmless.
    store.reset(conversation.id).await.unwrap();
    store.reset(conversation.id).await.unwrap();
    assert!(store.history(conversation.id, 10).await.unwrap().is_empty());
}

conformance!(model_override_round_trips);
async fn model_override_round_trips(store: Arc<dyn Store>) {
    let key = key(None);
    let conversation = store.conversation(&key).await.unwrap();
    store
        .set_model(conversation.id, Some("claude-sonnet-4"))
        .await
        .unwrap();
    assert_eq!(
        store.conversation(&key).await.unwrap().model.as_deref(),
        Some("claude-sonnet-4")
    );
    store.set_model(conversation.id, None).await.unwrap();
    assert_eq!(store.conversation(&key).await.unwrap().model, None);
}

conformance!(tool_call_fields_round_trip);
async fn tool_call_fields_round_trip(store: Arc<dyn Store>) {
    let conversation = store.conversation(&key(None)).await.unwrap();
    let calls = r#"[{"id":"call_1","name":"run_code","arguments":"{\"language\":\"python\",\"code\":\"print(1)\"}"}]"#;
    let call = NewMessage {
        tool_calls: Some(calls.to_string()),
        ..NewMessage::assistant("", MessageStatus::Complete)
    };
    let output = NewMessage {
        role: MessageRole::Tool,
        content: "1\n".into(),
        tool_calls: None,
        tool_call_id: Some("call_1".into()),
        status: MessageStatus::Complete,
        author: None,
        turn: None,
        served: None,
        platform_ref: None,
    };
    store
        .append_message(conversation.id, call.clone())
        .await
        .unwrap();
    store
        .append_message(conversation.id, output.clone())
        .await
        .unwrap();

    let history = store.history(conversation.id, 10).await.unwrap();
    let stored: Vec<NewMessage> = history
        .into_iter()
        .map(|m| NewMessage {
            role: m.role,
            content: m.content,
            tool_calls: m.tool_calls,
            tool_call_id: m.tool_call_id,
            status: m.status,
            author: m.author,
            turn: None,
            served: None,
            platform_ref: None,
        })
        .collect();
    assert_eq!(stored, [call, output]);
}

conformance!(interrupted_status_round_trips);
async fn interrupted_status_round_trips(store: Arc<dyn Store>) {
    let conversation = store.conversation(&key(None)).await.unwrap();
    store
        .append_message(
            conversation.id,
            NewMessage::assistant("the answer is", MessageStatus::Interrupted),
        )
        .await
        .unwrap();
    let history = store.history(conversation.id, 10).await.unwrap();
    assert_eq!(history[0].status, MessageStatus::Interrupted);
    assert_eq!(history[0].role, MessageRole::Assistant);
    assert_eq!(history[0].author, None);
}

conformance!(replies_sort_after_their_question_and_turns_see_only_their_past);
async fn replies_sort_after_their_question_and_turns_see_only_their_past(store: Arc<dyn Store>) {
    let conversation = store.conversation(&key(None)).await.unwrap();
    let user = |t: &str| NewMessage::user(UserId::new("U1"), t);
    let reply = |t: &str, turn: i64| NewMessage {
        turn: Some(turn),
        ..NewMessage::assistant(t, MessageStatus::Complete)
    };
    // Two questions stored before either was answered, as when a user types fast.
    let q1 = store
        .append_message(conversation.id, user("q1"))
        .await
        .unwrap();
    let q2 = store
        .append_message(conversation.id, user("q2"))
        .await
        .unwrap();
    let contents =
        |h: Vec<robit_store::StoredMessage>| h.into_iter().map(|m| m.content).collect::<Vec<_>>();
    // Turn 1 does not see q2, which is queued behind it.
    assert_eq!(
        contents(store.turn_history(conversation.id, q1, 50).await.unwrap()),
        ["q1"]
    );
    store
        .append_message(conversation.id, reply("a1", q1))
        .await
        .unwrap();
    assert_eq!(
        contents(store.turn_history(conversation.id, q2, 50).await.unwrap()),
        ["q1", "a1", "q2"]
    );
    store
        .append_message(conversation.id, reply("a2", q2))
        .await
        .unwrap();
    assert_eq!(
        contents(store.history(conversation.id, 50).await.unwrap()),
        ["q1", "a1", "q2", "a2"]
    );
    // A reset forgets everything stored so far, but a turn still sees its own question.
    let q3 = store
        .append_message(conversation.id, user("q3"))
        .await
        .unwrap();
    store.reset(conversation.id).await.unwrap();
    assert_eq!(
        contents(store.turn_history(conversation.id, q3, 50).await.unwrap()),
        ["q3"]
    );
}

conformance!(many_history_reads_at_once_each_see_their_own_conversation);
async fn many_history_reads_at_once_each_see_their_own_conversation(store: Arc<dyn Store>) {
    // More reads at once than SQLite keeps read connections (`sqlite_reader.rs`): the rest
    // wait their turn rather than fail or read another conversation.
    let mut conversations = Vec::new();
    for c in 0..24 {
        let conversation = store
            .conversation(&key(Some(&format!("t{c}"))))
            .await
            .unwrap();
        for i in 0..3 {
            store
                .append_message(
                    conversation.id,
                    NewMessage::user(UserId::new("U1"), format!("c{c} m{i}")),
                )
                .await
                .unwrap();
        }
        conversations.push(conversation.id);
    }
    let reads = conversations.iter().map(|&id| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.history(id, 10).await.unwrap() })
    });
    for (c, read) in reads.collect::<Vec<_>>().into_iter().enumerate() {
        let contents: Vec<String> = read.await.unwrap().into_iter().map(|m| m.content).collect();
        assert_eq!(contents, [0, 1, 2].map(|i| format!("c{c} m{i}")));
    }
}
