//! Token usage records.

use crate::support::{key, Raw};
use robit_store::{ConversationId, Store, UsageRecord};
use robit_types::UserId;
use std::sync::Arc;

conformance!(raw usage_is_recorded);
async fn usage_is_recorded(store: Arc<dyn Store>, raw: Raw) {
    let key = key(Some("t1"));
    let conversation = store.conversation(&key).await.unwrap();
    let usage = UsageRecord {
        conversation: conversation.id,
        key: key.clone(),
        user: Some(UserId::new("U1")),
        provider: "openai".into(),
        model: "gpt-4o".into(),
        prompt_tokens: 120,
        completion_tokens: 30,
        estimated: true,
    };
    store.record_usage(usage.clone()).await.unwrap();
    store
        .record_usage(UsageRecord {
            user: None,
            estimated: false,
            ..usage.clone()
        })
        .await
        .unwrap();

    assert_eq!(
        raw.scalar(
            "SELECT COUNT(*) FROM usage
             WHERE platform = 'slack' AND workspace = 'T1' AND channel = 'C1'
               AND user_id = 'U1' AND provider = 'openai' AND model = 'gpt-4o'
               AND prompt_tokens = 120 AND completion_tokens = 30 AND estimated"
        )
        .await,
        1
    );
    assert_eq!(
        raw.scalar("SELECT COUNT(*) FROM usage WHERE user_id IS NULL AND NOT estimated")
            .await,
        1
    );

    // The foreign key holds: usage for a conversation that does not exist is refused.
    let orphan = UsageRecord {
        conversation: ConversationId(conversation.id.0 + 1000),
        ..usage
    };
    assert!(store.record_usage(orphan).await.is_err());
}

conformance!(usage_is_summarised_by_group);
async fn usage_is_summarised_by_group(store: Arc<dyn Store>) {
    use robit_store::{UsageGroup, UsageRow};
    let k1 = key(Some("t1"));
    let conversation = store.conversation(&k1).await.unwrap();
    let base = UsageRecord {
        conversation: conversation.id,
        key: k1.clone(),
        user: Some(UserId::new("U1")),
        provider: "openai".into(),
        model: "gpt-4o".into(),
        prompt_tokens: 100,
        completion_tokens: 10,
        estimated: false,
    };
    store.record_usage(base.clone()).await.unwrap();
    store.record_usage(base.clone()).await.unwrap();
    store
        .record_usage(UsageRecord {
            user: Some(UserId::new("U2")),
            model: "small".into(),
            prompt_tokens: 5,
            completion_tokens: 1,
            ..base.clone()
        })
        .await
        .unwrap();
    let by_model = store.usage_summary(UsageGroup::Model, 0).await.unwrap();
    assert_eq!(
        by_model,
        vec![
            UsageRow {
                group: "openai/gpt-4o".into(),
                requests: 2,
                prompt_tokens: 200,
                completion_tokens: 20
            },
            UsageRow {
                group: "openai/small".into(),
                requests: 1,
                prompt_tokens: 5,
                completion_tokens: 1
            },
        ]
    );
    let by_user = store.usage_summary(UsageGroup::User, 0).await.unwrap();
    assert_eq!(by_user[0].group, "slack:U1");
    let by_channel = store.usage_summary(UsageGroup::Channel, 0).await.unwrap();
    assert_eq!(by_channel.len(), 1);
    assert_eq!(by_channel[0].group, "slack:T1:C1");
    assert_eq!(by_channel[0].requests, 3);
    let by_day = store.usage_summary(UsageGroup::Day, 0).await.unwrap();
    assert_eq!(by_day.len(), 1);
    assert_eq!(by_day[0].group.len(), 10, "YYYY-MM-DD: {}", by_day[0].group);
    assert!(store
        .usage_summary(UsageGroup::Workspace, i64::MAX)
        .await
        .unwrap()
        .is_empty());
}

conformance!(conversations_are_listed_by_workspace_newest_first_with_counts);
async fn conversations_are_listed_by_workspace_newest_first_with_counts(store: Arc<dyn Store>) {
    use robit_store::{MessageStatus, NewMessage};
    use robit_types::{ConversationKey, Platform, WorkspaceId};
    let console = |name: &str| ConversationKey::new(Platform::Console, "local", name, None);
    let older = store.conversation(&console("older")).await.unwrap();
    store
        .append_message(older.id, NewMessage::user(UserId::new("u"), "first"))
        .await
        .unwrap();
    // Created later, but its last message is what orders it.
    let newer = store.conversation(&console("newer")).await.unwrap();
    store.set_model(newer.id, Some("m2")).await.unwrap();
    for text in ["a", "b"] {
        store
            .append_message(newer.id, NewMessage::user(UserId::new("u"), text))
            .await
            .unwrap();
    }
    store
        .append_message(
            newer.id,
            NewMessage::assistant("c", MessageStatus::Complete),
        )
        .await
        .unwrap();
    for tokens in [(100, 20), (5, 1)] {
        store
            .record_usage(UsageRecord {
                conversation: newer.id,
                key: console("newer"),
                user: None,
                provider: "p".into(),
                model: "m2".into(),
                prompt_tokens: tokens.0,
                completion_tokens: tokens.1,
                estimated: false,
            })
            .await
            .unwrap();
    }
    // Another platform's conversation is not the console's.
    store.conversation(&key(None)).await.unwrap();

    let local = WorkspaceId::new("local");
    let list = store
        .conversations(Platform::Console, &local, 10)
        .await
        .unwrap();
    let rows: Vec<_> = list
        .iter()
        .map(|c| {
            (
                c.key.channel.as_str(),
                c.model.as_deref(),
                c.messages,
                c.tokens,
            )
        })
        .collect();
    assert_eq!(rows, [("newer", Some("m2"), 3, 126), ("older", None, 1, 0)]);
    assert_eq!(list[0].key, console("newer"));
    assert!(list[0].last_active_ms >= list[1].last_active_ms);
    // A reset empties the count (history), not the tokens spent.
    store.reset(newer.id).await.unwrap();
    let list = store
        .conversations(Platform::Console, &local, 1)
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].messages, list[0].tokens), (0, 126));
}
