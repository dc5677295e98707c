//! The Anthropic Messages wire format: the request body we send and the stream events we read
//! back.
//!
//! Anthropic differs from OpenAI in ways the mapping has to absorb: system prompts are a
//! top-level field, tool calls and tool results are content blocks (results travel in a
//! *user* message), roles must alternate, and `max_tokens` is required. Only the fields robit
//! uses are modelled; unknown event and block types are ignored, as Anthropic asks clients to
//! do. This module must not do I/O: it is pure translation, tested without a server.

use crate::http::WireError;
use crate::types::{ChatMessage, ChatRequest, Role, ToolSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `POST /v1/messages`.
#[derive(Debug, Serialize)]
pub(crate) struct RequestBody<'a> {
    pub model: &'a str,
    pub max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<WireTool<'a>>,
    pub stream: bool,
}

#[derive(Debug, PartialEq, Serialize)]
pub(crate) struct WireMessage<'a> {
    pub role: &'static str,
    pub content: Vec<Block<'a>>,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Block<'a> {
    Text {
        text: &'a str,
    },
    Image {
        source: ImageSource<'a>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        /// Omitted when empty: the API rejects empty text, and a tool that printed nothing
        /// is still a result.
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<&'a str>,
    },
}

/// An inline image; Anthropic also takes URLs, but a chat file's URL needs the platform's
/// credentials, so robit always sends the bytes.
#[derive(Debug, PartialEq, Serialize)]
pub(crate) struct ImageSource<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub media_type: &'a str,
    pub data: &'a str,
}

#[derive(Debug, Serialize)]
pub(crate) struct WireTool<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub input_schema: &'a Value,
}

impl<'a> RequestBody<'a> {
    /// `default_max_tokens` applies when the request sets none: the API requires a limit.
    pub fn new(request: &'a ChatRequest, default_max_tokens: u32) -> Self {
        // System messages anywhere in the history become the one top-level prompt, in order.
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System && !m.content.is_empty())
            .map(|m| m.content.as_str())
            .collect();
        RequestBody {
            model: &request.model,
            max_tokens: request.max_tokens.unwrap_or(default_max_tokens),
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages: messages(&request.messages),
            tools: request.tools.iter().map(WireTool::from).collect(),
            stream: true,
        }
    }
}

/// Maps the conversation to alternating user/assistant messages of content blocks.
fn messages(history: &[ChatMessage]) -> Vec<WireMessage<'_>> {
    let mut out: Vec<WireMessage<'_>> = Vec::new();
    for message in history {
        let (role, content) = match message.role {
            Role::System => continue,
            Role::User => {
                let mut blocks: Vec<Block<'_>> = text_block(&message.content).into_iter().collect();
                blocks.extend(message.images.iter().map(|image| Block::Image {
                    source: ImageSource {
                        kind: "base64",
                        media_type: &image.media_type,
                        data: &image.data_base64,
                    },
                }));
                ("user", blocks)
            }
            Role::Assistant => {
                let mut blocks: Vec<Block<'_>> = text_block(&message.content).into_iter().collect();
                blocks.extend(message.tool_calls.iter().map(|call| Block::ToolUse {
                    id: &call.id,
                    name: &call.name,
                    input: tool_input(&call.arguments),
                }));
                ("assistant", blocks)
            }
            Role::Tool => (
                "user",
                vec![Block::ToolResult {
                    tool_use_id: message.tool_call_id.as_deref().unwrap_or_default(),
                    content: (!message.content.is_empty()).then_some(message.content.as_str()),
                }],
            ),
        };
        // A message with nothing to say (e.g. an empty assistant turn) would be rejected.
        if content.is_empty() {
            continue;
        }
        // The API requires alternating roles; consecutive tool results, or a user message
        // right after tool results, become one user message with the blocks in order (tool
        // results first, as the API wants).
        match out.last_mut() {
            Some(last) if last.role == role => last.content.extend(content),
            _ => out.push(WireMessage { role, content }),
        }
    }
    out
}

/// The API rejects empty text blocks, so empty text is no block at all.
fn text_block(text: &str) -> Option<Block<'_>> {
    (!text.is_empty()).then_some(Block::Text { text })
}

/// `input` must be a JSON object. Arguments we stored are the model's own JSON text; if that
/// was not an object (the model produced broken JSON, which the engine already reported to it
/// in the tool result) the call is sent with no input rather than failing the whole request.
fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => value,
        _ => Value::Object(Default::default()),
    }
}

impl<'a> From<&'a ToolSpec> for WireTool<'a> {
    fn from(tool: &'a ToolSpec) -> Self {
        WireTool {
            name: &tool.name,
            description: &tool.description,
            input_schema: &tool.parameters,
        }
    }
}

