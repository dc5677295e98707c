//! Typed settings of one MCP server, filled by the binary from its configuration file.

use secrecy::SecretString;
use std::collections::BTreeMap;
use std::time::Duration;

/// One MCP server to connect to at start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server's name: the namespace of its tools (`name__tool`) and what per-channel
    /// settings enable or disable.
    pub name: String,
    pub transport: Transport,
    /// Tools (as the server names them, not namespaced) that run without an admin's approval;
    /// `"*"` allows every tool. Anything else is refused when the model calls it.
    pub allow_tools: Vec<String>,
    /// Bounds connecting (start, handshake, tool list) and each tool call.
    pub timeout: Duration,
}

impl ServerConfig {
    /// Whether `tool` (the server's own name for it) may run without an admin's approval.
    pub fn allows(&self, tool: &str) -> bool {
        self.allow_tools.iter().any(|t| t == "*" || t == tool)
    }
}

/// How robit talks to a server.
#[derive(Debug, Clone)]
pub enum Transport {
    /// A child process speaking MCP on its stdin and stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        /// The child's whole environment: robit's own is not inherited, so its secrets do not
        /// leak into a third-party server. The binary adds `PATH` and `HOME`.
        env: BTreeMap<String, String>,
    },
    /// A server speaking MCP's streamable HTTP transport at `url`.
    Http {
        url: String,
        /// Sent as `Authorization: Bearer …` when set.
        bearer_token: Option<SecretString>,
    },
}
