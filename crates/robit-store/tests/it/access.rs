//! Settings, access rules, quotas, the audit log and API keys: the state behind "who may use
//! robit and how".

use crate::support::key;
use robit_store::{NewAuditEntry, SettingPlace, Store, UsageRecord};
use robit_types::{ChannelId, Platform, RuleEffect, SubjectKind, UserId, WorkspaceId};
use std::sync::Arc;

fn ws() -> WorkspaceId {
    WorkspaceId::new("T1")
}

fn place(channel: Option<&str>) -> SettingPlace {
    SettingPlace {
        platform: Platform::Slack,
        workspace: ws(),
        channel: channel.map(ChannelId::new),
    }
}

conformance!(settings_of_a_channel_include_its_workspace_and_nothing_else);
async fn settings_of_a_channel_include_its_workspace_and_nothing_else(store: Arc<dyn Store>) {
    let c1 = ChannelId::new("C1");
    store
        .put_setting(&place(None), "model", Some("ws-model"), "U1")
        .await
        .unwrap();
    store
        .put_setting(&place(Some("C1")), "model", Some("c1-model"), "U1")
        .await
        .unwrap();
    store
        .put_setting(&place(Some("C2")), "run_code", Some("false"), "U2")
        .await
        .unwrap();
    let rows = store.settings(Platform::Slack, &ws(), &c1).await.unwrap();
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.channel.clone(), r.key.as_str(), r.value.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (None, "model", "ws-model"),
            (Some(c1.clone()), "model", "c1-model")
        ]
    );
    assert_eq!(rows[1].updated_by, "U1");
    // An update replaces; unset removes only that scope's row.
    store
        .put_setting(&place(Some("C1")), "model", Some("newer"), "U3")
        .await
        .unwrap();
    store
        .put_setting(&place(None), "model", None, "U3")
        .await
        .unwrap();
    let rows = store.settings(Platform::Slack, &ws(), &c1).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].value.as_str(), rows[0].updated_by.as_str()),
        ("newer", "U3")
    );
    // Other workspaces and platforms see none of it.
    assert!(store
        .settings(Platform::Discord, &ws(), &c1)
        .await
        .unwrap()
        .is_empty());
}

conformance!(access_rules_are_upserted_and_cleared_per_workspace);
async fn access_rules_are_upserted_and_cleared_per_workspace(store: Arc<dyn Store>) {
    store
        .put_access_rule(
            Platform::Slack,
            &ws(),
            SubjectKind::User,
            "U9",
            Some(RuleEffect::Allow),
            "U1",
        )
        .await
        .unwrap();
    store
        .put_access_rule(
            Platform::Slack,
            &ws(),
            SubjectKind::User,
            "U9",
            Some(RuleEffect::Deny),
            "U1",
        )
        .await
        .unwrap();
    store
        .put_access_rule(
            Platform::Slack,
            &ws(),
            SubjectKind::Channel,
            "C1",
            Some(RuleEffect::Allow),
            "U1",
        )
        .await
        .unwrap();
    store
        .put_access_rule(
            Platform::Slack,
            &WorkspaceId::new("T2"),
            SubjectKind::Role,
            "R",
            Some(RuleEffect::Deny),
            "U1",
        )
        .await
        .unwrap();
    let rules = store.access_rules(Platform::Slack, &ws()).await.unwrap();
    let got: Vec<_> = rules
        .iter()
        .map(|r| (r.kind, r.subject.as_str(), r.effect))
        .collect();
    assert_eq!(
        got,
        [
            (SubjectKind::Channel, "C1", RuleEffect::Allow),
            (SubjectKind::User, "U9", RuleEffect::Deny)
        ]
    );
    store
        .put_access_rule(Platform::Slack, &ws(), SubjectKind::User, "U9", None, "U1")
        .await
        .unwrap();
    assert_eq!(
        store
            .access_rules(Platform::Slack, &ws())
            .await
            .unwrap()
            .len(),
        1
    );
}

conformance!(tokens_used_since_sums_one_workspace_after_a_time);
async fn tokens_used_since_sums_one_workspace_after_a_time(store: Arc<dyn Store>) {
    let k = key(Some("t"));
    let conversation = store.conversation(&k).await.unwrap();
    assert_eq!(
        store
            .tokens_used_since(Platform::Slack, &ws(), 0)
            .await
            .unwrap(),
        0
    );
    for (p, c) in [(100, 20), (5, 1)] {
        store
            .record_usage(UsageRecord {
                conversation: conversation.id,
                key: k.clone(),
                user: Some(UserId::new("U1")),
                provider: "fake".into(),
                model: "m".into(),
                prompt_tokens: p,
                completion_tokens: c,
                estimated: false,
            })
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .tokens_used_since(Platform::Slack, &ws(), 0)
            .await
            .unwrap(),
        126
    );
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 60_000;
    assert_eq!(
        store
            .tokens_used_since(Platform::Slack, &ws(), later)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .tokens_used_since(Platform::Slack, &WorkspaceId::new("T2"), 0)
            .await
            .unwrap(),
        0
    );
}

conformance!(audit_log_reads_back_newest_first);
async fn audit_log_reads_back_newest_first(store: Arc<dyn Store>) {
    for action in ["config.set", "refused.denied", "config.unset"] {
        store
            .record_audit(NewAuditEntry {
                platform: "slack".into(),
                workspace: "T1".into(),
                channel: "C1".into(),
                actor: "U1".into(),
                action: action.into(),
                detail: format!("{action} detail"),
            })
            .await
            .unwrap();
    }
    let log = store.audit_log(0, 2).await.unwrap();
    let actions: Vec<_> = log.iter().map(|e| e.entry.action.as_str()).collect();
    assert_eq!(actions, ["config.unset", "refused.denied"]);
    assert!(log[0].id > log[1].id && log[0].at >= log[1].at && log[0].at > 0);
    assert_eq!(log[1].entry.detail, "refused.denied detail");
    assert!(store.audit_log(i64::MAX, 10).await.unwrap().is_empty());
}

conformance!(api_keys_are_stored_by_id);
async fn api_keys_are_stored_by_id(store: Arc<dyn Store>) {
    let a = store.add_api_key("ops", "$argon2id$hash-a").await.unwrap();
    let b = store.add_api_key("ci", "$argon2id$hash-b").await.unwrap();
    assert_ne!(a, b);
    let row = store.api_key(b).await.unwrap().unwrap();
    assert_eq!(
        (row.name.as_str(), row.hash.as_str()),
        ("ci", "$argon2id$hash-b")
    );
    assert!(row.created_at > 0);
    assert!(store.api_key(b + 1000).await.unwrap().is_none());
}
