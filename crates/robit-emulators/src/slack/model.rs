//! The emulated workspace: channels, messages, files, the call log and pending faults.
//!
//! Plain data behind one mutex; handlers in `web.rs` and the scenario API in `mod.rs` change
//! it and then wake waiters. No I/O here.

use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

/// A message as the emulated Slack stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    /// The root's `ts` for a reply in a thread; `None` for top-level messages.
    pub thread_ts: Option<String>,
    pub user: String,
    /// Set for messages the bot posted.
    pub bot_id: Option<String>,
    pub text: String,
    /// How many times `chat.update` (or a stream append) changed it.
    pub edits: u32,
    /// File ids shared with this message.
    pub files: Vec<String>,
    /// An open `chat.startStream` message.
    pub streaming: bool,
    pub deleted: bool,
    /// Block Kit blocks, as sent.
    pub blocks: Option<Value>,
    /// `(emoji name, users)` in the order first added.
    pub reactions: Vec<(String, Vec<String>)>,
}

impl Message {
    /// The message in Slack's JSON shape (as in `conversations.replies`).
    pub fn to_json(&self) -> Value {
        let mut m = json!({
            "type": "message",
            "ts": self.ts,
            "user": self.user,
            "text": self.text,
            "team": super::TEAM_ID,
        });
        if let Some(t) = &self.thread_ts {
            m["thread_ts"] = json!(t);
        }
        if let Some(b) = &self.bot_id {
            m["bot_id"] = json!(b);
            m["app_id"] = json!(super::APP_ID);
        }
        if !self.files.is_empty() {
            m["files"] = Value::Array(self.files.iter().map(|f| json!({"id": f})).collect());
        }
        if let Some(b) = &self.blocks {
            m["blocks"] = b.clone();
        }
        if !self.reactions.is_empty() {
            m["reactions"] = Value::Array(
                self.reactions
                    .iter()
                    .map(
                        |(name, users)| json!({"name": name, "users": users, "count": users.len()}),
                    )
                    .collect(),
            );
        }
        m
    }
}

/// One Web API call the emulator answered.
#[derive(Debug, Clone, Serialize)]
pub struct ApiCall {
    pub method: String,
    /// Query parameters and JSON (or form) body merged into one object.
    pub params: Value,
    /// HTTP status sent (200, or 429).
    pub status: u16,
    /// The `error` of an `{"ok": false}` answer.
    pub error: Option<String>,
    #[serde(skip)]
    pub at: Instant,
}

/// A file uploaded with the external upload flow.
#[derive(Debug, Clone, Serialize)]
pub struct File {
    pub id: String,
    pub name: String,
    pub declared_length: usize,
    pub bytes: Option<Vec<u8>>,
    pub title: Option<String>,
    pub completed: bool,
}

/// A file a user shared with a message, served at its `url_private` to the bot token only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedFile {
    pub name: String,
    pub mimetype: String,
    pub bytes: Vec<u8>,
}

impl SharedFile {
    pub fn new(
        name: impl Into<String>,
        mimetype: impl Into<String>,
        bytes: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            name: name.into(),
            mimetype: mimetype.into(),
            bytes: bytes.into(),
        }
    }
}

/// One request for a shared file's `url_private`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileFetch {
    pub file_id: String,
    /// Whether it carried `Authorization: Bearer <bot token>` (only then is the file served).
    pub authorized: bool,
    /// The HTTP status answered.
    pub status: u16,
}

/// Injected trouble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RateLimitFault {
    /// `None`: every method.
    pub method: Option<String>,
    pub remaining: usize,
    pub retry_after_secs: u64,
}

/// A message posted with `chat.postEphemeral`: shown to one user, never stored in the
/// channel's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ephemeral {
    pub channel: String,
    pub user: String,
    pub thread_ts: Option<String>,
    pub text: String,
}

/// A slash command's answer, from its ack or from its `response_url`.
#[derive(Debug, Clone, Serialize)]
pub struct CommandResponse {
    pub trigger_id: String,
    pub via: &'static str,
    pub body: Value,
}

