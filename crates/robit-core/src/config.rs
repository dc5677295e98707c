//! The engine's typed settings; the binary fills them from its configuration.

use robit_sandbox::Limits;

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
    /// Whether the model is offered the `run_code` tool when a sandbox is present.
    pub run_code_tool: bool,
    /// Limits for `/run` and `run_code`.
    pub sandbox_limits: Limits,
    /// Shown when a chat message arrives and no provider is configured.
    pub no_provider_hint: String,
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
            run_code_tool: true,
            sandbox_limits: Limits::default(),
            no_provider_hint: "No LLM provider is configured, so I can't answer yet. Set \
                               `llm.base_url` (and `ROBIT_LLM__API_KEY` if it needs a key) in \
                               robit.toml, then restart robit. `robit doctor` checks the setup."
                .to_string(),
        }
    }
}
