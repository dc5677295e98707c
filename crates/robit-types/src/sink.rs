//! The port adapters implement so the engine can answer in a thread without naming a platform.

use crate::action::AnswerControls;
use crate::ids::UserId;
use crate::inbound::Attachment;
use async_trait::async_trait;
use std::time::Duration;

/// What a platform allows; the engine's renderer paces and splits by these numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Longest message text, in Unicode scalar values (Discord counts these; 2,000).
    pub max_message_len: usize,
    /// Minimum time between two edits of one message.
    pub min_edit_interval: Duration,
    /// The platform streams natively (Slack `chat.appendStream`): edits are cheap.
    pub native_streaming: bool,
    /// Largest file the platform takes; `None` when uploads are not supported.
    pub max_upload_bytes: Option<u64>,
    /// Each create and edit first waits for the platform's budget inside the sink (a pacer
    /// per channel), so the renderer sends an answer's final edit as soon as the stream ends
    /// instead of at the next `min_edit_interval`: a sink without its own pacer would then
    /// meet the platform's 429s, so it leaves this `false`.
    pub paced: bool,
    /// The sink can show buttons on a message ([`ReplySink::edit_controls`]): Stop while an
    /// answer streams, 👍/👎 when it is done.
    pub controls: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            max_message_len: 2000,
            min_edit_interval: Duration::from_secs(1),
            native_streaming: false,
            max_upload_bytes: None,
            paced: false,
            controls: false,
        }
    }
}

/// A message the sink posted, so it can be edited later. Opaque to the engine.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageRef(pub String);

/// A failure talking to the platform.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The platform asked us to slow down; the sink could not absorb it itself.
    #[error("rate limited by the platform, retry after {0:?}")]
    RateLimited(Duration),
    #[error("the platform rejected the request: {0}")]
    Rejected(String),
    #[error("the platform could not be reached: {0}")]
    Unavailable(String),
    #[error("not supported by this platform: {0}")]
    Unsupported(&'static str),
}

/// Where the engine's replies go: one thread (or DM, or console) of one platform.
///
/// Implementations do the platform call and nothing else: pacing, splitting and mention
/// neutralising are the engine's job, so every platform gets the same behaviour.
#[async_trait]
pub trait ReplySink: Send + Sync {
    fn capabilities(&self) -> Capabilities;

    /// Where this sink answers, as a string its adapter's [`SinkOpener`] turns back into a
    /// sink in another process: the turn journal keeps it so a turn can be resumed after a
    /// crash. `None`: replies cannot be resumed elsewhere (the console, tests).
    fn route(&self) -> Option<String> {
        None
    }

    /// Posts a new message in the thread.
    async fn post(&self, text: &str) -> Result<MessageRef, SinkError>;

    /// Posts a new message that must appear once however often it is sent with the same
    /// `key` (at most 25 ASCII characters), by this process or, after a crash, by another:
    /// the turn journal keys each slot of an answer, so a resumed turn that re-posts a slot
    /// whose first post returned but was never recorded gets that message back instead of a
    /// second one. It may then still show the earlier text; the caller edits it.
    ///
    /// Only platforms that deduplicate creates can keep the promise (Discord's
    /// `enforce_nonce`); the default is an ordinary post.
    async fn post_once(&self, _key: &str, text: &str) -> Result<MessageRef, SinkError> {
        self.post(text).await
    }

    /// Replaces the text of a message this sink posted.
    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError>;

    /// Replaces the text of a message this sink posted and the buttons it shows
    /// ([`AnswerControls::None`] removes them). Only called when
    /// [`Capabilities::controls`] says the sink can; the default is a plain edit.
    async fn edit_controls(
        &self,
        message: &MessageRef,
        text: &str,
        _controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        self.edit(message, text).await
    }

    /// Replaces the buttons a message this sink posted shows and leaves its text as it is: a
    /// takeover closing a turn someone stopped just before a crash takes its Stop away
    /// without knowing what the message last showed. Only platforms that can change the
    /// buttons alone do it (Discord); the default says it cannot.
    async fn set_controls(
        &self,
        _message: &MessageRef,
        _controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        Err(SinkError::Unsupported("changing a message's buttons alone"))
    }

    /// Uploads a file to the thread with an optional comment.
    async fn upload(
        &self,
        _file_name: &str,
        _bytes: &[u8],
        _comment: &str,
    ) -> Result<MessageRef, SinkError> {
        Err(SinkError::Unsupported("file upload"))
    }

    /// Downloads a file attached to the message being answered: its first `max_bytes` bytes
    /// (all of it when shorter), so a huge file costs no more than the engine will use. To
    /// learn whether a file was longer than its limit, ask for one byte more. Only the
    /// adapter knows how to fetch (Slack's private URLs need the bot token; Discord's CDN
    /// takes a plain GET), so the engine asks the sink.
    async fn fetch_attachment(
        &self,
        _attachment: &Attachment,
        _max_bytes: u64,
    ) -> Result<Vec<u8>, SinkError> {
        Err(SinkError::Unsupported("attachment download"))
    }

    /// Posts a message only `user` sees, where the platform can (Slack `chat.postEphemeral`);
    /// elsewhere it is an ordinary post. Refusals use it so they do not clutter a channel.
    async fn post_ephemeral(&self, _user: &UserId, text: &str) -> Result<MessageRef, SinkError> {
        self.post(text).await
    }

    /// Shows that the bot is working (typing indicator, status line). Best effort.
    async fn typing(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Rebuilds the sink of a journaled turn from the route its first sink gave
/// ([`ReplySink::route`]), so another process can finish the answer. Each adapter implements
/// it for its own routes.
pub trait SinkOpener: Send + Sync {
    /// `posted` are the messages the turn's earlier attempts posted, in order (a sink whose
    /// first post differs from later ones needs to know). `None` when the route is not this
    /// adapter's or can no longer be answered.
    fn open(&self, route: &str, posted: &[MessageRef]) -> Option<std::sync::Arc<dyn ReplySink>>;
}
