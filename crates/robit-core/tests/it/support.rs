//! Shared fixtures: a sink that records what the engine sent, and an engine on a temp SQLite
//! file with the fake LLM behind the real client.

use async_trait::async_trait;
use robit_core::{Engine, EngineConfig};
use robit_llm::{OpenAiCompatible, OpenAiConfig, Provider};
use robit_store::Store;
use robit_testkit::llm::FakeLlm;
use robit_types::{
    Author, Capabilities, ConversationKey, EventId, Inbound, MessageRef, Platform, ReplySink,
    SinkError, UserId,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Post { id: usize, text: String },
    Edit { id: usize, text: String },
}

/// Records every post and edit with the time it happened, like a platform would show them.
pub struct RecordingSink {
    pub caps: Capabilities,
    pub calls: Mutex<Vec<(Instant, Call)>>,
    /// What each message shows now.
    pub messages: Mutex<Vec<String>>,
}

impl RecordingSink {
    pub fn new(max_len: usize, edit_interval: Duration) -> Arc<Self> {
        Arc::new(Self {
            caps: Capabilities {
                max_message_len: max_len,
                min_edit_interval: edit_interval,
                native_streaming: false,
                max_upload_bytes: None,
                paced: false,
                controls: false,
            },
            calls: Mutex::new(Vec::new()),
            messages: Mutex::new(Vec::new()),
        })
    }

    pub fn fast() -> Arc<Self> {
        Self::new(2000, Duration::from_millis(20))
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    /// All messages joined, as a reader would see the thread.
    pub fn transcript(&self) -> String {
        self.messages().join("\n")
    }

    pub fn calls(&self) -> Vec<(Instant, Call)> {
        self.calls.lock().unwrap().clone()
    }

    pub fn edit_count(&self) -> usize {
        self.calls()
            .iter()
            .filter(|(_, c)| matches!(c, Call::Edit { .. }))
            .count()
    }
}

#[async_trait]
impl ReplySink for RecordingSink {
    fn capabilities(&self) -> Capabilities {
        self.caps.clone()
    }

    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        assert!(
            text.chars().count() <= self.caps.max_message_len,
            "engine posted {} chars over the limit {}",
            text.chars().count(),
            self.caps.max_message_len
        );
        let mut m = self.messages.lock().unwrap();
        m.push(text.to_string());
        let id = m.len() - 1;
        self.calls.lock().unwrap().push((
            Instant::now(),
            Call::Post {
                id,
                text: text.to_string(),
            },
        ));
        Ok(MessageRef(id.to_string()))
    }

    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        assert!(text.chars().count() <= self.caps.max_message_len);
        let id: usize = message.0.parse().unwrap();
        self.messages.lock().unwrap()[id] = text.to_string();
        self.calls.lock().unwrap().push((
            Instant::now(),
            Call::Edit {
                id,
                text: text.to_string(),
            },
        ));
        Ok(())
    }
}

pub struct Harness {
    pub engine: Engine,
    pub store: Arc<dyn Store>,
    pub llm: FakeLlm,
    pub db: std::path::PathBuf,
    _dir: Option<tempfile::TempDir>,
}

static EVENTS: AtomicU64 = AtomicU64::new(0);

pub fn key(channel: &str) -> ConversationKey {
    ConversationKey::new(Platform::Console, "ws", channel, None)
}

pub fn message(key: &ConversationKey, text: &str) -> Inbound {
    let n = EVENTS.fetch_add(1, Ordering::Relaxed);
    Inbound::message(
        EventId(format!("ev-{n}")),
        key.clone(),
        Author {
            id: UserId("alice".into()),
            name: "alice".into(),
            is_bot: false,
            roles: Vec::new(),
        },
        text.to_string(),
    )
}

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

impl Harness {
    pub async fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("robit.db");
        let mut h = Self::open(&db, FakeLlm::start().await, EngineConfig::default()).await;
        h._dir = Some(dir);
        h
    }

    /// An engine on an existing database file (a "restart").
    pub async fn open(db: &std::path::Path, llm: FakeLlm, config: EngineConfig) -> Harness {
        let store = robit_store::connect_sqlite(db).await.unwrap();
        store.migrate().await.unwrap();
        let engine = Engine::new(config, store.clone(), Some(provider(&llm)), None);
        Harness {
            engine,
            store,
            llm,
            db: db.to_path_buf(),
            _dir: None,
        }
    }

    /// An engine with the real sandbox (real guests, no pool) on a fresh database.
    pub async fn with_sandbox(config: EngineConfig) -> (Harness, tempfile::TempDir) {
        Harness::with_runner(config, sandbox().await).await
    }

    /// An engine with `runner` as its sandbox on a fresh database.
    pub async fn with_runner(
        config: EngineConfig,
        runner: Arc<dyn robit_sandbox::CodeRunner>,
    ) -> (Harness, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = robit_store::connect_sqlite(dir.path().join("s.db"))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let llm = FakeLlm::start().await;
        let engine = Engine::new(config, store.clone(), Some(provider(&llm)), Some(runner));
        let h = Harness {
            engine,
            store,
            llm,
            db: dir.path().join("s.db"),
            _dir: None,
        };
        (h, dir)
    }

    /// Submits and waits for the turn.
    pub async fn say(
        &self,
        sink: &Arc<RecordingSink>,
        inbound: Inbound,
    ) -> robit_core::TurnOutcome {
        self.engine
            .submit(inbound, sink.clone())
            .await
            .unwrap()
            .wait()
            .await
    }
}

/// The real sandbox on the guests `scripts/fetch-guests` put in `data/guests`.
pub async fn sandbox() -> Arc<dyn robit_sandbox::CodeRunner> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let guests = std::env::var_os("ROBIT_GUESTS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("data/guests"));
    assert!(
        guests.join("python.wasm").exists(),
        "sandbox guests missing in {}: run scripts/fetch-guests",
        guests.display()
    );
    let mut config = robit_sandbox::SandboxConfig::new(&guests, root.join("data/cache"));
    config.python_pool_size = 0;
    Arc::new(
        robit_sandbox::Sandbox::new(config)
            .await
            .expect("sandbox starts"),
    )
}
