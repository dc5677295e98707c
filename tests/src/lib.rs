//! Harness for the system-level suites: runs the real `robit` binary (built by
//! `cargo test --workspace`, or `cargo build -p robit`) as a child process against the
//! loopback emulators, the fake model and a real database, and lets a test kill it, restart
//! it, or cut its database off.
//!
//! It must not reach into robit's crates: everything is observed from outside the process
//! (the emulators' records, `/readyz`, the database's rows, `/proc`), as an operator would.

pub mod platform;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any condition in these suites may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// The `robit` binary next to this test's executable (`target/<profile>/robit`), or
/// `ROBIT_BIN`.
pub fn robit_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("ROBIT_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/chaos-<hash> → target/<profile>/robit
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("robit");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p robit` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

pub fn pg_url() -> String {
    std::env::var("ROBIT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// The database a test's robit processes share.
pub enum Db {
    Sqlite {
        dir: PathBuf,
    },
    /// A schema of the test's own on the shared server, dropped at the end.
    Postgres {
        schema: String,
        url: String,
    },
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = std::env::temp_dir().join(unique("robit-chaos"));
        std::fs::create_dir_all(&dir).unwrap();
        Db::Sqlite { dir }
    }

    pub fn postgres() -> Db {
        Db::Postgres {
            schema: unique("robit_chaos"),
            url: pg_url(),
        }
    }

    /// Postgres reached through a [`Proxy`] the test can cut, in a schema of its own.
    pub async fn postgres_behind_proxy() -> (Db, Proxy) {
        let target = pg_url()
            .split('@')
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .expect("host:port in the PostgreSQL URL")
            .to_string();
        let proxy = Proxy::start(&target).await;
        let db = Db::postgres_via(format!("postgres://postgres@127.0.0.1:{}/test", proxy.port));
        (db, proxy)
    }

    /// Postgres reached through `url` (a proxy), in a schema of its own.
    pub fn postgres_via(url: String) -> Db {
        Db::Postgres {
            schema: unique("robit_chaos"),
            url,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres { .. })
    }

    fn env(&self) -> Vec<(String, String)> {
        match self {
            Db::Sqlite { dir } => vec![(
                "ROBIT_DATABASE__URL".into(),
                format!("sqlite://{}", dir.join("robit.db").display()),
            )],
            Db::Postgres { schema, url } => vec![
                ("ROBIT_DATABASE__URL".into(), url.clone()),
                ("ROBIT_DATABASE__SCHEMA".into(), schema.clone()),
            ],
        }
    }

    /// Runs one query returning rows of text columns (cast in SQL), straight on the
    /// database, as an operator's `psql`/`sqlite3` would.
    pub async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        use sqlx::{Connection, Row};
        fn texts<R: Row>(row: &R) -> Vec<String>
        where
            for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
            usize: sqlx::ColumnIndex<R>,
        {
            (0..row.columns().len())
                .map(|i| row.try_get::<String, _>(i).unwrap_or_default())
                .collect()
        }
        match self {
            Db::Sqlite { dir } => {
                let url = format!("sqlite://{}", dir.join("robit.db").display());
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
                rows.iter().map(texts).collect()
            }
            Db::Postgres { schema, .. } => {
                let mut c = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("SET search_path TO {schema}")))
                    .execute(&mut c)
                    .await
                    .unwrap();
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
                rows.iter().map(texts).collect()
            }
        }
    }

    /// Waits until the turn journal has recorded a posted message. On Slack a crash in the
    /// moment between a post returning and its reference being recorded leaves that one
    /// message behind (documented in docs/operations.md), so tests that kill mid-stream kill
    /// after it; `tests/chaos/unrecorded.rs` causes that moment on Discord, which covers it.
    pub async fn wait_for_recorded_post(&self) -> bool {
        for _ in 0..1000 {
            let n = self
                .rows("SELECT CAST(COUNT(*) AS TEXT) FROM turn_posts")
                .await;
            if n != vec![vec!["0".to_string()]] {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Removes what the test made.
    pub async fn drop(self) {
        match self {
            Db::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Db::Postgres { schema, .. } => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&mut c)
                .await
                .unwrap();
            }
        }
    }
}

/// One `robit serve` process.
pub struct Robit {
    child: Child,
    pub base: String,
    log: PathBuf,
}

impl Robit {
    /// Starts `robit serve` on `db` with `env` (the caller's ROBIT_* variables are removed)
    /// and waits until `/readyz` says it is ready.
    pub async fn start(db: &Db, env: &[(String, String)]) -> Robit {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("{}.log", unique("robit-chaos")));
        let mut cmd = Command::new(robit_bin());
        cmd.arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, _) in std::env::vars() {
            if k.starts_with("ROBIT_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        // One listener for the public and the operator routes (`/readyz`), on a free port.
        cmd.env("ROBIT_HTTP__ADDR", format!("127.0.0.1:{port}"))
            .env("ROBIT_HTTP__ADMIN_ADDR", format!("127.0.0.1:{port}"))
            .env("ROBIT_SANDBOX__ENABLED", "false");
        for (k, v) in db.env().iter().chain(env) {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("robit starts");
        let base = format!("http://127.0.0.1:{port}");
        let mut robit = Robit { child, base, log };
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("{}/readyz", robit.base)).await {
                if r.status() == 200 {
                    break;
                }
            }
            if let Ok(Some(status)) = robit.child.try_wait() {
                panic!("robit exited with {status}: {}", robit.log());
            }
            assert!(
                started.elapsed() < WAIT,
                "robit never became ready: {}",
                robit.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        robit
    }

    pub fn events_url(&self) -> String {
        format!("{}/slack/events", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Resident memory, from `/proc`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// `kill -9`: no shutdown code runs.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit; returns the log.
    pub fn stop(mut self) -> String {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let status = self.child.wait().unwrap();
        let log = self.log();
        assert!(status.success(), "exit {status}: {log}");
        let _ = std::fs::remove_file(&self.log);
        log
    }
}

/// Runs a one-shot `robit` subcommand (`usage`, `audit`, …) on `db`, as an operator would;
/// returns its standard output, and fails the test if it fails.
pub fn robit_once(db: &Db, args: &[&str]) -> String {
    let mut cmd = Command::new(robit_bin());
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("ROBIT_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in db.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("robit runs");
    assert!(
        out.status.success(),
        "robit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for Robit {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 20 ms until it holds or [`WAIT`] passes.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < WAIT {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// A TCP forwarder to `target` that a test can cut and restore, to make a server look down
/// without stopping it (other tests share it).
pub struct Proxy {
    pub port: u16,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, rx) = tokio::sync::watch::channel(false);
        let target = target.to_string();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut rx = rx.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    if *rx.borrow() {
                        return; // closed at once: the database is "down"
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Proxy { port, cut }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    pub fn restore(&self) {
        let _ = self.cut.send(false);
    }
}
