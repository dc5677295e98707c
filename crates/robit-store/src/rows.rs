//! Conversions between the store's types and the plain columns both backends use, so the
//! two dialects cannot drift in how they encode a row. No SQL and no I/O here.

use crate::model::{
    AnswerTurn, Conversation, ConversationId, MessageRole, MessageStatus, StoredMessage, TurnStatus,
};
use crate::{Result, StoreError};
use robit_types::{ConversationKey, UserId};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The columns of a message row, in the order every `SELECT` of messages lists them:
/// `id, role, content, tool_calls, tool_call_id, status, author, created_at`.
pub(crate) type MessageColumns = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    i64,
);

pub(crate) fn message(columns: MessageColumns) -> Result<StoredMessage> {
    let (id, role, content, tool_calls, tool_call_id, status, author, created_at) = columns;
    Ok(StoredMessage {
        id,
        role: MessageRole::parse(&role).ok_or_else(|| {
            StoreError::Corrupt(format!("message {id} has unknown role `{role}`"))
        })?,
        content,
        tool_calls,
        tool_call_id,
        status: MessageStatus::parse(&status).ok_or_else(|| {
            StoreError::Corrupt(format!("message {id} has unknown status `{status}`"))
        })?,
        author: author.map(UserId),
        created_at,
    })
}

/// The `thread` column: '' stands for "no thread" so the UNIQUE key can match it.
pub(crate) fn thread_column(key: &ConversationKey) -> &str {
    key.thread.as_ref().map_or("", |t| t.as_str())
}

/// Rebuilds a conversation from its row. The key is the caller's (it just looked the row up
/// by that key), so only id and model come from the database.
pub(crate) fn conversation(key: &ConversationKey, id: i64, model: Option<String>) -> Conversation {
    Conversation {
        id: ConversationId(id),
        key: key.clone(),
        model,
    }
}

/// Token counts are `u64` in the model and `BIGINT` in SQL; no real count comes near the
/// limit, so saturating is safer than failing a turn over it.
pub(crate) fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Durations as whole milliseconds, saturating for the same reason as [`tokens`].
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The time from `from_ms` to `to_ms`; a clock that went backwards gives none (a bucket then
/// refills nothing rather than draining).
pub(crate) fn elapsed_ms(from_ms: i64, to_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(to_ms - from_ms).unwrap_or(0))
}

/// Wall-clock unix milliseconds, for `created_at` columns.
pub(crate) fn now_ms() -> i64 {
    system_ms(SystemTime::now())
}

/// `at` in unix milliseconds; 0 before 1970.
pub(crate) fn system_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, millis)
}

/// The turn answering a question, from a `LEFT JOIN` of its latest turn (all `None` when it
/// has none).
pub(crate) fn answer_turn(
    id: Option<i64>,
    status: Option<String>,
    route: Option<String>,
) -> Result<Option<AnswerTurn>> {
    let (Some(id), Some(status)) = (id, status) else {
        return Ok(None);
    };
    Ok(Some(AnswerTurn {
        id,
        status: TurnStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("turn {id} has status `{status}`")))?,
        route,
    }))
}
