//! End-to-end tests of the Discord adapter: the unmodified serenity client against the
//! loopback Discord emulator, through the real engine (SQLite in a temp file) and the real
//! OpenAI-compatible client talking to the fake LLM.

mod http_interactions;
mod mentions;
mod resilience;
mod sandbox;
mod shapes;
mod sharding;
mod slash;
mod support;
