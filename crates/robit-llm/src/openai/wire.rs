//! The OpenAI chat-completions wire format: the request body we send and the stream chunks we
//! read back.
//!
//! Only the fields robit uses are modelled; unknown fields are ignored so that compatible
//! servers (Ollama, vLLM, llama.cpp, LiteLLM, …) that add their own keep working. This module
//! must not do I/O: it is pure translation, tested without a server.

use crate::http::WireError;
use crate::types::{ChatMessage, ChatRequest, ImagePart, Role, ToolCall, ToolSpec};
use serde::{Deserialize, Serialize};

/// The body of `POST /chat/completions`.
#[derive(Debug, Serialize)]
pub(crate) struct RequestBody<'a> {
    pub model: &'a str,
    pub messages: Vec<WireMessage<'a>>,
    pub stream: bool,
    pub stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StreamOptions {
    /// Without this the API never reports token usage for a streamed answer.
    pub include_usage: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct WireMessage<'a> {
    pub role: &'static str,
    /// `None` serializes as `null`: an assistant message that only calls tools has no text,
    /// and some servers reject an empty string there while all accept `null`.
    pub content: Option<WireContent<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<WireToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<&'a str>,
}

/// A plain string for text-only messages (what every compatible server understands), content
/// parts when the message carries images.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum WireContent<'a> {
    Text(&'a str),
    Parts(Vec<WirePart<'a>>),
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: WireImageUrl },
}

#[derive(Debug, Serialize)]
pub(crate) struct WireImageUrl {
    /// A `data:` URL: the image travels inline, so the provider never fetches anything.
    pub url: String,
}

impl<'a> WirePart<'a> {
    fn image(image: &ImagePart) -> Self {
        WirePart::ImageUrl {
            image_url: WireImageUrl {
                url: format!("data:{};base64,{}", image.media_type, image.data_base64),
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct WireToolCall<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: WireFunctionCall<'a>,
}

#[derive(Debug, Serialize)]
pub(crate) struct WireFunctionCall<'a> {
    pub name: &'a str,
    pub arguments: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct WireTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: WireFunction<'a>,
}

#[derive(Debug, Serialize)]
pub(crate) struct WireFunction<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub parameters: &'a serde_json::Value,
}

impl<'a> RequestBody<'a> {
    pub fn new(request: &'a ChatRequest) -> Self {
        RequestBody {
            model: &request.model,
            messages: request.messages.iter().map(WireMessage::from).collect(),
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
            tools: request.tools.iter().map(WireTool::from).collect(),
            max_tokens: request.max_tokens,
        }
    }
}

impl<'a> From<&'a ChatMessage> for WireMessage<'a> {
    fn from(message: &'a ChatMessage) -> Self {
        let tool_calls: Vec<WireToolCall<'a>> = match message.role {
            Role::Assistant => message.tool_calls.iter().map(WireToolCall::from).collect(),
            // Only assistant messages may carry tool calls on this API; anything else
            // would be rejected, so it is dropped rather than sent.
            _ => Vec::new(),
        };
        let content = if message.content.is_empty() && !tool_calls.is_empty() {
            None
        } else if !message.images.is_empty() && message.role == Role::User {
            // Only user messages may carry images on this API.
            let mut parts = Vec::with_capacity(message.images.len() + 1);
            if !message.content.is_empty() {
                parts.push(WirePart::Text {
                    text: &message.content,
                });
            }
            parts.extend(message.images.iter().map(WirePart::image));
            Some(WireContent::Parts(parts))
        } else {
            Some(WireContent::Text(message.content.as_str()))
        };
        let tool_call_id = match message.role {
            Role::Tool => Some(message.tool_call_id.as_deref().unwrap_or_default()),
            _ => None,
        };
        WireMessage {
            role: message.role.as_str(),
            content,
            tool_calls,
            tool_call_id,
        }
    }
}

impl<'a> From<&'a ToolCall> for WireToolCall<'a> {
    fn from(call: &'a ToolCall) -> Self {
        WireToolCall {
            id: &call.id,
            kind: "function",
            function: WireFunctionCall {
                name: &call.name,
                arguments: &call.arguments,
            },
        }
    }
}

impl<'a> From<&'a ToolSpec> for WireTool<'a> {
    fn from(tool: &'a ToolSpec) -> Self {
        WireTool {
            kind: "function",
            function: WireFunction {
                name: &tool.name,
                description: &tool.description,
                parameters: &tool.parameters,
            },
        }
    }
}

/// One `data:` payload of the stream. Either a chunk or, when the provider fails mid-answer,
/// an `error` object.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Chunk {
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    #[serde(default)]
    pub error: Option<WireError>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Choice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Delta {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ToolCallDelta>,
}

/// A piece of a tool call. The first piece of a call carries `id` and `function.name`; later
/// pieces with the same `index` append to `function.arguments`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ToolCallDelta {
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: Option<FunctionDelta>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FunctionDelta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(request: &ChatRequest) -> serde_json::Value {
        serde_json::to_value(RequestBody::new(request)).unwrap()
    }

    #[test]
    fn request_body_maps_every_role() {
        let mut assistant = ChatMessage::new(Role::Assistant, "");
        assistant.tool_calls.push(ToolCall {
            id: "call_1".into(),
            name: "run_code".into(),
            arguments: r#"{"code":"1+1"}"#.into(),
        });
        let mut tool = ChatMessage::new(Role::Tool, "2");
        tool.tool_call_id = Some("call_1".into());
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![
                ChatMessage::new(Role::System, "be brief"),
                ChatMessage::new(Role::User, "what is 1+1?"),
                assistant,
                tool,
                ChatMessage::new(Role::Assistant, "2"),
            ],
            tools: vec![ToolSpec {
                name: "run_code".into(),
                description: "runs code".into(),
                parameters: json!({"type": "object"}),
            }],
            max_tokens: Some(100),
        };
        assert_eq!(
            body(&request),
            json!({
                "model": "m",
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": 100,
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "what is 1+1?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "run_code", "arguments": "{\"code\":\"1+1\"}"}}
                    ]},
                    {"role": "tool", "content": "2", "tool_call_id": "call_1"},
                    {"role": "assistant", "content": "2"},
                ],
                "tools": [{"type": "function", "function": {
                    "name": "run_code", "description": "runs code",
                    "parameters": {"type": "object"}}}],
            })
        );
    }

    #[test]
    fn a_user_message_with_an_image_becomes_content_parts() {
        let mut user = ChatMessage::new(Role::User, "what is this?");
        user.images.push(ImagePart::new("image/png", b"\x89PNG"));
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![user, ChatMessage::new(Role::Assistant, "a cat")],
            tools: Vec::new(),
            max_tokens: None,
        };
        assert_eq!(
            body(&request)["messages"],
            json!([
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
                ]},
                {"role": "assistant", "content": "a cat"},
            ])
        );
    }

    #[test]
    fn request_body_omits_empty_tools_and_max_tokens() {
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![ChatMessage::new(Role::User, "")],
            tools: Vec::new(),
            max_tokens: None,
        };
        let body = body(&request);
        assert!(body.get("tools").is_none());
        assert!(body.get("max_tokens").is_none());
        // A user message with empty text still sends a string, never null.
        assert_eq!(body["messages"][0]["content"], json!(""));
    }
}
