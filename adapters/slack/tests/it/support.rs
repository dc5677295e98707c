//! Shared fixtures: an emulator, a fake LLM, an engine on a temp SQLite file, and the adapter
//! wired to them over Socket Mode or the HTTP Events API.

use async_trait::async_trait;
use robit_core::{Engine, EngineConfig};
use robit_emulators::slack::{self, SlackEmulator, SlackEmulatorOptions, ThreadRef};
use robit_llm::{OpenAiCompatible, OpenAiConfig, Provider};
use robit_sandbox::{CodeRunner, Limits, Outcome, RunOutput, SandboxError};
use robit_slack::SlackConfig;
use robit_testkit::FakeLlm;
use robit_types::Language;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(20);

pub fn provider(llm: &FakeLlm) -> Arc<dyn Provider> {
    Arc::new(
        OpenAiCompatible::new(OpenAiConfig {
            name: "fake".into(),
            base_url: llm.base_url(),
            api_key: None,
            connect_timeout: Duration::from_secs(5),
            first_token_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            extra_headers: Vec::new(),
        })
        .unwrap(),
    )
}

/// A sandbox stand-in that prints `output` for any code.
pub struct FakeRunner {
    pub output: String,
}

#[async_trait]
impl CodeRunner for FakeRunner {
    async fn run(
        &self,
        _language: Language,
        _code: &str,
        _stdin: &[u8],
        _limits: Limits,
    ) -> Result<RunOutput, SandboxError> {
        Ok(RunOutput {
            stdout: self.output.clone(),
            stderr: String::new(),
            exit_code: Some(0),
            duration: Duration::from_millis(3),
            outcome: Outcome::Finished,
            files: Vec::new(),
            files_left_out: Vec::new(),
        })
    }
}

pub async fn engine(db: &Path, llm: &FakeLlm, sandbox: Option<Arc<dyn CodeRunner>>) -> Engine {
    engine_with(db, llm, sandbox, EngineConfig::default()).await
}

pub async fn engine_with(
    db: &Path,
    llm: &FakeLlm,
    sandbox: Option<Arc<dyn CodeRunner>>,
    config: EngineConfig,
) -> Engine {
    let store = robit_store::connect_sqlite(db).await.unwrap();
    store.migrate().await.unwrap();
    Engine::new(config, store, Some(provider(llm)), sandbox)
}

pub fn config(emulator: &SlackEmulator) -> SlackConfig {
    SlackConfig {
        bot_token: Some(slack::BOT_TOKEN.into()),
        app_token: Some(slack::APP_TOKEN.into()),
        signing_secret: Some(slack::SIGNING_SECRET.into()),
        api_url: Some(emulator.api_url()),
        edit_interval_ms: 100,
        socket_connections: 1,
        socket_reconnect_secs: 1,
        ..SlackConfig::default()
    }
}

pub struct Setup {
    pub emulator: SlackEmulator,
    pub llm: FakeLlm,
    pub engine: Engine,
    pub db: PathBuf,
    pub shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Setup {
    pub async fn new(options: SlackEmulatorOptions, sandbox: Option<Arc<dyn CodeRunner>>) -> Setup {
        Self::new_with(options, sandbox, EngineConfig::default()).await
    }

    pub async fn new_with(
        options: SlackEmulatorOptions,
        sandbox: Option<Arc<dyn CodeRunner>>,
        config: EngineConfig,
    ) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("robit.db");
        let llm = FakeLlm::start().await;
        let engine = engine_with(&db, &llm, sandbox, config).await;
        Setup {
            emulator: SlackEmulator::with_options(options).await,
            llm,
            engine,
            db,
            shutdown: CancellationToken::new(),
            _dir: dir,
        }
    }

    /// The adapter over Socket Mode, connected.
    pub async fn socket() -> Setup {
        Self::socket_with(SlackEmulatorOptions::default(), None).await
    }

    pub async fn socket_with(
        options: SlackEmulatorOptions,
        sandbox: Option<Arc<dyn CodeRunner>>,
    ) -> Setup {
        Self::socket_with_config(options, sandbox, EngineConfig::default()).await
    }

    /// The adapter over Socket Mode on an engine with `config`.
    pub async fn socket_with_config(
        options: SlackEmulatorOptions,
        sandbox: Option<Arc<dyn CodeRunner>>,
        engine_config: EngineConfig,
    ) -> Setup {
        let s = Self::new_with(options, sandbox, engine_config).await;
        s.start_socket(config(&s.emulator));
        assert!(
            s.emulator
                .wait_for(WAIT, |e| e.socket_connections() == 1)
                .await,
            "the adapter never connected over socket mode"
        );
        s
    }

    /// The adapter over Socket Mode with the engine configured as given.
    pub async fn socket_config(engine_config: EngineConfig) -> Setup {
        let s = Self::new_with(SlackEmulatorOptions::default(), None, engine_config).await;
        s.start_socket(config(&s.emulator));
        s.wait_connected().await;
        s
    }

    async fn wait_connected(&self) {
        assert!(
            self.emulator
                .wait_for(WAIT, |e| e.socket_connections() == 1)
                .await,
            "the adapter never connected over socket mode"
        );
    }

    /// Stops the adapter and the engine, then starts both again on the same database file:
    /// what a restarted process would see.
    pub async fn restart(&mut self, engine_config: EngineConfig) {
        self.shutdown.cancel();
        self.engine.shutdown(Duration::from_secs(5)).await;
        assert!(
            self.emulator
                .wait_for(WAIT, |e| e.socket_connections() == 0)
                .await,
            "the old adapter never disconnected"
        );
        self.engine = engine_with(&self.db, &self.llm, None, engine_config).await;
        self.shutdown = CancellationToken::new();
        self.start_socket(config(&self.emulator));
        self.wait_connected().await;
    }

    pub fn start_socket(&self, config: SlackConfig) {
        let (engine, shutdown) = (self.engine.clone(), self.shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = robit_slack::run(engine, config, shutdown).await {
                panic!("socket mode failed: {e}");
            }
        });
    }

    /// The adapter over the HTTP Events API, with the emulator posting to it.
    pub async fn http() -> Setup {
        let s = Self::new(SlackEmulatorOptions::default(), None).await;
        let url = serve_events(s.engine.clone(), config(&s.emulator)).await;
        s.emulator.set_events_url(url);
        s
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Serves `events_router` on 127.0.0.1:0; returns the events URL.
pub async fn serve_events(engine: Engine, config: SlackConfig) -> String {
    let path = config.events_path.clone();
    let router = robit_slack::events_router(engine, config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}{path}")
}

/// Waits until the bot's replies in `thread` read `expected` (as mrkdwn).
pub async fn expect_reply(emulator: &SlackEmulator, thread: &ThreadRef, expected: &str) {
    let got = emulator
        .wait_for_reply(thread, WAIT, |t| t == expected)
        .await;
    assert_eq!(
        got.as_deref(),
        Some(expected),
        "reply in {thread:?} never became {expected:?}; it is {:?}",
        emulator.reply_text(thread)
    );
}
