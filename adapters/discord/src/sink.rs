//! The [`ReplySink`]s: one that writes messages into a channel, thread or DM (and draws an
//! answer's buttons as message components), one that answers a slash command through its
//! interaction webhook (first post edits the deferred "thinking…" response, later posts are
//! follow-ups; the buttons go on them the same way), and one that answers a click on a button (ephemeral follow-ups only the
//! clicker sees).
//!
//! A sink does the Discord call and nothing else: pacing of the stream, splitting and mention
//! neutralising are the engine's. What it adds is what only the platform side can know: the
//! per-bucket budget ([`Pacer`]), mapping serenity's errors to [`SinkError`], Discord's numbers
//! for the call policy both adapters share (`robit_core::call_policy`: a 429 waited out a few
//! times, so even the engine's one-shot `say` survives a short burst; idempotent calls tried
//! again on a 5xx or a timeout, which serenity sets none of), and empty `allowed_mentions` on
//! everything, so nothing the bot posts can ping anyone even if the text still held a mention.

use crate::pacer::Pacer;
use async_trait::async_trait;
use robit_core::call_policy::{Call, CallPolicy, Verdict};
use robit_core::download::Downloader;
use robit_types::fence::fence_safe;
use robit_types::{
    AnswerControls, Attachment, CallBudget, Capabilities, MessageRef, Rate, ReplySink, SinkError,
    UserId,
};
use serenity::all::ButtonStyle;
use serenity::builder::{
    Builder, CreateActionRow, CreateAllowedMentions, CreateAttachment, CreateButton,
    CreateInteractionResponseFollowup, CreateMessage, EditInteractionResponse, EditMessage,
};
use serenity::http::{Http, HttpError};
use serenity::model::channel::Message;
use serenity::model::id::{ChannelId, MessageId};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Discord's numbers for the call policy both adapters share.
const POLICY: CallPolicy = CallPolicy {
    // A call is tried at most three times against 429s before the renderer sees one.
    rate_limit_waits: 2,
    // An idempotent call (an edit, a create with a nonce) is tried again twice on a 5xx.
    transient_retries: 2,
    // Serenity's HTTP client has no timeout of its own.
    request_timeout: Some(Duration::from_secs(20)),
    retry_backoff: Duration::from_millis(250),
    // Not used: serenity hides `retry_after`, so the pacer's pause stands in for it.
    default_retry_after: Duration::from_secs(1),
};

/// `MessageRef` of an interaction's original response.
const ORIGINAL: &str = "@original";

fn no_mentions() -> CreateAllowedMentions {
    CreateAllowedMentions::new()
}

/// An answer's buttons as one row of message components; no row at all removes them.
pub(crate) fn component_rows(controls: &AnswerControls) -> Vec<CreateActionRow> {
    let buttons: Vec<CreateButton> = controls
        .buttons()
        .into_iter()
        .map(|b| {
            CreateButton::new(b.id).label(b.label).style(if b.danger {
                ButtonStyle::Danger
            } else {
                ButtonStyle::Secondary
            })
        })
        .collect();
    if buttons.is_empty() {
        Vec::new()
    } else {
        vec![CreateActionRow::Buttons(buttons)]
    }
}

/// Shared by all sinks of one adapter.
pub(crate) struct SinkContext {
    pub http: Arc<Http>,
    pub pacer: Arc<Pacer>,
    pub caps: Capabilities,
    /// The budget shared with other replicas, when there are several, and the channel rate
    /// it enforces. Only channel buckets use it: an interaction's webhook is answered by the
    /// one replica that received the interaction.
    pub shared: Option<(Arc<dyn CallBudget>, Rate)>,
    pub downloads: Downloader,
}

impl std::fmt::Debug for SinkContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkContext")
            .field("caps", &self.caps)
            .field("shared", &self.shared.as_ref().map(|(_, rate)| rate))
            .finish_non_exhaustive()
    }
}

/// Maps a serenity error to the engine's vocabulary. A 429's `retry_after` is not visible
/// through serenity (see `pacer.rs`), so the bucket's own pause stands in for it.
fn classify(e: &serenity::Error) -> SinkError {
    match e {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => {
            let status = r.status_code.as_u16();
            let what = format!(
                "{} {} → {status}: {} (code {})",
                r.method, r.url, r.error.message, r.error.code
            );
            match status {
                429 => SinkError::RateLimited(Duration::from_secs(1)),
                500..=599 => SinkError::Unavailable(what),
                _ => SinkError::Rejected(what),
            }
        }
        serenity::Error::Http(HttpError::Request(r)) => SinkError::Unavailable(r.to_string()),
        serenity::Error::Model(m) => SinkError::Rejected(m.to_string()),
        other => SinkError::Unavailable(other.to_string()),
    }
}

