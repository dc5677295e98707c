//! The binary wired to Slack: `robit serve` with Slack credentials answers a mention in a
//! thread through the Slack emulator (Socket Mode) and stops cleanly.

use crate::support::{free_port, sigterm, text};
use robit_emulators::slack::{SlackEmulator, APP_TOKEN, BOT_TOKEN, GENERAL};
use robit_testkit::llm::{FakeLlm, Reply};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn serve_with_slack_tokens_answers_a_mention_in_its_thread() {
    let dir = tempfile::tempdir().unwrap();
    let llm = FakeLlm::start().await;
    llm.push(Reply::text("Hello from robit serve.").chunk_words(1));
    let slack = SlackEmulator::start().await;
    let child = Command::new(env!("CARGO_BIN_EXE_robit"))
        .arg("serve")
        .current_dir(dir.path())
        .env(
            "ROBIT_DATABASE__URL",
            format!("sqlite://{}", dir.path().join("r.db").display()),
        )
        .env("ROBIT_LLM__BASE_URL", llm.base_url())
        .env("ROBIT_SANDBOX__ENABLED", "false")
        .env("ROBIT_HTTP__ADDR", format!("127.0.0.1:{}", free_port()))
        .env(
            "ROBIT_HTTP__ADMIN_ADDR",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("ROBIT_SLACK__BOT_TOKEN", BOT_TOKEN)
        .env("ROBIT_SLACK__APP_TOKEN", APP_TOKEN)
        .env("ROBIT_SLACK__API_URL", slack.api_url())
        .env("ROBIT_SLACK__EDIT_INTERVAL_MS", "50")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the Socket Mode connection before the user speaks.
    assert!(
        slack
            .wait_for(Duration::from_secs(20), |e| !e
                .calls_to("apps.connections.open")
                .is_empty())
            .await,
        "robit never opened a Socket Mode connection"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mention = slack.user_mentions(GENERAL, "hi robit");
    let reply = slack
        .wait_for_reply(&mention.thread(), Duration::from_secs(20), |t| {
            t.contains("Hello from robit serve.")
        })
        .await;
    sigterm(child.id());
    let out = child.wait_with_output().unwrap();
    assert!(reply.is_some(), "no reply; stderr: {}", text(&out.stderr));
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("console adapter"),
        "the console must not run"
    );
}
