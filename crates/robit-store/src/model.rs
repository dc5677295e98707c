//! Rows the store reads and writes, in the store's own vocabulary.

use robit_types::{ConversationKey, EventId, Platform, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationId(pub i64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: ConversationId,
    pub key: ConversationKey,
    /// The model chosen with `/model`, if any.
    pub model: Option<String>,
}

/// One line of a list of conversations ([`crate::Store::conversations`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    pub key: ConversationKey,
    /// The model chosen with `/model`, if any.
    pub model: Option<String>,
    /// Messages since the last `/reset`.
    pub messages: u64,
    /// Prompt plus completion tokens recorded for the conversation.
    pub tokens: u64,
    /// The newest message's time, else the conversation's creation (unix ms).
    pub last_active_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRole {
    User,
    Assistant,
    Tool,
}

impl MessageRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
            MessageRole::Tool => "tool",
        }
    }

    /// The inverse of [`MessageRole::as_str`]; `None` for a value this version does not know.
    pub fn parse(s: &str) -> Option<MessageRole> {
        match s {
            "user" => Some(MessageRole::User),
            "assistant" => Some(MessageRole::Assistant),
            "tool" => Some(MessageRole::Tool),
            _ => None,
        }
    }
}

/// Whether an assistant message is the whole answer or what was shown before a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    Complete,
    /// The provider failed or the turn was cut off after this text was shown to the user.
    Interrupted,
    /// The asker (or an admin) pressed Stop after this text was shown.
    Stopped,
    /// Replaced by a regenerated answer to the same question: kept for the record, left out
    /// of history (one current answer per question).
    Superseded,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Complete => "complete",
            MessageStatus::Interrupted => "interrupted",
            MessageStatus::Stopped => "stopped",
            MessageStatus::Superseded => "superseded",
        }
    }

    /// The inverse of [`MessageStatus::as_str`]; `None` for a value this version does not know.
    pub fn parse(s: &str) -> Option<MessageStatus> {
        match s {
            "complete" => Some(MessageStatus::Complete),
            "interrupted" => Some(MessageStatus::Interrupted),
            "stopped" => Some(MessageStatus::Stopped),
            "superseded" => Some(MessageStatus::Superseded),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub role: MessageRole,
    pub content: String,
    /// JSON array of tool calls made by an assistant message.
    pub tool_calls: Option<String>,
    /// For a tool message: the id of the call it answers.
    pub tool_call_id: Option<String>,
    pub status: MessageStatus,
    pub author: Option<UserId>,
    /// The id of the user message whose turn this message belongs to (replies, tool calls
    /// and results); `None` for a message that starts its own turn.
    pub turn: Option<i64>,
    /// For an assistant message: the provider and upstream model that wrote it, so votes on
    /// the answer are counted per model.
    pub served: Option<Served>,
    /// For a user message: the platform's id of it (Discord message id, Slack `ts`), so an
    /// edit of the message finds it ([`crate::Store::question_by_ref`]).
    pub platform_ref: Option<String>,
}

/// Which provider and upstream model wrote an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub provider: String,
    pub model: String,
}

impl NewMessage {
    pub fn user(author: UserId, content: impl Into<String>) -> Self {
        Self {
            role: MessageRole::User,
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
            status: MessageStatus::Complete,
            author: Some(author),
            turn: None,
            served: None,
            platform_ref: None,
        }
    }

    pub fn assistant(content: impl Into<String>, status: MessageStatus) -> Self {
        Self {
            role: MessageRole::Assistant,
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
            status,
            author: None,
            turn: None,
            served: None,
            platform_ref: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: i64,
    pub role: MessageRole,
    pub content: String,
    pub tool_calls: Option<String>,
    pub tool_call_id: Option<String>,
    pub status: MessageStatus,
    pub author: Option<UserId>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// An inbound event to persist before it is acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub platform: Platform,
    pub event_id: EventId,
    pub key: ConversationKey,
    /// The user's message, for chat turns; `None` for commands that add nothing to history.
    pub message: Option<NewMessage>,
    /// The turn this event needs, recorded in the same transaction (the turn journal).
    pub turn: Option<NewTurn>,
    /// The author edited a stored question: its text is replaced in the same transaction,
    /// so the edit and the turn that answers the edited text (or the turn already waiting
    /// to answer it) are stored together or not at all, and a redelivered edit is a
    /// duplicate rather than an edit whose text is already there.
    pub edit: Option<QuestionEdit>,
}

/// A new text for a stored question (its author edited the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestionEdit {
    /// The question's message id.
    pub question: i64,
    pub text: String,
}

/// A turn to record with its event: what to run, where to answer, and who runs it first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTurn {
    /// The engine's serialised job; opaque to the store.
    pub job: String,
    /// Where the answer goes, as the adapter names it; opaque to the store.
    pub route: Option<String>,
    /// The replica that queued it; it holds the turn's lease from the start.
    pub holder: String,
    /// How long the lease lives without renewal.
    pub lease: std::time::Duration,
    /// For an event that stores no message of its own (Regenerate): the stored question
    /// this turn answers again. In the same transaction the question's earlier answer is
    /// marked superseded and the messages its last turn posted are handed to this turn, which
    /// rewrites them in place.
    pub answers: Option<i64>,
}

