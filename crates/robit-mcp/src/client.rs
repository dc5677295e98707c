//! One connected MCP server: starting or reaching it with rmcp, listing its tools, calling
//! one with a timeout. The only file that names rmcp's service and transport types, besides
//! the HTTP client under the transport (`traced_http.rs`).

use crate::config::{ServerConfig, Transport};
use crate::error::{ConnectError, ToolError};
use crate::output::to_output;
use crate::provider::ToolOutput;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientInfo, ClientRequest, Implementation, JsonObject,
    ServerResult, Tool,
};
use rmcp::service::{PeerRequestOptions, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use secrecy::ExposeSecret;
use std::process::Stdio;
use tokio::io::AsyncBufReadExt;

pub(crate) struct Connection {
    pub config: ServerConfig,
    pub tools: Vec<Tool>,
    /// Kept alive for the process's lifetime; dropping it closes the session (and kills a
    /// stdio server).
    service: RunningService<RoleClient, ClientInfo>,
}

/// The turn's trace context in the request's `_meta` (`traceparent`, `tracestate`), where
/// MCP servers that trace look for it whatever the transport; `None` when not tracing.
fn trace_meta() -> Option<rmcp::model::Meta> {
    let headers = robit_types::trace::current_headers();
    if headers.is_empty() {
        return None;
    }
    let fields = headers
        .into_iter()
        .map(|(name, value)| (name, serde_json::Value::String(value)))
        .collect();
    Some(rmcp::model::Meta(fields))
}

fn client_info() -> ClientInfo {
    ClientInfo {
        client_info: Implementation {
            name: "robit".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Implementation::default()
        },
        ..ClientInfo::default()
    }
}

/// Starts or reaches the server, does the MCP handshake and lists its tools, all within the
/// server's timeout.
pub(crate) async fn connect(config: ServerConfig) -> Result<Connection, ConnectError> {
    let timeout = config.timeout;
    match tokio::time::timeout(timeout, connect_inner(config)).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Timeout(timeout)),
    }
}

async fn connect_inner(config: ServerConfig) -> Result<Connection, ConnectError> {
    let service = match &config.transport {
        Transport::Stdio { command, args, env } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).env_clear().envs(env).kill_on_drop(true);
            let (transport, stderr) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|source| ConnectError::Spawn {
                    command: command.clone(),
                    source,
                })?;
            if let Some(stderr) = stderr {
                // A server's own diagnostics go to our log, tagged, instead of our stderr.
                let server = config.name.clone();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        tracing::info!(server = %server, "mcp server stderr: {line}");
                    }
                });
            }
            client_info()
                .serve(transport)
                .await
                .map_err(|e| ConnectError::Handshake(e.to_string()))?
        }
        Transport::Http { url, bearer_token } => {
            let http = crate::traced_http::TracedHttp::new(config.timeout)
                .map_err(|e| ConnectError::Http(e.to_string()))?;
            let mut transport_config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
            if let Some(token) = bearer_token {
                transport_config = transport_config.auth_header(token.expose_secret());
            }
            let transport = StreamableHttpClientTransport::with_client(http, transport_config);
            client_info()
                .serve(transport)
                .await
                .map_err(|e| ConnectError::Handshake(e.to_string()))?
        }
    };
    let tools = service
        .peer()
        .list_all_tools()
        .await
        .map_err(|e| ConnectError::ListTools(e.to_string()))?;
    Ok(Connection {
        config,
        tools,
        service,
    })
}

impl Connection {
    /// Calls `tool` (the server's own name). On timeout rmcp tells the server the request is
    /// cancelled.
    pub(crate) async fn call(
        &self,
        tool: &str,
        arguments: Option<JsonObject>,
    ) -> Result<ToolOutput, ToolError> {
        let server = self.config.name.clone();
        let request = ClientRequest::CallToolRequest(CallToolRequest {
            method: Default::default(),
            params: CallToolRequestParams {
                meta: trace_meta(),
                name: tool.to_string().into(),
                arguments,
                task: None,
            },
            extensions: Default::default(),
        });
        let options = PeerRequestOptions {
            timeout: Some(self.config.timeout),
            meta: None,
        };
        let failed = |e: ServiceError| match e {
            ServiceError::Timeout { timeout } => ToolError::Timeout {
                server: server.clone(),
                after: timeout,
            },
            ServiceError::McpError(e) => ToolError::Server {
                server: server.clone(),
                message: e.message.to_string(),
            },
            e => ToolError::Server {
                server: server.clone(),
                message: e.to_string(),
            },
        };
        let handle = self
            .service
            .peer()
            .send_request_with_option(request, options)
            .await
            .map_err(failed)?;
        // rmcp's own timeout covers the wait for the answer; this one also covers a transport
        // that never finishes sending, so no call outlives its limit by much.
        let response =
            match tokio::time::timeout(self.config.timeout * 2, handle.await_response()).await {
                Ok(r) => r.map_err(failed)?,
                Err(_) => {
                    return Err(ToolError::Timeout {
                        server,
                        after: self.config.timeout,
                    })
                }
            };
        match response {
            ServerResult::CallToolResult(result) => Ok(to_output(result)),
            _ => Err(ToolError::Server {
                server,
                message: "unexpected answer to tools/call".into(),
            }),
        }
    }
}
