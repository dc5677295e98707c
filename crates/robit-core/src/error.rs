//! Engine errors: what can stop an event from being accepted.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the store failed: {0}")]
    Store(#[from] robit_store::StoreError),
    #[error("the engine is shutting down")]
    ShuttingDown,
}