impl SinkContext {
    /// One paced Discord call under the shared call policy (see the module docs).
    pub async fn call<T, F, Fut>(
        &self,
        bucket: &str,
        idempotent: bool,
        f: F,
    ) -> Result<T, SinkError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = serenity::Result<T>>,
    {
        let shared_bucket = format!("discord:{bucket}");
        let mut call = Call::new(bucket)
            .idempotent(idempotent)
            .paced(&*self.pacer, bucket);
        if let Some((budget, rate)) = self.shared.as_ref().filter(|_| bucket.starts_with("ch:")) {
            call = call.shared(&**budget, &shared_bucket, *rate);
        }
        POLICY
            .run(call, |e| Verdict::of_sink_error(&classify(e)), f)
            .await
            .map_err(|e| e.into_sink_error(|e| classify(&e)))
    }
}

/// Writes into one channel (a text channel, a thread, or a DM).
pub(crate) struct ChannelSink {
    cx: Arc<SinkContext>,
    channel: ChannelId,
    bucket: String,
}

static NONCES: AtomicU64 = AtomicU64::new(0);

/// A nonce unique to this process and message: with `enforce_nonce`, Discord turns a retried
/// create into the message the first attempt made, so retrying after a 5xx cannot duplicate.
fn fresh_nonce() -> serenity::model::channel::Nonce {
    let n = NONCES.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    // Discord caps nonces at 25 characters.
    serenity::model::channel::Nonce::String(format!("r{:x}{:x}", t & 0x00ff_ffff_ffff, n))
}

impl ChannelSink {
    pub fn new(cx: Arc<SinkContext>, channel: ChannelId) -> Self {
        Self {
            bucket: format!("ch:{channel}"),
            cx,
            channel,
        }
    }

    /// Creates a message under `nonce` (a fresh one when `None`).
    async fn create(
        &self,
        nonce: Option<&str>,
        build: impl Fn() -> CreateMessage,
    ) -> Result<MessageRef, SinkError> {
        let nonce = match nonce {
            // Discord caps nonces at 25 characters; a longer key cannot be kept.
            Some(key) if key.len() <= 25 => serenity::model::channel::Nonce::String(key.into()),
            _ => fresh_nonce(),
        };
        let http = self.cx.http.clone();
        let message: Message = self
            .cx
            .call(&self.bucket, true, || {
                let b = build()
                    .allowed_mentions(no_mentions())
                    .nonce(nonce.clone())
                    .enforce_nonce(true);
                let http = http.clone();
                let channel = self.channel;
                async move { channel.send_message(&*http, b).await }
            })
            .await?;
        Ok(MessageRef(message.id.to_string()))
    }

    /// Edits a message's text and, when given, its buttons (without, Discord keeps the
    /// buttons it has).
    async fn edit_with(
        &self,
        message: &MessageRef,
        text: Option<&str>,
        controls: Option<&AnswerControls>,
    ) -> Result<(), SinkError> {
        let text = text.map(fence_safe);
        let id = parse_id(message)?;
        let http = self.cx.http.clone();
        self.cx
            .call(&self.bucket, true, || {
                let mut b = EditMessage::new().allowed_mentions(no_mentions());
                // Without content Discord keeps the text the message has.
                if let Some(text) = &text {
                    b = b.content(&**text);
                }
                if let Some(controls) = controls {
                    b = b.components(component_rows(controls));
                }
                let http = http.clone();
                let channel = self.channel;
                async move { channel.edit_message(&*http, id, b).await }
            })
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl ReplySink for ChannelSink {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            controls: true,
            ..self.cx.caps.clone()
        }
    }

