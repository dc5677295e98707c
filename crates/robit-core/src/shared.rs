//! What the turn layer (chat turns, commands, `/config`) shares: the ports (store, provider,
//! sandbox, MCP tools), the configuration, the global turn permits, the journaled turns this
//! replica holds and each conversation's running turn, so a newer message or a click on the
//! answer's Stop button can stop it.
//!
//! The engine's own queues and journal bookkeeping are not here (they stay in `engine.rs`),
//! and the layers below the turn layer take only the parts they need, never this whole.

use crate::access::AccessState;
use crate::config::EngineConfig;
use crate::journal::Held;
use robit_llm::Provider;
use robit_mcp::ToolProvider;
use robit_sandbox::CodeRunner;
use robit_store::Store;
use robit_types::ConversationKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub provider: Option<Arc<dyn Provider>>,
    pub sandbox: Option<Arc<dyn CodeRunner>>,
    /// Tools of MCP servers, offered beside `run_code`.
    pub tools: Option<Arc<dyn ToolProvider>>,
    pub config: EngineConfig,
    pub access: AccessState,
    /// How many turns may run at once on this replica.
    pub permits: Semaphore,
    /// The journaled turns this replica holds.
    pub held: Arc<Held>,
    /// Fires on shutdown; every running turn's token is a child of it.
    pub shutdown: CancellationToken,
    /// The running chat turn of each busy conversation.
    running: Mutex<HashMap<ConversationKey, RunningTurn>>,
}

/// A running chat turn, as whoever may stop it sees it.
#[derive(Clone)]
pub(crate) struct RunningTurn {
    /// The stored question the turn answers.
    pub turn: i64,
    /// Fires on shutdown, a newer message, or Stop.
    pub cancel: CancellationToken,
    /// Who pressed Stop, set before `cancel` fires, so the turn can tell a Stop from the
    /// other reasons it is cancelled.
    stopped_by: Arc<OnceLock<String>>,
}

impl RunningTurn {
    /// Who stopped the turn with the Stop button, if that is why it was cancelled.
    pub fn stopped_by(&self) -> Option<&str> {
        self.stopped_by.get().map(String::as_str)
    }
}

impl Shared {
    pub fn new(
        config: EngineConfig,
        store: Arc<dyn Store>,
        provider: Option<Arc<dyn Provider>>,
        sandbox: Option<Arc<dyn CodeRunner>>,
    ) -> Self {
        let slots = crate::journal::presized(config.journal.max_pending_total);
        Self {
            permits: Semaphore::new(config.max_concurrent_turns.max(1)),
            store,
            provider,
            sandbox,
            tools: None,
            config,
            access: AccessState::default(),
            held: Arc::new(Held::with_capacity(slots)),
            shutdown: CancellationToken::new(),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Registers the conversation's running turn; its token fires on shutdown or, when
    /// configured, when a newer message arrives.
    pub fn begin_turn(&self, key: &ConversationKey, turn: i64) -> RunningTurn {
        let running = RunningTurn {
            turn,
            cancel: self.shutdown.child_token(),
            stopped_by: Arc::default(),
        };
        self.running
            .lock()
            .expect("poisoned")
            .insert(key.clone(), running.clone());
        running
    }

    pub fn end_turn(&self, key: &ConversationKey) {
        self.running.lock().expect("poisoned").remove(key);
    }

    /// Stops the conversation's running turn, if any; whether there was one.
    pub fn stop_running(&self, key: &ConversationKey) -> bool {
        match self.running.lock().expect("poisoned").get(key) {
            Some(running) => {
                running.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops the conversation's running turn on behalf of `by`, as Stop does (the answer is
    /// kept and stored as stopped); whether one ran. The console's Ctrl-C.
    pub fn stop_running_for(&self, key: &ConversationKey, by: &str) -> bool {
        match self.running.lock().expect("poisoned").get(key) {
            Some(running) => {
                let _ = running.stopped_by.set(by.to_string());
                running.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Whether a turn answering question `turn` runs on this replica.
    pub fn is_running(&self, turn: i64) -> bool {
        self.running
            .lock()
            .expect("poisoned")
            .values()
            .any(|r| r.turn == turn)
    }

    /// Stops the running turn answering question `turn` on behalf of `by` (Stop); whether
    /// one runs on this replica.
    pub fn stop_turn(&self, turn: i64, by: &str) -> bool {
        let running = self.running.lock().expect("poisoned");
        match running.values().find(|r| r.turn == turn) {
            Some(r) => {
                let _ = r.stopped_by.set(by.to_string());
                r.cancel.cancel();
                true
            }
            None => false,
        }
    }
}
