//! The SQLite backend: one file next to the process, the default for a single machine.
//!
//! SQLite allows one writer at a time. Every transaction that writes starts with
//! `BEGIN IMMEDIATE`, which takes the write lock up front and therefore waits in the busy
//! handler; a deferred transaction that reads first and writes later would instead fail with
//! "database is locked" when two of them try to upgrade at once. This file must not be used
//! for multi-replica deployments: the lease it implements only coordinates one machine.

use crate::buckets;
use crate::migrations::{self, SQLITE_MIGRATOR};
use crate::model::{
    Accepted, Conversation, ConversationId, MigrationStatus, NewEvent, NewMessage, StoredMessage,
    Take, UsageGroup, UsageRecord, UsageRow,
};
use crate::rows::{self, MessageColumns};
use crate::sqlite_writer::Writer;
use crate::{PoolOptions, Result, Store};
use async_trait::async_trait;
use robit_types::{ConversationKey, Rate};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// How long a writer waits for the write lock before giving up. Writers queue behind each
/// other for milliseconds each; failing sooner than a request would time out anyway only
/// drops work that could have been saved.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// [`Store`] on a SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Owns `accept`, the write every inbound event makes (see `sqlite_writer.rs`).
    writer: Writer,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`.
    pub async fn connect(path: impl AsRef<Path>, options: PoolOptions) -> Result<Self> {
        Self::open(SqliteConnectOptions::new().filename(path), options).await
    }

    /// Opens the database named by a `sqlite:` URL, e.g. `sqlite://robit.db` or
    /// `sqlite:///var/lib/robit/robit.db`.
    pub async fn connect_url(url: &str, options: PoolOptions) -> Result<Self> {
        Self::open(SqliteConnectOptions::from_str(url)?, options).await
    }

    async fn open(connect: SqliteConnectOptions, options: PoolOptions) -> Result<Self> {
        let connect = connect
            .create_if_missing(true)
            // WAL lets readers (history loads) proceed while a writer commits; with WAL,
            // NORMAL skips the fsync per commit and stays durable across application crashes,
            // losing at most the last commits on power loss (see `PoolOptions::
            // sqlite_full_sync`, which trades that fsync back in).
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if options.sqlite_full_sync {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        let writer = Writer::start(&connect).await?;
        Ok(Self { pool, writer })
    }

    /// `PRAGMA synchronous` as a connection of the pool reads it (1 = NORMAL, 2 = FULL), for
    /// checking the setting took effect.
    pub async fn synchronous(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Closes the pool, waiting for connections in use to come back. Tests call it before
    /// reopening the file.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

async fn find_conversation(
    conn: &mut SqliteConnection,
    key: &ConversationKey,
) -> Result<Option<Conversation>> {
    let row: Option<(i64, Option<String>)> = sqlx::query_as(
        "SELECT id, model FROM conversations
         WHERE platform = $1 AND workspace = $2 AND channel = $3 AND thread = $4",
    )
    .bind(key.platform.as_str())
    .bind(key.workspace.as_str())
    .bind(key.channel.as_str())
    .bind(rows::thread_column(key))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(id, model)| rows::conversation(key, id, model)))
}

/// Find-or-create. Looks first so the common case (the conversation exists) writes nothing;
/// the insert ignores a conflict, so two callers racing to create the same key end up
/// reading the one row that won.
async fn find_or_create_conversation(
    conn: &mut SqliteConnection,
    key: &ConversationKey,
) -> Result<Conversation> {
    if let Some(found) = find_conversation(conn, key).await? {
        return Ok(found);
    }
    sqlx::query(
        "INSERT INTO conversations (platform, workspace, channel, thread, created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (platform, workspace, channel, thread) DO NOTHING",
    )
    .bind(key.platform.as_str())
    .bind(key.workspace.as_str())
    .bind(key.channel.as_str())
    .bind(rows::thread_column(key))
    .bind(rows::now_ms())
    .execute(&mut *conn)
    .await?;
    find_conversation(conn, key).await?.ok_or_else(|| {
        crate::StoreError::Corrupt(format!("conversation {key} vanished after insert"))
    })
}

