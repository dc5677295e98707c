//! The PostgreSQL backend: for production and for several replicas sharing one database.
//!
//! Transactions run at PostgreSQL's default READ COMMITTED level. That is enough because every
//! race this store cares about is settled by a unique key plus `ON CONFLICT`: a second insert
//! of the same key waits for the first transaction and then sees its row. Lease expiry is
//! judged by the database clock (`now()`), never a replica's, so skewed replicas agree on it.
//!
//! The SQL both backends share is in `queries.rs`; this file holds only what PostgreSQL does
//! its own way (see [`Dialect`]).

use crate::migrations::POSTGRES_MIGRATOR;
use crate::model::{Accepted, ConversationId, NewEvent, NewMessage, UsageRecord};
use crate::postgres_writer::{postgres_now, Writer, ALIVE_BYPASS};
use crate::queries::Dialect;
use crate::rows;
use crate::{PoolOptions, Result};
use robit_types::Rate;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, Postgres};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

/// [`crate::Store`] on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Batches concurrent `accept`s into one transaction (see `postgres_writer.rs`).
    writer: Writer,
}

impl PostgresStore {
    /// Connects to the database at a `postgres://` or `postgresql://` URL; tables live in the
    /// connection's default schema (normally `public`).
    pub async fn connect(url: &str, options: PoolOptions) -> Result<Self> {
        let pool = pool_options(&options)
            .connect_with(PgConnectOptions::from_str(url)?)
            .await?;
        Ok(Self::with_pool(pool))
    }

    fn with_pool(pool: PgPool) -> Self {
        let writer = Writer::start(pool.clone(), accept_boxed);
        Self { pool, writer }
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
        Ok(Self::with_pool(pool))
    }

    /// Closes the pool, waiting for queued `accept`s and connections in use to come back.
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

fn pool_options(options: &PoolOptions) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.acquire_timeout)
        // sqlx pings every connection when it is returned (closing one that fails), and by
        // default again on every acquire: a second round trip per query. One returned within
        // [`ALIVE_BYPASS`] is handed out again without it.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= ALIVE_BYPASS {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Quotes an SQL identifier, doubling embedded quotes, so any schema name is safe to splice.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

// The clock is `postgres_now!` (why `clock_timestamp()`: see there). Claims skip rows another
// replica is claiming rather than wait for them.
crate::queries::sql_store!(
    PostgresStore,
    PgConnection,
    postgres,
    now = postgres_now!(),
    lock = " FOR UPDATE SKIP LOCKED"
);

/// `accept_in` as the group-commit writer takes it, for taking a failed batch apart.
fn accept_boxed<'c>(
    conn: &'c mut PgConnection,
    event: &'c NewEvent,
) -> Pin<Box<dyn Future<Output = Result<Accepted>> + Send + 'c>> {
    Box::pin(accept_in(conn, event))
}

/// The database clock in unix milliseconds, for the bucket queries built with `format!`.
const DB_NOW_MS: &str = postgres_now!();

impl Dialect for PostgresStore {
    type Db = Postgres;
    const NAME: &'static str = "PostgreSQL";
    const SERVER_VERSION: &'static str = "SELECT current_setting('server_version')";
    // `to_regclass` resolves through the search path, like the migrator does.
    const HAS_MIGRATIONS_TABLE: &'static str = "SELECT to_regclass('_sqlx_migrations') IS NOT NULL";
    const USAGE_DAY: &'static str =
        "to_char(to_timestamp(created_at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')";

    fn migrator() -> &'static Migrator {
        &POSTGRES_MIGRATOR
    }

    async fn accept(&self, event: NewEvent) -> Result<Accepted> {
        // The group-commit writer takes the events that arrive together in one transaction.
        self.writer.accept(event).await
    }

    async fn renew_turns(
        &self,
        holder: &str,
        lease: Duration,
        after: i64,
        limit: u32,
    ) -> Result<Vec<i64>> {
        Ok(
            sqlx::query_scalar(crate::journal::renew_turns_sql!(postgres_now!()))
                .bind(holder)
                .bind(rows::millis(lease))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn set_turn_status(
        &self,
        turn: i64,
        holder: &str,
        status: crate::model::TurnStatus,
    ) -> Result<bool> {
        let changed = sqlx::query(crate::journal::set_turn_status_sql!(postgres_now!()))
            .bind(turn)
            .bind(holder)
            .bind(status.as_str())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    async fn append_message(
        &self,
        conversation: ConversationId,
        message: NewMessage,
    ) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        insert_message(&mut conn, conversation, &message).await
    }

    async fn record_usage(&self, usage: UsageRecord) -> Result<()> {
        sqlx::query(crate::queries::RECORD_USAGE)
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

    async fn turn_history_own(
        &self,
        _conversation: ConversationId,
        _turn: i64,
        _limit: u32,
    ) -> Option<Result<Vec<crate::rows::MessageColumns>>> {
        None
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

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// Locks the bucket's row (creating it full if it is new); the database clock judges it.
    /// The row lock makes replicas take turns on one bucket.
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
        Ok((rate.refill(tokens, rows::elapsed_ms(at, now)), now))
    }

    async fn save_bucket(
        conn: &mut PgConnection,
        bucket: &str,
        tokens: f64,
        now: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE rate_buckets SET tokens = $2, updated_at = $3 WHERE bucket = $1")
            .bind(bucket)
            .bind(tokens)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
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
