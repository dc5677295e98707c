//! How a turn ended: the one vocabulary the engine's layers report in, and the metrics label.
//!
//! A leaf: it must not import any other module of the crate.

/// How a turn ended, for adapters that want to know and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnOutcome {
    /// The model's answer was streamed and stored.
    Replied,
    /// A command was answered.
    Command,
    /// No provider is configured; the user was told how to configure one.
    NoProvider,
    /// The turn failed; the user was shown `0` (a short message).
    Failed(String),
    /// The event was not for the engine (a bot's message).
    Ignored,
    /// The engine shut down before the turn ended, or a newer message replaced it.
    Cancelled,
    /// The asker (or an admin) pressed the answer's Stop button.
    Stopped,
    /// An access rule, a rate limit or a quota kept the turn from running; the user was told
    /// why. `0` is the reason (`denied`, `not_admin`, `user_rate`, `channel_rate`, `quota`).
    Refused(String),
}

impl TurnOutcome {
    /// The metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            TurnOutcome::Replied => "replied",
            TurnOutcome::Command => "command",
            TurnOutcome::NoProvider => "no_provider",
            TurnOutcome::Failed(_) => "failed",
            TurnOutcome::Ignored => "ignored",
            TurnOutcome::Cancelled => "cancelled",
            TurnOutcome::Stopped => "stopped",
            TurnOutcome::Refused(_) => "refused",
        }
    }
}