async fn insert_message(
    conn: &mut SqliteConnection,
    conversation: ConversationId,
    message: &NewMessage,
) -> Result<i64> {
    let id = sqlx::query_scalar(
        "INSERT INTO messages
             (conversation_id, role, content, tool_calls, tool_call_id, status, author, created_at,
              turn_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         RETURNING id",
    )
    .bind(conversation.0)
    .bind(message.role.as_str())
    .bind(&message.content)
    .bind(&message.tool_calls)
    .bind(&message.tool_call_id)
    .bind(message.status.as_str())
    .bind(message.author.as_ref().map(|a| a.as_str()))
    .bind(rows::now_ms())
    .bind(message.turn)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// `accept` inside a transaction the caller owns (the group-commit writer's savepoint).
/// Nothing is written for a duplicate: its event-id insert affected no row.
pub(crate) async fn accept_in(conn: &mut SqliteConnection, event: &NewEvent) -> Result<Accepted> {
    let inserted = sqlx::query(
        "INSERT INTO processed_events (platform, event_id, received_at)
         VALUES ($1, $2, $3)
         ON CONFLICT (platform, event_id) DO NOTHING",
    )
    .bind(event.platform.as_str())
    .bind(event.event_id.as_str())
    .bind(rows::now_ms())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(Accepted::Duplicate);
    }
    let conversation = find_or_create_conversation(conn, &event.key).await?;
    let message_id = match &event.message {
        Some(message) => Some(insert_message(conn, conversation.id, message).await?),
        None => None,
    };
    let turn_id = match &event.turn {
        Some(turn) => Some(crate::journal::insert_turn!(
            "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            conn,
            event,
            turn,
            conversation.id.0,
            message_id
        )),
        None => None,
    };
    Ok(Accepted::New {
        conversation,
        message_id,
        turn_id,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        SQLITE_MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn accept(&self, event: NewEvent) -> Result<Accepted> {
        self.writer.accept(event).await
    }

    async fn conversation(&self, key: &ConversationKey) -> Result<Conversation> {
        let mut conn = self.pool.acquire().await?;
        find_or_create_conversation(&mut conn, key).await
    }

    async fn append_message(
        &self,
        conversation: ConversationId,
        message: NewMessage,
    ) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        insert_message(&mut conn, conversation, &message).await
    }

    async fn history(
        &self,
        conversation: ConversationId,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        self.turn_history(conversation, i64::MAX, limit).await
    }

    async fn turn_history(
        &self,
        conversation: ConversationId,
        turn: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>> {
        // Newest first so LIMIT keeps the newest; reversed below into reading order. The
        // position COALESCE(turn_id, id) puts a reply right after its question.
        let rows: Vec<MessageColumns> = sqlx::query_as(
            "SELECT m.id, m.role, m.content, m.tool_calls, m.tool_call_id, m.status, m.author,
                    m.created_at
             FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.conversation_id = $1
               AND COALESCE(m.turn_id, m.id) <= $3
               AND (COALESCE(m.turn_id, m.id) > c.history_from OR COALESCE(m.turn_id, m.id) = $3)
             ORDER BY COALESCE(m.turn_id, m.id) DESC, m.id DESC
             LIMIT $2",
        )
        .bind(conversation.0)
        .bind(i64::from(limit))
        .bind(turn)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().rev().map(rows::message).collect()
    }

    async fn reset(&self, conversation: ConversationId) -> Result<()> {
        sqlx::query(
            "UPDATE conversations
             SET history_from = COALESCE(
                 (SELECT MAX(id) FROM messages WHERE conversation_id = $1), history_from)
             WHERE id = $1",
        )
        .bind(conversation.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_model(&self, conversation: ConversationId, model: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE conversations SET model = $2 WHERE id = $1")
            .bind(conversation.0)
            .bind(model)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn usage_summary(&self, group: UsageGroup, since_ms: i64) -> Result<Vec<UsageRow>> {
        let key = match group {
            UsageGroup::Workspace => "platform || ':' || workspace",
            UsageGroup::Channel => "platform || ':' || workspace || ':' || channel",
            UsageGroup::User => "platform || ':' || COALESCE(user_id, '?')",
            UsageGroup::Model => "provider || '/' || model",
            UsageGroup::Day => "strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')",
        };
        // `key` is one of the fixed expressions above, never user input.
        let sql = format!(
            "SELECT {key} AS g, COUNT(*), CAST(SUM(prompt_tokens) AS BIGINT),
                    CAST(SUM(completion_tokens) AS BIGINT)
             FROM usage WHERE created_at >= $1
             GROUP BY g ORDER BY SUM(prompt_tokens) + SUM(completion_tokens) DESC, g"
        );
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(group, n, p, c)| UsageRow {
                group,
                requests: n as u64,
                prompt_tokens: p as u64,
                completion_tokens: c as u64,
            })
            .collect())
    }

    async fn record_usage(&self, usage: UsageRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO usage (conversation_id, platform, workspace, channel, user_id, provider,
                                model, prompt_tokens, completion_tokens, estimated, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(usage.conversation.0)
        .bind(usage.key.platform.as_str())
        .bind(usage.key.workspace.as_str())
        .bind(usage.key.channel.as_str())
        .bind(usage.user.as_ref().map(|u| u.as_str()))
        .bind(&usage.provider)
        .bind(&usage.model)
        .bind(rows::tokens(usage.prompt_tokens))
        .bind(rows::tokens(usage.completion_tokens))
        .bind(usage.estimated)
        .bind(rows::now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn try_lease(
        &self,
        conversation: ConversationId,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool> {
        // One statement, so it is atomic on its own: the update branch only fires when the
        // lease is ours or has expired; otherwise nothing changes and no row is affected.
        let now = rows::now_ms();
        let taken = sqlx::query(
            "INSERT INTO conversation_leases (conversation_id, holder, expires_at)
             VALUES ($1, $2, $3)
             ON CONFLICT (conversation_id) DO UPDATE
                 SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE conversation_leases.holder = excluded.holder
                    OR conversation_leases.expires_at <= $4",
        )
        .bind(conversation.0)
        .bind(holder)
        .bind(now.saturating_add(rows::millis(ttl)))
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    async fn release_lease(&self, conversation: ConversationId, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM conversation_leases WHERE conversation_id = $1 AND holder = $2")
            .bind(conversation.0)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn migration_status(&self) -> Result<MigrationStatus> {
        let server_version: String = sqlx::query_scalar("SELECT sqlite_version()")
            .fetch_one(&self.pool)
            .await?;
        // Only read: asking for the status must not create the bookkeeping table.
        let has_table: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master
                            WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
        .fetch_one(&self.pool)
        .await?;
        let applied = if has_table {
            sqlx::query_scalar(
                "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(&self.pool)
            .await?
        } else {
            Vec::new()
        };
        Ok(migrations::status(
            &SQLITE_MIGRATOR,
            applied,
            format!("SQLite {server_version}"),
        ))
    }

    async fn take_tokens(&self, bucket: &str, rate: Rate, cost: f64) -> Result<Take> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = rows::now_ms();
        let current = load_bucket(&mut tx, bucket, now, rate).await?;
        let (left, taken) = buckets::take(current, rate, cost);
        save_bucket(&mut tx, bucket, left, now).await?;
        tx.commit().await?;
        Ok(taken)
    }

    async fn block_bucket(&self, bucket: &str, rate: Rate, pause: Duration) -> Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = rows::now_ms();
        let current = load_bucket(&mut tx, bucket, now, rate).await?;
        save_bucket(&mut tx, bucket, buckets::blocked(current, rate, pause), now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn settings(
        &self,
        platform: robit_types::Platform,
        workspace: &robit_types::WorkspaceId,
        channel: &robit_types::ChannelId,
    ) -> Result<Vec<crate::SettingRow>> {
        crate::access::sqlite::settings(&self.pool, platform, workspace, channel).await
    }

    async fn put_setting(
        &self,
        place: &crate::SettingPlace,
        key: &str,
        value: Option<&str>,
        actor: &str,
    ) -> Result<()> {
        crate::access::sqlite::put_setting(&self.pool, place, key, value, actor).await
    }

    async fn access_rules(
        &self,
        platform: robit_types::Platform,
        workspace: &robit_types::WorkspaceId,
    ) -> Result<Vec<crate::AccessRule>> {
        crate::access::sqlite::access_rules(&self.pool, platform, workspace).await
    }

    async fn put_access_rule(
        &self,
        platform: robit_types::Platform,
        workspace: &robit_types::WorkspaceId,
        kind: robit_types::SubjectKind,
        subject: &str,
        effect: Option<robit_types::RuleEffect>,
        actor: &str,
    ) -> Result<()> {
        crate::access::sqlite::put_access_rule(
            &self.pool, platform, workspace, kind, subject, effect, actor,
        )
        .await
    }

    async fn tokens_used_since(
        &self,
        platform: robit_types::Platform,
        workspace: &robit_types::WorkspaceId,
        since_ms: i64,
    ) -> Result<u64> {
        crate::access::sqlite::tokens_used_since(&self.pool, platform, workspace, since_ms).await
    }

    async fn record_audit(&self, entry: crate::NewAuditEntry) -> Result<()> {
        crate::access::sqlite::record_audit(&self.pool, entry).await
    }

    async fn audit_log(&self, since_ms: i64, limit: u32) -> Result<Vec<crate::AuditEntry>> {
        crate::access::sqlite::audit_log(&self.pool, since_ms, limit).await
    }

    async fn add_api_key(&self, name: &str, hash: &str) -> Result<i64> {
        crate::access::sqlite::add_api_key(&self.pool, name, hash).await
    }

    async fn api_key(&self, id: i64) -> Result<Option<crate::ApiKeyRow>> {
        crate::access::sqlite::api_key(&self.pool, id).await
    }

    async fn api_keys(&self) -> Result<Vec<crate::ApiKeyRow>> {
        crate::access::sqlite::api_keys(&self.pool).await
    }

    async fn delete_api_key(&self, id: i64) -> Result<bool> {
        crate::access::sqlite::delete_api_key(&self.pool, id).await
    }

    async fn find_conversation(&self, key: &ConversationKey) -> Result<Option<Conversation>> {
        let mut conn = self.pool.acquire().await?;
        find_conversation(&mut conn, key).await
    }

    async fn prune_processed_events(&self, before_ms: i64) -> Result<u64> {
        // In batches, so no single statement holds the write lock (SQLite) or a long row
        // lock set (PostgreSQL) while events keep arriving; the `received_at` index
        // (`processed_events_by_time`, migration 0001) finds each batch.
        let mut total = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM processed_events WHERE (platform, event_id) IN (
                     SELECT platform, event_id FROM processed_events
                     WHERE received_at < $1 LIMIT $2)",
            )
            .bind(before_ms)
            .bind(crate::PRUNE_BATCH)
            .execute(&self.pool)
            .await?
            .rows_affected();
            total += n;
            if n < crate::PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}

/// The bucket's balance at `now`; a bucket never used is full. Runs inside a write
/// transaction, which is what makes load-compute-save atomic on SQLite.
async fn load_bucket(
    conn: &mut SqliteConnection,
    bucket: &str,
    now: i64,
    rate: Rate,
) -> Result<f64> {
    let row: Option<(f64, i64)> =
        sqlx::query_as("SELECT tokens, updated_at FROM rate_buckets WHERE bucket = $1")
            .bind(bucket)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(row.map_or(rate.burst, |(tokens, at)| {
        buckets::refilled(tokens, at, now, rate)
    }))
}

async fn save_bucket(
    conn: &mut SqliteConnection,
    bucket: &str,
    tokens: f64,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO rate_buckets (bucket, tokens, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (bucket) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at",
    )
    .bind(bucket)
    .bind(tokens)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

crate::journal::journal_impl!(
    SqliteStore,
    "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    ""
);