/// Where a journaled turn is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnStatus {
    /// Recorded, not started yet.
    Pending,
    /// Started by the lease holder.
    Running,
    Done,
    Failed,
    Cancelled,
}

impl TurnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TurnStatus::Pending => "pending",
            TurnStatus::Running => "running",
            TurnStatus::Done => "done",
            TurnStatus::Failed => "failed",
            TurnStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<TurnStatus> {
        Some(match s {
            "pending" => TurnStatus::Pending,
            "running" => TurnStatus::Running,
            "done" => TurnStatus::Done,
            "failed" => TurnStatus::Failed,
            "cancelled" => TurnStatus::Cancelled,
            _ => return None,
        })
    }

    /// Pending or running: someone still owes this turn's answer.
    pub fn is_open(self) -> bool {
        matches!(self, TurnStatus::Pending | TurnStatus::Running)
    }
}

/// An open turn a replica has just taken over (its previous holder's lease had expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedTurn {
    pub id: i64,
    pub conversation: ConversationId,
    pub event_id: String,
    pub message_id: Option<i64>,
    pub job: String,
    pub route: Option<String>,
    pub status: TurnStatus,
    /// How many times a replica has taken it over, this claim included.
    pub attempts: i64,
    /// The platform references of the messages it posted so far, by slot, in order.
    pub posted: Vec<(i64, String)>,
    /// Who pressed Stop on it, if anyone: a stopped turn is closed, never run again.
    pub stopped_by: Option<String>,
}

/// The question an answer's buttons name, as the engine needs it to decide who may act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub conversation: ConversationId,
    pub key: ConversationKey,
    /// Who asked.
    pub author: Option<UserId>,
    /// What was asked.
    pub text: String,
    /// The latest journaled turn answering it (the first answer, or a regeneration), if
    /// any: its state, and where its answer is written.
    pub answer: Option<AnswerTurn>,
}

/// A question found by the platform's id of the message that asked it
/// ([`crate::Store::question_by_ref`]), with what deciding about an edit of it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskedQuestion {
    /// The question's message id (its turn).
    pub id: i64,
    pub question: Question,
    /// When it was stored (unix ms).
    pub asked_at_ms: i64,
    /// No later question was stored in its conversation.
    pub latest: bool,
}

/// The journaled turn answering a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerTurn {
    pub id: i64,
    pub status: TurnStatus,
    /// Where it answers, as the adapter named it ([`NewTurn::route`]).
    pub route: Option<String>,
}

/// A vote on an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    Up,
    Down,
}

impl Vote {
    pub fn as_str(self) -> &'static str {
        match self {
            Vote::Up => "up",
            Vote::Down => "down",
        }
    }
}

/// Votes on the answers one provider's model gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackRow {
    pub provider: String,
    pub model: String,
    pub up: u64,
    pub down: u64,
}

impl FeedbackRow {
    /// The share of votes that were 👍, 0 to 1; `None` without votes.
    pub fn up_rate(&self) -> Option<f64> {
        let all = self.up + self.down;
        (all > 0).then(|| self.up as f64 / all as f64)
    }
}

/// One journaled turn, for tests and operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnRow {
    pub id: i64,
    pub event_id: String,
    pub status: TurnStatus,
    pub holder: String,
    pub attempts: i64,
    pub posted: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    New {
        conversation: Conversation,
        /// The stored user message's id, when the event carried one.
        message_id: Option<i64>,
        /// The journaled turn's id, when the event asked for one.
        turn_id: Option<i64>,
    },
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub conversation: ConversationId,
    pub key: ConversationKey,
    pub user: Option<UserId>,
    pub provider: String,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// True when the provider sent no usage and the numbers are our estimate.
    pub estimated: bool,
}

/// Which schema migrations a database has, for `robit doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Versions recorded as successfully applied, ascending.
    pub applied: Vec<i64>,
    /// Versions this binary embeds that the database has not applied yet, ascending.
    pub pending: Vec<i64>,
    /// The database server's own version string, e.g. `SQLite 3.46.0` or `PostgreSQL 15.8`.
    pub server_version: String,
}

/// What `robit usage` groups token usage by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    Workspace,
    Channel,
    User,
    Model,
    /// UTC calendar day.
    Day,
}

/// One line of a usage report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// The group's value (`slack:T1`, `slack:T1:C1`, a user id, a model, `2026-11-25`).
    pub group: String,
    /// Provider calls recorded (a turn with tool rounds makes several).
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// What asking a token bucket for tokens gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// The tokens were taken.
    Granted,
    /// Nothing was taken; enough tokens will be there after this long.
    Wait(std::time::Duration),
}
