//! The common message model every adapter speaks and the engine consumes.
//!
//! Adapters turn platform events into [`Inbound`] values and implement [`ReplySink`] so the
//! engine can answer without knowing which platform it talks to. This crate must stay free of
//! I/O and of any async runtime, HTTP, database or platform crate: it is the contract between
//! the layers, and everything depends on it.

mod action;
mod budget;
mod command;
mod config_command;
pub mod fence;
mod ids;
mod inbound;
mod sink;
pub mod trace;

pub use action::{AnswerAction, AnswerControls, Button};
pub use budget::{CallBudget, Rate};
pub use command::{Command, CommandParseError, Language, Tier};
pub use config_command::{
    ConfigCommand, ConfigParseError, RuleEffect, SettingKey, SettingScope, SubjectKind,
};
pub use ids::{ChannelId, ConversationKey, EventId, Platform, ThreadId, UserId, WorkspaceId};
pub use inbound::{Attachment, Author, Inbound, InboundKind};
pub use sink::{Capabilities, MessageRef, ReplySink, SinkError, SinkOpener};
