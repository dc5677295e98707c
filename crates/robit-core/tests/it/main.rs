//! Engine integration tests: the real engine, a real SQLite file, the real OpenAI-compatible
//! client talking to the loopback fake LLM server, and a recording reply sink.

mod attachments;
mod chat;
mod commands;
mod gvisor;
mod mcp;
mod replicas;
mod sandbox;
mod support;
mod turns;
