//! LLM providers behind one streamed-chat trait.
//!
//! The engine builds a provider-neutral [`ChatRequest`] and consumes a stream of
//! [`StreamEvent`]s; each wire protocol (OpenAI-compatible chat completions, later Anthropic
//! Messages) lives in its own module and translates both ways. This crate must not know about
//! chat platforms, storage or the sandbox, and never reads the environment: base URLs, keys and
//! models arrive as typed configuration.

mod error;
mod openai;
mod types;

pub use error::LlmError;
pub use openai::{OpenAiCompatible, OpenAiConfig};
pub use types::{
    ChatMessage, ChatRequest, ChatStream, Provider, Role, StreamEvent, ToolCall, ToolSpec, Usage,
};
