//! Engine integration tests: the real engine, a real SQLite file, the real OpenAI-compatible
//! client talking to the loopback fake LLM server, and a recording reply sink.

mod actions;
mod attachments;
mod bounds;
mod chat;
mod commands;
mod edits;
mod fail_closed;
mod gvisor;
mod journal;
mod mcp;
mod replicas;
mod sandbox;
mod support;
mod turns;
