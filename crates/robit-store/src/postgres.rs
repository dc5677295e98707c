//! The PostgreSQL backend: for production and for several replicas sharing one database.
//!
//! Transactions run at PostgreSQL's default READ COMMITTED level. That is enough because every
//! race this store cares about is settled by a unique key plus `ON CONFLICT`: a second insert
//! of the same key waits for the first transaction and then sees its row. Lease expiry is
//! judged by the database clock (`now()`), never a replica's, so skewed replicas agree on it.

use crate::buckets;
use crate::migrations::{self, POSTGRES_MIGRATOR};
use crate::model::{
    Accepted, Conversation, ConversationId, MigrationStatus, NewEvent, NewMessage, StoredMessage,
    Take, UsageGroup, UsageRecord, UsageRow,
};
use crate::rows::{self, MessageColumns};
use crate::{PoolOptions, Result, Store, StoreError};
use async_trait::async_trait;
use robit_types::{ConversationKey, Rate};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};
use std::str::FromStr;
use std::time::Duration;

/// [`Store`] on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at a `postgres://` or `postgresql://` URL; tables live in the
    /// connection's default schema (normally `public`).
    pub async fn connect(url: &str, options: PoolOptions) -> Result<Self> {
        let pool = pool_options(&options)
            .connect_with(PgConnectOptions::from_str(url)?)
            .await?;
        Ok(Self { pool })
    }

    /// Connects with every table in `schema`, creating the schema if it is missing. Tests use
    /// it to run in parallel against one database, each in a schema of its own; it also lets
    /// several robit deployments share a database.
    pub async fn connect_with_schema(
        url: &str,
        schema: &str,
        options: PoolOptions,
    ) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)?;
        let quoted = quote_ident(schema);
        // Created once, up front, rather than in `after_connect`: concurrent
        // `CREATE SCHEMA IF NOT EXISTS` of one name can still fail on the catalog's unique key.
        let mut conn = connect.connect().await?;
        conn.execute(AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {quoted}"
        )))
        .await?;
        conn.close().await?;
        // The search path is per session, so each pooled connection sets it when it opens;
        // only this schema is on it, so nothing can land in `public` by accident.
        let set_path = format!("SET search_path TO {quoted}");
        let pool = pool_options(&options)
            .after_connect(move |conn, _meta| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    conn.execute(AssertSqlSafe(set_path)).await?;
                    Ok(())
                })
            })
            .connect_with(connect)
            .await?;
        Ok(Self { pool })
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn pool_options(options: &PoolOptions) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.acquire_timeout)
}

/// Quotes an SQL identifier, doubling embedded quotes, so any schema name is safe to splice.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn find_conversation(
    conn: &mut PgConnection,
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

/// Find-or-create. Looks first so the common case writes nothing. On a race the insert waits
/// for the other transaction, does nothing, and the second look (a new statement, so a new
/// snapshot under READ COMMITTED) sees the row that won.
async fn find_or_create_conversation(
    conn: &mut PgConnection,
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
    find_conversation(conn, key)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("conversation {key} vanished after insert")))
}

