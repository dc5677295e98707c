//! The engine's typed settings; the binary fills them from its configuration.

use robit_sandbox::Limits;
use std::collections::HashMap;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Turns running at once across all conversations.
    pub max_concurrent_turns: usize,
    /// The system prompt sent first in every request.
    pub system_prompt: String,
    /// The model used when a conversation has not chosen one.
    pub default_model: String,
    /// Models `/model` may switch to. Empty: any name is accepted.
    pub models: Vec<String>,
    /// Most messages of history loaded for one turn.
    pub history_limit: u32,
    /// Tool rounds (model → tool → model) allowed in one turn.
    pub max_tool_rounds: u32,
    /// Tool calls run from one model response; further calls get a "not run" result the
    /// model reads, and the thread gets a note.
    pub max_tool_calls_per_round: usize,
    /// `max_tokens` of every model request, so a model that does not stop is stopped by the
    /// provider; an answer that reaches it gets a note.
    pub max_reply_tokens: u32,
    /// The most characters of one answer shown and kept; the stream is cut there, with a
    /// note. Bounds what a looping model can post and what every flush re-renders.
    pub max_reply_chars: usize,
    /// Whether the model is offered the `run_code` tool when a sandbox is present.
    pub run_code_tool: bool,
    /// Limits for `/run` and `run_code`.
    pub sandbox_limits: Limits,
    /// Whether channels that did not set `sandbox.gvisor` may use the gVisor tier (when the
    /// sandbox has it).
    pub gvisor_by_default: bool,
    /// Shown when a chat message arrives and no provider is configured.
    pub no_provider_hint: String,
    /// Context window, in tokens, of models not listed in `model_context_tokens`.
    pub default_context_tokens: u32,
    /// Context window per model name.
    pub model_context_tokens: HashMap<String, u32>,
    /// Tokens kept free for the answer when fitting history into the context window.
    pub reply_reserve_tokens: u32,
    /// System prompts for a workspace (`"<platform>:<workspace>"`) or a channel
    /// (`"<platform>:<workspace>:<channel>"`); the most specific wins over `system_prompt`.
    pub system_prompt_overrides: HashMap<String, String>,
    /// A new message or `/reset` in a conversation stops the turn running there.
    pub cancel_on_new_message: bool,
    /// How long after asking the author may edit their question to have it answered again
    /// (the latest question of its conversation only); zero turns edits off.
    pub edit_window: std::time::Duration,
    /// Conversation leases, for several replicas sharing one database; `None` for one
    /// process, where the in-memory queue already keeps turns one at a time.
    pub lease: Option<crate::lease::LeaseConfig>,
    /// The turn journal: this replica's holder name, its turn lease and the pending caps.
    pub journal: crate::journal::JournalConfig,
    /// Attachments in (text files, images, `/run` inputs) and run files out.
    pub attachments: crate::attachments::AttachmentLimits,
    /// Who may use robit and who may change its settings.
    pub access: crate::access::AccessConfig,
    /// Turn rate limits and the daily token quota.
    pub limits: crate::limits::LimitsConfig,
    /// The longest system prompt `/config set system_prompt` accepts, in characters.
    pub max_system_prompt_chars: usize,
}

impl EngineConfig {
    /// Tokens of history and prompt that fit for `model`.
    pub fn prompt_budget(&self, model: &str) -> u64 {
        let window = self
            .model_context_tokens
            .get(model)
            .copied()
            .unwrap_or(self.default_context_tokens);
        u64::from(window.saturating_sub(self.reply_reserve_tokens))
    }

    /// The system prompt for a conversation: channel override, then workspace, then global.
    pub fn system_prompt_for(&self, key: &robit_types::ConversationKey) -> &str {
        let workspace = format!("{}:{}", key.platform, key.workspace);
        let channel = format!("{workspace}:{}", key.channel);
        self.system_prompt_overrides
            .get(&channel)
            .or_else(|| self.system_prompt_overrides.get(&workspace))
            .unwrap_or(&self.system_prompt)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_concurrent_turns: 64,
            system_prompt: "You are robit, a helpful assistant in a team chat. Answer concisely \
                            and use Markdown code blocks for code."
                .to_string(),
            default_model: "gpt-4o-mini".to_string(),
            models: Vec::new(),
            history_limit: 200,
            max_tool_rounds: 5,
            max_tool_calls_per_round: 8,
            max_reply_tokens: 4_096,
            max_reply_chars: 16_000,
            run_code_tool: true,
            sandbox_limits: Limits::default(),
            gvisor_by_default: true,
            no_provider_hint: "No LLM provider is configured, so I can't answer yet. Set \
                               `llm.base_url` (and `ROBIT_LLM__API_KEY` if it needs a key) in \
                               robit.toml, then restart robit. `robit doctor` checks the setup."
                .to_string(),
            default_context_tokens: 32_768,
            model_context_tokens: HashMap::new(),
            reply_reserve_tokens: 4_096,
            system_prompt_overrides: HashMap::new(),
            cancel_on_new_message: false,
            edit_window: std::time::Duration::from_secs(600),
            lease: None,
            journal: crate::journal::JournalConfig::default(),
            attachments: crate::attachments::AttachmentLimits::default(),
            access: crate::access::AccessConfig::open(),
            limits: crate::limits::LimitsConfig::default(),
            max_system_prompt_chars: 4_000,
        }
    }
}
