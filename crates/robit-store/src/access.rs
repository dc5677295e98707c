//! Settings, access rules, the audit log and admin API keys: the rows behind "who may use
//! robit and how", and their SQL, written once for both backends.
//!
//! The queries are plain SQL both dialects accept (`$n` placeholders, `CAST(… AS BIGINT)`),
//! so one macro instantiates them for SQLite and for PostgreSQL and the two cannot drift.
//! This file holds no policy: deciding who is allowed, which value wins and what is in range
//! is the engine's.

use robit_types::{ChannelId, Platform, RuleEffect, SubjectKind, WorkspaceId};

/// Where a setting applies: a workspace, or one channel of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SettingPlace {
    pub platform: Platform,
    pub workspace: WorkspaceId,
    /// `None`: the whole workspace.
    pub channel: Option<ChannelId>,
}

/// One stored setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRow {
    /// `None` for a workspace-wide setting.
    pub channel: Option<ChannelId>,
    pub key: String,
    pub value: String,
    pub updated_by: String,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// One stored access rule of a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    pub kind: SubjectKind,
    pub subject: String,
    pub effect: RuleEffect,
    pub updated_by: String,
    pub updated_at: i64,
}

/// An audit log line to write. Strings, not platform types: the CLI and the admin API write
/// lines too, and they are not in any workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub platform: String,
    pub workspace: String,
    pub channel: String,
    /// Who did it (a platform user id, `cli`, `apikey:<id>`).
    pub actor: String,
    /// What kind of thing happened (`config.set`, `refused.denied`, …).
    pub action: String,
    /// The rest, for people to read.
    pub detail: String,
}

/// An audit log line as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub entry: NewAuditEntry,
}

/// An admin API key as stored: its hash, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: i64,
    pub name: String,
    /// How the secret is checked: `sha256$<hex digest>` (keys made since issue 15), or an
    /// argon2id PHC string (older keys, still accepted).
    pub hash: String,
    pub created_at: i64,
}

pub(crate) fn channel_column(place: &SettingPlace) -> &str {
    place.channel.as_ref().map_or("", |c| c.as_str())
}

pub(crate) fn setting_row(
    (channel, key, value, updated_by, updated_at): (String, String, String, String, i64),
) -> SettingRow {
    SettingRow {
        channel: (!channel.is_empty()).then_some(ChannelId(channel)),
        key,
        value,
        updated_by,
        updated_at,
    }
}

pub(crate) fn rule_row(
    (kind, subject, effect, updated_by, updated_at): (String, String, String, String, i64),
) -> crate::Result<AccessRule> {
    let corrupt = || crate::StoreError::Corrupt(format!("access rule {kind}:{subject}:{effect}"));
    Ok(AccessRule {
        kind: SubjectKind::parse(&kind).ok_or_else(corrupt)?,
        effect: RuleEffect::parse(&effect).ok_or_else(corrupt)?,
        subject,
        updated_by,
        updated_at,
    })
}

pub(crate) type AuditColumns = (i64, i64, String, String, String, String, String, String);

pub(crate) fn audit_row(
    (id, at, platform, workspace, channel, actor, action, detail): AuditColumns,
) -> AuditEntry {
    AuditEntry {
        id,
        at,
        entry: NewAuditEntry {
            platform,
            workspace,
            channel,
            actor,
            action,
            detail,
        },
    }
}

