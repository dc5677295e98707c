//! Loopback emulators of the services robit talks to, for tests and benchmarks.
//!
//! Each emulator is a real HTTP server on `127.0.0.1:0` that speaks the service's wire format
//! closely enough that robit's production clients can be pointed at it unchanged, with a
//! script API to make it misbehave on purpose and a record of what it was sent. This crate
//! must never reach the network, and depends on nothing of ours except `robit-types`, so any
//! crate's tests can use it without a dependency cycle.

pub mod discord;
pub mod llm;
pub mod mcp;
pub mod slack;

pub use llm::{FakeAnthropic, FakeLlm, RecordedRequest, Reply};
pub use mcp::FakeMcp;
