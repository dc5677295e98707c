//! Fake LLM provider servers: OpenAI-compatible chat completions and Anthropic Messages.
//!
//! [`FakeLlm`] answers `POST /v1/chat/completions` with a streamed (SSE) answer in the exact
//! shape of OpenAI's, following a FIFO script of [`Reply`]s (one per request) and echoing the
//! last user message when the script is empty; `GET /v1/models` lists one model.
//! [`FakeAnthropic`] does the same for `POST /v1/messages` in Anthropic's shape, from the same
//! `Reply` vocabulary. They never call a real model and never leave the loopback interface.

mod anthropic;
mod reply;
mod server;
mod sse;

pub use anthropic::{FakeAnthropic, FAKE_ANTHROPIC_MODEL};
pub use reply::Reply;
pub use server::{FakeLlm, RecordedRequest};

/// The model id `GET /v1/models` lists.
pub const FAKE_MODEL: &str = "fake-model";
