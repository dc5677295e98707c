//! Durable state: conversations, their messages, processed platform event ids and token usage.
//!
//! One [`Store`] trait, implemented on SQLite (the embedded default) and PostgreSQL
//! (production, several replicas), chosen by the database URL. The engine holds it as
//! `Arc<dyn Store>`. This crate knows nothing about chat platforms' wire formats or LLM
//! providers: it stores what the engine gives it, and never reads the environment.

mod error;
mod model;

pub use error::StoreError;
pub use model::{
    Accepted, Conversation, ConversationId, MessageRole, MessageStatus, NewEvent, NewMessage,
    StoredMessage, UsageRecord,
};

use async_trait::async_trait;
use robit_types::ConversationKey;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The engine's port to durable state. Object safe; held as `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync {
    /// Applies pending migrations. Idempotent.
    async fn migrate(&self) -> Result<()>;

    /// Checks the database answers (readiness, `robit doctor`).
    async fn ping(&self) -> Result<()>;

    /// Records an inbound event atomically: marks `(platform, event_id)` processed, finds or
    /// creates the conversation, and stores the user's message if there is one — all in one
    /// transaction, so an event is either fully persisted or not at all. Returns
    /// [`Accepted::Duplicate`] when the event id was seen before (nothing is written then).
    async fn accept(&self, event: NewEvent) -> Result<Accepted>;

    /// Finds or creates the conversation for `key`.
    async fn conversation(&self, key: &ConversationKey) -> Result<Conversation>;

    /// Appends a message to a conversation; returns its id.
    async fn append_message(&self, conversation: ConversationId, message: NewMessage)
        -> Result<i64>;

    /// The conversation's messages since its last reset, oldest first; at most the newest
    /// `limit` of them.
    async fn history(&self, conversation: ConversationId, limit: u32)
        -> Result<Vec<StoredMessage>>;

    /// Forgets the history (messages are kept for audit but no longer loaded).
    async fn reset(&self, conversation: ConversationId) -> Result<()>;

    /// Sets or clears the conversation's model override.
    async fn set_model(&self, conversation: ConversationId, model: Option<&str>) -> Result<()>;

    /// Records token usage for one turn.
    async fn record_usage(&self, usage: UsageRecord) -> Result<()>;
}
