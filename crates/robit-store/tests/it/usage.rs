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
