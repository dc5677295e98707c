//! The port the engine uses: a set of tools it can list and call, held as
//! `Arc<dyn ToolProvider>`, with no MCP type in sight.

use crate::error::ToolError;
use async_trait::async_trait;
use std::collections::BTreeSet;

/// One tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    /// The namespaced name the model calls (`server__tool`).
    pub name: String,
    /// The server that runs it (its configured name).
    pub server: String,
    /// The server's own name for the tool.
    pub tool: String,
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: serde_json::Value,
    /// Whether it may run without an admin's approval (on its server's allow-list).
    pub allowed: bool,
}

/// What a tool call returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// The result as text (text parts joined; other parts described in brackets).
    pub text: String,
    /// The tool itself reported a failure (MCP's `isError`); the text says what.
    pub is_error: bool,
}

/// Which servers' tools a turn may use. Every configured server unless a per-channel setting
/// narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ServerFilter {
    #[default]
    All,
    Only(BTreeSet<String>),
}

impl ServerFilter {
    pub fn allows(&self, server: &str) -> bool {
        match self {
            ServerFilter::All => true,
            ServerFilter::Only(names) => names.contains(server),
        }
    }
}

/// Tools from outside robit (MCP servers), listed and called by namespaced name.
#[async_trait]
pub trait ToolProvider: Send + Sync {
    /// Every tool of every connected server.
    fn tools(&self) -> Vec<ToolDef>;

    /// Calls the tool named `name` (namespaced) with `arguments`, the JSON text the model
    /// wrote. A tool not on its server's allow-list is not run: the error says it needs an
    /// admin's approval. Timeouts and server failures are errors too; none of them panics.
    async fn call(&self, name: &str, arguments: &str) -> Result<ToolOutput, ToolError>;
}