    fn route(&self) -> Option<String> {
        Some(format!("{CHANNEL_ROUTE}{}", self.channel))
    }

    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        let text = &*fence_safe(text);
        self.create(None, || CreateMessage::new().content(text))
            .await
    }

    async fn post_once(&self, key: &str, text: &str) -> Result<MessageRef, SinkError> {
        let text = &*fence_safe(text);
        self.create(Some(key), || CreateMessage::new().content(text))
            .await
    }

    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        self.edit_with(message, Some(text), None).await
    }

    async fn edit_controls(
        &self,
        message: &MessageRef,
        text: &str,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        self.edit_with(message, Some(text), Some(controls)).await
    }

    async fn set_controls(
        &self,
        message: &MessageRef,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        self.edit_with(message, None, Some(controls)).await
    }

    async fn upload(
        &self,
        file_name: &str,
        bytes: &[u8],
        comment: &str,
    ) -> Result<MessageRef, SinkError> {
        let comment = &*fence_safe(comment);
        self.create(None, || {
            CreateMessage::new()
                .content(comment)
                .add_file(CreateAttachment::bytes(bytes.to_vec(), file_name))
        })
        .await
    }

    async fn fetch_attachment(
        &self,
        attachment: &Attachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SinkError> {
        self.cx.downloads.fetch(attachment, max_bytes).await
    }

    async fn typing(&self) -> Result<(), SinkError> {
        // Typing has its own bucket on Discord and is best effort: not paced, not retried.
        self.cx
            .http
            .broadcast_typing(self.channel)
            .await
            .map_err(|e| classify(&e))
    }
}

fn parse_id(message: &MessageRef) -> Result<MessageId, SinkError> {
    message
        .0
        .parse::<u64>()
        .ok()
        .filter(|id| *id != 0)
        .map(MessageId::new)
        .ok_or(SinkError::Rejected(format!(
            "not a discord message id: {}",
            message.0
        )))
}

/// Answers one slash command through its interaction token (valid 15 minutes).
pub(crate) struct InteractionSink {
    cx: Arc<SinkContext>,
    token: String,
    bucket: String,
    /// Whether the deferred original response has been filled; held across the call so the
    /// first post is exactly one edit of `@original` even when it has to be retried.
    original_used: tokio::sync::Mutex<bool>,
    /// When the interaction arrived (unix ms): its token works for 15 minutes.
    created_ms: u64,
}

impl InteractionSink {
    pub fn new(cx: Arc<SinkContext>, token: String) -> Self {
        Self::resumed(cx, token, unix_ms(), false)
    }

    fn resumed(cx: Arc<SinkContext>, token: String, created_ms: u64, original_used: bool) -> Self {
        Self {
            bucket: format!("wh:{token}"),
            cx,
            token,
            original_used: tokio::sync::Mutex::new(original_used),
            created_ms,
        }
    }

    async fn edit_original(
        &self,
        build: impl Fn() -> EditInteractionResponse,
    ) -> Result<(), SinkError> {
        let http = self.cx.http.clone();
        self.cx
            .call(&self.bucket, true, || {
                let b = build().allowed_mentions(no_mentions());
                let http = http.clone();
                let token = self.token.clone();
                async move { b.execute(&*http, &token).await }
            })
            .await
            .map(|_| ())
    }

    async fn followup(
        &self,
        existing: Option<MessageId>,
        build: impl Fn() -> CreateInteractionResponseFollowup,
    ) -> Result<Message, SinkError> {
        let http = self.cx.http.clone();
        // A follow-up create has no nonce, so only edits are retried on 5xx.
        self.cx
            .call(&self.bucket, existing.is_some(), || {
                let b = build().allowed_mentions(no_mentions());
                let http = http.clone();
                let token = self.token.clone();
                async move { b.execute(&*http, (existing, &token)).await }
            })
            .await
    }

    /// Edits the original response or a follow-up: its text and, when given, its buttons
    /// (without, Discord keeps the buttons it has).
    async fn edit_with(
        &self,
        message: &MessageRef,
        text: Option<&str>,
        controls: Option<&AnswerControls>,
    ) -> Result<(), SinkError> {
        // Without content Discord keeps the text the message has.
        let text = text.map(fence_safe);
        if message.0 == ORIGINAL {
            return self
                .edit_original(|| {
                    let mut b = EditInteractionResponse::new();
                    if let Some(text) = &text {
                        b = b.content(&**text);
                    }
                    match controls {
                        Some(c) => b.components(component_rows(c)),
                        None => b,
                    }
                })
                .await;
        }
        let id = parse_id(message)?;
        self.followup(Some(id), || {
            let mut b = CreateInteractionResponseFollowup::new();
            if let Some(text) = &text {
                b = b.content(&**text);
            }
            match controls {
                Some(c) => b.components(component_rows(c)),
                None => b,
            }
        })
        .await
        .map(|_| ())
    }

