//! The SQLite backend: one file next to the process, the default for a single machine.
//!
//! SQLite allows one writer at a time. Every transaction that writes starts with
//! `BEGIN IMMEDIATE`, which takes the write lock up front and therefore waits in the busy
//! handler; a deferred transaction that reads first and writes later would instead fail with
//! "database is locked" when two of them try to upgrade at once. This file must not be used
//! for multi-replica deployments: the lease it implements only coordinates one machine.
//!
//! The SQL both backends share is in `queries.rs`; this file holds only what SQLite does its
//! own way (see [`Dialect`]).

use crate::migrations::SQLITE_MIGRATOR;
use crate::model::{Accepted, ConversationId, NewEvent, NewMessage, UsageRecord};
use crate::queries::Dialect;
use crate::rows;
use crate::sqlite_reader::Readers;
use crate::sqlite_writer::{sqlite_now, Writer, WriterOptions, BUSY_TIMEOUT};
use crate::{PoolOptions, Result};
use robit_types::Rate;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// [`crate::Store`] on a SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Owns `accept`, the write every inbound event makes (see `sqlite_writer.rs`).
    writer: Writer,
    /// A turn's history read (see `sqlite_reader.rs`); `None` for sqlx's shared in-memory
    /// database, whose connections lock each other's tables (shared cache) rather than
    /// reading a WAL snapshot: its reads stay on the pool, whose driver waits those locks out.
    readers: Option<Readers>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`.
    pub async fn connect(path: impl AsRef<Path>, options: PoolOptions) -> Result<Self> {
        Self::open(SqliteConnectOptions::new().filename(path), options, false).await
    }

    /// Opens the database named by a `sqlite:` URL, e.g. `sqlite://robit.db` or
    /// `sqlite:///var/lib/robit/robit.db`.
    pub async fn connect_url(url: &str, options: PoolOptions) -> Result<Self> {
        // sqlx keeps whether it made the database its shared in-memory one to itself, and
        // the writer's connection must join that one: the URL says it.
        let database = url.trim_start_matches("sqlite:").trim_start_matches("//");
        let in_memory =
            database.split('?').next() == Some(":memory:") || database.contains("mode=memory");
        Self::open(SqliteConnectOptions::from_str(url)?, options, in_memory).await
    }

    async fn open(
        connect: SqliteConnectOptions,
        options: PoolOptions,
        in_memory: bool,
    ) -> Result<Self> {
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
            // No ping before each use (sqlx's default, a round trip to the connection's
            // thread per query): a file cannot hang up, and sqlx still pings a connection
            // when it is returned.
            .test_before_acquire(false)
            .connect_with(connect.clone())
            .await?;
        let file = WriterOptions {
            filename: connect.get_filename().to_path_buf(),
            in_memory,
            full_sync: options.sqlite_full_sync,
        };
        let writer = Writer::start(file.clone()).await?;
        let readers = if in_memory {
            None
        } else {
            Some(Readers::open(
                file,
                options.max_connections.try_into().unwrap_or(usize::MAX),
            )?)
        };
        Ok(Self {
            pool,
            writer,
            readers,
        })
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
        if let Some(readers) = &self.readers {
            readers.close();
        }
        self.pool.close().await;
    }
}

// The clock is the database's (`sqlite_now!`); claims need no row lock: they run under
// SQLite's single write lock.
crate::queries::sql_store!(
    SqliteStore,
    SqliteConnection,
    sqlite,
    now = sqlite_now!(),
    lock = ""
);

