//! What an adapter hands the engine: one platform event in the common shape.

use crate::action::AnswerAction;
use crate::command::Command;
use crate::ids::{ConversationKey, EventId, UserId};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// Who sent an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub id: UserId,
    pub name: String,
    /// Adapters drop bot messages before they reach the engine; the engine checks again so a
    /// misbehaving adapter cannot start a bot-to-bot loop.
    pub is_bot: bool,
    /// The author's roles where the platform has them (Discord role ids), for access rules;
    /// empty elsewhere.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Author {
    /// A human author without roles.
    pub fn user(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: UserId(id.into()),
            name: name.into(),
            is_bot: false,
            roles: Vec::new(),
        }
    }
}

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The file name the user gave it (`notes.txt`).
    pub name: String,
    /// The MIME type the platform reported, if any.
    pub content_type: Option<String>,
    /// Size in bytes as the platform reported it; `0` when the platform does not say.
    pub size: u64,
    /// Where the adapter can download it from (its sink knows the authentication).
    pub url: Option<String>,
}

/// The shapes an event takes once an adapter has understood it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InboundKind {
    /// Free text addressed to the bot (a mention, a DM, a reply in the bot's thread).
    Message {
        text: String,
        attachments: Vec<Attachment>,
        mentions_bot: bool,
        /// The platform's id of the message (Discord message id, Slack `ts`), stored with the
        /// question so a later [`InboundKind::Edit`] of it finds it; `None` where messages
        /// cannot be edited (the console). Missing in jobs journaled before it existed.
        #[serde(default)]
        platform_ref: Option<String>,
    },
    /// A slash command, already parsed by the adapter.
    Command(Command),
    /// A click on one of an answer's buttons. `turn` is the id of the stored question the
    /// answer belongs to (from the button's id); the author is who clicked, which the engine
    /// checks against who asked.
    Action { action: AnswerAction, turn: i64 },
    /// The author edited a message of theirs. `message` is the platform's id of it (the
    /// `platform_ref` of its [`InboundKind::Message`]), `text` its new text, converted as the adapter
    /// converts a new message (the bot's mention stripped). The event's key names the
    /// platform, workspace and channel of the edited message; its thread is the adapter's
    /// best knowledge only (Slack's typed `message_changed` does not carry it): the engine
    /// finds the stored question by `message` within the channel and answers in the
    /// question's own conversation. Adapters produce it only for a user's edit of their own
    /// message, never for a bot's.
    Edit { message: String, text: String },
}

/// One platform event in the common model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    pub event_id: EventId,
    pub key: ConversationKey,
    pub author: Author,
    pub kind: InboundKind,
    pub received_at: SystemTime,
}

impl Inbound {
    /// A plain text message. Text that starts with a known `/command` is still a message here:
    /// the engine decides (see [`Command::parse_text`]).
    pub fn message(event_id: EventId, key: ConversationKey, author: Author, text: String) -> Self {
        Self {
            event_id,
            key,
            author,
            kind: InboundKind::Message {
                text,
                attachments: Vec::new(),
                mentions_bot: true,
                platform_ref: None,
            },
            received_at: SystemTime::now(),
        }
    }

    /// `author`'s edit of their message `message` (its platform id) to `text`.
    pub fn edit(
        event_id: EventId,
        key: ConversationKey,
        author: Author,
        message: String,
        text: String,
    ) -> Self {
        Self {
            event_id,
            key,
            author,
            kind: InboundKind::Edit { message, text },
            received_at: SystemTime::now(),
        }
    }

    /// The platform's id of the message this event carries, when it is one.
    pub fn platform_ref(&self) -> Option<&str> {
        match &self.kind {
            InboundKind::Message { platform_ref, .. } => platform_ref.as_deref(),
            _ => None,
        }
    }

    pub fn command(
        event_id: EventId,
        key: ConversationKey,
        author: Author,
        command: Command,
    ) -> Self {
        Self {
            event_id,
            key,
            author,
            kind: InboundKind::Command(command),
            received_at: SystemTime::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs journaled before messages carried their platform id must still be read by a
    /// takeover after an upgrade.
    #[test]
    fn a_message_journaled_without_its_platform_ref_still_reads() {
        let old = r#"{"Message":{"text":"hi","attachments":[],"mentions_bot":true}}"#;
        let kind: InboundKind = serde_json::from_str(old).unwrap();
        assert_eq!(
            kind,
            InboundKind::Message {
                text: "hi".into(),
                attachments: Vec::new(),
                mentions_bot: true,
                platform_ref: None,
            }
        );
    }
}
