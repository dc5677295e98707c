//! Why the terminal UI stopped.

#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("the terminal failed: {0}")]
    Terminal(#[from] std::io::Error),
    #[error(transparent)]
    Engine(#[from] robit_core::EngineError),
}
