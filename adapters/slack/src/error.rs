//! The adapter's errors. Messages are lowercase without a trailing period; no secret or
//! token ever goes into one.

use robit_core::call_policy::CallError;
use slack_morphism::errors::SlackClientError;

#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    #[error("slack {0} is not configured")]
    Missing(&'static str),
    #[error("invalid slack configuration: {0}")]
    Config(String),
    #[error("could not load the system's TLS root certificates")]
    Tls(#[source] std::io::Error),
    #[error("slack api call {method} failed")]
    Api {
        method: &'static str,
        /// Boxed: slack-morphism's error is large, and this enum is every fallible call's
        /// `Err` (clippy's `result_large_err`).
        #[source]
        source: Box<CallError<SlackClientError>>,
    },
    #[error("could not bind the benchmark listener")]
    Io(#[from] std::io::Error),
}

/// Why an event could not be accepted; the platform is not acknowledged, so it redelivers.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IntakeError {
    #[error("the engine refused the event")]
    Engine(#[from] robit_core::EngineError),
    #[error("the bot's identity is unknown (auth.test failed)")]
    Identity,
    #[error("could not check whether the bot is in the thread")]
    ThreadCheck(#[source] robit_types::SinkError),
}