async fn insert_message(
    conn: &mut PgConnection,
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

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> Result<()> {
        // sqlx holds an advisory lock while migrating, so replicas starting together apply
        // each migration once.
        POSTGRES_MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn accept(&self, event: NewEvent) -> Result<Accepted> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO processed_events (platform, event_id, received_at)
             VALUES ($1, $2, $3)
             ON CONFLICT (platform, event_id) DO NOTHING",
        )
        .bind(event.platform.as_str())
        .bind(event.event_id.as_str())
        .bind(rows::now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(Accepted::Duplicate);
        }
        let conversation = find_or_create_conversation(&mut tx, &event.key).await?;
        let message_id = match &event.message {
            Some(message) => Some(insert_message(&mut tx, conversation.id, message).await?),
            None => None,
        };
        let turn_id = match &event.turn {
            Some(turn) => Some(crate::journal::insert_turn!(
                "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
                tx,
                event,
                turn,
                conversation.id.0,
                message_id
            )),
            None => None,
        };
        tx.commit().await?;
        Ok(Accepted::New {
            conversation,
            message_id,
            turn_id,
        })
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
            UsageGroup::Day => {
                "to_char(to_timestamp(created_at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            }
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
        // One statement: the conflicting row is locked while the WHERE is checked, so two
        // replicas cannot both see an expired lease and both take it.
        let taken = sqlx::query(
            "INSERT INTO conversation_leases (conversation_id, holder, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3))
             ON CONFLICT (conversation_id) DO UPDATE
                 SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE conversation_leases.holder = excluded.holder
                    OR conversation_leases.expires_at <= now()",
        )
        .bind(conversation.0)
        .bind(holder)
        .bind(ttl.as_secs_f64())
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
        let server_version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
            .fetch_one(&self.pool)
            .await?;
        // Only read: asking for the status must not create the bookkeeping table.
        // `to_regclass` resolves through the search path, like the migrator does.
        let has_table: bool =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
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
            &POSTGRES_MIGRATOR,
            applied,
            format!("PostgreSQL {server_version}"),
        ))
    }

    async fn take_tokens(&self, bucket: &str, rate: Rate, cost: f64) -> Result<Take> {
        let mut tx = self.pool.begin().await?;
        let (current, now) = lock_bucket(&mut tx, bucket, rate).await?;
        let (left, taken) = buckets::take(current, rate, cost);
        save_bucket(&mut tx, bucket, left, now).await?;
        tx.commit().await?;
        Ok(taken)
    }

    async fn block_bucket(&self, bucket: &str, rate: Rate, pause: Duration) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let (current, now) = lock_bucket(&mut tx, bucket, rate).await?;
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
        crate::access::postgres::settings(&self.pool, platform, workspace, channel).await
    }

    async fn put_setting(
        &self,
        place: &crate::SettingPlace,
        key: &str,
        value: Option<&str>,
        actor: &str,
    ) -> Result<()> {
        crate::access::postgres::put_setting(&self.pool, place, key, value, actor).await
    }

    async fn access_rules(
        &self,
        platform: robit_types::Platform,
        workspace: &robit_types::WorkspaceId,
    ) -> Result<Vec<crate::AccessRule>> {
        crate::access::postgres::access_rules(&self.pool, platform, workspace).await
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
        crate::access::postgres::put_access_rule(
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
        crate::access::postgres::tokens_used_since(&self.pool, platform, workspace, since_ms).await
    }

    async fn record_audit(&self, entry: crate::NewAuditEntry) -> Result<()> {
        crate::access::postgres::record_audit(&self.pool, entry).await
    }

    async fn audit_log(&self, since_ms: i64, limit: u32) -> Result<Vec<crate::AuditEntry>> {
        crate::access::postgres::audit_log(&self.pool, since_ms, limit).await
    }

    async fn add_api_key(&self, name: &str, hash: &str) -> Result<i64> {
        crate::access::postgres::add_api_key(&self.pool, name, hash).await
    }

    async fn api_key(&self, id: i64) -> Result<Option<crate::ApiKeyRow>> {
        crate::access::postgres::api_key(&self.pool, id).await
    }

    async fn api_keys(&self) -> Result<Vec<crate::ApiKeyRow>> {
        crate::access::postgres::api_keys(&self.pool).await
    }

    async fn delete_api_key(&self, id: i64) -> Result<bool> {
        crate::access::postgres::delete_api_key(&self.pool, id).await
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

/// The database clock in unix milliseconds. `clock_timestamp()`, not `now()`: `now()` is the
/// transaction's start, and a transaction that waited for the row lock would under-refill.
const DB_NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// Locks the bucket's row (creating it full if it is new) and returns its balance now and
/// the database time it was judged at. The row lock makes replicas take turns on one bucket.
async fn lock_bucket(conn: &mut PgConnection, bucket: &str, rate: Rate) -> Result<(f64, i64)> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO rate_buckets (bucket, tokens, updated_at) VALUES ($1, $2, {DB_NOW_MS})
         ON CONFLICT (bucket) DO NOTHING"
    )))
    .bind(bucket)
    .bind(rate.burst)
    .execute(&mut *conn)
    .await?;
    let (tokens, at, now): (f64, i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT tokens, updated_at, {DB_NOW_MS} FROM rate_buckets WHERE bucket = $1 FOR UPDATE"
    )))
    .bind(bucket)
    .fetch_one(&mut *conn)
    .await?;
    Ok((buckets::refilled(tokens, at, now, rate), now))
}

async fn save_bucket(conn: &mut PgConnection, bucket: &str, tokens: f64, now: i64) -> Result<()> {
    sqlx::query("UPDATE rate_buckets SET tokens = $2, updated_at = $3 WHERE bucket = $1")
        .bind(bucket)
        .bind(tokens)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::quote_ident;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("robit_test_1"), "\"robit_test_1\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}

crate::journal::journal_impl!(
    PostgresStore,
    "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    " FOR UPDATE SKIP LOCKED"
);
