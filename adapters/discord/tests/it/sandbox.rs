//! `/run` in a conversation thread: the sandbox's output is posted there, and output too long
//! for a message arrives as a file.

use crate::support::{config, mention, wait_bot_text, wait_thread, Bot, WAIT};
use robit_emulators::discord::DiscordEmulator;
use robit_sandbox::{CodeRunner, Sandbox, SandboxConfig};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// One sandbox for the test binary: it owns a runtime of its own, which must not be dropped
/// inside a test's runtime.
static SANDBOX: OnceCell<Arc<Sandbox>> = OnceCell::const_new();

async fn sandbox() -> Arc<dyn CodeRunner> {
    let guests = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/guests"));
    assert!(
        guests.join("python.wasm").is_file(),
        "python.wasm not found in {}: run scripts/fetch-guests",
        guests.display()
    );
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("robit-sandbox-cache");
    SANDBOX
        .get_or_init(|| async {
            let mut config = SandboxConfig::new(&guests, cache);
            config.python_pool_size = 1;
            Arc::new(Sandbox::new(config).await.expect("the sandbox starts"))
        })
        .await
        .clone()
}

#[tokio::test]
async fn run_python_posts_the_sandbox_output_in_the_thread() {
    let emu = DiscordEmulator::start().await;
    let bot = Bot::start_with(&emu, config(&emu), Some(sandbox().await)).await;
    let channel = emu.channel_id();
    emu.user_says(channel, &mention(&emu, "let's compute"));
    let thread = wait_thread(&emu, channel).await;
    wait_bot_text(&emu, thread, "echo: let's compute").await;

    let cmd = emu.slash_command(
        thread,
        "run",
        &[("language", "python"), ("code", "print(6 * 7)")],
    );
    let out = emu
        .wait_for("the sandbox output", WAIT, |e| {
            e.interaction_messages(cmd.id)
                .into_iter()
                .find(|m| m.content.contains("exit 0"))
        })
        .await;
    assert!(out.content.starts_with("```\n42\n```"), "{}", out.content);
    assert_eq!(out.channel_id, thread, "posted in the thread");

    let long = emu.slash_command(
        thread,
        "run",
        &[("language", "python"), ("code", "print('x' * 5000)")],
    );
    let upload = emu
        .wait_for("an uploaded output", WAIT, |e| {
            e.interaction_messages(long.id)
                .into_iter()
                .find(|m| !m.attachments.is_empty())
        })
        .await;
    assert_eq!(upload.attachments[0].filename, "output.txt");
    assert_eq!(upload.attachments[0].data.len(), 5001);
    assert!(
        upload.content.starts_with("Output attached."),
        "{}",
        upload.content
    );
    assert!(!emu
        .requests_to("PATCH", "/webhooks/")
        .iter()
        .all(|r| r.files.is_empty()));
    bot.stop().await;
}
