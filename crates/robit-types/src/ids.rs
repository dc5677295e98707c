//! Typed identifiers: a Slack channel id and a Discord thread id are both strings on the wire,
//! but mixing them up is a real bug, so each kind of id gets its own type.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The chat platform an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Discord,
    Slack,
    Console,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Discord => "discord",
            Platform::Slack => "slack",
            Platform::Console => "console",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        match s {
            "discord" => Some(Platform::Discord),
            "slack" => Some(Platform::Slack),
            "console" => Some(Platform::Console),
            _ => None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A Discord guild or a Slack team (empty for DMs where the platform has none).
    WorkspaceId
);
string_id!(
    /// A channel (Discord channel, Slack channel, DM channel).
    ChannelId
);
string_id!(
    /// A thread: a Discord thread channel id or a Slack `thread_ts`.
    ThreadId
);
string_id!(
    /// A platform user id.
    UserId
);
string_id!(
    /// A platform event id, unique per platform (Discord message/interaction id, Slack
    /// `event_id`). The engine dedups on `(platform, event id)`.
    EventId
);

/// Names one conversation: the unit of history and of ordering (one turn at a time).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConversationKey {
    pub platform: Platform,
    pub workspace: WorkspaceId,
    pub channel: ChannelId,
    /// `None` for a conversation that lives in a channel or DM without threads.
    pub thread: Option<ThreadId>,
}

impl ConversationKey {
    pub fn new(
        platform: Platform,
        workspace: impl Into<String>,
        channel: impl Into<String>,
        thread: Option<String>,
    ) -> Self {
        Self {
            platform,
            workspace: WorkspaceId(workspace.into()),
            channel: ChannelId(channel.into()),
            thread: thread.map(ThreadId),
        }
    }
}

impl fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.platform, self.workspace, self.channel)?;
        if let Some(t) = &self.thread {
            write!(f, ":{t}")?;
        }
        Ok(())
    }
}
