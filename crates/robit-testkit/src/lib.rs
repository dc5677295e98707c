//! Loopback fakes of the services robit talks to, other than the chat platforms: an
//! OpenAI-compatible and an Anthropic model server, and an MCP server (streamable HTTP and
//! stdio), for tests and benchmarks.
//!
//! Each fake is a real server on `127.0.0.1:0` that speaks the service's wire format closely
//! enough that robit's production clients can be pointed at it unchanged, with a script API to
//! make it misbehave on purpose and a record of what it was sent. This crate must never reach
//! the network, and depends on nothing of ours except `robit-types`, so any crate's tests can
//! use it without a dependency cycle. The Discord and Slack emulators live in
//! `robit-emulators`.

pub mod llm;
pub mod mcp;

pub use llm::{FakeAnthropic, FakeLlm, RecordedRequest, Reply};
pub use mcp::FakeMcp;