/// One stream event's `data`, told apart by its `type` (which repeats the SSE event name).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Event {
    MessageStart {
        message: MessageStart,
    },
    ContentBlockStart {
        index: u32,
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDelta,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: WireError,
    },
    /// Anthropic may add event types; clients are asked to ignore the ones they don't know.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct MessageStart {
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ContentBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Thinking, redacted thinking, server tools, …: nothing robit shows.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        #[serde(default)]
        partial_json: String,
    },
    /// Thinking and signature deltas, citations, …
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct MessageDelta {
    #[serde(default)]
    pub stop_reason: Option<String>,
}

/// Token counts. `message_start` carries the input, `message_delta` the (cumulative) output
/// and sometimes the input again; cached input is counted apart from `input_tokens`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToolCall;
    use serde_json::json;

    fn body(request: &ChatRequest) -> Value {
        serde_json::to_value(RequestBody::new(request, 4096)).unwrap()
    }

    fn tool_result(id: &str, text: &str) -> ChatMessage {
        let mut message = ChatMessage::new(Role::Tool, text);
        message.tool_call_id = Some(id.into());
        message
    }

    #[test]
    fn a_user_message_with_an_image_gets_a_base64_image_block() {
        let mut user = ChatMessage::new(Role::User, "what is this?");
        user.images
            .push(crate::types::ImagePart::new("image/jpeg", b"\xff\xd8\xff"));
        let request = ChatRequest {
            model: "claude-x".into(),
            messages: vec![user],
            tools: Vec::new(),
            max_tokens: None,
        };
        assert_eq!(
            body(&request)["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image", "source": {
                    "type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
            ]}])
        );
    }

    #[test]
    fn request_body_maps_system_tools_and_tool_results() {
        let mut assistant = ChatMessage::new(Role::Assistant, "let me run both");
        for (id, code) in [("toolu_1", "1+1"), ("toolu_2", "2+2")] {
            assistant.tool_calls.push(ToolCall {
                id: id.into(),
                name: "run_code".into(),
                arguments: json!({ "code": code }).to_string(),
            });
        }
        let request = ChatRequest {
            model: "claude-x".into(),
            messages: vec![
                ChatMessage::new(Role::System, "be brief"),
                ChatMessage::new(Role::User, "what are 1+1 and 2+2?"),
                assistant,
                tool_result("toolu_1", "2"),
                tool_result("toolu_2", ""),
                ChatMessage::new(Role::System, "answer in words"),
                ChatMessage::new(Role::User, "well?"),
            ],
            tools: vec![ToolSpec {
                name: "run_code".into(),
                description: "runs code".into(),
                parameters: json!({"type": "object"}),
            }],
            max_tokens: None,
        };
        assert_eq!(
            body(&request),
            json!({
                "model": "claude-x",
                "max_tokens": 4096,
                "system": "be brief\n\nanswer in words",
                "stream": true,
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "what are 1+1 and 2+2?"}]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "let me run both"},
                        {"type": "tool_use", "id": "toolu_1", "name": "run_code", "input": {"code": "1+1"}},
                        {"type": "tool_use", "id": "toolu_2", "name": "run_code", "input": {"code": "2+2"}},
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "2"},
                        {"type": "tool_result", "tool_use_id": "toolu_2"},
                        {"type": "text", "text": "well?"},
                    ]},
                ],
                "tools": [{"name": "run_code", "description": "runs code",
                           "input_schema": {"type": "object"}}],
            })
        );
    }

    #[test]
    fn consecutive_same_role_messages_merge_and_empty_ones_vanish() {
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![
                ChatMessage::new(Role::User, "one"),
                ChatMessage::new(Role::User, "two"),
                ChatMessage::new(Role::Assistant, ""),
                ChatMessage::new(Role::User, "three"),
            ],
            tools: Vec::new(),
            max_tokens: Some(10),
        };
        let body = body(&request);
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "one"},
                {"type": "text", "text": "two"},
                {"type": "text", "text": "three"},
            ]}])
        );
        assert_eq!(body["max_tokens"], 10);
        assert!(body.get("system").is_none());
        assert!(body.get("tools").is_none());
    }

    #[test]
    fn broken_tool_arguments_become_an_empty_input() {
        assert_eq!(tool_input(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(tool_input("{not json"), json!({}));
        assert_eq!(tool_input("[1]"), json!({}));
        assert_eq!(tool_input(""), json!({}));
    }

    #[test]
    fn unknown_event_and_block_types_parse_as_ignorable() {
        let event: Event = serde_json::from_str(r#"{"type":"brand_new","x":1}"#).unwrap();
        assert!(matches!(event, Event::Unknown));
        let event: Event = serde_json::from_str(
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
        )
        .unwrap();
        assert!(matches!(
            event,
            Event::ContentBlockStart {
                content_block: ContentBlock::Other,
                ..
            }
        ));
    }
}