    /// The first post fills the original response; later ones are follow-ups.
    async fn post_with(
        &self,
        original: impl Fn() -> EditInteractionResponse,
        followup: impl Fn() -> CreateInteractionResponseFollowup,
    ) -> Result<MessageRef, SinkError> {
        let mut used = self.original_used.lock().await;
        if !*used {
            self.edit_original(original).await?;
            *used = true;
            return Ok(MessageRef(ORIGINAL.to_string()));
        }
        drop(used);
        let m = self.followup(None, followup).await?;
        Ok(MessageRef(m.id.to_string()))
    }
}

#[async_trait]
impl ReplySink for InteractionSink {
    fn capabilities(&self) -> Capabilities {
        // The interaction's webhook messages take components like any message; a click on
        // them comes back as a component interaction of the channel.
        Capabilities {
            controls: true,
            ..self.cx.caps.clone()
        }
    }

    fn route(&self) -> Option<String> {
        Some(format!(
            "{INTERACTION_ROUTE}{}:{}",
            self.created_ms, self.token
        ))
    }

    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        let text = &*fence_safe(text);
        self.post_with(
            || EditInteractionResponse::new().content(text),
            || CreateInteractionResponseFollowup::new().content(text),
        )
        .await
    }

    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        self.edit_with(message, Some(text), None).await
    }

    async fn edit_controls(
        &self,
        message: &MessageRef,
        text: &str,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        self.edit_with(message, Some(text), Some(controls)).await
    }

    async fn set_controls(
        &self,
        message: &MessageRef,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        self.edit_with(message, None, Some(controls)).await
    }

    async fn upload(
        &self,
        file_name: &str,
        bytes: &[u8],
        comment: &str,
    ) -> Result<MessageRef, SinkError> {
        let comment = &*fence_safe(comment);
        let file = || CreateAttachment::bytes(bytes.to_vec(), file_name);
        self.post_with(
            || {
                EditInteractionResponse::new()
                    .content(comment)
                    .new_attachment(file())
            },
            || {
                CreateInteractionResponseFollowup::new()
                    .content(comment)
                    .add_file(file())
            },
        )
        .await
    }

    async fn fetch_attachment(
        &self,
        attachment: &Attachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SinkError> {
        self.cx.downloads.fetch(attachment, max_bytes).await
    }

    // The deferred response already shows "thinking…"; typing would be noise.
}

/// Answers a click on one of an answer's buttons, already acknowledged (a deferred update):
/// what only the clicker should see (a refusal, "already finished") is an ephemeral
/// follow-up of the interaction; a regenerated answer is written in the channel the button
/// was in, like any answer (its route is the channel's, so a takeover finds it).
pub(crate) struct ActionSink {
    cx: Arc<SinkContext>,
    token: String,
    bucket: String,
    channel: ChannelSink,
}

impl ActionSink {
    pub fn new(cx: Arc<SinkContext>, token: String, channel: ChannelId) -> Self {
        Self {
            bucket: format!("wh:{token}"),
            channel: ChannelSink::new(cx.clone(), channel),
            cx,
            token,
        }
    }

    /// An ephemeral follow-up only the clicker sees.
    async fn whisper(&self, text: &str) -> Result<MessageRef, SinkError> {
        let text = &*fence_safe(text);
        let http = self.cx.http.clone();
        let m = self
            .cx
            .call(&self.bucket, false, || {
                let b = CreateInteractionResponseFollowup::new()
                    .content(text)
                    .ephemeral(true)
                    .allowed_mentions(no_mentions());
                let http = http.clone();
                let token = self.token.clone();
                async move { b.execute(&*http, (None, &token)).await }
            })
            .await?;
        Ok(MessageRef(m.id.to_string()))
    }
}

#[async_trait]
impl ReplySink for ActionSink {
    fn capabilities(&self) -> Capabilities {
        self.channel.capabilities()
    }

    fn route(&self) -> Option<String> {
        self.channel.route()
    }

    async fn post(&self, text: &str) -> Result<MessageRef, SinkError> {
        self.channel.post(text).await
    }

    async fn post_once(&self, key: &str, text: &str) -> Result<MessageRef, SinkError> {
        self.channel.post_once(key, text).await
    }

    async fn edit(&self, message: &MessageRef, text: &str) -> Result<(), SinkError> {
        self.channel.edit(message, text).await
    }

    async fn edit_controls(
        &self,
        message: &MessageRef,
        text: &str,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        self.channel.edit_controls(message, text, controls).await
    }

