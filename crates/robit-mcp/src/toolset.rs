//! [`McpTools`]: every configured server, connected at start, behind [`ToolProvider`].

use crate::client::{self, Connection};
use crate::config::ServerConfig;
use crate::error::{ConnectError, ToolError};
use crate::names::{disambiguated, namespaced};
use crate::provider::{ToolDef, ToolOutput, ToolProvider};
use async_trait::async_trait;
use std::collections::HashMap;

/// How connecting one server went, for logs and `robit doctor`.
#[derive(Debug)]
pub struct ServerStatus {
    pub name: String,
    /// Its tool count, or why it is not connected.
    pub result: Result<usize, ConnectError>,
}

/// The tools of the connected servers. Servers that failed to connect are left out (and
/// listed in [`McpTools::status`]); the rest work as usual.
pub struct McpTools {
    connections: Vec<Connection>,
    tools: Vec<ToolDef>,
    /// Namespaced name → (connection index, the server's own tool name).
    index: HashMap<String, (usize, String)>,
    status: Vec<ServerStatus>,
}

impl std::fmt::Debug for McpTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTools")
            .field("tools", &self.index.keys().collect::<Vec<_>>())
            .field("status", &self.status)
            .finish()
    }
}

impl McpTools {
    /// Connects every server at once, each within its own timeout. Never fails as a whole: a
    /// server that does not connect is logged and reported in [`McpTools::status`].
    pub async fn connect(configs: Vec<ServerConfig>) -> McpTools {
        let names: Vec<String> = configs.iter().map(|c| c.name.clone()).collect();
        let results = futures::future::join_all(configs.into_iter().map(client::connect)).await;
        let mut tools = McpTools {
            connections: Vec::new(),
            tools: Vec::new(),
            index: HashMap::new(),
            status: Vec::new(),
        };
        for (name, result) in names.into_iter().zip(results) {
            match result {
                Ok(connection) => {
                    tracing::info!(server = %name, tools = connection.tools.len(), "MCP server connected");
                    tools.status.push(ServerStatus {
                        name,
                        result: Ok(connection.tools.len()),
                    });
                    tools.add(connection);
                }
                Err(e) => {
                    tracing::warn!(server = %name, error = %e, "MCP server not connected; robit runs without its tools");
                    tools.status.push(ServerStatus {
                        name,
                        result: Err(e),
                    });
                }
            }
        }
        tools
    }

    fn add(&mut self, connection: Connection) {
        let at = self.connections.len();
        for tool in &connection.tools {
            let server = &connection.config.name;
            let mut name = namespaced(server, &tool.name);
            if self.index.contains_key(&name) {
                name = disambiguated(server, &tool.name);
            }
            if self.index.contains_key(&name) {
                tracing::warn!(server = %server, tool = %tool.name, "two tools share a name; the second is left out");
                continue;
            }
            self.index.insert(name.clone(), (at, tool.name.to_string()));
            self.tools.push(ToolDef {
                name,
                server: server.clone(),
                tool: tool.name.to_string(),
                description: tool.description.as_deref().unwrap_or_default().to_string(),
                parameters: serde_json::Value::Object((*tool.input_schema).clone()),
                allowed: connection.config.allows(&tool.name),
            });
        }
        self.connections.push(connection);
    }

    /// How each configured server fared at start, in configuration order.
    pub fn status(&self) -> &[ServerStatus] {
        &self.status
    }
}

#[async_trait]
impl ToolProvider for McpTools {
    fn tools(&self) -> Vec<ToolDef> {
        self.tools.clone()
    }

    async fn call(&self, name: &str, arguments: &str) -> Result<ToolOutput, ToolError> {
        let Some((at, tool)) = self.index.get(name) else {
            return Err(ToolError::Unknown(name.to_string()));
        };
        let connection = &self.connections[*at];
        if !connection.config.allows(tool) {
            return Err(ToolError::NeedsApproval {
                server: connection.config.name.clone(),
                tool: tool.clone(),
            });
        }
        let arguments = parse_arguments(arguments)?;
        connection.call(tool, arguments).await
    }
}

/// The model's argument text as the JSON object MCP wants; empty means no arguments.
fn parse_arguments(text: &str) -> Result<Option<rmcp::model::JsonObject>, ToolError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
        Ok(serde_json::Value::Null) => Ok(None),
        Ok(other) => Err(ToolError::BadArguments(format!(
            "expected a JSON object, got {other}"
        ))),
        Err(e) => Err(ToolError::BadArguments(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_must_be_an_object_or_nothing() {
        assert_eq!(parse_arguments("").unwrap(), None);
        assert_eq!(parse_arguments("null").unwrap(), None);
        assert_eq!(
            parse_arguments(r#"{"a":1}"#).unwrap().unwrap()["a"],
            serde_json::json!(1)
        );
        assert!(matches!(
            parse_arguments("[1]"),
            Err(ToolError::BadArguments(_))
        ));
        assert!(matches!(
            parse_arguments("{oops"),
            Err(ToolError::BadArguments(_))
        ));
    }
}
