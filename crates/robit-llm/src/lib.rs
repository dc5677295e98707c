//! LLM providers behind one streamed-chat trait.
//!
//! The engine builds a provider-neutral [`ChatRequest`] and consumes a stream of
//! [`StreamEvent`]s; each wire protocol (OpenAI-compatible chat completions, Anthropic
//! Messages) lives in its own module and translates both ways. Retries ([`Retrying`]) and
//! model routing with failover ([`ModelRouter`]) are decorators that are themselves
//! [`Provider`]s. This crate must not know about chat platforms, storage or the sandbox, and
//! never reads the environment: base URLs, keys and models arrive as typed configuration.

mod anthropic;
mod error;
mod http;
mod local;
mod openai;
mod retry;
mod router;
mod sse;
mod types;

pub use anthropic::{Anthropic, AnthropicConfig, ANTHROPIC_BASE_URL, ANTHROPIC_VERSION};
pub use error::{LlmError, RouterConfigError};
pub use local::{probe_local, probe_local_in, LocalServer, LOCAL_SERVERS};
pub use openai::{OpenAiCompatible, OpenAiConfig};
pub use retry::{RetryPolicy, Retrying};
pub use router::{ModelRouter, ModelRouterBuilder};
pub use types::{
    ChatMessage, ChatRequest, ChatStream, ImagePart, Provider, Role, StreamEvent, ToolCall,
    ToolSpec, Usage,
};
