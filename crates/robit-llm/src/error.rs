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
    /// The request named a model the [`ModelRouter`](crate::ModelRouter) has no route for.
    #[error("unknown model {0:?}")]
    UnknownModel(String),
}

impl LlmError {
    /// Whether trying the same request again, a little later, may well succeed: the
    /// provider could not be reached, is rate limiting, or failed on its side (5xx,
    /// including Anthropic's 529 overloaded). Auth and other 4xx answers will not change
    /// by waiting, and a timeout already cost the user its full length.
    pub fn is_transient(&self) -> bool {
        match self {
            LlmError::Connect(_) | LlmError::RateLimited { .. } => true,
            LlmError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// A [`ModelRouter`](crate::ModelRouter) configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum RouterConfigError {
    #[error("model {model:?} routes to provider {provider:?}, which is not configured")]
    UnknownProvider { model: String, provider: String },
    #[error("model {0:?} has no targets")]
    NoTargets(String),
    #[error("model {0:?} is configured twice")]
    DuplicateModel(String),
}
