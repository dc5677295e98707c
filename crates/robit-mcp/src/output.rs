//! Turns an MCP tool result into the text the model and the thread get.

use crate::provider::ToolOutput;
use rmcp::model::{CallToolResult, RawContent, ResourceContents};

pub(crate) fn to_output(result: CallToolResult) -> ToolOutput {
    let mut parts = Vec::new();
    for content in result.content {
        parts.push(match content.raw {
            RawContent::Text(t) => t.text,
            RawContent::Image(i) => {
                format!("[image {}, {} base64 bytes]", i.mime_type, i.data.len())
            }
            RawContent::Audio(a) => {
                format!("[audio {}, {} base64 bytes]", a.mime_type, a.data.len())
            }
            RawContent::Resource(r) => match r.resource {
                ResourceContents::TextResourceContents { text, .. } => text,
                ResourceContents::BlobResourceContents { uri, .. } => format!("[resource {uri}]"),
            },
            RawContent::ResourceLink(l) => format!("[link {} {}]", l.name, l.uri),
        });
    }
    let mut text = parts.join("\n");
    // A tool may answer only with structured content; the model should still see it.
    if text.is_empty() {
        if let Some(value) = result.structured_content {
            text = value.to_string();
        }
    }
    ToolOutput {
        text,
        is_error: result.is_error.unwrap_or(false),
    }
}
