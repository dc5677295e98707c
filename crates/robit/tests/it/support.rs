//! Runs the built `robit` binary with a clean environment pointed at test resources.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `robit <args>` with `stdin` piped in, configured only through the variables given (the
/// caller's ROBIT_* variables are removed so the developer's setup cannot leak in, and the
/// user's data directory is `dir/.xdg-data` unless `env` names another, so guests the
/// developer installed with `robit guests fetch` are not found by accident).
pub fn robit(dir: &Path, args: &[&str], env: &[(&str, String)], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_robit"));
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("ROBIT_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("XDG_DATA_HOME", dir.join(".xdg-data"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("robit starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("robit runs")
}

/// A free loopback port (bound then released; good enough for a test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends SIGTERM to a child process.
pub fn sigterm(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {pid}");
}

/// A TCP forwarder to `target` that a test can cut and restore, to make a server look down.
pub struct Forwarder {
    pub port: u16,
    target: String,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Forwarder {
    pub async fn start(target: &str) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, rx) = tokio::sync::watch::channel(false);
        let target = target.to_string();
        let t = target.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut rx = rx.clone();
                let t = t.clone();
                tokio::spawn(async move {
                    if *rx.borrow() {
                        return; // dropped: connection refused in effect
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&t).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Forwarder { port, target, cut }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    pub fn restore(&self) {
        let _ = self.cut.send(false);
    }

    pub fn target(&self) -> &str {
        &self.target
    }
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

pub fn pg_url() -> String {
    std::env::var("ROBIT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A schema of the test's own, so tests run in parallel on one database.
pub fn schema(test: &str) -> String {
    format!(
        "robit_{test}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

pub async fn drop_schema(schema: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
}
