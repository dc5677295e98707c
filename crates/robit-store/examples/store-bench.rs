//! Persist throughput on both backends, in messages per second:
//!
//! ```text
//! cargo run --release -p robit-store --example store-bench -- [MESSAGES] [CONCURRENCY,...]
//! ```
//!
//! SQLite runs on a temporary file; PostgreSQL on `ROBIT_BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) in a throwaway schema. Both are removed
//! afterwards, so the benchmark never touches real data. Pools use the default options, as
//! a default deployment would.

use robit_store::bench::bench_persist;
use robit_store::{PoolOptions, PostgresStore, SqliteStore, Store};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};
use std::str::FromStr;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let messages: usize = args.next().map_or(Ok(5000), |a| a.parse())?;
    let levels: Vec<usize> = args
        .next()
        .unwrap_or_else(|| "1,8,32".into())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let pg_url = std::env::var("ROBIT_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let options = PoolOptions::default();
    println!(
        "{messages} messages per run, pool of {} connections",
        options.max_connections
    );

    for &concurrency in &levels {
        let dir = tempfile::tempdir()?;
        let sqlite = SqliteStore::connect(dir.path().join("bench.db"), options.clone()).await?;
        sqlite.migrate().await?;
        let rate = bench_persist(Arc::new(sqlite.clone()), messages, concurrency).await?;
        sqlite.close().await;
        println!("sqlite     concurrency {concurrency:>3}: {rate:>9.0} msgs/s");
    }

    for &concurrency in &levels {
        // A fresh schema per run, as SQLite gets a fresh file.
        let schema = format!("robit_bench_{}_{concurrency}", std::process::id());
        let postgres = PostgresStore::connect_with_schema(&pg_url, &schema, options.clone())
            .await
            .map_err(|e| format!("cannot reach PostgreSQL at {pg_url}: {e}"))?;
        postgres.migrate().await?;
        let rate = bench_persist(Arc::new(postgres.clone()), messages, concurrency).await;
        postgres.close().await;
        drop_schema(&pg_url, &schema).await?;
        println!(
            "postgres   concurrency {concurrency:>3}: {:>9.0} msgs/s",
            rate?
        );
    }
    Ok(())
}

async fn drop_schema(url: &str, schema: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnectOptions::from_str(url)?.connect().await?;
    conn.execute(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .await?;
    conn.close().await
}
