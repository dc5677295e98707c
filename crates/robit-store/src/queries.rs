//! The store's SQL, written once for both backends: the backend-neutral query layer.
//!
//! SQLite and PostgreSQL accept the same text for almost every statement (`$n` placeholders,
//! `ON CONFLICT`, `RETURNING`, `CAST(… AS BIGINT)`), so [`sql_store!`] writes the whole
//! [`crate::Store`] implementation once and each backend instantiates it for its own types.
//! What a backend does its own way is the [`Dialect`] it implements: how it takes an event in
//! (each backend's group-commit writer), its clock, its leases and
//! token-bucket locking, and the few expressions the two dialects spell differently. The turn
//! journal (`journal.rs`) and the access queries (`access.rs`) are written once the same way.
//!
//! Macros rather than functions generic over `sqlx::Database`: every query would need a bound
//! per bound value and per decoded tuple, repeated on every function, which buries the SQL.

use crate::model::{Accepted, ConversationId, NewEvent, NewMessage, Take};
use crate::Result;
use robit_types::Rate;
use sqlx::migrate::Migrator;
use std::time::Duration;

/// The statements of `accept` (dedup, find-or-create the conversation, the user's message,
/// an edit of a stored question), shared by the sqlx queries of both backends below and by
/// SQLite's group-commit writer, which runs them through its own driver (`sqlite_writer.rs`).
/// Placeholders are bound by number (`$n`), whatever order they appear in.
pub(crate) mod accept_sql {
    pub(crate) const RECORD_EVENT: &str = "INSERT INTO processed_events (platform, event_id, \
         received_at) VALUES ($1, $2, $3) ON CONFLICT (platform, event_id) DO NOTHING";
    pub(crate) const FIND_CONVERSATION: &str = "SELECT id, model FROM conversations \
         WHERE platform = $1 AND workspace = $2 AND channel = $3 AND thread = $4";
    pub(crate) const CREATE_CONVERSATION: &str = "INSERT INTO conversations (platform, \
         workspace, channel, thread, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (platform, workspace, channel, thread) DO NOTHING";
    pub(crate) const INSERT_MESSAGE: &str = "INSERT INTO messages (conversation_id, role, \
         content, tool_calls, tool_call_id, status, author, created_at, turn_id, provider, \
         model, platform_ref) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         RETURNING id";
    pub(crate) const EDIT_QUESTION: &str =
        "UPDATE messages SET content = $2 WHERE id = $1 AND role = 'user'";
}

/// What one backend does differently from the other; everything else in [`crate::Store`] is
/// written once by [`sql_store!`]. Only called on the concrete backend types, never held as
/// a trait object.
pub(crate) trait Dialect {
    /// The sqlx driver.
    type Db: sqlx::Database;

    /// The database's name in `robit doctor` (`SQLite 3.45.1`).
    const NAME: &'static str;

    /// A query returning the server version as text.
    const SERVER_VERSION: &'static str;

    /// A query returning whether the migrator's `_sqlx_migrations` table exists, without
    /// creating it.
    const HAS_MIGRATIONS_TABLE: &'static str;

    /// The `usage.created_at` day (`YYYY-MM-DD`, UTC) as an SQL expression.
    const USAGE_DAY: &'static str;

    /// The embedded migrations of this dialect.
    fn migrator() -> &'static Migrator;

    /// [`crate::Store::accept`]: the dedup row, conversation, message and turn in one
    /// transaction, batched with other events' by the backend's group-commit writer (SQLite
    /// runs `accept_sql`'s statements per event on its own driver; PostgreSQL one multi-row
    /// statement per table for the batch, and [`sql_store!`]'s `accept_in` per event when a
    /// batch has to be taken apart).
    async fn accept(&self, event: NewEvent) -> Result<Accepted>;

    /// [`crate::TurnJournal::renew_turns`]: SQLite sends it through its group-commit writer,
    /// so renewing a long queue's leases takes turns with the intake's accepts instead of
    /// racing them for the one write lock; PostgreSQL runs it on the pool.
    async fn renew_turns(
        &self,
        holder: &str,
        lease: Duration,
        after: i64,
        limit: u32,
    ) -> Result<Vec<i64>>;

