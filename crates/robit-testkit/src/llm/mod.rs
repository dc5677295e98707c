//! A fake OpenAI-compatible chat-completions server.
//!
//! [`FakeLlm`] answers `POST /v1/chat/completions` with a streamed (SSE) answer in the exact
//! shape of OpenAI's, following a FIFO script of [`Reply`]s (one per request) and echoing the
//! last user message when the script is empty; `GET /v1/models` lists one model. It never
//! calls a real model and never leaves the loopback interface.

mod reply;
mod server;
mod sse;

pub use reply::Reply;
pub use server::{FakeLlm, RecordedRequest};

/// The model id `GET /v1/models` lists.
pub const FAKE_MODEL: &str = "fake-model";
