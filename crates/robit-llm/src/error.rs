//! Errors of the provider clients.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("could not reach the provider: {0}")]
    Connect(String),
    #[error("the provider rejected the API key (status {status}): {message}")]
    Auth { status: u16, message: String },
    #[error("the provider is rate limiting us (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the provider answered with status {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the provider's stream failed: {0}")]
    Stream(String),
    #[error("the provider sent something we could not understand: {0}")]
    Protocol(String),
    #[error("the provider timed out: {0}")]
    Timeout(&'static str),
    #[error("cancelled")]
    Cancelled,
}