/// The access methods of [`crate::Store`] on one backend's pool; `$pool` is the pool type.
macro_rules! access_queries {
    ($pool:ty) => {
        use crate::access::{
            self as a, AccessRule, ApiKeyRow, AuditEntry, NewAuditEntry, SettingPlace, SettingRow,
        };
        use crate::rows;
        use robit_types::{ChannelId, Platform, RuleEffect, SubjectKind, WorkspaceId};

        pub(crate) async fn settings(
            pool: &$pool,
            platform: Platform,
            workspace: &WorkspaceId,
            channel: &ChannelId,
        ) -> crate::Result<Vec<SettingRow>> {
            let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
                "SELECT channel, key, value, updated_by, updated_at FROM settings
                 WHERE platform = $1 AND workspace = $2 AND (channel = '' OR channel = $3)
                 ORDER BY channel, key",
            )
            .bind(platform.as_str())
            .bind(workspace.as_str())
            .bind(channel.as_str())
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(a::setting_row).collect())
        }

        pub(crate) async fn put_setting(
            pool: &$pool,
            place: &SettingPlace,
            key: &str,
            value: Option<&str>,
            actor: &str,
        ) -> crate::Result<()> {
            let q = match value {
                Some(value) => sqlx::query(
                    "INSERT INTO settings
                         (platform, workspace, channel, key, value, updated_by, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (platform, workspace, channel, key) DO UPDATE
                         SET value = excluded.value, updated_by = excluded.updated_by,
                             updated_at = excluded.updated_at",
                )
                .bind(place.platform.as_str())
                .bind(place.workspace.as_str())
                .bind(a::channel_column(place))
                .bind(key)
                .bind(value)
                .bind(actor)
                .bind(rows::now_ms()),
                None => sqlx::query(
                    "DELETE FROM settings
                     WHERE platform = $1 AND workspace = $2 AND channel = $3 AND key = $4",
                )
                .bind(place.platform.as_str())
                .bind(place.workspace.as_str())
                .bind(a::channel_column(place))
                .bind(key),
            };
            q.execute(pool).await?;
            Ok(())
        }

        pub(crate) async fn access_rules(
            pool: &$pool,
            platform: Platform,
            workspace: &WorkspaceId,
        ) -> crate::Result<Vec<AccessRule>> {
            let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
                "SELECT subject_kind, subject, effect, updated_by, updated_at FROM access_rules
                 WHERE platform = $1 AND workspace = $2
                 ORDER BY subject_kind, subject",
            )
            .bind(platform.as_str())
            .bind(workspace.as_str())
            .fetch_all(pool)
            .await?;
            rows.into_iter().map(a::rule_row).collect()
        }

        pub(crate) async fn put_access_rule(
            pool: &$pool,
            platform: Platform,
            workspace: &WorkspaceId,
            kind: SubjectKind,
            subject: &str,
            effect: Option<RuleEffect>,
            actor: &str,
        ) -> crate::Result<()> {
            let q = match effect {
                Some(effect) => sqlx::query(
                    "INSERT INTO access_rules
                         (platform, workspace, subject_kind, subject, effect, updated_by,
                          updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (platform, workspace, subject_kind, subject) DO UPDATE
                         SET effect = excluded.effect, updated_by = excluded.updated_by,
                             updated_at = excluded.updated_at",
                )
                .bind(platform.as_str())
                .bind(workspace.as_str())
                .bind(kind.as_str())
                .bind(subject)
                .bind(effect.as_str())
                .bind(actor)
                .bind(rows::now_ms()),
                None => sqlx::query(
                    "DELETE FROM access_rules
                     WHERE platform = $1 AND workspace = $2 AND subject_kind = $3
                       AND subject = $4",
                )
                .bind(platform.as_str())
                .bind(workspace.as_str())
                .bind(kind.as_str())
                .bind(subject),
            };
            q.execute(pool).await?;
            Ok(())
        }

        pub(crate) async fn tokens_used_since(
            pool: &$pool,
            platform: Platform,
            workspace: &WorkspaceId,
            since_ms: i64,
        ) -> crate::Result<u64> {
            // Served by the (platform, workspace, created_at) index of `usage`.
            let n: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS BIGINT)
                 FROM usage WHERE platform = $1 AND workspace = $2 AND created_at >= $3",
            )
            .bind(platform.as_str())
            .bind(workspace.as_str())
            .bind(since_ms)
            .fetch_one(pool)
            .await?;
            Ok(u64::try_from(n).unwrap_or(0))
        }

        pub(crate) async fn record_audit(pool: &$pool, e: NewAuditEntry) -> crate::Result<()> {
            sqlx::query(
                "INSERT INTO audit_log (at, platform, workspace, channel, actor, action, detail)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(rows::now_ms())
            .bind(&e.platform)
            .bind(&e.workspace)
            .bind(&e.channel)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.detail)
            .execute(pool)
            .await?;
            Ok(())
        }

        pub(crate) async fn audit_log(
            pool: &$pool,
            since_ms: i64,
            limit: u32,
        ) -> crate::Result<Vec<AuditEntry>> {
            let rows: Vec<a::AuditColumns> = sqlx::query_as(
                "SELECT id, at, platform, workspace, channel, actor, action, detail
                 FROM audit_log WHERE at >= $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(since_ms)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            Ok(rows.into_iter().map(a::audit_row).collect())
        }

        pub(crate) async fn add_api_key(
            pool: &$pool,
            name: &str,
            hash: &str,
        ) -> crate::Result<i64> {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO api_keys (name, hash, created_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(name)
            .bind(hash)
            .bind(rows::now_ms())
            .fetch_one(pool)
            .await?;
            Ok(id)
        }

        pub(crate) async fn api_key(pool: &$pool, id: i64) -> crate::Result<Option<ApiKeyRow>> {
            let row: Option<(i64, String, String, i64)> =
                sqlx::query_as("SELECT id, name, hash, created_at FROM api_keys WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await?;
            Ok(row.map(|(id, name, hash, created_at)| ApiKeyRow {
                id,
                name,
                hash,
                created_at,
            }))
        }

        pub(crate) async fn api_keys(pool: &$pool) -> crate::Result<Vec<ApiKeyRow>> {
            let rows: Vec<(i64, String, String, i64)> =
                sqlx::query_as("SELECT id, name, hash, created_at FROM api_keys ORDER BY id")
                    .fetch_all(pool)
                    .await?;
            Ok(rows
                .into_iter()
                .map(|(id, name, hash, created_at)| ApiKeyRow {
                    id,
                    name,
                    hash,
                    created_at,
                })
                .collect())
        }

        pub(crate) async fn delete_api_key(pool: &$pool, id: i64) -> crate::Result<bool> {
            let done = sqlx::query("DELETE FROM api_keys WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }
    };
}

pub(crate) mod sqlite {
    access_queries!(sqlx::SqlitePool);
}

pub(crate) mod postgres {
    access_queries!(sqlx::PgPool);
}
