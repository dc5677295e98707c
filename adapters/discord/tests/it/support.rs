//! Fixtures: an emulator, an engine on a temp SQLite file with the fake LLM behind the real
//! client, and the adapter running against both until the test ends.

use robit_core::{Engine, EngineConfig};
use robit_discord::{DiscordConfig, DiscordError};
use robit_emulators::discord::{DiscordEmulator, Message};
use robit_llm::{OpenAiCompatible, OpenAiConfig, Provider};
use robit_sandbox::CodeRunner;
use robit_testkit::llm::FakeLlm;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Long enough for a slow CI machine, short enough that a hang fails the test quickly.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn provider(llm: &FakeLlm) -> Arc<dyn Provider> {
    Arc::new(
        OpenAiCompatible::new(OpenAiConfig {
            name: "fake".into(),
            base_url: llm.base_url(),
            api_key: None,
            connect_timeout: Duration::from_secs(5),
            first_token_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(10),
            extra_headers: Vec::new(),
        })
        .unwrap(),
    )
}

/// The adapter configuration for `emu`: its URL and token, Discord's default pacing.
pub fn config(emu: &DiscordEmulator) -> DiscordConfig {
    DiscordConfig {
        token: Some(emu.token().into()),
        api_base: Some(emu.base_url()),
        ..DiscordConfig::default()
    }
}

/// An engine on a fresh SQLite file with the fake LLM behind the real client.
pub async fn engine(sandbox: Option<Arc<dyn CodeRunner>>) -> (Engine, FakeLlm, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = robit_store::connect_sqlite(dir.path().join("robit.db"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let llm = FakeLlm::start().await;
    let engine = Engine::new(
        EngineConfig::default(),
        store,
        Some(provider(&llm)),
        sandbox,
    );
    (engine, llm, dir)
}

/// One running adapter with its own engine, database and fake LLM.
pub struct Bot {
    pub llm: FakeLlm,
    pub engine: Engine,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), DiscordError>>>,
    _dir: tempfile::TempDir,
}

impl Bot {
    /// Starts the adapter with `config` and waits for its shards to be ready.
    pub async fn start(emu: &DiscordEmulator, config: DiscordConfig) -> Bot {
        Self::start_with(emu, config, None).await
    }

    pub async fn start_with(
        emu: &DiscordEmulator,
        config: DiscordConfig,
        sandbox: Option<Arc<dyn CodeRunner>>,
    ) -> Bot {
        let (engine, llm, dir) = engine(sandbox).await;
        let shards = config
            .shard_range()
            .map(|(a, b)| (b - a + 1) as usize)
            .unwrap();
        let before = emu.sessions().iter().filter(|s| s.connected).count();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(robit_discord::run(engine.clone(), config, shutdown.clone()));
        emu.wait_ready(before + shards, WAIT).await;
        Bot {
            llm,
            engine,
            shutdown,
            task: Some(task),
            _dir: dir,
        }
    }

    /// Stops the adapter and checks that it ended cleanly.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(WAIT, task).await;
            result.expect("the adapter stops").unwrap().unwrap();
        }
        self.engine.shutdown(Duration::from_secs(5)).await;
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Waits until the bot's last message in `channel` shows exactly `text`.
pub async fn wait_bot_text(emu: &DiscordEmulator, channel: u64, text: &str) -> Message {
    emu.wait_for(&format!("bot says {text:?} in {channel}"), WAIT, |e| {
        e.bot_messages(channel)
            .into_iter()
            .last()
            .filter(|m| m.content == text)
    })
    .await
}

/// Waits until a thread exists in `channel` and returns its id.
pub async fn wait_thread(emu: &DiscordEmulator, channel: u64) -> u64 {
    emu.wait_for("a thread", WAIT, |e| {
        e.threads(channel).first().map(|t| t.id)
    })
    .await
}

/// `<@bot> text`.
pub fn mention(emu: &DiscordEmulator, text: &str) -> String {
    format!("<@{}> {text}", emu.bot_id())
}

/// How many requests got a 429.
pub fn count_429(emu: &DiscordEmulator) -> usize {
    emu.requests().iter().filter(|r| r.status == 429).count()
}

/// Prints what the emulator saw, for a failing test's output.
#[allow(dead_code)]
pub fn dump(emu: &DiscordEmulator) {
    for r in emu.requests() {
        eprintln!("{} {} -> {} {}", r.method, r.path, r.status, r.body);
    }
}