    /// [`crate::TurnJournal::set_turn_status`]: every turn's start and end; SQLite sends it
    /// through its group-commit writer for the same reason as a renewal.
    async fn set_turn_status(
        &self,
        turn: i64,
        holder: &str,
        status: crate::model::TurnStatus,
    ) -> Result<bool>;

    /// [`crate::Store::append_message`]: a turn's answer and tool messages. SQLite sends it
    /// through its group-commit writer, like a turn's status, so an answer is not stored by a
    /// pooled connection sleeping in SQLite's busy handler while the intake writes.
    async fn append_message(
        &self,
        conversation: ConversationId,
        message: NewMessage,
    ) -> Result<i64>;

    /// [`crate::Store::record_usage`] ([`RECORD_USAGE`]): every model call's; through
    /// SQLite's writer for the same reason.
    async fn record_usage(&self, usage: crate::model::UsageRecord) -> Result<()>;

    /// [`crate::Store::turn_history`]'s rows ([`TURN_HISTORY`]) read on the backend's own
    /// driver, where it has one for reads (SQLite's, see `sqlite_reader.rs`); `None`: the
    /// store reads them through its pool.
    async fn turn_history_own(
        &self,
        conversation: ConversationId,
        turn: i64,
        limit: u32,
    ) -> Option<Result<Vec<crate::rows::MessageColumns>>>;

