//! The engine: everything robit does with a message once an adapter has understood it.
//!
//! It dedups events, keeps one turn at a time per conversation (in arrival order) while
//! conversations run in parallel up to a configured limit, loads history from the store,
//! calls the provider, runs code in the sandbox, and renders streamed replies through the
//! adapter's [`robit_types::ReplySink`]. It must never name a platform type (no serenity, no
//! slack-morphism) and never read configuration files or the environment: the binary hands
//! it typed values.

mod access;
mod actions;
mod admin;
mod attachments;
mod budget;
mod call_budget;
pub mod call_policy;
mod code_run;
mod commands;
mod config;
mod connections;
pub mod download;
mod edits;
mod engine;
mod error;
mod inbound_span;
mod journal;
mod lease;
mod limits;
pub mod metrics;
mod outcome;
pub mod render;
mod reply;
mod settings;
mod shared;
mod tiers;
mod tokens;
mod tools;
mod traced_sink;
mod turn;

pub use access::{AccessConfig, Subject};
pub use admin::SettingError;
pub use attachments::AttachmentLimits;
pub use call_budget::{LocalCallBudget, StoreCallBudget};
pub use config::EngineConfig;
pub use connections::{ConnectionState, Connections};
pub use engine::{Engine, Submission, TurnHandle};
pub use error::EngineError;
pub use inbound_span::inbound_span;
pub use journal::{default_holder, JournalConfig};
pub use lease::LeaseConfig;
pub use limits::LimitsConfig;
pub use outcome::TurnOutcome;
pub use robit_mcp::{ServerFilter, ToolProvider};
/// What [`Engine::conversations`] and [`Engine::transcript`] return.
pub use robit_store::{ConversationSummary, MessageRole};
pub use settings::{Effective, SettingEntry, SettingValue, Source, Sourced};
pub use tokens::estimate_tokens;

/// The largest request body a platform webhook intake reads (the Slack Events API and
/// Discord's HTTP interactions alike). Real payloads are a few kilobytes.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 1024 * 1024;
