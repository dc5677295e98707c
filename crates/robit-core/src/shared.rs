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
    /// The running chat turn of each busy conversation, and who stopped it, once stopped.
    running: Mutex<HashMap<ConversationKey, (CancellationToken, Option<Stopper>)>>,
}

/// Who stopped a running turn, so the note the answer ends with says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopper {
    /// A newer message in the conversation (`engine.cancel_on_new_message`).
    NewerMessage,
    /// The person asked (the console's Ctrl-C).
    User,
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
            .insert(key.clone(), (token.clone(), None));
        token
    }

    pub fn end_turn(&self, key: &ConversationKey) {
        self.running.lock().expect("poisoned").remove(key);
    }

    /// Stops the conversation's running turn, if any; whether there was one.
    pub fn stop_running(&self, key: &ConversationKey, by: Stopper) -> bool {
        match self.running.lock().expect("poisoned").get_mut(key) {
            Some((token, stopper)) => {
                stopper.get_or_insert(by);
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Who stopped the conversation's running turn; `None` while it runs (or after a
    /// shutdown, which stops every turn without naming one).
    pub fn stopped_by(&self, key: &ConversationKey) -> Option<Stopper> {
        self.running
            .lock()
            .expect("poisoned")
            .get(key)
            .and_then(|(_, by)| *by)
    }
}