    async fn set_controls(
        &self,
        message: &MessageRef,
        controls: &AnswerControls,
    ) -> Result<(), SinkError> {
        self.channel.set_controls(message, controls).await
    }

    async fn upload(
        &self,
        file_name: &str,
        bytes: &[u8],
        comment: &str,
    ) -> Result<MessageRef, SinkError> {
        self.channel.upload(file_name, bytes, comment).await
    }

    async fn fetch_attachment(
        &self,
        attachment: &Attachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SinkError> {
        self.channel.fetch_attachment(attachment, max_bytes).await
    }

    async fn post_ephemeral(&self, _user: &UserId, text: &str) -> Result<MessageRef, SinkError> {
        self.whisper(text).await
    }

    async fn typing(&self) -> Result<(), SinkError> {
        self.channel.typing().await
    }
}

const CHANNEL_ROUTE: &str = "discord:channel:";
const INTERACTION_ROUTE: &str = "discord:interaction:";
/// An interaction token lives 15 minutes; a resumed turn needs some of it left to answer.
const INTERACTION_TOKEN_LIFE_MS: u64 = 14 * 60 * 1000;

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Rebuilds the sinks of journaled turns from their routes, for the engine's takeover.
pub(crate) struct DiscordOpener {
    pub cx: Arc<SinkContext>,
}

impl robit_types::SinkOpener for DiscordOpener {
    fn open(&self, route: &str, posted: &[MessageRef]) -> Option<Arc<dyn ReplySink>> {
        if let Some(channel) = route.strip_prefix(CHANNEL_ROUTE) {
            let channel = channel.parse::<u64>().ok().filter(|c| *c != 0)?;
            return Some(Arc::new(ChannelSink::new(
                self.cx.clone(),
                ChannelId::new(channel),
            )));
        }
        let (created, token) = route.strip_prefix(INTERACTION_ROUTE)?.split_once(':')?;
        let created: u64 = created.parse().ok()?;
        // An expired token cannot edit the answer nor post in its place: the turn is given
        // up (the engine logs and counts it).
        if unix_ms().saturating_sub(created) > INTERACTION_TOKEN_LIFE_MS {
            return None;
        }
        let original_used = posted.iter().any(|m| m.0 == ORIGINAL);
        Some(Arc::new(InteractionSink::resumed(
            self.cx.clone(),
            token.to_string(),
            created,
            original_used,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robit_emulators::discord::DiscordEmulator;

    fn button_ids(components: &[serde_json::Value]) -> Vec<String> {
        let mut ids = Vec::new();
        let mut stack: Vec<&serde_json::Value> = components.iter().collect();
        while let Some(v) = stack.pop() {
            if let Some(id) = v["custom_id"].as_str() {
                ids.push(id.to_string());
            }
            if let Some(children) = v["components"].as_array() {
                stack.extend(children);
            }
        }
        ids
    }

    /// What a takeover does to a stopped answer's last message: its Stop becomes the
    /// buttons of a finished answer, and its text stays what it was.
    #[tokio::test]
    async fn set_controls_changes_the_buttons_and_keeps_the_text() {
        let emu = DiscordEmulator::start().await;
        let config = crate::DiscordConfig {
            token: Some(emu.token().into()),
            api_base: Some(emu.base_url()),
            ..crate::DiscordConfig::default()
        };
        let (http, caps, pacer) = crate::build_http(&config).unwrap();
        let cx = Arc::new(SinkContext {
            http: Arc::new(http),
            pacer,
            caps,
            shared: None,
            downloads: crate::download::downloader(config.api_base.as_deref()),
        });
        let sink = ChannelSink::new(cx, ChannelId::new(emu.channel_id()));
        let m = sink.post("The answer so far").await.unwrap();
        let streaming = AnswerControls::Streaming { turn: 7 };
        sink.edit_controls(&m, "The answer so far", &streaming)
            .await
            .unwrap();
        sink.set_controls(&m, &AnswerControls::Done { turn: 7 })
            .await
            .unwrap();
        let shown = emu.message(m.0.parse().unwrap()).unwrap();
        assert_eq!(shown.content, "The answer so far");
        let ids = button_ids(&shown.components);
        assert!(ids.contains(&"robit:regenerate:7".to_string()), "{ids:?}");
        assert!(
            !ids.iter().any(|id| id.starts_with("robit:stop:")),
            "{ids:?}"
        );
    }
}
