//! `robit serve`: HTTP health and metrics, readiness following the database, graceful stop.

use crate::support::{drop_schema, free_port, schema, sigterm, text, Forwarder};
use robit_testkit::llm::FakeLlm;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

async fn get(url: &str) -> Option<(u16, String)> {
    let r = reqwest::get(url).await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

/// Polls `url` until it answers `status`, for up to 30 s: under a loaded CI machine (the whole
/// suite's robit processes at once) a shard can take several of its 500 ms watch ticks and
/// reconnect attempts to be seen down.
async fn wait_for(url: &str, status: u16) -> String {
    for _ in 0..300 {
        if let Some((s, body)) = get(url).await {
            if s == status {
                return body;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_move_after_a_turn_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeLlm::start().await;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_robit"))
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env(
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("r.db").display()),
        )
        .env("ROBIT_LLM__BASE_URL", llm.base_url())
        .env("ROBIT_SANDBOX__ENABLED", "false")
        .env("ROBIT_HTTP__ADDR", format!("127.0.0.1:{port}"))
        // One listener for webhooks and operators, as a single-port deployment would.
        .env("ROBIT_HTTP__ADMIN_ADDR", format!("127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(wait_for(&format!("{base}/healthz"), 200).await, "ok\n");
    wait_for(&format!("{base}/readyz"), 200).await;

    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"hello metrics\n")
        .unwrap();
    child.stdin.as_mut().unwrap().flush().unwrap();
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = wait_for(&format!("{base}/metrics"), 200).await;
        if metrics.contains("robit_turns_total{outcome=\"replied\"} 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for needle in [
        "robit_events_received_total{platform=\"console\"} 1",
        "robit_turns_total{outcome=\"replied\"} 1",
        "robit_turn_duration_seconds_count{kind=\"chat\"} 1",
        "robit_time_to_first_reply_seconds_count{platform=\"console\"} 1",
        "robit_llm_tokens_total{",
        "robit_platform_api_calls_total{platform=\"console\",call=\"post\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }

    sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "exit: {:?} {}",
        out.status,
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("echo: hello metrics"));
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_the_database() {
    let pg = std::env::var("ROBIT_TEST_POSTGRES_ADDR").unwrap_or_else(|_| "127.0.0.1:5432".into());
    let fwd = Forwarder::start(&pg).await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    // A schema of its own: the shared database's public schema may hold another tree's
    // migrations, which robit rightly refuses to start on.
    let schema = schema("readyz");
    let child = Command::new(env!("CARGO_BIN_EXE_robit"))
        .arg("serve")
        .current_dir(dir.path())
        .env(
            "ROBIT_DATABASE__URL",
            format!("postgres://postgres@127.0.0.1:{}/test", fwd.port),
        )
        .env("ROBIT_DATABASE__SCHEMA", &schema)
        .env("ROBIT_DATABASE__ACQUIRE_TIMEOUT_MS", "500")
        .env("ROBIT_SANDBOX__ENABLED", "false")
        .env("ROBIT_HTTP__ADDR", format!("127.0.0.1:{port}"))
        // One listener for webhooks and operators, as a single-port deployment would.
        .env("ROBIT_HTTP__ADMIN_ADDR", format!("127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{base}/readyz"), 200).await;
    fwd.cut();
    let body = wait_for(&format!("{base}/readyz"), 503).await;
    assert!(body.contains("database"), "{body}");
    // Still alive while unready.
    wait_for(&format!("{base}/healthz"), 200).await;
    fwd.restore();
    wait_for(&format!("{base}/readyz"), 200).await;
    let _ = fwd.target();
    sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    drop_schema(&schema).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_the_discord_gateway() {
    let discord = robit_emulators::discord::DiscordEmulator::start().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_robit"))
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env(
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("r.db").display()),
        )
        .env("ROBIT_SANDBOX__ENABLED", "false")
        .env("ROBIT_HTTP__ADDR", format!("127.0.0.1:{port}"))
        // One listener for webhooks and operators, as a single-port deployment would.
        .env("ROBIT_HTTP__ADMIN_ADDR", format!("127.0.0.1:{port}"))
        .env("ROBIT_DISCORD__TOKEN", discord.token())
        .env("ROBIT_DISCORD__API_BASE", discord.base_url())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    // Ready only once the shard's gateway session is up.
    wait_for(&format!("{base}/readyz"), 200).await;
    assert_eq!(discord.sessions().len(), 1);
    // Discord goes away: the shard reconnects in vain, and the replica says why it is unready.
    drop(discord);
    let body = wait_for(&format!("{base}/readyz"), 503).await;
    assert!(body.contains("discord:shard:0: not connected"), "{body}");
    assert!(!body.contains("database"), "{body}");
    wait_for(&format!("{base}/healthz"), 200).await;
    sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_routes_listen_apart_from_the_public_port() {
    use robit_emulators::slack::{SlackEmulator, BOT_TOKEN, SIGNING_SECRET};
    let dir = tempfile::tempdir().unwrap();
    let slack = SlackEmulator::start().await;
    let (public, admin) = (free_port(), free_port());
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    let child = Command::new(env!("CARGO_BIN_EXE_robit"))
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env("ROBIT_DATABASE__URL", &db)
        .env("ROBIT_SANDBOX__ENABLED", "false")
        .env("ROBIT_HTTP__ADDR", format!("127.0.0.1:{public}"))
        .env("ROBIT_HTTP__ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("ROBIT_ADMIN_API__ENABLED", "true")
        .env("ROBIT_SLACK__BOT_TOKEN", BOT_TOKEN)
        .env("ROBIT_SLACK__SIGNING_SECRET", SIGNING_SECRET)
        .env("ROBIT_SLACK__API_URL", slack.api_url())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (pub_base, ops_base) = (
        format!("http://127.0.0.1:{public}"),
        format!("http://127.0.0.1:{admin}"),
    );
    // Both answer liveness; only the operators' port has readiness, metrics and the API.
    wait_for(&format!("{pub_base}/healthz"), 200).await;
    wait_for(&format!("{ops_base}/healthz"), 200).await;
    wait_for(&format!("{ops_base}/readyz"), 200).await;
    wait_for(&format!("{ops_base}/metrics"), 200).await;
    wait_for(&format!("{ops_base}/admin/v1/audit"), 401).await;
    for path in ["/readyz", "/metrics", "/admin/v1/audit"] {
        let (status, _) = get(&format!("{pub_base}{path}")).await.unwrap();
        assert_eq!(status, 404, "{path} on the public port");
    }
    // The Slack intake is on the public port (401: unsigned), not on the operators'.
    let client = reqwest::Client::new();
    let intake = |base: &str| {
        client
            .post(format!("{base}/slack/events"))
            .body("{}")
            .send()
    };
    assert_eq!(intake(&pub_base).await.unwrap().status(), 401);
    assert_eq!(intake(&ops_base).await.unwrap().status(), 404);
    sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn apikeys_are_listed_without_secrets_and_revoked_keys_stop_working() {
    use crate::support::robit;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("r.db").display());
    let env = [("ROBIT_DATABASE__URL", db.clone())];
    let created = robit(dir.path(), &["apikey", "create", "ops-team"], &env, "");
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout).trim().to_string();
    let secret = key.rsplit('_').next().unwrap().to_string();
    let id = key.split('_').nth(1).unwrap().to_string();

    let listed = robit(dir.path(), &["apikey", "list"], &env, "");
    let listing = text(&listed.stdout);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(
        listing.contains("ops-team") && listing.contains("sha256"),
        "{listing}"
    );
    assert!(
        !listing.contains(&secret),
        "a secret was printed: {listing}"
    );

    // The key works on the admin API, then not after revocation.
    let port = free_port();
    let serve = |port: u16| {
        Command::new(env!("CARGO_BIN_EXE_robit"))
            .arg("serve")
            .current_dir(dir.path())
            .env("ROBIT_DATABASE__URL", &db)
            .env("ROBIT_SANDBOX__ENABLED", "false")
            .env("ROBIT_HTTP__ADDR", format!("127.0.0.1:{}", free_port()))
            .env("ROBIT_HTTP__ADMIN_ADDR", format!("127.0.0.1:{port}"))
            .env("ROBIT_ADMIN_API__ENABLED", "true")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let child = serve(port);
    let audit = format!("http://127.0.0.1:{port}/admin/v1/audit");
    wait_for(&audit, 401).await;
    let with_key = || reqwest::Client::new().get(&audit).bearer_auth(&key).send();
    assert_eq!(with_key().await.unwrap().status(), 200);
    let revoked = robit(dir.path(), &["apikey", "revoke", &id], &env, "");
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    assert_eq!(with_key().await.unwrap().status(), 401);
    let again = robit(dir.path(), &["apikey", "revoke", &id], &env, "");
    assert!(!again.status.success());
    sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
