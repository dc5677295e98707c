//! Engine integration tests: the real engine, a real SQLite file, the real OpenAI-compatible
//! client talking to the loopback fake LLM server, and a recording reply sink.

mod attachments;
mod chat;
mod commands;
mod mcp;
mod replicas;
mod gvisor;
mod sandbox;
mod support;
mod turns;
