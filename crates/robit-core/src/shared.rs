//! What the turn layer (chat turns, commands, `/config`) shares: the ports (store, provider,
//! sandbox, MCP tools), the configuration, the global turn permits, the journaled turns this
//! replica holds and each conversation's running turn, so a newer message can stop it.
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
use std::sync::{Arc, Mutex};
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
    running: Mutex<HashMap<ConversationKey, CancellationToken>>,
}

impl Shared {
    pub fn new(
        config: EngineConfig,
        store: Arc<dyn Store>,
        provider: Option<Arc<dyn Provider>>,
        sandbox: Option<Arc<dyn CodeRunner>>,
    ) -> Self {
        Self {
            permits: Semaphore::new(config.max_concurrent_turns.max(1)),
            store,
            provider,
            sandbox,
            tools: None,
            config,
            access: AccessState::default(),
            held: Arc::default(),
            shutdown: CancellationToken::new(),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Registers the conversation's running turn; its token fires on shutdown or, when
    /// configured, when a newer message arrives.
    pub fn begin_turn(&self, key: &ConversationKey) -> CancellationToken {
        let token = self.shutdown.child_token();
        self.running
            .lock()
            .expect("poisoned")
            .insert(key.clone(), token.clone());
        token
    }

    pub fn end_turn(&self, key: &ConversationKey) {
        self.running.lock().expect("poisoned").remove(key);
    }

    /// Stops the conversation's running turn, if any; whether there was one.
    pub fn stop_running(&self, key: &ConversationKey) -> bool {
        match self.running.lock().expect("poisoned").get(key) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}