    /// [`crate::Store::try_lease`]: whose clock judges expiry differs.
    async fn try_lease(
        &self,
        conversation: ConversationId,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool>;

    /// Begins the write transaction a token-bucket update runs in.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>>;

    /// Inside [`Dialect::begin_write`]'s transaction: the bucket's balance now (a bucket never
    /// used is full) and the time it was judged at, such that no other writer can change the
    /// bucket before the transaction ends.
    async fn lock_bucket(
        conn: &mut <Self::Db as sqlx::Database>::Connection,
        bucket: &str,
        rate: Rate,
    ) -> Result<(f64, i64)>;

    /// Stores the bucket's new balance, judged at `now`, in the same transaction.
    async fn save_bucket(
        conn: &mut <Self::Db as sqlx::Database>::Connection,
        bucket: &str,
        tokens: f64,
        now: i64,
    ) -> Result<()>;
}

/// One model call's token usage.
pub(crate) const RECORD_USAGE: &str =
    "INSERT INTO usage (conversation_id, platform, workspace, channel, user_id, provider,
                        model, prompt_tokens, completion_tokens, estimated, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// A conversation's history up to and including turn `$3`, newest first so `LIMIT $2` keeps
/// the newest; the position `COALESCE(turn_id, id)` puts a reply right after its question.
/// Both backends and both SQLite drivers run this text.
pub(crate) const TURN_HISTORY: &str =
    "SELECT m.id, m.role, m.content, m.tool_calls, m.tool_call_id, m.status,
            m.author, m.created_at
     FROM messages m JOIN conversations c ON c.id = m.conversation_id
     WHERE m.conversation_id = $1 AND m.status <> 'superseded'
       AND COALESCE(m.turn_id, m.id) <= $3
       AND (COALESCE(m.turn_id, m.id) > c.history_from
            OR COALESCE(m.turn_id, m.id) = $3)
     ORDER BY COALESCE(m.turn_id, m.id) DESC, m.id DESC
     LIMIT $2";

/// Takes `cost` tokens from a bucket under the dialect's lock (see [`crate::Store::take_tokens`]).
pub(crate) async fn take_tokens<D: Dialect>(
    store: &D,
    bucket: &str,
    rate: Rate,
    cost: f64,
) -> Result<Take> {
    let mut tx = store.begin_write().await?;
    let (current, now) = D::lock_bucket(&mut tx, bucket, rate).await?;
    let (left, wait) = rate.take(current, cost);
    D::save_bucket(&mut tx, bucket, left, now).await?;
    tx.commit().await?;
    Ok(wait.map_or(Take::Granted, Take::Wait))
}

/// Empties a bucket for `pause` under the dialect's lock (see [`crate::Store::block_bucket`]).
pub(crate) async fn block_bucket<D: Dialect>(
    store: &D,
    bucket: &str,
    rate: Rate,
    pause: Duration,
) -> Result<()> {
    let mut tx = store.begin_write().await?;
    let (current, now) = D::lock_bucket(&mut tx, bucket, rate).await?;
    let blocked = rate.block(current, pause);
    D::save_bucket(&mut tx, bucket, blocked, now).await?;
    tx.commit().await?;
    Ok(())
}

/// The connection-level queries (`find_conversation`, `find_or_create_conversation`,
/// `insert_message`, `accept_in`) as functions of the calling module, then `impl Store` and
/// `impl TurnJournal` for `$store`, which must implement [`Dialect`] and have its pool in
/// `self.pool`. `$conn` is the driver's connection type, `$now` its clock as unix
/// milliseconds, `$lock` the row lock of a journal claim (see `journal.rs`), `$access` the
/// module of `access.rs` for this pool.
macro_rules! sql_store {
    ($store:ty, $conn:ty, $access:ident, now = $now:expr, lock = $lock:literal) => {
        async fn find_conversation(
            conn: &mut $conn,
            key: &robit_types::ConversationKey,
        ) -> crate::Result<Option<crate::model::Conversation>> {
            let row: Option<(i64, Option<String>)> =
                sqlx::query_as(crate::queries::accept_sql::FIND_CONVERSATION)
            .bind(key.platform.as_str())
            .bind(key.workspace.as_str())
            .bind(key.channel.as_str())
            .bind(crate::rows::thread_column(key))
            .fetch_optional(&mut *conn)
            .await?;
            Ok(row.map(|(id, model)| crate::rows::conversation(key, id, model)))
        }

        /// Find-or-create. Looks first so the common case (the conversation exists) writes
        /// nothing. The insert ignores a conflict, so two callers racing to create one key
        /// both end up reading the row that won (on PostgreSQL the insert waits for the other
        /// transaction, and the second look, a new statement under READ COMMITTED, sees it).
        async fn find_or_create_conversation(
            conn: &mut $conn,
            key: &robit_types::ConversationKey,
        ) -> crate::Result<crate::model::Conversation> {
            if let Some(found) = find_conversation(conn, key).await? {
                return Ok(found);
            }
            sqlx::query(crate::queries::accept_sql::CREATE_CONVERSATION)
            .bind(key.platform.as_str())
            .bind(key.workspace.as_str())
            .bind(key.channel.as_str())
            .bind(crate::rows::thread_column(key))
            .bind(crate::rows::now_ms())
            .execute(&mut *conn)
            .await?;
            find_conversation(conn, key).await?.ok_or_else(|| {
                crate::StoreError::Corrupt(format!("conversation {key} vanished after insert"))
            })
        }

        async fn insert_message(
            conn: &mut $conn,
            conversation: crate::model::ConversationId,
            message: &crate::model::NewMessage,
        ) -> crate::Result<i64> {
            let id = sqlx::query_scalar(crate::queries::accept_sql::INSERT_MESSAGE)
            .bind(conversation.0)
            .bind(message.role.as_str())
            .bind(&message.content)
            .bind(&message.tool_calls)
            .bind(&message.tool_call_id)
            .bind(message.status.as_str())
            .bind(message.author.as_ref().map(|a| a.as_str()))
            .bind(crate::rows::now_ms())
            .bind(message.turn)
            .bind(message.served.as_ref().map(|s| s.provider.as_str()))
            .bind(message.served.as_ref().map(|s| s.model.as_str()))
            .bind(message.platform_ref.as_deref())
            .fetch_one(&mut *conn)
            .await?;
            Ok(id)
        }

        /// `accept` inside a transaction the caller owns. Nothing is written for a duplicate:
        /// its event-id insert affected no row. (SQLite's writer runs the same statements on
        /// its own driver, so there this is unused.)
        #[allow(dead_code)]
        pub(crate) async fn accept_in(
            conn: &mut $conn,
            event: &crate::model::NewEvent,
        ) -> crate::Result<crate::model::Accepted> {
            let inserted = sqlx::query(crate::queries::accept_sql::RECORD_EVENT)
            .bind(event.platform.as_str())
            .bind(event.event_id.as_str())
            .bind(crate::rows::now_ms())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Ok(crate::model::Accepted::Duplicate);
            }
            let conversation = find_or_create_conversation(conn, &event.key).await?;
            let message_id = match &event.message {
                Some(message) => Some(insert_message(conn, conversation.id, message).await?),
                None => None,
            };
            if let Some(edit) = &event.edit {
                sqlx::query(crate::queries::accept_sql::EDIT_QUESTION)
                    .bind(edit.question)
                    .bind(&edit.text)
                    .execute(&mut *conn)
                    .await?;
            }
            let turn_id = match &event.turn {
                Some(turn) => {
                    let id = crate::journal::insert_turn!(
                        $now,
                        conn,
                        event,
                        turn,
                        conversation.id.0,
                        message_id.or(turn.answers)
                    );
                    if let Some(question) = turn.answers {
                        crate::journal::hand_over_answer!(conn, question, id);
                    }
                    Some(id)
                }
                None => None,
            };
            Ok(crate::model::Accepted::New {
                conversation,
                message_id,
                turn_id,
            })
        }

        #[async_trait::async_trait]
        impl crate::Store for $store {
            async fn migrate(&self) -> crate::Result<()> {
                // On PostgreSQL sqlx holds an advisory lock while migrating, so replicas
                // starting together apply each migration once.
                <$store as crate::queries::Dialect>::migrator()
                    .run(&self.pool)
                    .await?;
                Ok(())
            }

            async fn ping(&self) -> crate::Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn accept(
                &self,
                event: crate::model::NewEvent,
            ) -> crate::Result<crate::model::Accepted> {
                crate::queries::Dialect::accept(self, event).await
            }

            async fn conversation(
                &self,
                key: &robit_types::ConversationKey,
            ) -> crate::Result<crate::model::Conversation> {
                let mut conn = self.pool.acquire().await?;
                find_or_create_conversation(&mut conn, key).await
            }

            async fn append_message(
                &self,
                conversation: crate::model::ConversationId,
                message: crate::model::NewMessage,
            ) -> crate::Result<i64> {
                crate::queries::Dialect::append_message(self, conversation, message).await
            }

            async fn history(
                &self,
                conversation: crate::model::ConversationId,
                limit: u32,
            ) -> crate::Result<Vec<crate::model::StoredMessage>> {
                self.turn_history(conversation, i64::MAX, limit).await
            }

            async fn turn_history(
                &self,
                conversation: crate::model::ConversationId,
                turn: i64,
                limit: u32,
            ) -> crate::Result<Vec<crate::model::StoredMessage>> {
                let rows = match crate::queries::Dialect::turn_history_own(
                    self,
                    conversation,
                    turn,
                    limit,
                )
                .await
                {
                    Some(rows) => rows?,
                    None => {
                        sqlx::query_as::<_, crate::rows::MessageColumns>(
                            crate::queries::TURN_HISTORY,
                        )
                        .bind(conversation.0)
                        .bind(i64::from(limit))
                        .bind(turn)
                        .fetch_all(&self.pool)
                        .await?
                    }
                };
                // Newest first (see `TURN_HISTORY`): reversed into reading order.
                rows.into_iter().rev().map(crate::rows::message).collect()
            }

            async fn reset(&self, conversation: crate::model::ConversationId) -> crate::Result<()> {
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

            async fn set_model(
                &self,
                conversation: crate::model::ConversationId,
                model: Option<&str>,
            ) -> crate::Result<()> {
                sqlx::query("UPDATE conversations SET model = $2 WHERE id = $1")
                    .bind(conversation.0)
                    .bind(model)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn usage_summary(
                &self,
                group: crate::model::UsageGroup,
                since_ms: i64,
            ) -> crate::Result<Vec<crate::model::UsageRow>> {
                use crate::model::UsageGroup;
                let key = match group {
                    UsageGroup::Workspace => "platform || ':' || workspace",
                    UsageGroup::Channel => "platform || ':' || workspace || ':' || channel",
                    UsageGroup::User => "platform || ':' || COALESCE(user_id, '?')",
                    UsageGroup::Model => "provider || '/' || model",
                    UsageGroup::Day => <$store as crate::queries::Dialect>::USAGE_DAY,
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
                    .map(|(group, n, p, c)| crate::model::UsageRow {
                        group,
                        requests: n as u64,
                        prompt_tokens: p as u64,
                        completion_tokens: c as u64,
                    })
                    .collect())
            }

            async fn record_usage(&self, usage: crate::model::UsageRecord) -> crate::Result<()> {
                crate::queries::Dialect::record_usage(self, usage).await
            }

            async fn try_lease(
                &self,
                conversation: crate::model::ConversationId,
                holder: &str,
                ttl: std::time::Duration,
            ) -> crate::Result<bool> {
                crate::queries::Dialect::try_lease(self, conversation, holder, ttl).await
            }

            async fn release_lease(
                &self,
                conversation: crate::model::ConversationId,
                holder: &str,
            ) -> crate::Result<()> {
                sqlx::query(
                    "DELETE FROM conversation_leases WHERE conversation_id = $1 AND holder = $2",
                )
                .bind(conversation.0)
                .bind(holder)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn migration_status(&self) -> crate::Result<crate::model::MigrationStatus> {
                use crate::queries::Dialect;
                let server_version: String =
                    sqlx::query_scalar(<$store as Dialect>::SERVER_VERSION)
                        .fetch_one(&self.pool)
                        .await?;
                // Only read: asking for the status must not create the bookkeeping table.
                let has_table: bool =
                    sqlx::query_scalar(<$store as Dialect>::HAS_MIGRATIONS_TABLE)
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
                Ok(crate::migrations::status(
                    <$store as Dialect>::migrator(),
                    applied,
                    format!("{} {server_version}", <$store as Dialect>::NAME),
                ))
            }

            async fn take_tokens(
                &self,
                bucket: &str,
                rate: robit_types::Rate,
                cost: f64,
            ) -> crate::Result<crate::model::Take> {
                crate::queries::take_tokens(self, bucket, rate, cost).await
            }

            async fn block_bucket(
                &self,
                bucket: &str,
                rate: robit_types::Rate,
                pause: std::time::Duration,
            ) -> crate::Result<()> {
                crate::queries::block_bucket(self, bucket, rate, pause).await
            }

            async fn settings(
                &self,
                platform: robit_types::Platform,
                workspace: &robit_types::WorkspaceId,
                channel: &robit_types::ChannelId,
            ) -> crate::Result<Vec<crate::SettingRow>> {
                crate::access::$access::settings(&self.pool, platform, workspace, channel).await
            }

            async fn put_setting(
                &self,
                place: &crate::SettingPlace,
                key: &str,
                value: Option<&str>,
                actor: &str,
            ) -> crate::Result<()> {
                crate::access::$access::put_setting(&self.pool, place, key, value, actor).await
            }

            async fn access_rules(
                &self,
                platform: robit_types::Platform,
                workspace: &robit_types::WorkspaceId,
            ) -> crate::Result<Vec<crate::AccessRule>> {
                crate::access::$access::access_rules(&self.pool, platform, workspace).await
            }

            async fn put_access_rule(
                &self,
                platform: robit_types::Platform,
                workspace: &robit_types::WorkspaceId,
                kind: robit_types::SubjectKind,
                subject: &str,
                effect: Option<robit_types::RuleEffect>,
                actor: &str,
            ) -> crate::Result<()> {
                crate::access::$access::put_access_rule(
                    &self.pool, platform, workspace, kind, subject, effect, actor,
                )
                .await
            }

            async fn tokens_used_since(
                &self,
                platform: robit_types::Platform,
                workspace: &robit_types::WorkspaceId,
                since_ms: i64,
            ) -> crate::Result<u64> {
                crate::access::$access::tokens_used_since(&self.pool, platform, workspace, since_ms)
                    .await
            }

            async fn record_audit(&self, entry: crate::NewAuditEntry) -> crate::Result<()> {
                crate::access::$access::record_audit(&self.pool, entry).await
            }

            async fn audit_log(
                &self,
                since_ms: i64,
                limit: u32,
            ) -> crate::Result<Vec<crate::AuditEntry>> {
                crate::access::$access::audit_log(&self.pool, since_ms, limit).await
            }

            async fn add_api_key(&self, name: &str, hash: &str) -> crate::Result<i64> {
                crate::access::$access::add_api_key(&self.pool, name, hash).await
            }

            async fn api_key(&self, id: i64) -> crate::Result<Option<crate::ApiKeyRow>> {
                crate::access::$access::api_key(&self.pool, id).await
            }

            async fn api_keys(&self) -> crate::Result<Vec<crate::ApiKeyRow>> {
                crate::access::$access::api_keys(&self.pool).await
            }

            async fn delete_api_key(&self, id: i64) -> crate::Result<bool> {
                crate::access::$access::delete_api_key(&self.pool, id).await
            }

            async fn find_conversation(
                &self,
                key: &robit_types::ConversationKey,
            ) -> crate::Result<Option<crate::model::Conversation>> {
                let mut conn = self.pool.acquire().await?;
                find_conversation(&mut conn, key).await
            }

            async fn question(&self, turn: i64) -> crate::Result<Option<crate::model::Question>> {
                #[allow(clippy::type_complexity)]
                let row: Option<(
                    i64, String, String, String, String, Option<String>, String,
                    Option<i64>, Option<String>, Option<String>,
                )> = sqlx::query_as(
                    "SELECT c.id, c.platform, c.workspace, c.channel, c.thread, m.author,
                            m.content, t.id, t.status, t.route
                     FROM messages m
                     JOIN conversations c ON c.id = m.conversation_id
                     LEFT JOIN turns t ON t.id = (
                         SELECT MAX(a.id) FROM turns a WHERE a.message_id = m.id)
                     WHERE m.id = $1 AND m.role = 'user'",
                )
                .bind(turn)
                .fetch_optional(&self.pool)
                .await?;
                let Some((id, platform, workspace, channel, thread, author, text, t, status, route)) =
                    row
                else {
                    return Ok(None);
                };
                let platform = robit_types::Platform::parse(&platform).ok_or_else(|| {
                    crate::StoreError::Corrupt(format!("conversation {id} has platform `{platform}`"))
                })?;
                Ok(Some(crate::model::Question {
                    conversation: crate::model::ConversationId(id),
                    key: robit_types::ConversationKey::new(
                        platform,
                        workspace,
                        channel,
                        (!thread.is_empty()).then_some(thread),
                    ),
                    author: author.map(robit_types::UserId),
                    text,
                    answer: crate::rows::answer_turn(t, status, route)?,
                }))
            }

            async fn question_by_ref(
                &self,
                platform: robit_types::Platform,
                workspace: &robit_types::WorkspaceId,
                channel: &robit_types::ChannelId,
                platform_ref: &str,
            ) -> crate::Result<Option<crate::model::AskedQuestion>> {
                // The message by its id first (`messages_by_platform_ref`), then checked
                // against where the edit happened: a Slack `ts` is unique only in its channel.
                #[allow(clippy::type_complexity)]
                let row: Option<(
                    i64, i64, String, Option<String>, String, i64, i64,
                    Option<i64>, Option<String>, Option<String>,
                )> = sqlx::query_as(
                    "SELECT m.id, c.id, c.thread, m.author, m.content, m.created_at,
                            CAST(CASE WHEN EXISTS (
                                SELECT 1 FROM messages l
                                WHERE l.conversation_id = m.conversation_id
                                  AND l.id > m.id AND l.role = 'user') THEN 0 ELSE 1 END
                                 AS BIGINT),
                            t.id, t.status, t.route
                     FROM messages m
                     JOIN conversations c ON c.id = m.conversation_id
                     LEFT JOIN turns t ON t.id = (
                         SELECT MAX(a.id) FROM turns a WHERE a.message_id = m.id)
                     WHERE m.platform_ref = $4 AND m.role = 'user'
                       AND c.platform = $1 AND c.workspace = $2 AND c.channel = $3
                     ORDER BY m.id DESC
                     LIMIT 1",
                )
                .bind(platform.as_str())
                .bind(workspace.as_str())
                .bind(channel.as_str())
                .bind(platform_ref)
                .fetch_optional(&self.pool)
                .await?;
                let Some((
                    id, conversation, thread, author, text, asked_at_ms, latest,
                    turn, status, route,
                )) = row
                else {
                    return Ok(None);
                };
                Ok(Some(crate::model::AskedQuestion {
                    id,
                    question: crate::model::Question {
                        conversation: crate::model::ConversationId(conversation),
                        key: robit_types::ConversationKey::new(
                            platform,
                            workspace.as_str(),
                            channel.as_str(),
                            (!thread.is_empty()).then_some(thread),
                        ),
                        author: author.map(robit_types::UserId),
                        text,
                        answer: crate::rows::answer_turn(turn, status, route)?,
                    },
                    asked_at_ms,
                    latest: latest == 1,
                }))
            }

            async fn record_feedback(
                &self,
                turn: i64,
                user: &robit_types::UserId,
                vote: crate::model::Vote,
            ) -> crate::Result<bool> {
                // The answer is the turn's last assistant message without tool calls; its
                // model is copied into the vote. No stored answer yet: nothing to vote on.
                let n = sqlx::query(
                    "INSERT INTO feedback (turn_id, user_id, vote, platform, workspace, provider,
                                           model, created_at)
                     SELECT $1, $2, $3, c.platform, c.workspace, COALESCE(m.provider, '?'),
                            COALESCE(m.model, '?'), $4
                     FROM messages m JOIN conversations c ON c.id = m.conversation_id
                     WHERE m.id = (SELECT MAX(a.id) FROM messages a
                                   WHERE a.turn_id = $1 AND a.role = 'assistant'
                                     AND a.tool_calls IS NULL)
                     ON CONFLICT (turn_id, user_id)
                     DO UPDATE SET vote = excluded.vote, created_at = excluded.created_at",
                )
                .bind(turn)
                .bind(user.as_str())
                .bind(vote.as_str())
                .bind(crate::rows::now_ms())
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n > 0)
            }

            async fn feedback_summary(
                &self,
                since_ms: i64,
            ) -> crate::Result<Vec<crate::model::FeedbackRow>> {
                let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
                    "SELECT provider, model,
                            CAST(SUM(CASE WHEN vote = 'up' THEN 1 ELSE 0 END) AS BIGINT),
                            CAST(SUM(CASE WHEN vote = 'down' THEN 1 ELSE 0 END) AS BIGINT)
                     FROM feedback WHERE created_at >= $1
                     GROUP BY provider, model ORDER BY COUNT(*) DESC, provider, model",
                )
                .bind(since_ms)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(provider, model, up, down)| crate::model::FeedbackRow {
                        provider,
                        model,
                        up: up as u64,
                        down: down as u64,
                    })
                    .collect())
            }