impl Dialect for SqliteStore {
    type Db = Sqlite;
    const NAME: &'static str = "SQLite";
    const SERVER_VERSION: &'static str = "SELECT sqlite_version()";
    const HAS_MIGRATIONS_TABLE: &'static str = "SELECT EXISTS (SELECT 1 FROM sqlite_master
                        WHERE type = 'table' AND name = '_sqlx_migrations')";
    const USAGE_DAY: &'static str = "strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')";

    fn migrator() -> &'static Migrator {
        &SQLITE_MIGRATOR
    }

    async fn accept(&self, event: NewEvent) -> Result<Accepted> {
        // The group-commit writer runs `accept`'s statements for a batch of events in one
        // transaction, on its own connection and driver.
        self.writer.accept(event).await
    }

    async fn renew_turns(
        &self,
        holder: &str,
        lease: Duration,
        after: i64,
        limit: u32,
    ) -> Result<Vec<i64>> {
        let holder = holder.to_string();
        self.writer
            .run(move |conn| {
                crate::sqlite_writer::returning_ids(
                    conn,
                    crate::journal::renew_turns_sql!(sqlite_now!()),
                    &[&holder, &rows::millis(lease), &after, &i64::from(limit)],
                )
            })
            .await
    }

    async fn set_turn_status(
        &self,
        turn: i64,
        holder: &str,
        status: crate::model::TurnStatus,
    ) -> Result<bool> {
        let holder = holder.to_string();
        self.writer
            .run(move |conn| {
                let changed = crate::sqlite_writer::execute(
                    conn,
                    crate::journal::set_turn_status_sql!(sqlite_now!()),
                    &[&turn, &holder, &status.as_str()],
                )?;
                Ok(changed == 1)
            })
            .await
    }

    async fn append_message(
        &self,
        conversation: ConversationId,
        message: NewMessage,
    ) -> Result<i64> {
        self.writer
            .run(move |conn| crate::sqlite_writer::insert_message(conn, conversation, &message))
            .await
    }

    async fn record_usage(&self, usage: UsageRecord) -> Result<()> {
        self.writer
            .run(move |conn| {
                crate::sqlite_writer::execute(
                    conn,
                    crate::queries::RECORD_USAGE,
                    &[
                        &usage.conversation.0,
                        &usage.key.platform.as_str(),
                        &usage.key.workspace.as_str(),
                        &usage.key.channel.as_str(),
                        &usage.user.as_ref().map(|u| u.as_str()),
                        &usage.provider,
                        &usage.model,
                        &rows::tokens(usage.prompt_tokens),
                        &rows::tokens(usage.completion_tokens),
                        &usage.estimated,
                        &rows::now_ms(),
                    ],
                )?;
                Ok(())
            })
            .await
    }

    async fn turn_history_own(
        &self,
        conversation: ConversationId,
        turn: i64,
        limit: u32,
    ) -> Option<Result<Vec<rows::MessageColumns>>> {
        let readers = self.readers.as_ref()?;
        Some(
            readers
                .read(move |conn| {
                    crate::sqlite_writer::query_rows(
                        conn,
                        crate::queries::TURN_HISTORY,
                        &[&conversation.0, &i64::from(limit), &turn],
                        |row| {
                            Ok((
                                row.get(0)?,
                                row.get(1)?,
                                row.get(2)?,
                                row.get(3)?,
                                row.get(4)?,
                                row.get(5)?,
                                row.get(6)?,
                                row.get(7)?,
                            ))
                        },
                    )
                })
                .await,
        )
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

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        // IMMEDIATE takes the write lock up front, which is what makes load-compute-save of a
        // bucket atomic on SQLite.
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn lock_bucket(
        conn: &mut SqliteConnection,
        bucket: &str,
        rate: Rate,
    ) -> Result<(f64, i64)> {
        let now = rows::now_ms();
        let row: Option<(f64, i64)> =
            sqlx::query_as("SELECT tokens, updated_at FROM rate_buckets WHERE bucket = $1")
                .bind(bucket)
                .fetch_optional(&mut *conn)
                .await?;
        let tokens = row.map_or(rate.burst, |(tokens, at)| {
            rate.refill(tokens, rows::elapsed_ms(at, now))
        });
        Ok((tokens, now))
    }

    async fn save_bucket(
        conn: &mut SqliteConnection,
        bucket: &str,
        tokens: f64,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO rate_buckets (bucket, tokens, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (bucket) DO UPDATE
                 SET tokens = excluded.tokens, updated_at = excluded.updated_at",
        )
        .bind(bucket)
        .bind(tokens)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