/// A message `chat.scheduleMessage` will post at `post_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scheduled {
    pub id: String,
    pub channel: String,
    pub post_at: u64,
    pub text: String,
    pub thread_ts: Option<String>,
    pub blocks: Option<Value>,
    /// The `ts` of the message once posted.
    pub posted_ts: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Model {
    /// Messages per channel, by `ts` (ts sort as time).
    pub channels: BTreeMap<String, BTreeMap<String, Message>>,
    pub calls: Vec<ApiCall>,
    pub files: HashMap<String, File>,
    /// Files users shared, by file id.
    pub shared_files: HashMap<String, SharedFile>,
    pub file_fetches: Vec<FileFetch>,
    pub faults: VecDeque<RateLimitFault>,
    pub statuses: Vec<(String, String, String)>,
    pub command_responses: Vec<CommandResponse>,
    pub ephemerals: Vec<Ephemeral>,
    /// Tickets handed out by `apps.connections.open`, not used yet.
    pub tickets: Vec<String>,
    /// Trigger ids handed to the app (slash commands, button clicks) and when: `views.open`
    /// accepts one for 3 s, once.
    pub triggers: HashMap<String, Instant>,
    /// Modals opened (`views.open`, `views.push`, `views.update` replace in place), by view id.
    pub views: Vec<Value>,
    /// Home tabs published with `views.publish`, by user.
    pub home_tabs: HashMap<String, Value>,
    /// Messages waiting for their `post_at` (`chat.scheduleMessage`).
    pub scheduled: Vec<Scheduled>,
    ts_counter: u64,
    id_counter: u64,
}

impl Model {
    /// A fresh, strictly increasing `ts` ("seconds.micros").
    pub fn next_ts(&mut self) -> String {
        self.ts_counter += 1;
        let base = 1_700_000_000u64;
        format!(
            "{}.{:06}",
            base + self.ts_counter / 1_000_000,
            self.ts_counter % 1_000_000
        )
    }

    pub fn next_id(&mut self, prefix: &str) -> String {
        self.id_counter += 1;
        format!("{prefix}{:08}", self.id_counter)
    }

    pub fn ensure_channel(&mut self, channel: &str) {
        self.channels.entry(channel.to_string()).or_default();
    }

    pub fn insert(&mut self, m: Message) {
        self.channels
            .entry(m.channel.clone())
            .or_default()
            .insert(m.ts.clone(), m);
    }

    pub fn get_mut(&mut self, channel: &str, ts: &str) -> Option<&mut Message> {
        self.channels.get_mut(channel)?.get_mut(ts)
    }

    pub fn get(&self, channel: &str, ts: &str) -> Option<&Message> {
        self.channels.get(channel)?.get(ts)
    }

    /// The root and its replies, oldest first (what `conversations.replies` returns).
    pub fn thread(&self, channel: &str, root: &str) -> Vec<Message> {
        let Some(ch) = self.channels.get(channel) else {
            return Vec::new();
        };
        ch.values()
            .filter(|m| !m.deleted)
            .filter(|m| m.ts == root || m.thread_ts.as_deref() == Some(root))
            .cloned()
            .collect()
    }

    /// Takes a 429 for `method` if one is pending.
    pub fn take_rate_limit(&mut self, method: &str) -> Option<u64> {
        let idx = self
            .faults
            .iter()
            .position(|f| f.method.as_deref().is_none_or(|m| m == method))?;
        let f = &mut self.faults[idx];
        f.remaining -= 1;
        let after = f.retry_after_secs;
        if f.remaining == 0 {
            self.faults.remove(idx);
        }
        Some(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_values_increase_and_sort_as_strings() {
        let mut m = Model::default();
        let a = m.next_ts();
        let b = m.next_ts();
        assert!(a < b);
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn rate_limit_faults_are_used_up() {
        let mut m = Model::default();
        m.faults.push_back(RateLimitFault {
            method: Some("chat.update".into()),
            remaining: 2,
            retry_after_secs: 1,
        });
        assert_eq!(m.take_rate_limit("chat.postMessage"), None);
        assert_eq!(m.take_rate_limit("chat.update"), Some(1));
        assert_eq!(m.take_rate_limit("chat.update"), Some(1));
        assert_eq!(m.take_rate_limit("chat.update"), None);
    }
}
