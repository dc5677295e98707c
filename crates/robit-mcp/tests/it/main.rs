//! robit-mcp against the fake MCP server over streamable HTTP: the real rmcp client, a real
//! loopback server, no network.

mod http;
