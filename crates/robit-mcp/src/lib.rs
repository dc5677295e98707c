//! MCP (Model Context Protocol) tools for the engine: connects to the configured MCP servers
//! with the official Rust SDK (`rmcp`) and offers their tools behind the object-safe
//! [`ToolProvider`] port, so the engine never names an rmcp type.
//!
//! Tools are namespaced by server (`server__tool`, within the providers' tool-name charset),
//! calls are bounded by a per-server timeout, and each server's allow-list decides which tools
//! may run without an admin's approval. This crate must not know platforms, the store or the
//! LLM providers, and must not read configuration files or the environment: the binary hands
//! it typed [`ServerConfig`]s (including the full environment of a stdio server).

mod client;
mod config;
mod error;
mod names;
mod output;
mod provider;
mod toolset;
mod traced_http;

pub use config::{ServerConfig, Transport};
pub use error::{ConnectError, ToolError};
pub use names::{namespaced, MAX_TOOL_NAME_LEN};
pub use provider::{ServerFilter, ToolDef, ToolOutput, ToolProvider};
pub use toolset::{McpTools, ServerStatus};
