//! The adapter's errors: what stops `run` from connecting or keeps it from running.

/// Why the Discord adapter could not run.
#[derive(Debug, thiserror::Error)]
pub enum DiscordError {
    #[error("no discord bot token: set ROBIT_DISCORD__TOKEN")]
    MissingToken,
    #[error("invalid discord configuration: {0}")]
    Config(String),
    #[error("the discord client failed")]
    Client(#[source] Box<serenity::Error>),
}
