//! The provider-neutral request, response events and the `Provider` port.

use crate::error::LlmError;
use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

/// A complete tool call the model made: `arguments` is the JSON text the model produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// An image sent with a user message, for models that can see.
///
/// Kept as base64 text because both wire formats want it that way (OpenAI inside a `data:`
/// URL, Anthropic in a `base64` source), so a request that is retried or failed over does not
/// encode it again.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePart {
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`: what both APIs accept.
    pub media_type: String,
    /// The image bytes, base64 (standard alphabet, padded).
    pub data_base64: String,
}

impl ImagePart {
    pub fn new(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        use base64::Engine as _;
        Self {
            media_type: media_type.into(),
            data_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }
}

/// Images are large; logs and test failures show their type and size only.
impl std::fmt::Debug for ImagePart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagePart")
            .field("media_type", &self.media_type)
            .field("base64_len", &self.data_base64.len())
            .finish()
    }
}

/// One message of a conversation as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// Images after the text, for a `User` message to a model that can see. Empty for every
    /// other message, which then goes on the wire exactly as a text-only message would.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImagePart>,
    /// Tool calls made by an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a `Tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            images: Vec::new(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A tool the model may call; `parameters` is a JSON Schema object.
///
/// `Eq` is derived because `ChatRequest` derives it (a JSON value compares exactly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
    pub max_tokens: Option<u32>,
}

/// Token counts for one request, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// What a streamed completion yields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// Which provider and upstream model are answering. Only the
    /// [`ModelRouter`](crate::ModelRouter) emits it, once, before anything else (after it has
    /// failed over, it names the target that finally answered); a single provider's stream
    /// never does. Usage records should name this provider and model rather than the alias
    /// the request asked for.
    Served { provider: String, model: String },
    /// A piece of the answer's text.
    TextDelta(String),
    /// A tool call, emitted once its arguments are complete.
    ToolCall(ToolCall),
    /// Usage for the whole request (usually last).
    Usage(Usage),
    /// The provider finished; `reason` is its finish reason (`stop`, `tool_calls`, `length`, …).
    Done { reason: String },
}

pub type ChatStream = BoxStream<'static, Result<StreamEvent, LlmError>>;

/// A streamed chat-completion backend.
#[async_trait]
pub trait Provider: Send + Sync {
    /// A short name for logs and usage records (`openai`, `local`, …).
    fn name(&self) -> &str;

    /// Starts a streamed completion. The returned stream ends early (with
    /// [`LlmError::Cancelled`]) once `cancel` fires.
    async fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> Result<ChatStream, LlmError>;
}

/// A shared provider is a provider, so decorators such as [`Retrying`](crate::Retrying) can
/// wrap an `Arc<dyn Provider>` as well as a concrete client.
#[async_trait]
impl<P: Provider + ?Sized> Provider for std::sync::Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }

    async fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> Result<ChatStream, LlmError> {
        (**self).stream(request, cancel).await
    }
}
