//! The harness: opens a fresh store per test on each backend, and the `conformance!` macro
//! that instantiates a case for both. Helpers for building events live here too, so the cases
//! read as behaviour rather than setup.

use robit_store::{NewEvent, NewMessage, PoolOptions, PostgresStore, SqliteStore, Store};
use robit_types::{ConversationKey, EventId, Platform, UserId};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Instantiates each case for both backends as `<case>::sqlite` and `<case>::postgres`.
/// A plain case takes `Arc<dyn Store>` of a migrated store; `raw:` cases also get a [`Raw`]
/// handle for checking rows the trait cannot read back; `fresh:` cases get a store that has
/// not been migrated.
macro_rules! conformance {
    (@gen $case:ident, $setup:ident, $call:expr) => {
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                $crate::support::Backend::Sqlite
                    .run($crate::support::Setup::$setup, $call)
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                $crate::support::Backend::Postgres
                    .run($crate::support::Setup::$setup, $call)
                    .await;
            }
        }
    };
    (raw $case:ident) => {
        conformance!(@gen $case, Migrated, super::$case);
    };
    (fresh $case:ident) => {
        conformance!(@gen $case, Fresh, |store, _raw| super::$case(store));
    };
    ($case:ident) => {
        conformance!(@gen $case, Migrated, |store, _raw| super::$case(store));
    };
}

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Migrated,
    Fresh,
}

/// Direct access to the test's database, for assertions about rows no trait method returns.
#[derive(Debug, Clone)]
pub enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Raw {
    /// Runs a statement for its effect (a trigger a case needs, say).
    pub async fn execute(&self, sql: &'static str) {
        match self {
            Raw::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()).unwrap(),
            Raw::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()).unwrap(),
        }
    }

    /// Runs a query returning one integer, e.g. a `COUNT(*)`.
    pub async fn scalar(&self, sql: &'static str) -> i64 {
        match self {
            Raw::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Raw::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }
}

impl Backend {
    /// Opens a fresh store, runs `case` on it, and cleans up. The case runs in its own task
    /// so a failing assertion still reaches the cleanup before the panic is passed on.
    pub async fn run<F, Fut>(self, setup: Setup, case: F)
    where
        F: FnOnce(Arc<dyn Store>, Raw) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        match self {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("robit.db");
                let store = SqliteStore::connect(&path, PoolOptions::default())
                    .await
                    .unwrap();
                if setup == Setup::Migrated {
                    store.migrate().await.unwrap();
                }
                let raw = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&path))
                    .await
                    .unwrap();
                let outcome =
                    tokio::spawn(case(Arc::new(store.clone()), Raw::Sqlite(raw.clone()))).await;
                raw.close().await;
                store.close().await;
                if let Err(e) = outcome {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
            Backend::Postgres => {
                let url = postgres_url();
                let schema = unique_schema();
                let store = postgres_store(&url, &schema).await;
                if setup == Setup::Migrated {
                    store.migrate().await.unwrap();
                }
                let raw = PgPoolOptions::new()
                    .max_connections(2)
                    .connect_with(
                        PgConnectOptions::from_str(&url)
                            .unwrap()
                            .options([("search_path", schema.as_str())]),
                    )
                    .await
                    .unwrap();
                let outcome =
                    tokio::spawn(case(Arc::new(store.clone()), Raw::Postgres(raw.clone()))).await;
                raw.close().await;
                store.close().await;
                drop_schema(&url, &schema).await;
                if let Err(e) = outcome {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
    }
}

pub fn postgres_url() -> String {
    std::env::var("ROBIT_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string())
}

/// A schema name no other test in this run or a concurrent run uses.
pub fn unique_schema() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "robit_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Connects to the test schema, or fails the test with instructions: a skipped backend would
/// make a green run mean less than it says.
pub async fn postgres_store(url: &str, schema: &str) -> PostgresStore {
    match PostgresStore::connect_with_schema(url, schema, PoolOptions::default()).await {
        Ok(store) => store,
        Err(e) => panic!(
            "cannot reach PostgreSQL at {url}: {e}\n\
             start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`,\n\
             or point ROBIT_TEST_POSTGRES_URL at another server"
        ),
    }
}

pub async fn drop_schema(url: &str, schema: &str) {
    let mut conn = PgConnectOptions::from_str(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    conn.execute(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .await
    .unwrap();
    conn.close().await.unwrap();
}

/// A Slack conversation in channel `C1`, in `thread` if given.
pub fn key(thread: Option<&str>) -> ConversationKey {
    ConversationKey::new(Platform::Slack, "T1", "C1", thread.map(str::to_string))
}

/// A Slack event carrying a user message.
pub fn event(id: &str, key: &ConversationKey, text: &str) -> NewEvent {
    NewEvent {
        platform: key.platform,
        event_id: EventId::new(id),
        key: key.clone(),
        message: Some(NewMessage::user(UserId::new("U1"), text)),
        turn: None,
        edit: None,
    }
}

/// What a process starting now passes to `claim_turns` to take its predecessor's turns:
/// its start, a millisecond ahead so leases set in this very millisecond count as before it.
pub fn starting_now() -> Option<std::time::SystemTime> {
    Some(std::time::SystemTime::now() + std::time::Duration::from_millis(1))
}

/// Waits (on the clock, not a fixed sleep) until `at` is at least a millisecond past, so a
/// lease set afterwards is set after it in the store's millisecond columns.
pub async fn clock_past(at: Option<std::time::SystemTime>) {
    let at = at.expect("an instant") + std::time::Duration::from_millis(1);
    while std::time::SystemTime::now() < at {
        tokio::task::yield_now().await;
    }
}