            async fn conversations(
                &self,
                platform: robit_types::Platform,
                workspace: &robit_types::WorkspaceId,
                limit: u32,
            ) -> crate::Result<Vec<crate::model::ConversationSummary>> {
                // Correlated subqueries rather than joins: a join of messages and usage
                // would multiply one by the other.
                let rows: Vec<(String, String, Option<String>, i64, i64, i64)> = sqlx::query_as(
                    "SELECT c.channel, c.thread, c.model,
                            (SELECT COUNT(*) FROM messages m
                             WHERE m.conversation_id = c.id AND m.id > c.history_from),
                            (SELECT CAST(COALESCE(SUM(u.prompt_tokens + u.completion_tokens), 0) AS BIGINT)
                             FROM usage u WHERE u.conversation_id = c.id),
                            COALESCE((SELECT MAX(m.created_at) FROM messages m
                                      WHERE m.conversation_id = c.id), c.created_at) AS last_at
                     FROM conversations c
                     WHERE c.platform = $1 AND c.workspace = $2
                     ORDER BY last_at DESC, c.id DESC
                     LIMIT $3",
                )
                .bind(platform.as_str())
                .bind(workspace.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(channel, thread, model, messages, tokens, last_active_ms)| {
                        crate::model::ConversationSummary {
                            key: robit_types::ConversationKey::new(
                                platform,
                                workspace.as_str(),
                                channel,
                                (!thread.is_empty()).then_some(thread),
                            ),
                            model,
                            messages: u64::try_from(messages).unwrap_or(0),
                            tokens: u64::try_from(tokens).unwrap_or(0),
                            last_active_ms,
                        }
                    })
                    .collect())
            }

            async fn prune_processed_events(&self, before_ms: i64) -> crate::Result<u64> {
                // In batches, so no single statement holds the write lock (SQLite) or a long
                // row lock set (PostgreSQL) while events keep arriving; the `received_at`
                // index (`processed_events_by_time`, migration 0001) finds each batch.
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

        crate::journal::journal_impl!(
            $store,
            $now,
            $lock,
            async fn renew_turns(
                &self,
                holder: &str,
                lease: std::time::Duration,
                after: i64,
                limit: u32,
            ) -> crate::Result<Vec<i64>> {
                <$store as crate::queries::Dialect>::renew_turns(self, holder, lease, after, limit)
                    .await
            }

            async fn set_turn_status(
                &self,
                turn: i64,
                holder: &str,
                status: crate::model::TurnStatus,
            ) -> crate::Result<bool> {
                <$store as crate::queries::Dialect>::set_turn_status(self, turn, holder, status)
                    .await
            }
        );
    };
}
pub(crate) use sql_store;
