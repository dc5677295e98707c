//! Why a server did not connect, and why a tool call produced no result.

use std::time::Duration;

/// A server that could not be connected at start; robit runs on without its tools.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("could not start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("could not set up the HTTP client: {0}")]
    Http(String),
    #[error("the MCP handshake failed: {0}")]
    Handshake(String),
    #[error("listing its tools failed: {0}")]
    ListTools(String),
    #[error("no answer within {} s", .0.as_secs_f64())]
    Timeout(Duration),
}

/// A tool call that did not run, or whose server failed. The engine reports it to the model
/// and to the thread; it never ends a turn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    #[error("no tool is named `{0}`")]
    Unknown(String),
    #[error("`{tool}` on the MCP server `{server}` needs an admin's approval before it can run")]
    NeedsApproval { server: String, tool: String },
    #[error("invalid arguments: {0}")]
    BadArguments(String),
    #[error("the MCP server `{server}` did not answer within {} s", .after.as_secs_f64())]
    Timeout { server: String, after: Duration },
    #[error("the MCP server `{server}` failed: {message}")]
    Server { server: String, message: String },
}
